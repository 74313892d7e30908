package tensorops

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"

	"gonum.org/v1/gonum/blas"

	"github.com/lowrank/lowrank"
	"github.com/lowrank/lowrank/internal/linalg"
)

// Progress is linalg.Progress, the one progress report of every kernel.
// CPALS reports Stage "als" after each sweep; Tucker reports "hosvd" for
// its initialisation (Iteration 0) and "hooi" after each sweep. RelError is
// ‖X − X̂‖/‖X‖ after the step.
type Progress = linalg.Progress

// modeGram writes the upper triangle of the I_n × I_n Gram matrix
// G = X₍ₙ₎·X₍ₙ₎ᵀ into g (stride I_n), without forming the unfolding when a
// row-major view of it exists: X₍₀₎ is X viewed as I₀ × Q, and for the
// last mode G = XᵀX with X viewed as P × I_n. For middle modes the slabs
// X[p] (I_n × Q) are copied side by side in groups so that each SYRK has an
// inner dimension of at least a few hundred. The column order of the
// unfolding does not change G, so any of these views serves.
func modeGram[T Float](ctx context.Context, b linalg.Backend, x []T, shape []int, n int, g []T) error {
	p, in, q := splitAt(shape, n)
	switch {
	case p == 1:
		// G = Σ over column ranges of X: one single-threaded xSYRK per
		// goroutine (splitThreads), summed.
		threads, one := splitThreads(b, float64(in)*float64(in)*float64(q)/2)
		chunk := (q + threads - 1) / threads // as parallelFor splits [0, q)
		parts := make([][]T, (q+chunk-1)/chunk)
		parallelFor(threads, q, func(lo, hi int) {
			part := g
			if lo > 0 {
				part = make([]T, in*in)
			}
			parts[lo/chunk] = part
			syrk(one, blas.NoTrans, in, hi-lo, 1, x[lo:], q, 0, part, in)
		})
		for _, part := range parts[1:] {
			for i := range in {
				row := g[i*in+i : (i+1)*in]
				for j, v := range part[i*in+i : (i+1)*in] {
					row[j] += v
				}
			}
		}
	case q == 1:
		syrk(b, blas.Trans, in, p, 1, x, in, 0, g, in)
	default:
		pb := max(1, min(p, (512+q-1)/q, blockElems/max(1, in*q)))
		w := pb * q
		buf := make([]T, in*w)
		for p0 := 0; p0 < p; p0 += pb {
			if err := ctx.Err(); err != nil {
				return err
			}
			p1 := min(p, p0+pb)
			cols := (p1 - p0) * q
			for pi := p0; pi < p1; pi++ {
				for i := range in {
					copy(buf[i*cols+(pi-p0)*q:i*cols+(pi-p0+1)*q], x[(pi*in+i)*q:(pi*in+i+1)*q])
				}
			}
			beta := T(1)
			if p0 == 0 {
				beta = 0
			}
			syrk(b, blas.NoTrans, in, cols, 1, buf, cols, beta, g, in)
		}
	}
	return nil
}

// leadingEigvecs returns the k eigenvectors of the n×n symmetric g (upper
// triangle read, stride n) with the largest eigenvalues, as the columns of
// an n×k row-major matrix in decreasing order of eigenvalue, and all n
// eigenvalues in decreasing order, clamped at 0. The eigenproblem is solved
// in the precision of T (xSYEVD): a float32 Gram holds float32 rounding
// already, and SSYEVD is about twice as fast as DSYEVD.
func leadingEigvecs[T Float](b linalg.Backend, g []T, n, k int) (vecs []T, vals []float64, err error) {
	a := make([]T, n*n)
	for i := range n {
		copy(a[i*n+i:(i+1)*n], g[i*n+i:(i+1)*n])
	}
	w := make([]T, n)
	if n < 2048 {
		// Below this size xSYEVD is bound by its BLAS-2 tridiagonal
		// reduction and gains nothing from threads, while OpenBLAS's
		// waiting threads cost a great deal on a busy machine.
		b = b.WithThreads(1)
	}
	if !linalg.Syevd(b, n, a, n, w) {
		return nil, nil, lowrank.Errorf(lowrank.EINTERNAL, "", "symmetric eigensolver did not converge (n=%d)", n)
	}
	vecs = make([]T, n*k)
	vals = make([]float64, n)
	for c := range n {
		vals[c] = max(0, float64(w[n-1-c]))
	}
	for c := range k {
		src := n - 1 - c
		for i := range n {
			vecs[i*k+c] = a[i*n+src]
		}
	}
	return vecs, vals, nil
}

// topEigvecs returns the k eigenvectors of the n×n symmetric g (upper
// triangle read, stride n; destroyed) with the largest eigenvalues, as the
// columns of an n×k row-major matrix in decreasing order of eigenvalue, and
// the sum of those k eigenvalues (negative ones, rounding of a PSD g, taken
// as 0). For k < n only those k are computed (xSYEVR: a tridiagonal
// reduction, then k eigenvectors of the tridiagonal and their
// back-transformation, instead of all n); the subspace is the one
// leadingEigvecs gives, to rounding.
func topEigvecs[T Float](b linalg.Backend, g []T, n, k int) ([]T, float64, error) {
	if k >= n {
		vecs, vals, err := leadingEigvecs(b, g, n, k)
		var sum float64
		for _, v := range vals[:min(k, len(vals))] {
			sum += v
		}
		return vecs, sum, err
	}
	// Syevr runs its reduction on one thread and spends a larger budget
	// only on the eigenvectors.
	w := make([]T, k)
	z := make([]T, n*k)
	if !linalg.Syevr(b, n, n-k+1, n, g, n, w, z, k) {
		return nil, 0, lowrank.Errorf(lowrank.EINTERNAL, "", "symmetric eigensolver did not converge (n=%d)", n)
	}
	for i := range n {
		slices.Reverse(z[i*k : (i+1)*k])
	}
	var sum float64
	for _, v := range w {
		sum += max(0, float64(v))
	}
	return z, sum, nil
}

// gaussianColumns fills columns [c0, k) of the rows×k matrix m with
// standard normal draws from rng, row by row.
func gaussianColumns[T Float](m []T, rows, k, c0 int, rng *rand.Rand) {
	for i := range rows {
		for c := c0; c < k; c++ {
			m[i*k+c] = T(rng.NormFloat64())
		}
	}
}

// newRand returns the package's seeded generator (PCG), so equal seeds give
// equal draws on every platform.
func newRand(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, 0x6c6f7772616e6b)) // "lowrank"
}

// canceled wraps a context error as an ECANCELED *lowrank.Error; other
// errors pass through.
func canceled(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &lowrank.Error{Code: lowrank.ECANCELED, Message: "canceled", Err: err}
	}
	return err
}

func finite(a []float64) bool {
	for _, v := range a {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return false
		}
	}
	return true
}

// refineSubspace improves the n×k orthonormal basis q (row-major,
// float64) of an approximate dominant invariant subspace of the symmetric
// positive semidefinite g (upper triangle read, stride n) by orthogonal
// (subspace) iteration, Q ← orth(G·Q), then rotates it by a Rayleigh–Ritz
// step so that its columns are Ritz vectors in decreasing order of Ritz
// value (Saad, Numerical Methods for Large Eigenvalue Problems, 2011, §5.2).
//
// The captured energy f = trace(QᵀGQ) never decreases for PSD G. Iteration
// stops once a step adds less than tol·(trace(G) − f), i.e. changes the
// energy left outside the subspace by less than the fraction tol, or after
// maxSteps. Callers keep k a little above the rank they need (oversampling):
// the leading r Ritz vectors then converge at the rate λ_{k+1}/λ_r instead
// of λ_{r+1}/λ_r, which matters on the flat spectra of noisy weights.
//
// Each step costs one n×n×k GEMM and one QR of n×k; the single k×k
// eigenproblem at the end replaces a full n×n one. It returns the number
// of steps run.
func refineSubspace(b linalg.Backend, g []float64, n, k int, q []float64, maxSteps int, tol float64) int {
	full := make([]float64, n*n)
	var trace float64
	for i := range n {
		trace += g[i*n+i]
		for j := i; j < n; j++ {
			full[i*n+j], full[j*n+i] = g[i*n+j], g[i*n+j]
		}
	}
	w := make([]float64, n*k)
	h := make([]float64, k*k)
	ev := make([]float64, k)
	tau := make([]float64, k)
	captured := func() float64 {
		var f float64
		for i, v := range q {
			f += v * w[i]
		}
		return f
	}
	b.Dgemm(blas.NoTrans, blas.NoTrans, n, k, n, 1, full, n, q, k, 0, w, k)
	fPrev := captured()
	steps := 0
	for steps < maxSteps {
		steps++
		copy(q, w)
		b.Dgeqrf(n, k, q, k, tau)
		b.Dorgqr(n, k, k, q, k, tau)
		b.Dgemm(blas.NoTrans, blas.NoTrans, n, k, n, 1, full, n, q, k, 0, w, k)
		f := captured()
		if f-fPrev <= tol*max(0, trace-f) {
			break
		}
		fPrev = f
	}
	// Rayleigh–Ritz: H = QᵀGQ = QᵀW, Q ← Q·V with V in decreasing order.
	b.Dgemm(blas.Trans, blas.NoTrans, k, k, n, 1, q, k, w, k, 0, h, k)
	if b.Dsyevd(k, h, k, ev) {
		for i := range k {
			slices.Reverse(h[i*k : (i+1)*k])
		}
		copy(w, q)
		b.Dgemm(blas.NoTrans, blas.NoTrans, n, k, k, 1, w, k, h, k, 0, q, k)
	}
	return steps
}
