//go:build cgo && openblas

package linalg

import (
	"fmt"
	"math"
	"runtime"
	"testing"
)

// TestGesddSplit runs the thin SVD through gesddSplit at sizes far below
// its production range, square, tall (a lower bidiagonal on the column-major
// view) and wide (an upper one), with padded strides, and checks the
// factors as TestSVDFullSweep does and σ against xGESDD's. At 300×260 the
// float64 scratch passes 2 MiB and comes from huge pages (lr_alloc).
func TestGesddSplit(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("gesddSplit needs two cores")
	}
	// The production range, at the default settings.
	for _, c := range []struct {
		threads, m, n int
		want          bool
	}{
		{2, 2048, 2048, true}, {2, 1536, 2048, true}, {2, 1024, 1024, false}, {2, 4096, 4096, false},
		{2, 2048, 4000, false}, {1, 2048, 2048, false},
	} {
		if got := (OpenBLAS{threads: c.threads}).splitSVD(c.m, c.n); got != c.want {
			t.Errorf("splitSVD(%d, %d) on %d threads = %v, want %v", c.m, c.n, c.threads, got, c.want)
		}
	}
	defer func(lo, hi int, w float64) { splitSVDMin, splitSVDMax, gate.minWork = lo, hi, w }(splitSVDMin, splitSVDMax, gate.minWork)
	gate.minWork = 0
	o := OpenBLAS{threads: 2}
	for _, sz := range [][2]int{{2, 2}, {3, 3}, {5, 5}, {33, 33}, {100, 100}, {7, 5}, {5, 7}, {40, 33}, {33, 40}, {120, 70}, {70, 120}, {300, 260}} {
		m, n := sz[0], sz[1]
		p := min(m, n)
		lda := n + 3
		sigma := make([]float64, p)
		for i := range sigma {
			sigma[i] = math.Pow(10, -4*float64(i)/float64(max(1, p-1))) // σ₁/σₚ = 10⁴
		}
		a := testMatrix(o, uint64(7*m+n), m, n, lda, sigma)
		t.Run(fmt.Sprintf("%dx%d", m, n), func(t *testing.T) {
			splitSVDMin, splitSVDMax = 1, 1<<30
			if !o.splitSVD(n, m) {
				t.Fatalf("%d×%d does not take gesddSplit", m, n)
			}
			r64, err := SVD(o, m, n, a, lda)
			if err != nil {
				t.Fatal(err)
			}
			a32 := toF32(a)
			r32, err := SVD(o, m, n, a32, lda)
			if err != nil {
				t.Fatal(err)
			}
			splitSVDMin = 1 << 30
			ref64, err := SVD(o, m, n, a, lda)
			if err != nil {
				t.Fatal(err)
			}
			ref32, err := SVD(o, m, n, a32, lda)
			if err != nil {
				t.Fatal(err)
			}
			// Backward stable like xGESDD: residual and orthogonality a
			// small multiple of u, growing about like √p (the float32
			// residuals here reach 9.3e-7 at p = 260), so 1e-12 and 1e-5
			// leave a margin of about 10.
			if res := checkSVD(t, r64, m, n, a, lda, 1e-12); res > 1e-12 {
				t.Errorf("f64 residual %.3g", res)
			}
			if res := checkSVD(t, r32, m, n, a32, lda, 1e-5); res > 1e-5 {
				t.Errorf("f32 residual %.3g", res)
			}
			// Each σ is perturbed by at most about u·σ₁ in either method.
			for i := range p {
				if d := math.Abs(r64.S[i] - ref64.S[i]); d > 1e-13 {
					t.Errorf("f64 σ%d = %v, xGESDD %v", i, r64.S[i], ref64.S[i])
				}
				if d := math.Abs(float64(r32.S[i] - ref32.S[i])); d > 1e-6 {
					t.Errorf("f32 σ%d = %v, xGESDD %v", i, r32.S[i], ref32.S[i])
				}
			}
		})
	}
}
