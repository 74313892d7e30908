//go:build cgo && openblas

package linalg

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

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
// (2 threads). The two run alternately in one loop and the fastest call of
// each is reported, which filters out the other load of a shared machine.
// At n = 8, where OpenBLAS does not split the work anyway, the difference is
// the cost of the exclusive lock and the two openblas_set_num_threads calls;
// at larger n, speedup = min1/min2 shows from which size a second thread
// pays.
func BenchmarkGateSmall(b *testing.B) {
	rng := rand.New(rand.NewPCG(2, 2))
	defer func(w float64) { gate.minWork = w }(gate.minWork)
	gate.minWork = 0
	for _, n := range []int{8, 32, 64, 96, 128, 160, 192, 256, 384, 512} {
		x := newMat[float32](rng, n, n, n)
		y := newMat[float32](rng, n, n, n)
		c := make([]float32, n*n)
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			var best [2]time.Duration
			for b.Loop() {
				for i, be := range []Backend{Default(1), Default(2)} {
					t := time.Now()
					be.Sgemm(blas.NoTrans, blas.NoTrans, n, n, n, 1, x, n, y, n, 0, c, n)
					if d := time.Since(t); best[i] == 0 || d < best[i] {
						best[i] = d
					}
				}
			}
			b.ReportMetric(float64(best[0].Nanoseconds()), "min1-ns")
			b.ReportMetric(float64(best[1].Nanoseconds()), "min2-ns")
			b.ReportMetric(float64(best[0])/float64(best[1]), "speedup")
		})
	}
}

// TestLAPACKIsOpenBLAS checks that the Fortran LAPACK routines LAPACKE
// calls resolve to libopenblas: the link order puts it before liblapacke,
// whose own dependency may be a reference liblapack.
func TestLAPACKIsOpenBLAS(t *testing.T) {
	for _, sym := range []string{"sgesdd_", "dgesdd_", "ssyevd_", "ssytrd_", "sstedc_", "sormtr_", "dgelqf_", "dorglq_", "dpotrf_", "cblas_sgemm"} {
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

// BenchmarkGateAfterExclusive measures what a 2-thread call leaves behind:
// OpenBLAS's worker threads spin (yielding) for a while after their work
// before they sleep, and may compete with the single-threaded calls that
// the gate lets in next. Each iteration runs one n=256 product with budget
// 1 or 2, then two goroutines of four single-threaded products each; the
// fastest second phase is reported.
func BenchmarkGateAfterExclusive(b *testing.B) {
	const n = 256
	rng := rand.New(rand.NewPCG(4, 4))
	x := newMat[float32](rng, n, n, n)
	y := newMat[float32](rng, n, n, n)
	cs := [3][]float32{make([]float32, n*n), make([]float32, n*n), make([]float32, n*n)}
	for _, first := range []int{1, 2} {
		b.Run(fmt.Sprintf("after-budget=%d", first), func(b *testing.B) {
			var best time.Duration
			for b.Loop() {
				Default(first).Sgemm(blas.NoTrans, blas.NoTrans, n, n, n, 1, x, n, y, n, 0, cs[2], n)
				t := time.Now()
				var wg sync.WaitGroup
				for i := range 2 {
					wg.Go(func() {
						for range 4 {
							Default(1).Sgemm(blas.NoTrans, blas.NoTrans, n, n, n, 1, x, n, y, n, 0, cs[i], n)
						}
					})
				}
				wg.Wait()
				if d := time.Since(t); best == 0 || d < best {
					best = d
				}
			}
			b.ReportMetric(float64(best.Microseconds()), "min-µs")
		})
	}
}

// BenchmarkTruncated4096 runs the default block Krylov SVD at rank 256 of a
// 4096×4096 Gaussian with 2 threads, alone, for profiling its stages
// (bench/ compares it with the peers):
//
//	go test -tags openblas -run '^$' -bench Truncated4096 -benchtime 5x -cpuprofile cpu.out ./internal/linalg
func BenchmarkTruncated4096(b *testing.B) {
	const n, k = 4096, 256
	rng := rand.New(rand.NewPCG(2, 2))
	a := newMat[float32](rng, n, n, n)
	be := Default(2)
	opts := SVDOptions{Algorithm: SVDBlockKrylov, Rule: RankRule{Rank: k}, Seed: 1}
	for b.Loop() {
		if _, err := TruncatedSVD(b.Context(), be, n, n, a, n, opts, nil); err != nil {
			b.Fatal(err)
		}
	}
}
