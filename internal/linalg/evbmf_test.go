package linalg

import (
	"fmt"
	"math"
	"testing"

	"gonum.org/v1/gonum/lapack"
)

// noisySpectrum returns the singular values of U·diag(signal)·Vᵀ + σ·G for
// an m×n Gaussian G, with U and V random orthonormal (seeded).
func noisySpectrum(t testing.TB, seed uint64, m, n int, signal []float64, sigma float64) []float64 {
	t.Helper()
	b := NewGonum(1)
	var a []float64
	if len(signal) > 0 {
		a = testMatrix(b, seed, m, n, n, signal)[:m*n]
	} else {
		a = make([]float64, m*n)
	}
	g := gaussianMatrix(seed, m, n, n)
	for i := range a {
		a[i] += sigma * g[i]
	}
	s := make([]float64, min(m, n))
	if !b.Dgesdd(lapack.SVDNone, m, n, a, n, s, nil, 1, nil, 1) {
		t.Fatalf("%d×%d: SVD did not converge", m, n)
	}
	return s
}

func TestEVBMFRecoversRank(t *testing.T) {
	const sigma = 0.7
	// Relative tolerance on σ²: the estimate averages L·M − O(r·(L+M))
	// squared noise entries, so for these sizes (≥ 1800 entries, ≤ 5
	// components) its sampling error is a few percent (3.2 % at most over
	// this sweep); 6 % leaves room for other seeds without letting a wrong
	// free energy (which puts signal into σ² or misses a factor α) pass.
	const tolSigma2 = 0.06
	for _, sz := range [][2]int{{60, 40}, {40, 60}, {100, 100}, {200, 50}, {50, 200}, {30, 300}, {300, 30}} {
		m, n := sz[0], sz[1]
		// The largest noise singular value is ≈ σ(√m + √n) and EVBMF's
		// threshold ≈ 1.1× that; signal at ≥ 2× the noise edge is clearly
		// detectable, and spreading it over 2..6× keeps the components
		// distinct.
		edge := sigma * (math.Sqrt(float64(m)) + math.Sqrt(float64(n)))
		for _, r := range []int{0, 1, 3, 5} {
			signal := make([]float64, r)
			for i := range signal {
				signal[i] = edge * (6 - 4*float64(i)/float64(max(1, r-1)))
			}
			for seed := uint64(1); seed <= 3; seed++ {
				t.Run(fmt.Sprintf("%dx%d/r%d/seed%d", m, n, r, seed), func(t *testing.T) {
					s := noisySpectrum(t, seed, m, n, signal, sigma)
					rank, s2 := EVBMF(s, m, n)
					if rank != r {
						t.Errorf("rank %d, want %d (σ² = %g)", rank, r, s2)
					}
					if rel := math.Abs(s2-sigma*sigma) / (sigma * sigma); rel > tolSigma2 {
						t.Errorf("σ² = %g, want %g ± %g%%", s2, sigma*sigma, 100*tolSigma2)
					}
				})
			}
		}
	}
}

func TestEVBMFScaleInvariant(t *testing.T) {
	// Scaling the matrix by c scales σ² by c² and keeps the rank: the
	// model has no fixed scale. Powers of two keep the check exact up to
	// the search's rounding.
	s := noisySpectrum(t, 7, 80, 50, []float64{40, 30, 20}, 1)
	r0, v0 := EVBMF(s, 80, 50)
	for _, c := range []float64{0x1p-500, 0x1p-20, 1, 0x1p20, 0x1p500} {
		sc := make([]float64, len(s))
		for i, v := range s {
			sc[i] = c * v
		}
		r, v := EVBMF(sc, 80, 50)
		if r != r0 || math.Abs(v/(c*c)-v0) > 1e-9*v0 {
			t.Errorf("scale %g: rank %d σ²/c² %g, want %d %g", c, r, v/(c*c), r0, v0)
		}
	}
}

func TestEVBMFOrientationAndOrder(t *testing.T) {
	// EVBMF depends on the shape only through L = min and M = max, and on
	// s only as a set.
	s := noisySpectrum(t, 3, 90, 40, []float64{50, 35}, 1)
	r1, v1 := EVBMF(s, 90, 40)
	r2, v2 := EVBMF(s, 40, 90)
	rev := make([]float64, len(s))
	for i, v := range s {
		rev[len(s)-1-i] = v
	}
	r3, v3 := EVBMF(rev, 90, 40)
	if r1 != 2 || r2 != r1 || r3 != r1 || v2 != v1 || v3 != v1 {
		t.Errorf("90×40 (%d, %g), 40×90 (%d, %g), ascending (%d, %g); want rank 2 and equal σ²", r1, v1, r2, v2, r3, v3)
	}
	if s[0] < s[1] {
		t.Errorf("EVBMF modified its input")
	}
}

func TestEVBMFEdgeCases(t *testing.T) {
	cases := []struct {
		name      string
		s         []float64
		m, n      int
		rank      int
		sigma2    float64
		sigma2Tol float64
	}{
		{"empty 0×0", nil, 0, 0, 0, 0, 0},
		{"empty 0×5", []float64{}, 0, 5, 0, 0, 0},
		{"empty 7×0", []float64{}, 7, 0, 0, 0, 0},
		// One value cannot be split into signal and noise: the bounds meet
		// at σ̄² = γ²/(L·M) and the threshold √(M·σ²·x̲) exceeds γ.
		{"1×1", []float64{3}, 1, 1, 0, 9, 1e-15},
		{"1×1 zero", []float64{0}, 1, 1, 0, 0, 0},
		{"1×10", []float64{5}, 1, 10, 0, 2.5, 1e-15},
		{"10×1", []float64{5}, 10, 1, 0, 2.5, 1e-15},
		{"zero 4×6", []float64{0, 0, 0, 0}, 4, 6, 0, 0, 0},
		// Exactly rank 2 with no noise: σ² = 0 and both components kept.
		{"noiseless rank 2", []float64{5, 1, 0, 0, 0, 0}, 6, 6, 2, 0, 0},
		// Equal singular values are indistinguishable from white noise.
		{"flat", []float64{2, 2, 2, 2, 2}, 5, 5, 0, 0.8, 1e-12},
	}
	for _, c := range cases {
		rank, s2 := EVBMF(c.s, c.m, c.n)
		if rank != c.rank || math.Abs(s2-c.sigma2) > c.sigma2Tol || math.IsNaN(s2) {
			t.Errorf("%s: (%d, %g), want (%d, %g)", c.name, rank, s2, c.rank, c.sigma2)
		}
	}
}

func TestEVBMFPanics(t *testing.T) {
	for _, c := range []struct {
		name string
		s    []float64
		m, n int
	}{
		{"short s", []float64{1}, 3, 3},
		{"long s", []float64{1, 1}, 1, 3},
		{"negative", []float64{1, -1}, 2, 2},
		{"NaN", []float64{1, math.NaN()}, 2, 2},
		{"Inf", []float64{math.Inf(1), 1}, 2, 2},
		{"negative m", nil, -1, 0},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", c.name)
				}
			}()
			EVBMF(c.s, c.m, c.n)
		}()
	}
}

func TestEVBMFTau(t *testing.T) {
	// τ̲ solves log(τ+1) + α·log(τ/α+1) = τ. κ = τ̲/√α is 2.5129 at α = 1
	// (the constant of the common approximation 2.5129·√α) and grows as α
	// shrinks, to 3.46 at α = 10⁻⁴.
	prev := 0.0
	for _, alpha := range []float64{1, 0.9, 0.5, 0.25, 0.1, 0.01, 1e-4} {
		tau := evbmfTau(alpha)
		if f := math.Log1p(tau) + alpha*math.Log1p(tau/alpha) - tau; math.Abs(f) > 1e-13 {
			t.Errorf("α = %g: residual %g at τ = %g", alpha, f, tau)
		}
		kappa := tau / math.Sqrt(alpha)
		if kappa < prev || kappa < 2.5129-5e-5 || kappa > 3.5 {
			t.Errorf("α = %g: τ̲/√α = %g, want in [2.5129, 3.5] and growing as α shrinks (previous %g)", alpha, kappa, prev)
		}
		prev = kappa
	}
	if tau := evbmfTau(1); math.Abs(tau-2.5129) > 5e-5 {
		t.Errorf("α = 1: τ = %.6f, want 2.5129", tau)
	}
}

// BenchmarkEVBMF times the rank choice alone (the SVD it needs is far
// dearer) on the spectrum of a 2048×512 noisy rank-32 matrix:
//
//	go test -run '^$' -bench EVBMF ./internal/linalg
func BenchmarkEVBMF(b *testing.B) {
	const m, n = 2048, 512
	signal := make([]float64, 32)
	edge := math.Sqrt(m) + math.Sqrt(n)
	for i := range signal {
		signal[i] = edge * (4 - 0.05*float64(i))
	}
	s := noisySpectrum(b, 1, m, n, signal, 1)
	for b.Loop() {
		if r, _ := EVBMF(s, m, n); r != 32 {
			b.Fatalf("rank %d, want 32", r)
		}
	}
}

// freeEnergy is the EVB free energy in σ² as a sum of per-component terms,
// written independently of EVBMF's reduced form: ψ(x) = x − log x (plus
// ψ₁ above the threshold) at x = γ²/(M·σ²). It differs from EVBMF's F by a
// constant, so both have the same minimiser.
func freeEnergy(s []float64, m, n int, sigma2 float64) float64 {
	L, M := float64(min(m, n)), float64(max(m, n))
	alpha := L / M
	tau := evbmfTau(alpha)
	xbar := (1 + tau) * (1 + alpha/tau)
	var f float64
	for _, g := range s {
		x := g * g / (M * sigma2)
		f += x - math.Log(x)
		if x > xbar {
			t := 0.5 * (x - (1 + alpha) + math.Sqrt((x-(1+alpha))*(x-(1+alpha))-4*alpha))
			f += math.Log(t+1) + alpha*math.Log(t/alpha+1) - t
		}
	}
	return f
}

func TestEVBMFGlobalMinimum(t *testing.T) {
	// EVBMF's σ² must be the global minimiser over the interval: no point
	// of a fine grid may have a lower free energy (beyond rounding), even
	// for spectra where components sit near the threshold and the free
	// energy has several local minima.
	for _, c := range []struct {
		m, n   int
		signal []float64
	}{
		{60, 40, []float64{20, 13, 12.5, 12}},
		{100, 30, []float64{30, 16, 15.5}},
		{25, 200, []float64{40, 20, 19}},
		{50, 50, nil},
	} {
		s := noisySpectrum(t, 9, c.m, c.n, c.signal, 1)
		_, s2 := EVBMF(s, c.m, c.n)
		f0 := freeEnergy(s, c.m, c.n, s2)
		L, M := float64(min(c.m, c.n)), float64(max(c.m, c.n))
		var sum float64
		for _, v := range s {
			sum += v * v
		}
		hi := sum / (L * M)
		// Scan well beyond the interval's lower bound, which is at least
		// hi/(L·x̲): 10⁻⁴·hi covers it for these sizes.
		const steps = 20000
		for i := 0; i <= steps; i++ {
			u := math.Log(1e-4*hi) + float64(i)/steps*math.Log(1e4)
			if f := freeEnergy(s, c.m, c.n, math.Exp(u)); f < f0-1e-9*math.Abs(f0) {
				t.Errorf("%d×%d: F(%g) = %.12g below F(σ̂² = %g) = %.12g", c.m, c.n, math.Exp(u), f, s2, f0)
				break
			}
		}
	}
}
