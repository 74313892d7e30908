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

// splitThreads returns how many goroutines should share a product of about
// work multiply-adds, and the single-threaded backend each of them calls:
// all of b's budget above splitMinWork, else 1 (and b itself).
//
// Tucker's products are mid-sized (a few ms) and alternate with
// single-threaded eigensolvers. Run on OpenBLAS's own threads, they leave
// its workers spinning for a while afterwards, and on this 2-core machine a
// spinning worker slowed the eigensolver that followed from 3.8 to 5.2 ms
// (n = 256, C, medians of 40); putting the workers to sleep at once
// (OPENBLAS_THREAD_TIMEOUT=4) cost as much again in wake-ups. Go-level
// splits of single-threaded calls leave no worker behind.
func splitThreads(b linalg.Backend, work float64) (int, linalg.Backend) {
	if b.Threads() < 2 || work < splitMinWork {
		return 1, b
	}
	return b.Threads(), b.WithThreads(1)
}

// splitMinWork is the product size below which splitThreads keeps one
// goroutine: 128³, the size below which the thread gate runs OpenBLAS
// single-threaded too.
const splitMinWork = 128 * 128 * 128

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
	for lo := chunk; lo < n; lo += chunk {
		hi := min(n, lo+chunk)
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	fn(0, min(n, chunk)) // the caller takes the first chunk
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
