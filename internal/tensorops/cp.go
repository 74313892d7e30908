package tensorops

import (
	"context"
	"fmt"
	"math"

	"gonum.org/v1/gonum/blas"

	"github.com/lowrank/lowrank"
	"github.com/lowrank/lowrank/internal/linalg"
)

// CP initialisations.
const (
	InitSVD    = "svd"    // leading eigenvectors of each mode's Gram matrix
	InitRandom = "random" // seeded draws
	InitGiven  = "given"  // CPOptions.InitFactors
)

// CPOptions configures CPALS.
type CPOptions struct {
	// Rank is the number of rank-one terms R (≥ 1).
	Rank int `json:"rank"`
	// MaxIter is the number of ALS sweeps (≥ 0); 0 returns the
	// initialisation.
	MaxIter int `json:"max_iter"`
	// Tol stops the sweeps once the relative error changes by less than Tol
	// between two sweeps (≥ 0; 0 runs all MaxIter sweeps).
	Tol float64 `json:"tol"`
	// Init is InitSVD (the default when empty), InitRandom or InitGiven.
	Init string `json:"init"`
	// Seed drives every random draw: the random init (uniform on [0, 1), as
	// TensorLy) and the columns the svd init fills beyond a mode's size.
	Seed uint64 `json:"seed"`
	// InitFactors holds, for InitGiven, one row-major I_n × Rank matrix per
	// mode.
	InitFactors [][]float64 `json:"init_factors,omitempty"`
	// L2 (≥ 0) adds L2·I to each normal-equation matrix: a Tikhonov term on
	// the factor being updated, the other factors having unit columns.
	L2 float64 `json:"l2"`
	// LineSearch extrapolates the factors after each sweep from the second
	// on, along the change of that sweep by a step k^(1/p) (Bro 1998), and
	// keeps the extrapolation when its exact error is lower; p starts at 2
	// and grows after four refusals in a row. Each attempt costs one
	// extra MTTKRP.
	LineSearch bool `json:"line_search"`
}

// CPResult is a CP decomposition X ≈ Σ_r λ_r · a₀,r ∘ a₁,r ∘ … ∘ a_{N−1},r.
type CPResult[T Float] struct {
	// Weights λ (length R); the factor columns have unit norm.
	Weights []T
	// Factors[n] is I_n × R.
	Factors []*Matrix[T]
	// RelErrors[k] is the relative error after sweep k+1, from the fast
	// formula (see CPALS).
	RelErrors []float64
	// RelError is the exact ‖X − X̂‖/‖X‖ of the result, from an explicit
	// (blockwise) reconstruction.
	RelError   float64
	Iterations int
	Converged  bool
	// ParamsOriginal is the element count of X; ParamsFactors is R + Σ I_n·R.
	ParamsOriginal int64
	ParamsFactors  int64
}

// Validate reports the first option out of range for a tensor of the given
// shape as an EINVALID *lowrank.Error naming it.
func (o CPOptions) Validate(shape []int) error {
	if o.Rank < 1 {
		return lowrank.Errorf(lowrank.EINVALID, "rank", "must be ≥ 1, got %d", o.Rank)
	}
	if o.MaxIter < 0 {
		return lowrank.Errorf(lowrank.EINVALID, "max_iter", "must be ≥ 0, got %d", o.MaxIter)
	}
	if !(o.Tol >= 0) || math.IsInf(o.Tol, 0) {
		return lowrank.Errorf(lowrank.EINVALID, "tol", "must be a finite number ≥ 0, got %g", o.Tol)
	}
	if !(o.L2 >= 0) || math.IsInf(o.L2, 0) {
		return lowrank.Errorf(lowrank.EINVALID, "l2", "must be a finite number ≥ 0, got %g", o.L2)
	}
	if len(shape) < 2 {
		return lowrank.Errorf(lowrank.EINVALID, "tensor.shape", "CP needs a tensor of order ≥ 2, got order %d", len(shape))
	}
	switch o.Init {
	case "", InitSVD, InitRandom:
		if o.InitFactors != nil {
			return lowrank.Errorf(lowrank.EINVALID, "init_factors", "given only with init %q", InitGiven)
		}
	case InitGiven:
		if len(o.InitFactors) != len(shape) {
			return lowrank.Errorf(lowrank.EINVALID, "init_factors", "has %d factors, the tensor has %d modes", len(o.InitFactors), len(shape))
		}
		for n, f := range o.InitFactors {
			field := fmt.Sprintf("init_factors[%d]", n)
			if len(f) != shape[n]*o.Rank {
				return lowrank.Errorf(lowrank.EINVALID, field, "has %d elements, want %d×%d", len(f), shape[n], o.Rank)
			}
			if !finite(f) {
				return lowrank.Errorf(lowrank.EINVALID, field, "holds NaN or Inf")
			}
		}
	default:
		return lowrank.Errorf(lowrank.EINVALID, "init", "must be %q, %q or %q, got %q", InitSVD, InitRandom, InitGiven, o.Init)
	}
	return nil
}

// CPALS computes a rank-R CP (CANDECOMP/PARAFAC) decomposition of x by
// alternating least squares (Kolda & Bader 2009, §3.4): each sweep updates
// the factors in mode order, solving for mode n
//
//	Aₙ · V = Mₙ,  V = ⊛_{m≠n} A_mᵀA_m (+ L2·I),  Mₙ = MTTKRP(X, n),
//
// then moves the column norms of Aₙ into the weights λ.
//
// MTTKRP. A sweep shares work across modes with a left-to-right dimension
// tree (Phan, Tichavský & Cichocki 2013): M₀ is one blocked GEMM on X₍₀₎;
// after A₀ is updated, T = A₀ᵀ·X₍₀₎ (R × Π_{k>0} I_k) is formed by a second
// GEMM, and every later Mₙ and the next partial T come from T by
// R independent small contractions. A sweep thus costs about 4·|X|·R flops
// in two well-shaped GEMMs instead of 2·N·|X|·R. When T would be larger than
// X (R > I₀ on a big tensor) each mode runs the plain blocked MTTKRP.
//
// Error. With unit-norm columns, ‖X − X̂‖² = ‖X‖² + λᵀ(⊛ₙ AₙᵀAₙ)λ −
// 2·Σ_r λ_r·(M_{N−1} ∘ A_{N−1})_r, from the last MTTKRP: no reconstruction per
// sweep. The formula loses all accuracy once the error nears sqrt(u)·‖X‖
// (u the unit round-off of T); below 10·sqrt(u) the sweep's error is
// recomputed from an explicit blockwise reconstruction, as is the final one.
//
// Normal equations are solved in float64 by Cholesky; when V is not
// numerically positive definite (Cholesky fails, or the squared ratio of
// the smallest to the largest diagonal entry of its factor, a lower bound on
// 1/cond(V), is below 10⁴·R·u₆₄) the pseudo-inverse from V's
// eigendecomposition is used instead, so no NaN reaches the factors.
//
// svd init: the leading eigenvectors of X₍ₙ₎X₍ₙ₎ᵀ (I_n × I_n, by SYRK on a
// view of X) replace the left singular vectors of X₍ₙ₎; columns beyond I_n
// are drawn from the seeded generator. Mode 0 is not initialised when
// MaxIter > 0, since the first update of A₀ does not read it.
//
// progress, if not nil, is called after every sweep. ctx is checked between
// sweeps and between the blocks of every MTTKRP; on cancellation CPALS
// returns an ECANCELED *lowrank.Error wrapping ctx.Err().
//
// References: Kolda & Bader 2009; Phan, Tichavský & Cichocki 2013;
// R. Bro, Multi-way Analysis in the Food Industry, PhD thesis, 1998 (line
// search).
func CPALS[T Float](ctx context.Context, b linalg.Backend, x *Dense[T], opts CPOptions, progress func(Progress)) (*CPResult[T], error) {
	if err := x.Validate(); err != nil {
		return nil, err
	}
	if err := opts.Validate(x.Shape); err != nil {
		return nil, err
	}
	s := newCPState(b, x, opts)
	if err := s.init(ctx); err != nil {
		return nil, canceled(err)
	}
	res := &CPResult[T]{ParamsOriginal: int64(x.Len()), ParamsFactors: int64(opts.Rank)}
	for _, d := range x.Shape {
		res.ParamsFactors += int64(d) * int64(opts.Rank)
	}
	if s.normX2 == 0 {
		// Zero tensor: every λ is 0 and the error is 0 by convention.
		clear(s.lambda)
		res.Converged = true
		s.fill(res)
		return res, nil
	}
	accPow, accFail := 2.0, 0
	for it := 1; it <= opts.MaxIter; it++ {
		if err := ctx.Err(); err != nil {
			return nil, canceled(err)
		}
		if opts.LineSearch && it > 1 {
			s.savePrevious()
		}
		if err := s.sweep(ctx); err != nil {
			return nil, canceled(err)
		}
		rel, err := s.fastRelError(ctx, s.mLast)
		if err != nil {
			return nil, canceled(err)
		}
		if opts.LineSearch && it > 1 {
			accepted, relLS, err := s.lineSearch(ctx, math.Pow(float64(it), 1/accPow), rel)
			if err != nil {
				return nil, canceled(err)
			}
			if accepted {
				rel, accFail = relLS, 0
			} else if accFail++; accFail == 4 {
				accPow, accFail = accPow+1, 0
			}
		}
		res.RelErrors = append(res.RelErrors, rel)
		res.Iterations = it
		if progress != nil {
			progress(Progress{Stage: "als", Iteration: it, MaxIterations: opts.MaxIter, RelError: rel, Fraction: float64(it) / float64(opts.MaxIter)})
		}
		if opts.Tol > 0 && it > 1 && math.Abs(res.RelErrors[it-2]-rel) < opts.Tol {
			res.Converged = true
			break
		}
	}
	exact, err := s.exactRelError(ctx, s.factors, s.lambda)
	if err != nil {
		return nil, canceled(err)
	}
	res.RelError = exact
	s.fill(res)
	return res, nil
}

// cpState is the workspace of one CPALS run, allocated once.
type cpState[T Float] struct {
	b       linalg.Backend
	x       *Dense[T]
	opts    CPOptions
	r       int
	normX2  float64
	factors []*Matrix[T]
	lambda  []float64
	grams   [][]float64 // AₙᵀAₙ, R×R, full
	m       []T         // MTTKRP output, max I_n × R
	mLast   []T         // M_{N−1} of the last sweep
	chain   bool
	t0, t1  []T // dimension-tree partials, R × Π_{k>0} I_k
	solve   *normalSolver[T]
	prevF   []*Matrix[T]
	prevL   []float64
}

func newCPState[T Float](b linalg.Backend, x *Dense[T], opts CPOptions) *cpState[T] {
	r := opts.Rank
	n := x.Order()
	s := &cpState[T]{b: b, x: x, opts: opts, r: r, normX2: sumSq(x.Data)}
	maxI := 0
	for _, d := range x.Shape {
		maxI = max(maxI, d)
	}
	s.factors = make([]*Matrix[T], n)
	s.grams = make([][]float64, n)
	for k, d := range x.Shape {
		s.factors[k] = NewMatrix[T](d, r)
		s.grams[k] = make([]float64, r*r)
	}
	s.lambda = make([]float64, r)
	s.m = make([]T, maxI*r)
	s.mLast = make([]T, x.Shape[n-1]*r)
	q0 := x.Len() / x.Shape[0]
	// The tree's partial T is R·|X|/I₀ elements: use it when that is no
	// larger than X itself (or small anyway).
	s.chain = r*q0 <= max(x.Len(), 4*blockElems)
	if s.chain && n > 2 {
		s.t0 = make([]T, r*q0)
		s.t1 = make([]T, r*q0/x.Shape[1])
	} else if s.chain {
		s.t0 = make([]T, r*q0)
	}
	// The R×R solves are too small for threads to pay.
	s.solve = newNormalSolver[T](b.WithThreads(1), r, maxI)
	return s
}

func (s *cpState[T]) init(ctx context.Context) error {
	opts, x, r := s.opts, s.x, s.r
	rng := newRand(opts.Seed)
	switch opts.Init {
	case InitRandom:
		for _, f := range s.factors {
			for i := range f.Data {
				f.Data[i] = T(rng.Float64())
			}
		}
	case InitGiven:
		for k, f := range s.factors {
			for i, v := range opts.InitFactors[k] {
				f.Data[i] = T(v)
			}
		}
	default:
		for k, f := range s.factors {
			if k == 0 && opts.MaxIter > 0 {
				continue
			}
			d := x.Shape[k]
			kk := min(d, r)
			g := make([]T, d*d)
			if err := modeGram(ctx, s.b, x.Data, x.Shape, k, g); err != nil {
				return err
			}
			vecs, _, err := leadingEigvecs(s.b, g, d, kk)
			if err != nil {
				return err
			}
			for i := range d {
				for c := range kk {
					f.Data[i*r+c] = T(vecs[i*kk+c])
				}
			}
			gaussianColumns(f.Data, d, r, kk, rng)
		}
	}
	for i := range s.lambda {
		s.lambda[i] = 1
	}
	for k, f := range s.factors {
		nrm := normalizeColumns(f)
		for i := range s.lambda {
			s.lambda[i] *= nrm[i]
		}
		s.gram(k)
	}
	return nil
}

// gram recomputes grams[n] = AₙᵀAₙ in float64.
func (s *cpState[T]) gram(n int) {
	f := s.factors[n]
	a := s.solve.wide(f.Data)
	g := s.grams[n]
	if f.Rows == 0 {
		clear(g)
		return
	}
	s.b.Dsyrk(blas.Upper, blas.Trans, s.r, f.Rows, 1, a, s.r, 0, g, s.r)
	for i := range s.r {
		for j := 0; j < i; j++ {
			g[i*s.r+j] = g[j*s.r+i]
		}
	}
}

// update solves for factor n given its MTTKRP m, normalises it into λ and
// refreshes its Gram.
func (s *cpState[T]) update(n int, m []T) error {
	r := s.r
	v := s.solve.v
	for i := range v {
		v[i] = 1
	}
	for k, g := range s.grams {
		if k == n {
			continue
		}
		for i := range v {
			v[i] *= g[i]
		}
	}
	for i := range r {
		v[i*r+i] += s.opts.L2
	}
	f := s.factors[n]
	if err := s.solve.solve(m[:f.Rows*r], f.Rows, f.Data); err != nil {
		return err
	}
	copy(s.lambda, normalizeColumns(f))
	s.gram(n)
	return nil
}

// sweep runs one ALS sweep over all modes, leaving M_{N−1} in mLast.
func (s *cpState[T]) sweep(ctx context.Context) error {
	if !s.chain {
		for n := range s.factors {
			m := s.m
			if n == len(s.factors)-1 {
				m = s.mLast
			}
			if err := mttkrp(ctx, s.b, s.x.Data, s.x.Shape, s.factors, n, s.r, m); err != nil {
				return err
			}
			if err := s.update(n, m); err != nil {
				return err
			}
		}
		return nil
	}
	x, r, b := s.x, s.r, s.b
	nModes := x.Order()
	if err := mttkrp(ctx, b, x.Data, x.Shape, s.factors, 0, r, s.m); err != nil {
		return err
	}
	if err := s.update(0, s.m); err != nil {
		return err
	}
	// T = A₀ᵀ·X₍₀₎, blocked by columns so cancellation is seen promptly.
	i0, q := x.Shape[0], x.Len()/x.Shape[0]
	if err := projectFirst(ctx, b, x.Data, i0, q, s.factors[0], s.t0); err != nil {
		return err
	}
	t, tNext := s.t0, s.t1
	for n := 1; n < nModes; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		in := x.Shape[n]
		qn := sizeOf(x.Shape[n+1:])
		m := s.m
		if n == nModes-1 {
			m = s.mLast
		}
		// Kᵀ (R × Qₙ): the trailing Khatri–Rao product, transposed so each
		// r reads a contiguous row.
		kt := s.trailingKRPT(n)
		treeMTTKRP(b.Threads(), t, kt, in, qn, r, m)
		if err := s.update(n, m); err != nil {
			return err
		}
		if n < nModes-1 {
			treeContract(b.Threads(), t, s.factors[n].Data, in, qn, r, tNext)
			t, tNext = tNext[:r*qn], t
		}
	}
	return nil
}

// trailingKRPT returns (A_{n+1} ⊙ … ⊙ A_{N−1})ᵀ, R × Qₙ (ones when n is the
// last mode).
func (s *cpState[T]) trailingKRPT(n int) []T {
	r := s.r
	qn := sizeOf(s.x.Shape[n+1:])
	k := make([]T, qn*r)
	krpRows(k, s.factors[n+1:], 0, qn, r)
	kt := make([]T, r*qn)
	for q := range qn {
		for c := range r {
			kt[c*qn+q] = k[q*r+c]
		}
	}
	return kt
}

// treeMTTKRP computes M[i,r] = Σ_q T[r,i,q]·Kᵀ[r,q] for T of shape
// R × I × Q, one r per task (accumulated in float64).
func treeMTTKRP[T Float](threads int, t, kt []T, in, q, r int, m []T) {
	parallelFor(threads, r, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			tc := t[c*in*q : (c+1)*in*q]
			kc := kt[c*q : (c+1)*q]
			for i := range in {
				m[i*r+c] = T(dot(tc[i*q:(i+1)*q], kc))
			}
		}
	})
}

// treeContract computes T'[r,q] = Σ_i T[r,i,q]·A[i,r] for T of shape
// R × I × Q, one r per task.
func treeContract[T Float](threads int, t, a []T, in, q, r int, out []T) {
	parallelFor(threads, r, func(lo, hi int) {
		acc := make([]float64, q)
		for c := lo; c < hi; c++ {
			clear(acc)
			tc := t[c*in*q : (c+1)*in*q]
			for i := range in {
				w := float64(a[i*r+c])
				row := tc[i*q : (i+1)*q]
				for j, v := range row {
					acc[j] += w * float64(v)
				}
			}
			o := out[c*q : (c+1)*q]
			for j, v := range acc {
				o[j] = T(v)
			}
		}
	})
}

// fastRelError is the relative error of [[λ; A…]] from the formula in CPALS's
// doc, given M_{N−1} for the current factors; it falls back to the exact
// error near round-off.
func (s *cpState[T]) fastRelError(ctx context.Context, mLast []T) (float64, error) {
	r := s.r
	last := s.factors[len(s.factors)-1]
	var inner float64
	for i := range last.Rows {
		row := last.Data[i*r : (i+1)*r]
		mr := mLast[i*r : (i+1)*r]
		for c := range row {
			inner += s.lambda[c] * float64(mr[c]) * float64(row[c])
		}
	}
	normHat2 := s.modelNorm2(s.grams, s.lambda)
	rel := math.Sqrt(max(0, s.normX2+normHat2-2*inner) / s.normX2)
	if rel < 10*math.Sqrt(linalg.Roundoff[T]()) {
		return s.exactRelError(ctx, s.factors, s.lambda)
	}
	return rel, nil
}

// modelNorm2 is ‖X̂‖² = λᵀ(⊛ₙ Gₙ)λ.
func (s *cpState[T]) modelNorm2(grams [][]float64, lambda []float64) float64 {
	r := s.r
	var sum float64
	for i := range r {
		for j := range r {
			p := lambda[i] * lambda[j]
			for _, g := range grams {
				p *= g[i*r+j]
			}
			sum += p
		}
	}
	return sum
}

// exactRelError computes ‖X − X̂‖/‖X‖ by reconstructing X̂₍₀₎ = A₀·diag(λ)·Kᵀ
// one block of columns at a time (K the product of the other factors), so
// it needs no tensor-sized buffer.
func (s *cpState[T]) exactRelError(ctx context.Context, factors []*Matrix[T], lambda []float64) (float64, error) {
	x, r := s.x, s.r
	i0, q := x.Shape[0], x.Len()/x.Shape[0]
	w := make([]T, i0*r)
	for i := range i0 {
		for c := range r {
			w[i*r+c] = factors[0].Data[i*r+c] * T(lambda[c])
		}
	}
	qb := max(1, min(q, blockElems/max(r, i0)))
	k := make([]T, qb*r)
	hat := make([]T, i0*qb)
	var sum float64
	for q0 := 0; q0 < q; q0 += qb {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		q1 := min(q, q0+qb)
		krpRowsParallel(s.b.Threads(), k, factors[1:], q0, q1, r)
		gemm(s.b, blas.NoTrans, blas.Trans, i0, q1-q0, r, 1, w, r, k, r, 0, hat, q1-q0)
		for i := range i0 {
			xr := x.Data[i*q+q0 : i*q+q1]
			hr := hat[i*(q1-q0) : (i+1)*(q1-q0)]
			for j, v := range xr {
				d := float64(v) - float64(hr[j])
				sum += d * d
			}
		}
	}
	return math.Sqrt(sum / s.normX2), nil
}

func (s *cpState[T]) savePrevious() {
	if s.prevF == nil {
		s.prevF = make([]*Matrix[T], len(s.factors))
		for k, f := range s.factors {
			s.prevF[k] = NewMatrix[T](f.Rows, f.Cols)
		}
		s.prevL = make([]float64, s.r)
	}
	for k, f := range s.factors {
		copy(s.prevF[k].Data, f.Data)
	}
	copy(s.prevL, s.lambda)
}

// lineSearch tries factors prev + step·(current − prev); it keeps them when
// their error is below rel.
func (s *cpState[T]) lineSearch(ctx context.Context, step, rel float64) (bool, float64, error) {
	cand := make([]*Matrix[T], len(s.factors))
	lambda := make([]float64, s.r)
	for i := range lambda {
		lambda[i] = s.prevL[i] + step*(s.lambda[i]-s.prevL[i])
	}
	for k, f := range s.factors {
		c := NewMatrix[T](f.Rows, f.Cols)
		for i, v := range f.Data {
			p := s.prevF[k].Data[i]
			c.Data[i] = p + T(step)*(v-p)
		}
		cand[k] = c
	}
	relC, err := s.exactRelError(ctx, cand, lambda)
	if err != nil || !(relC < rel) {
		return false, rel, err
	}
	for k, c := range cand {
		copy(s.factors[k].Data, c.Data)
		nrm := normalizeColumns(s.factors[k])
		for i := range lambda {
			lambda[i] *= nrm[i]
		}
		s.gram(k)
	}
	copy(s.lambda, lambda)
	return true, relC, nil
}

func (s *cpState[T]) fill(res *CPResult[T]) {
	res.Factors = s.factors
	res.Weights = make([]T, s.r)
	for i, v := range s.lambda {
		res.Weights[i] = T(v)
	}
}

// normalizeColumns scales each nonzero column of f to unit norm and returns
// the norms.
func normalizeColumns[T Float](f *Matrix[T]) []float64 {
	r := f.Cols
	nrm := make([]float64, r)
	for i := range f.Rows {
		for c, v := range f.Data[i*r : (i+1)*r] {
			nrm[c] += float64(v) * float64(v)
		}
	}
	inv := make([]T, r)
	for c := range nrm {
		nrm[c] = math.Sqrt(nrm[c])
		if nrm[c] > 0 {
			inv[c] = T(1 / nrm[c])
		}
	}
	for i := range f.Rows {
		row := f.Data[i*r : (i+1)*r]
		for c := range row {
			if nrm[c] > 0 {
				row[c] *= inv[c]
			}
		}
	}
	return nrm
}

// normalSolver solves A·V = M for A (rows × R) with V symmetric R × R, in
// float64, reusing its buffers.
type normalSolver[T Float] struct {
	b    linalg.Backend
	r    int
	v    []float64 // the system matrix, set by the caller
	chol []float64
	rhs  []float64 // R × rows
	wbuf []float64
	eig  []float64
	tmp  []float64
}

func newNormalSolver[T Float](b linalg.Backend, r, maxRows int) *normalSolver[T] {
	return &normalSolver[T]{
		b: b, r: r,
		v: make([]float64, r*r), chol: make([]float64, r*r),
		rhs: make([]float64, r*maxRows), wbuf: make([]float64, r*maxRows),
		eig: make([]float64, r), tmp: make([]float64, r*maxRows),
	}
}

// wide returns a as float64 in a reused buffer.
func (ns *normalSolver[T]) wide(a []T) []float64 { return toFloat64(ns.wbuf, a) }

// solve writes A = M·V⁻¹ into dst: Cholesky when V is safely positive
// definite, otherwise V⁺ from its eigendecomposition, discarding
// eigenvalues below R·u₆₄·λ_max.
func (ns *normalSolver[T]) solve(m []T, rows int, dst []T) error {
	r := ns.r
	b := ns.rhs[:r*rows]
	for i := range rows {
		for c := range r {
			b[c*rows+i] = float64(m[i*r+c])
		}
	}
	copy(ns.chol, ns.v)
	ok := ns.b.Dpotrf(r, ns.chol, r)
	if ok {
		// cond(V) ≥ (max u_ii / min u_ii)²: refuse near-singular systems.
		lo, hi := math.Inf(1), 0.0
		for i := range r {
			d := math.Abs(ns.chol[i*r+i])
			lo, hi = min(lo, d), max(hi, d)
		}
		ok = lo > 0 && (lo/hi)*(lo/hi) > float64(r)*0x1p-52*1e4
	}
	if ok {
		ns.b.Dpotrs(r, rows, ns.chol, r, b, rows)
	}
	if !ok || !finite(b) {
		for i := range rows {
			for c := range r {
				b[c*rows+i] = float64(m[i*r+c])
			}
		}
		if err := ns.pinvSolve(b, rows); err != nil {
			return err
		}
	}
	for i := range rows {
		for c := range r {
			dst[i*r+c] = T(b[c*rows+i])
		}
	}
	return nil
}

// pinvSolve overwrites b (R × rows) with V⁺·b.
func (ns *normalSolver[T]) pinvSolve(b []float64, rows int) error {
	r := ns.r
	copy(ns.chol, ns.v)
	if !ns.b.Dsyevd(r, ns.chol, r, ns.eig) {
		return lowrank.Errorf(lowrank.EINTERNAL, "", "CP normal equations: eigensolver did not converge")
	}
	wmax := 0.0
	for _, w := range ns.eig {
		wmax = max(wmax, math.Abs(w))
	}
	cut := float64(r) * 0x1p-52 * wmax
	t := ns.tmp[:r*rows]
	// t = Eᵀ·b, scaled by 1/w where w is kept; b = E·t.
	ns.b.Dgemm(blas.Trans, blas.NoTrans, r, rows, r, 1, ns.chol, r, b, rows, 0, t, rows)
	for c := range r {
		inv := 0.0
		if ns.eig[c] > cut {
			inv = 1 / ns.eig[c]
		}
		row := t[c*rows : (c+1)*rows]
		for i := range row {
			row[i] *= inv
		}
	}
	ns.b.Dgemm(blas.NoTrans, blas.NoTrans, r, rows, r, 1, ns.chol, r, t, rows, 0, b, rows)
	if !finite(b) {
		return lowrank.Errorf(lowrank.EINTERNAL, "", "CP normal equations: non-finite solution")
	}
	return nil
}

// projectFirst writes Y = Uᵀ·X into y, X an m×q row-major matrix and U
// m×r, in column blocks with a check of ctx between them. Uᵀ is copied
// first so the GEMM is NoTrans×NoTrans, the kernel every BLAS (gonum's
// especially) runs fastest.
func projectFirst[T Float](ctx context.Context, b linalg.Backend, x []T, m, q int, u *Matrix[T], y []T) error {
	r := u.Cols
	ut := make([]T, r*m)
	for i := range m {
		for c := range r {
			ut[c*m+i] = u.Data[i*r+c]
		}
	}
	cb := max(1, min(q, 4*blockElems/max(r, m)))
	for c0 := 0; c0 < q; c0 += cb {
		if err := ctx.Err(); err != nil {
			return err
		}
		c1 := min(q, c0+cb)
		gemm(b, blas.NoTrans, blas.NoTrans, r, c1-c0, m, 1, ut, m, x[c0:], q, 0, y[c0:], q)
	}
	return nil
}
