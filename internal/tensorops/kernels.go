package tensorops

import (
	"sync"

	"gonum.org/v1/gonum/blas"

	"github.com/lowrank/lowrank/internal/linalg"
)

// gemm is linalg.Gemm, skipping empty products (whose strides some BLAS
// reject).
func gemm[T Float](b linalg.Backend, tA, tB blas.Transpose, m, n, k int, alpha T, a []T, lda int, bm []T, ldb int, beta T, c []T, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	linalg.Gemm(b, tA, tB, m, n, k, alpha, a, lda, bm, ldb, beta, c, ldc)
}

// syrk computes the upper triangle of C = alpha·op(A)·op(A)ᵀ + beta·C.
func syrk[T Float](b linalg.Backend, t blas.Transpose, n, k int, alpha T, a []T, lda int, beta T, c []T, ldc int) {
	if n == 0 {
		return
	}
	linalg.Syrk(b, blas.Upper, t, n, k, alpha, a, lda, beta, c, ldc)
}

// parallelFor runs fn over [0, n) split into at most threads contiguous
// chunks, one goroutine each, and waits. Chunks never overlap, so callers
// that write only to indices of their own chunk get the same result for any
// thread count.
func parallelFor(threads, n int, fn func(lo, hi int)) {
	threads = min(threads, n)
	if threads <= 1 {
		if n > 0 {
			fn(0, n)
		}
		return
	}
	var wg sync.WaitGroup
	chunk := (n + threads - 1) / threads
	for lo := 0; lo < n; lo += chunk {
		hi := min(n, lo+chunk)
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	wg.Wait()
}

// toFloat64 widens a into dst (len(dst) ≥ len(a)).
func toFloat64[T Float](dst []float64, a []T) []float64 {
	dst = dst[:len(a)]
	for i, v := range a {
		dst[i] = float64(v)
	}
	return dst
}
