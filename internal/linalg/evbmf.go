package linalg

import (
	"math"
	"slices"
)

// evbmfGrid is the number of log-spaced points on which EVBMF samples the
// free energy before refining the best one: the free energy is smooth
// between the kinks where a component crosses the threshold, but it need
// not be unimodal over the whole interval, so a plain bracketing search
// could stop in a local minimum.
const evbmfGrid = 256

// EVBMF returns the rank that empirical variational Bayesian matrix factorisation keeps for an m×n
// matrix with singular values s (all min(m,n) of them, descending) and the noise variance it estimates.
//
// The model is V = B·Aᵀ + E with Gaussian priors on the columns of A and B
// (their variances learned from the data, "empirical") and i.i.d. noise
// E ~ N(0, σ²). Nakajima et al. (2013) show that the global solution keeps
// exactly the singular components above a threshold. With L = min(m, n),
// M = max(m, n), α = L/M and γ_h the singular values, it is computed as
// follows.
//
// The threshold constant: τ̲ is the positive zero of
//
//	ψ₁(τ) = log(τ + 1) + α·log(τ/α + 1) − τ
//
// (equivalently of Φ(τ) + Φ(τ/α) with Φ(z) = log(z + 1)/z − ½), and
// x̲ = (1 + τ̲)(1 + α/τ̲). τ̲ = 2.5129 at α = 1 and is often approximated by
// 2.5129·√α; EVBMF solves for the root instead, as the approximation
// drifts low for wide matrices (3 % at α = 0.1, 27 % at α = 10⁻⁴).
//
// The noise variance minimises the free energy, up to constants,
//
//	F(σ²) = Σ_h γ_h²/(M·σ²) + L·log σ² + Σ_{h: x_h > x̲} ψ₁(τ(x_h)),
//	x_h = γ_h²/(M·σ²),  τ(x) = ½·(x − (1 + α) + √((x − (1 + α))² − 4α)),
//
// over the interval that contains its minimiser,
//
//	σ̲² = max(γ²_{H̄+1}/(M·x̲), Σ_{h>H̄} γ_h²/(M·(L − H̄))),  H̄ = ⌈L/(1 + α)⌉ − 1,
//	σ̄² = Σ_h γ_h²/(L·M),
//
// by sampling F on a log-spaced grid and refining the best sample by golden
// section. The rank is the number of γ_h > √(M·σ²·x̲).
//
// The order of s does not matter (it is sorted internally) and s is not
// modified. len(s) must be min(m, n) and every value finite and ≥ 0;
// anything else is a programmer error and panics. An empty matrix gives
// (0, 0); a zero matrix (0, 0); a matrix whose trailing singular values
// are exactly zero has σ² = 0 and keeps every non-zero component. A single
// row or column (L = 1) always gives rank 0: one singular value cannot be
// told apart from noise.
//
// References:
//
//   - S. Nakajima, M. Sugiyama, S. D. Babacan and R. Tomioka, Global
//     Analytic Solution of Fully-observed Variational Bayesian Matrix
//     Factorization, J. Mach. Learn. Res. 14, 1–37, 2013 (the solution,
//     the free energy in σ² and its bounds).
//   - Y.-D. Kim, E. Park, S. Yoo, T. Choi, L. Yang and D. Shin, Compression
//     of Deep Convolutional Neural Networks for Fast and Low Power Mobile
//     Applications, ICLR 2016 (EVBMF on the unfoldings of a convolution
//     kernel to choose the Tucker-2 ranks).
func EVBMF(s []float64, m, n int) (rank int, sigma2 float64) {
	if m < 0 || n < 0 {
		panic("linalg: EVBMF: negative dimension")
	}
	L, M := min(m, n), max(m, n)
	if len(s) != L {
		panic("linalg: EVBMF: len(s) != min(m, n)")
	}
	for _, v := range s {
		if !(v >= 0) || math.IsInf(v, 1) {
			panic("linalg: EVBMF: singular value negative or not finite")
		}
	}
	if L == 0 {
		return 0, 0
	}
	g := slices.Clone(s)
	slices.Sort(g)
	slices.Reverse(g)
	top := g[0]
	if top == 0 {
		return 0, 0
	}
	// Scale so that γ₁ = 1: σ² scales by top², the rank not at all, and
	// the free energy never sees values near the ends of the float range.
	g2 := make([]float64, L)
	var sum float64
	for i, v := range g {
		v /= top
		g2[i] = v * v
		sum += g2[i]
	}
	alpha := float64(L) / float64(M)
	tau := evbmfTau(alpha)
	xbar := (1 + tau) * (1 + alpha/tau)
	mf, lf := float64(M), float64(L)

	hbar := int(math.Ceil(lf/(1+alpha))) - 1
	var tail float64
	for _, v := range g2[hbar:] {
		tail += v
	}
	lo := max(g2[hbar]/(mf*xbar), tail/(mf*float64(L-hbar)))
	hi := sum / (lf * mf)

	switch {
	case lo == 0:
		// Exact zeros beyond H̄: F decreases without bound as σ² → 0, so
		// there is no noise and every non-zero component is kept.
		sigma2 = 0
	case lo >= hi:
		sigma2 = hi
	default:
		free := func(u float64) float64 {
			s2 := math.Exp(u)
			f := sum/(mf*s2) + lf*u
			for _, v := range g2 {
				x := v / (mf * s2)
				if x <= xbar {
					break // g2 is decreasing
				}
				d := x - (1 + alpha)
				t := 0.5 * (d + math.Sqrt(d*d-4*alpha))
				f += math.Log1p(t) + alpha*math.Log1p(t/alpha) - t
			}
			return f
		}
		sigma2 = math.Exp(minimizeSampled(free, math.Log(lo), math.Log(hi), evbmfGrid))
	}
	thr := mf * sigma2 * xbar
	for _, v := range g2 {
		if v > thr {
			rank++
		}
	}
	return rank, sigma2 * top * top
}

// evbmfTau returns τ̲, the positive zero of log(τ+1) + α·log(τ/α+1) − τ
// for 0 < α ≤ 1. The function is positive on (0, τ̲) and negative beyond,
// and τ̲ lies in (√α, 3), so bisection on that bracket converges.
func evbmfTau(alpha float64) float64 {
	f := func(t float64) float64 { return math.Log1p(t) + alpha*math.Log1p(t/alpha) - t }
	lo, hi := math.Sqrt(alpha), 3.0
	for range 200 {
		mid := 0.5 * (lo + hi)
		if mid <= lo || mid >= hi {
			break
		}
		if f(mid) > 0 {
			lo = mid
		} else {
			hi = mid
		}
	}
	return 0.5 * (lo + hi)
}

// minimizeSampled returns an approximate global minimiser of f on [a, b]:
// the best of n+1 equally spaced samples, refined by golden-section search
// between its neighbours. Ties keep the leftmost sample, so the result is a
// deterministic function of f.
func minimizeSampled(f func(float64) float64, a, b float64, n int) float64 {
	step := (b - a) / float64(n)
	best, bestF := a, f(a)
	for i := 1; i <= n; i++ {
		u := a + float64(i)*step
		if i == n {
			u = b
		}
		if fu := f(u); fu < bestF {
			best, bestF = u, fu
		}
	}
	lo, hi := max(a, best-step), min(b, best+step)
	invPhi := (math.Sqrt(5) - 1) / 2
	c, d := hi-invPhi*(hi-lo), lo+invPhi*(hi-lo)
	fc, fd := f(c), f(d)
	for range 100 {
		if hi-lo <= 1e-12*max(1, math.Abs(lo)) {
			break
		}
		if fc <= fd {
			hi, d, fd = d, c, fc
			c = hi - invPhi*(hi-lo)
			fc = f(c)
		} else {
			lo, c, fc = c, d, fd
			d = lo + invPhi*(hi-lo)
			fd = f(d)
		}
	}
	if mid := 0.5 * (lo + hi); f(mid) < bestF {
		return mid
	}
	return best
}
