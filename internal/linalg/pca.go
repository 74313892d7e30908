package linalg

import (
	"context"
	"math"

	"gonum.org/v1/gonum/blas"

	"github.com/lowrank/lowrank"
)

// PCASolver selects how PCA computes its components.
type PCASolver string

// The PCA solvers. See PCA for what PCAAuto picks.
const (
	PCAAuto           PCASolver = "auto"
	PCAFull           PCASolver = "full"            // thin SVD of the centred data
	PCARandomized     PCASolver = "randomized"      // randomized SVD of the centred data
	PCACovarianceEigh PCASolver = "covariance_eigh" // eigenvectors of XcᵀXc in float64
)

// autoEighMaxFeatures and autoEighMinRatio: auto diagonalises the
// features×features Gram matrix when there are few features and many more
// samples, where forming it (samples·features² flops) and its
// eigendecomposition (≈ 9·features³) beat an SVD of the data
// (≈ 4·samples·features² + 8·features³ at lower BLAS efficiency). These are
// scikit-learn's thresholds.
const (
	autoEighMaxFeatures = 1000
	autoEighMinRatio    = 10
)

// PCAOptions configures PCA. Components and VarianceFraction are the two
// forms of scikit-learn's n_components; with neither set every component
// (min(samples, features)) is kept.
type PCAOptions struct {
	// Components keeps this many components.
	Components int
	// VarianceFraction keeps the smallest number of components whose
	// explained variance ratios sum to at least this, in (0, 1].
	// (scikit-learn keeps the smallest sum strictly above it; the two
	// differ only on exact ties.)
	VarianceFraction float64
	// Whiten scales Scores to unit variance; see PCAResult.
	Whiten bool
	// Solver is "auto" (or empty), "full", "randomized" or
	// "covariance_eigh".
	Solver PCASolver
	// Oversamples, PowerIterations and Seed configure the randomized
	// solver as in SVDOptions.
	Oversamples     int
	PowerIterations int
	Seed            uint64
}

// Validate reports the first option out of range as an EINVALID
// *lowrank.Error naming it.
func (o PCAOptions) Validate() error {
	if o.Components < 0 {
		return lowrank.Errorf(lowrank.EINVALID, "n_components", "must be ≥ 1, got %d", o.Components)
	}
	if o.VarianceFraction != 0 && !(o.VarianceFraction > 0 && o.VarianceFraction <= 1) {
		return lowrank.Errorf(lowrank.EINVALID, "n_components", "a variance fraction must be in (0, 1], got %g", o.VarianceFraction)
	}
	if o.Components > 0 && o.VarianceFraction > 0 {
		return lowrank.Errorf(lowrank.EINVALID, "n_components", "give a count or a variance fraction, not both")
	}
	switch o.Solver {
	case "", PCAAuto, PCAFull, PCARandomized, PCACovarianceEigh:
	default:
		return lowrank.Errorf(lowrank.EINVALID, "solver", "unknown solver %q (want auto, full, randomized or covariance_eigh)", o.Solver)
	}
	return nil
}

// PCAResult is a principal component analysis of a Samples×Features data
// matrix X, following scikit-learn's conventions (ddof = 1):
//
//	X − Mean ≈ Scores · Components                (Whiten false)
//	X − Mean ≈ Scores · diag(√ExplainedVariance) · Components   (Whiten true)
//
// Components is K×Features (stride Features) with orthonormal rows, the
// principal axes in decreasing order of variance; each row's entry of
// largest magnitude is positive (scikit-learn's sign rule for PCA, which
// the covariance solver can apply too). SingularValues are those of the
// centred X; ExplainedVariance = SingularValues²/(Samples − 1);
// ExplainedVarianceRatio divides it by TotalVariance, the summed variance of
// all features (exact for every solver).
//
// Scores is Samples×K (stride K): the centred data in the component basis,
// (X − Mean)·Componentsᵀ = U·diag(SingularValues). Whitening changes only
// Scores, dividing each column by √ExplainedVariance so it has unit
// variance (U·√(Samples−1)); Components keep unit norm, as scikit-learn's
// components_ do, so reconstructing from whitened scores multiplies them
// back.
type PCAResult[T Float] struct {
	Samples, Features, K   int
	Mean                   []T
	Components             []T
	SingularValues         []T
	ExplainedVariance      []T
	ExplainedVarianceRatio []T
	Scores                 []T
	Whiten                 bool
	// NoiseVariance is the mean variance of the discarded directions
	// (scikit-learn's noise_variance_), 0 when none is discarded.
	NoiseVariance float64
	TotalVariance float64
	// Solver is the solver that ran ("auto" resolved). For "randomized"
	// Algorithm names the SVD algorithm behind it.
	Solver    PCASolver
	Algorithm SVDAlgorithm
}

// PCA computes the principal components of the samples×features x (one
// sample per row, stride ldx), which it does not modify.
//
// Solvers:
//   - covariance_eigh: the Gram matrix XcᵀXc in float64 (xSYRK) and its
//     eigendecomposition (xSYEVD); squaring the data's condition number is
//     harmless in float64 for the float32 inputs weights come in.
//   - full: the thin SVD of the centred data (TruncatedSVD with "full").
//   - randomized: TruncatedSVD with "randomized" on the centred data (a
//     variance fraction runs its fixed-precision algorithm).
//   - auto: covariance_eigh when features ≤ 1000 and samples ≥ 10·features;
//     otherwise TruncatedSVD's own auto choice on the centred data (full
//     for small or high-rank problems, block Krylov or fixed precision for
//     low-rank ones), reported as "full" or "randomized".
//
// Fewer than 2 samples (no ddof = 1 variance), NaN or Inf, or a component
// count above min(samples, features) give an EINVALID *lowrank.Error.
func PCA[T Float](ctx context.Context, b Backend, samples, features int, x []T, ldx int, opts PCAOptions, progress func(Progress)) (*PCAResult[T], error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if _, err := checkMatrix(b, samples, features, x, ldx); err != nil {
		return nil, err
	}
	if samples < 2 {
		return nil, lowrank.Errorf(lowrank.EINVALID, "tensor", "PCA needs at least 2 samples, got %d", samples)
	}
	p := min(samples, features)
	if opts.Components > p {
		return nil, lowrank.Errorf(lowrank.EINVALID, "n_components", "%d exceeds min(samples, features) = %d", opts.Components, p)
	}
	rule := RankRule{Rank: opts.Components}
	switch {
	case opts.VarianceFraction > 0:
		rule = RankRule{Energy: opts.VarianceFraction}
	case opts.Components == 0:
		rule = RankRule{Rank: p}
	}

	// Centre in float64 sums, store in T.
	mean64 := make([]float64, features)
	for i := range samples {
		for j, v := range x[i*ldx : i*ldx+features] {
			mean64[j] += float64(v)
		}
	}
	r := &PCAResult[T]{Samples: samples, Features: features, Whiten: opts.Whiten, Mean: make([]T, features)}
	for j := range mean64 {
		mean64[j] /= float64(samples)
		r.Mean[j] = T(mean64[j])
	}
	xc := make([]T, samples*features)
	var normSq float64
	for i := range samples {
		row := xc[i*features : (i+1)*features]
		for j, v := range x[i*ldx : i*ldx+features] {
			d := float64(v) - mean64[j]
			row[j] = T(d)
			normSq += d * d
		}
	}
	dof := float64(samples - 1)
	r.TotalVariance = normSq / dof
	if err := ctx.Err(); err != nil {
		return nil, canceled(err)
	}

	solver := opts.Solver
	if solver == "" || solver == PCAAuto {
		if features <= autoEighMaxFeatures && samples >= autoEighMinRatio*features {
			solver = PCACovarianceEigh
		}
	}
	var sv []T
	switch solver {
	case PCACovarianceEigh:
		var err error
		if sv, err = pcaEigh(b, samples, features, xc, normSq, rule, r); err != nil {
			return nil, err
		}
		r.Solver, r.Algorithm = PCACovarianceEigh, ""
		if progress != nil {
			progress(Progress{Stage: "eigh", Iteration: 1, MaxIterations: 1, Fraction: 1, RelError: math.NaN()})
		}
	default:
		alg := map[PCASolver]SVDAlgorithm{PCAFull: SVDFull, PCARandomized: SVDRandomized}[solver]
		svd, err := TruncatedSVD(ctx, b, samples, features, xc, features, SVDOptions{
			Rule: rule, Algorithm: alg, Oversamples: opts.Oversamples, PowerIterations: opts.PowerIterations, Seed: opts.Seed,
		}, progress)
		if err != nil {
			return nil, err
		}
		r.Solver, r.Algorithm = PCARandomized, svd.Algorithm
		if svd.Algorithm == SVDFull {
			r.Solver = PCAFull
		}
		k := svd.K
		r.K, r.Components, sv = k, svd.Vt, svd.S
		flipRows(k, features, r.Components, samples, svd.U)
		r.Scores = svd.U
		for i := range samples {
			for j := range k {
				r.Scores[i*k+j] *= sv[j]
			}
		}
	}

	k := r.K
	r.SingularValues = sv
	r.ExplainedVariance = make([]T, k)
	r.ExplainedVarianceRatio = make([]T, k)
	var kept float64
	for j, s := range sv {
		v := float64(s) * float64(s) / dof
		kept += v
		r.ExplainedVariance[j] = T(v)
		if r.TotalVariance > 0 {
			r.ExplainedVarianceRatio[j] = T(v / r.TotalVariance)
		}
	}
	if k < p {
		r.NoiseVariance = max(0, r.TotalVariance-kept) / float64(p-k)
	}
	if opts.Whiten {
		for j := range k {
			sd := math.Sqrt(float64(r.ExplainedVariance[j]))
			for i := range samples {
				if sd > 0 {
					r.Scores[i*k+j] = T(float64(r.Scores[i*k+j]) / sd)
				}
			}
		}
	}
	return r, nil
}

// pcaEigh fills r.K, r.Components and r.Scores from the eigenvectors of
// XcᵀXc and returns the singular values √λ.
func pcaEigh[T Float](b Backend, samples, features int, xc []T, normSq float64, rule RankRule, r *PCAResult[T]) ([]T, error) {
	f := features
	x64 := toFloat64(xc)
	g := make([]float64, f*f)
	b.Dsyrk(blas.Upper, blas.Trans, f, samples, 1, x64, f, 0, g, f)
	w := make([]float64, f)
	// One thread, as in sketchSVD: the eigensolver's BLAS-2 reduction does
	// not scale with threads at these sizes.
	if !b.WithThreads(1).Dsyevd(f, g, f, w) {
		return nil, &lowrank.Error{Code: lowrank.EINTERNAL, Field: "tensor", Message: "the eigensolver did not converge"}
	}
	p := min(samples, features)
	sigma := make([]float64, p)
	for j := range p {
		sigma[j] = math.Sqrt(max(w[f-1-j], 0))
	}
	ch, err := rule.Choose(sigma, normSq, p, func(k int) int64 { return svdParams(samples, features, k) }, int64(samples)*int64(features))
	if err != nil {
		return nil, err
	}
	k := ch.Rank
	r.K = k
	r.Components = make([]T, k*f)
	sv := make([]T, k)
	for j := range k {
		sv[j] = T(sigma[j])
		for i := range f {
			r.Components[j*f+i] = T(g[i*f+f-1-j])
		}
	}
	flipRows(k, f, r.Components, 0, nil)
	r.Scores = make([]T, samples*k)
	Gemm(b, blas.NoTrans, blas.Trans, samples, k, f, 1, xc, f, r.Components, f, 0, r.Scores, k)
	return sv, nil
}

// flipRows makes the entry of largest magnitude in each row of the k×n v
// positive, flipping the matching column of the m×k u (stride k) if u is
// not nil.
func flipRows[T Float](k, n int, v []T, m int, u []T) {
	for j := range k {
		row := v[j*n : (j+1)*n]
		if !firstMaxAbsNegative(row) {
			continue
		}
		for i := range row {
			row[i] = -row[i]
		}
		for i := 0; u != nil && i < m; i++ {
			u[i*k+j] = -u[i*k+j]
		}
	}
}
