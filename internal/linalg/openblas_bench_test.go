//go:build cgo && openblas

package linalg

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/lapack"
)

// Measurements behind the thread gate's design and parallelMinWork:
//
//	go test -tags openblas -run '^$' -bench 'Gate' -benchtime 2x ./internal/linalg

// BenchmarkGateSgemm1024 compares two ways to spend 2 cores on two 1024³
// products: two goroutines each running single-threaded OpenBLAS under the
// shared side of the gate, or the two products one after the other with 2
// threads each under the exclusive side.
func BenchmarkGateSgemm1024(b *testing.B) {
	const n = 1024
	rng := rand.New(rand.NewPCG(1, 1))
	x := newMat[float32](rng, n, n, n)
	y := newMat[float32](rng, n, n, n)
	cs := [2][]float32{make([]float32, n*n), make([]float32, n*n)}
	flops := 2 * 2 * float64(n) * n * n // two products
	report := func(b *testing.B) {
		b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	}
	b.Run("2goroutines×1thread", func(b *testing.B) {
		be := Default(1)
		for b.Loop() {
			var wg sync.WaitGroup
			for i := range 2 {
				wg.Go(func() { be.Sgemm(blas.NoTrans, blas.NoTrans, n, n, n, 1, x, n, y, n, 0, cs[i], n) })
			}
			wg.Wait()
		}
		report(b)
	})
	b.Run("1call×2threads", func(b *testing.B) {
		be := Default(2)
		for b.Loop() {
			for i := range 2 {
				be.Sgemm(blas.NoTrans, blas.NoTrans, n, n, n, 1, x, n, y, n, 0, cs[i], n)
			}
		}
		report(b)
	})
	b.Run("1call×1thread", func(b *testing.B) {
		be := Default(1)
		for b.Loop() {
			for i := range 2 {
				be.Sgemm(blas.NoTrans, blas.NoTrans, n, n, n, 1, x, n, y, n, 0, cs[i], n)
			}
		}
		report(b)
	})
}

// BenchmarkGateSmall times one small sgemm n³ with budget 1 (shared side,
// 1 thread) and with budget 2 forced onto the exclusive side at every size
// (2 threads). At n = 8, where OpenBLAS does not split the work anyway, the
// difference is the cost of the exclusive lock and the two
// openblas_set_num_threads calls; at larger n it shows from which size the
// second thread pays.
func BenchmarkGateSmall(b *testing.B) {
	rng := rand.New(rand.NewPCG(2, 2))
	defer func(w float64) { gate.minWork = w }(gate.minWork)
	gate.minWork = 0
	for _, n := range []int{8, 32, 64, 96, 128, 160, 192, 256, 384} {
		x := newMat[float32](rng, n, n, n)
		y := newMat[float32](rng, n, n, n)
		c := make([]float32, n*n)
		for _, budget := range []int{1, 2} {
			b.Run(fmt.Sprintf("n=%d/budget=%d", n, budget), func(b *testing.B) {
				be := Default(budget)
				for b.Loop() {
					be.Sgemm(blas.NoTrans, blas.NoTrans, n, n, n, 1, x, n, y, n, 0, c, n)
				}
				b.ReportMetric(2*float64(n*n*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// TestLAPACKIsOpenBLAS checks that the Fortran LAPACK routines LAPACKE
// calls resolve to libopenblas: the link order puts it before liblapacke,
// whose own dependency may be a reference liblapack.
func TestLAPACKIsOpenBLAS(t *testing.T) {
	for _, sym := range []string{"sgesdd_", "dgesdd_", "ssyevd_", "dgelqf_", "dorglq_", "dpotrf_", "cblas_sgemm"} {
		lib := symbolLibrary(sym)
		if !strings.Contains(lib, "openblas") {
			t.Errorf("%s comes from %q, want libopenblas", sym, lib)
		}
	}
}

// BenchmarkSgesdd2048 times the thin SVD of a 2048×2048 float32 matrix, the
// check that LAPACK runs on OpenBLAS's optimized kernels (SciPy's gesdd on
// the same machine and size: about 2 s with 2 threads).
//
//	go test -tags openblas -run '^$' -bench Sgesdd2048 -benchtime 3x ./internal/linalg
func BenchmarkSgesdd2048(b *testing.B) {
	const n = 2048
	rng := rand.New(rand.NewPCG(3, 3))
	a0 := newMat[float32](rng, n, n, n)
	a := make([]float32, n*n)
	s := make([]float32, n)
	u := make([]float32, n*n)
	vt := make([]float32, n*n)
	for _, threads := range []int{1, 2} {
		b.Run(fmt.Sprintf("threads=%d", threads), func(b *testing.B) {
			be := Default(threads)
			for b.Loop() {
				copy(a, a0)
				if !be.Sgesdd(lapack.SVDStore, n, n, a, n, s, u, n, vt, n) {
					b.Fatal("no convergence")
				}
			}
		})
	}
}
