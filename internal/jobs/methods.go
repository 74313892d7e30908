package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strconv"

	"github.com/lowrank/lowrank"
	"github.com/lowrank/lowrank/internal/linalg"
	"github.com/lowrank/lowrank/internal/tensorops"
)

// SVDParams are the params of "svd": a truncated SVD A ≈ U·diag(S)·Vᵀ of
// the input read as a matrix (see matrixShape), by linalg.TruncatedSVD.
type SVDParams struct {
	linalg.RankRule
	// Algorithm is auto, full, randomized, block_krylov or fixed_precision.
	Algorithm string `json:"algorithm"`
	// Oversamples are the extra sketch columns of the randomized algorithms.
	Oversamples *int `json:"oversamples,omitempty"`
	// PowerIterations are the subspace iterations (Krylov depth) of the
	// randomized algorithms; 0 means none.
	PowerIterations *int   `json:"power_iterations,omitempty"`
	Seed            uint64 `json:"seed"`
	Common
}

// maxOversamples bounds the sketch's extra columns; beyond a few dozen they
// buy no accuracy (Halko et al. 2011, §4.2) and only cost memory.
const maxOversamples = 1000

// maxPowerIterations is linalg's bound on subspace iterations.
const maxPowerIterations = 100

func (p *SVDParams) validate(in InputInfo, lim Limits) error {
	m, n, err := matrixShape(in.Shape)
	if err != nil {
		return err
	}
	if err := checkRankRule(p.RankRule, min(m, n), lim); err != nil {
		return err
	}
	if p.Algorithm == "" {
		p.Algorithm = "auto"
	}
	if err := oneOf("algorithm", p.Algorithm, "auto", "full", "randomized", "block_krylov", "fixed_precision"); err != nil {
		return err
	}
	if p.Oversamples == nil {
		v := linalg.DefaultOversamples
		p.Oversamples = &v
	}
	if *p.Oversamples < 0 || *p.Oversamples > maxOversamples {
		return invalid("oversamples", "must be in [0, %d], got %d", maxOversamples, *p.Oversamples)
	}
	if p.PowerIterations == nil {
		v := linalg.DefaultPowerIterations
		p.PowerIterations = &v
	}
	if limit := min(maxPowerIterations, lim.MaxIterations); *p.PowerIterations < 0 || *p.PowerIterations > limit {
		return invalid("power_iterations", "must be in [0, %d], got %d", limit, *p.PowerIterations)
	}
	return p.Common.validate(in)
}

// PCAParams are the params of "pca": rows are samples, columns features.
type PCAParams struct {
	// NComponents is a count (an integer ≥ 1) or, when in (0, 1), the share
	// of variance to explain.
	NComponents json.Number `json:"n_components"`
	Whiten      bool        `json:"whiten"`
	// Solver is auto, full, randomized or covariance_eigh.
	Solver string `json:"solver"`
	Seed   uint64 `json:"seed"`
	Common
}

func (p *PCAParams) options() linalg.PCAOptions {
	o := linalg.PCAOptions{Whiten: p.Whiten, Solver: linalg.PCASolver(p.Solver), Seed: p.Seed}
	if k, err := p.NComponents.Int64(); err == nil {
		o.Components = int(k)
	} else if f, err := p.NComponents.Float64(); err == nil {
		o.VarianceFraction = f
	}
	return o
}

func (p *PCAParams) validate(in InputInfo, lim Limits) error {
	if len(in.Shape) != 2 {
		return lowrank.Errorf(lowrank.EINVALID, "tensor", "pca needs a 2-D tensor (samples × features), got shape %v", in.Shape)
	}
	if in.Shape[0] < 2 {
		return lowrank.Errorf(lowrank.EINVALID, "tensor", "pca needs at least 2 samples (rows), got %d", in.Shape[0])
	}
	if p.NComponents == "" {
		return invalid("n_components", "is required: a count ≥ 1 or a variance share in (0, 1)")
	}
	maxK := int64(min(in.Shape[0], in.Shape[1]))
	if k, err := p.NComponents.Int64(); err == nil {
		if k < 1 || k > maxK {
			return invalid("n_components", "must be in [1, %d], got %d", maxK, k)
		}
		if k > int64(lim.MaxRank) {
			return lowrank.Errorf(lowrank.ETOOLARGE, "n_components", "%d exceeds the server's limit of %d", k, lim.MaxRank)
		}
	} else if f, err := p.NComponents.Float64(); err != nil || !(f > 0 && f < 1) {
		return invalid("n_components", "must be an integer ≥ 1 or a share in (0, 1), got %s", p.NComponents)
	}
	if p.Solver == "" {
		p.Solver = "auto"
	}
	if err := p.options().Validate(); err != nil {
		return err
	}
	return p.Common.validate(in)
}

// CPParams are the params of "cp": a rank-R CANDECOMP/PARAFAC decomposition
// by alternating least squares (tensorops.CPALS).
type CPParams struct {
	Rank    int     `json:"rank"`
	MaxIter int     `json:"max_iter"`
	Tol     float64 `json:"tol"`
	Init    string  `json:"init"`
	Seed    uint64  `json:"seed"`
	L2Reg   float64 `json:"l2_reg"`
	Common
}

func (p *CPParams) options() tensorops.CPOptions {
	return tensorops.CPOptions{Rank: p.Rank, MaxIter: p.MaxIter, Tol: p.Tol, Init: p.Init, Seed: p.Seed, L2: p.L2Reg}
}

func (p *CPParams) validate(in InputInfo, lim Limits) error {
	if len(in.Shape) < 2 {
		return lowrank.Errorf(lowrank.EINVALID, "tensor", "cp needs at least 2 dimensions, got shape %v", in.Shape)
	}
	if p.Rank < 1 {
		return invalid("rank", "is required and must be ≥ 1, got %d", p.Rank)
	}
	if p.Rank > lim.MaxRank {
		return lowrank.Errorf(lowrank.ETOOLARGE, "rank", "%d exceeds the server's limit of %d", p.Rank, lim.MaxRank)
	}
	if err := checkIterations("max_iter", &p.MaxIter, 100, lim); err != nil {
		return err
	}
	if p.Tol == 0 {
		p.Tol = 1e-6
	}
	if !(p.Tol > 0 && p.Tol < 1) {
		return invalid("tol", "must be in (0, 1), got %g", p.Tol)
	}
	if p.Init == "" {
		p.Init = tensorops.InitSVD
	}
	if err := oneOf("init", p.Init, tensorops.InitSVD, tensorops.InitRandom); err != nil {
		return err
	}
	if err := p.options().Validate(in.Shape); err != nil {
		if e := (*lowrank.Error)(nil); errors.As(err, &e) && e.Field == "l2" {
			return invalid("l2_reg", "%s", e.Message)
		}
		return err
	}
	return p.Common.validate(in)
}

// TuckerParams are the params of "tucker": a (partial) Tucker decomposition
// by truncated HOSVD and HOOI (tensorops.Tucker), with ranks per compressed
// mode or chosen by an energy or error target.
type TuckerParams struct {
	// Ranks gives one rank per entry of Modes (per mode when Modes is
	// omitted).
	Ranks    []int   `json:"ranks,omitempty"`
	Energy   float64 `json:"energy,omitempty"`
	RelError float64 `json:"rel_error,omitempty"`
	// Modes lists the modes to compress (default all).
	Modes   []int   `json:"modes,omitempty"`
	MaxIter int     `json:"max_iter"`
	Tol     float64 `json:"tol"`
	// Init is hosvd or random.
	Init string `json:"init"`
	Seed uint64 `json:"seed"`
	Common
}

func (p *TuckerParams) options() tensorops.TuckerOptions {
	o := tensorops.TuckerOptions{Modes: p.Modes, Ranks: p.Ranks, MaxIter: p.MaxIter, Tol: p.Tol, Init: tensorops.InitSVD, Seed: p.Seed}
	if p.Init == "random" {
		o.Init = tensorops.InitRandom
	}
	if p.Ranks == nil && (p.Energy != 0 || p.RelError != 0) {
		o.Rule = &linalg.RankRule{Energy: p.Energy, RelError: p.RelError}
	}
	return o
}

func (p *TuckerParams) validate(in InputInfo, lim Limits) error {
	if len(in.Shape) < 2 {
		return lowrank.Errorf(lowrank.EINVALID, "tensor", "tucker needs at least 2 dimensions, got shape %v", in.Shape)
	}
	set := 0
	for _, given := range []bool{p.Ranks != nil, p.Energy != 0, p.RelError != 0} {
		if given {
			set++
		}
	}
	if set != 1 {
		return invalid("ranks", "give exactly one of ranks, energy, rel_error (got %d)", set)
	}
	for i, r := range p.Ranks {
		if r > lim.MaxRank {
			return lowrank.Errorf(lowrank.ETOOLARGE, "ranks["+strconv.Itoa(i)+"]", "%d exceeds the server's limit of %d", r, lim.MaxRank)
		}
	}
	if err := checkIterations("max_iter", &p.MaxIter, 50, lim); err != nil {
		return err
	}
	if p.Tol == 0 {
		p.Tol = 1e-6
	}
	if !(p.Tol > 0 && p.Tol < 1) {
		return invalid("tol", "must be in (0, 1), got %g", p.Tol)
	}
	if p.Init == "" {
		p.Init = "hosvd"
	}
	if err := oneOf("init", p.Init, "hosvd", "random"); err != nil {
		return err
	}
	if err := p.options().Validate(in.Shape); err != nil {
		return err
	}
	return p.Common.validate(in)
}

// progressOf adapts a kernel's progress report.
func progressOf(env Env) func(stage string, it, maxIt int, rel, frac float64) {
	return func(_ string, it, maxIt int, rel, frac float64) {
		if env.Progress != nil {
			env.Progress(Progress{Iteration: it, MaxIterations: maxIt, RelError: rel, Fraction: frac})
		}
	}
}

func runSVD(ctx context.Context, env Env, in *Tensor, p *SVDParams) (*Output, error) {
	m, n, err := matrixShape(in.Shape)
	if err != nil {
		return nil, err
	}
	if p.Precision == "float64" {
		return svdRun(ctx, env, m, n, toF64(in), p)
	}
	return svdRun(ctx, env, m, n, toF32(in), p)
}

func svdRun[T linalg.Float](ctx context.Context, env Env, m, n int, a []T, p *SVDParams) (*Output, error) {
	opts := linalg.SVDOptions{Rule: p.RankRule, Algorithm: linalg.SVDAlgorithm(p.Algorithm), Seed: p.Seed,
		Oversamples: noneIfZero(*p.Oversamples), PowerIterations: noneIfZero(*p.PowerIterations)}
	report := progressOf(env)
	res, err := linalg.TruncatedSVD(ctx, env.Backend, m, n, a, n, opts, func(pr linalg.Progress) {
		report(pr.Stage, pr.Iteration, pr.MaxIterations, pr.RelError, pr.Fraction)
	})
	if err != nil {
		return nil, prefixParams(err)
	}
	r := res.K
	return &Output{
		Factors: []*Tensor{
			newTensor("U", []int{m, r}, res.U),
			newTensor("S", []int{r}, res.S),
			newTensor("Vt", []int{r, n}, res.Vt),
		},
		Ranks:          []int{r},
		RelError:       res.EstimatedError,
		ParamsOriginal: res.Choice.ParamsOriginal,
		ParamsFactors:  res.Choice.ParamsFactors,
		Iterations:     res.Passes,
		Converged:      true,
		Extras: map[string]any{
			"algorithm":       string(res.Algorithm),
			"retained_energy": res.Choice.RetainedEnergy,
			"matrix_shape":    []int{m, n},
			"passes":          res.Passes,
		},
	}, nil
}

// noneIfZero maps the API's 0 ("none") to linalg's negative ("none"), whose
// 0 means "the default".
func noneIfZero(v int) int {
	if v == 0 {
		return -1
	}
	return v
}

// prefixParams names a kernel's complaint about an option as a param; the
// input's own faults ("tensor...") keep their field.
func prefixParams(err error) error { return prefixField(err, "params") }

func runPCA(ctx context.Context, env Env, in *Tensor, p *PCAParams) (*Output, error) {
	if p.Precision == "float64" {
		return pcaRun(ctx, env, in.Shape[0], in.Shape[1], toF64(in), p)
	}
	return pcaRun(ctx, env, in.Shape[0], in.Shape[1], toF32(in), p)
}

func pcaRun[T linalg.Float](ctx context.Context, env Env, samples, features int, x []T, p *PCAParams) (*Output, error) {
	report := progressOf(env)
	res, err := linalg.PCA(ctx, env.Backend, samples, features, x, features, p.options(), func(pr linalg.Progress) {
		report(pr.Stage, pr.Iteration, pr.MaxIterations, pr.RelError, pr.Fraction)
	})
	if err != nil {
		return nil, prefixParams(err)
	}
	k := res.K
	var explained float64
	for _, v := range res.ExplainedVarianceRatio {
		explained += float64(v)
	}
	return &Output{
		Factors: []*Tensor{
			newTensor("components", []int{k, features}, res.Components),
			newTensor("scores", []int{samples, k}, res.Scores),
			newTensor("mean", []int{features}, res.Mean),
			newTensor("singular_values", []int{k}, res.SingularValues),
			newTensor("explained_variance", []int{k}, res.ExplainedVariance),
			newTensor("explained_variance_ratio", []int{k}, res.ExplainedVarianceRatio),
		},
		Ranks: []int{k},
		// The error of the rank-k reconstruction of the centred data,
		// relative to its norm: the unexplained share of the variance.
		RelError:       math.Sqrt(max(0, 1-explained)),
		ParamsOriginal: int64(samples) * int64(features),
		ParamsFactors:  int64(samples)*int64(k) + int64(k)*int64(features) + int64(features),
		Iterations:     1,
		Converged:      true,
		Extras: map[string]any{
			"solver":             string(res.Solver),
			"algorithm":          string(res.Algorithm),
			"whiten":             res.Whiten,
			"explained_variance": explained,
			"noise_variance":     res.NoiseVariance,
			"total_variance":     res.TotalVariance,
		},
	}, nil
}

func runCP(ctx context.Context, env Env, in *Tensor, p *CPParams) (*Output, error) {
	if p.Precision == "float64" {
		return cpRun(ctx, env, &tensorops.Dense[float64]{Shape: in.Shape, Data: toF64(in)}, p)
	}
	return cpRun(ctx, env, &tensorops.Dense[float32]{Shape: in.Shape, Data: toF32(in)}, p)
}

func cpRun[T tensorops.Float](ctx context.Context, env Env, x *tensorops.Dense[T], p *CPParams) (*Output, error) {
	report := progressOf(env)
	res, err := tensorops.CPALS(ctx, env.Backend, x, p.options(), func(pr tensorops.Progress) {
		report(pr.Stage, pr.Iteration, pr.MaxIterations, pr.RelError, pr.Fraction)
	})
	if err != nil {
		return nil, prefixParams(err)
	}
	out := &Output{
		Factors:        []*Tensor{newTensor("weights", []int{len(res.Weights)}, res.Weights)},
		Ranks:          []int{p.Rank},
		RelError:       res.RelError,
		ParamsOriginal: res.ParamsOriginal,
		ParamsFactors:  res.ParamsFactors,
		Iterations:     res.Iterations,
		Converged:      res.Converged,
		Extras:         map[string]any{"rel_errors": finite(res.RelErrors)},
	}
	for n, f := range res.Factors {
		out.Factors = append(out.Factors, newTensor("factor_"+strconv.Itoa(n), []int{f.Rows, f.Cols}, f.Data))
	}
	return out, nil
}

func runTucker(ctx context.Context, env Env, in *Tensor, p *TuckerParams) (*Output, error) {
	if p.Precision == "float64" {
		return tuckerRun(ctx, env, &tensorops.Dense[float64]{Shape: in.Shape, Data: toF64(in)}, p)
	}
	return tuckerRun(ctx, env, &tensorops.Dense[float32]{Shape: in.Shape, Data: toF32(in)}, p)
}

func tuckerRun[T tensorops.Float](ctx context.Context, env Env, x *tensorops.Dense[T], p *TuckerParams) (*Output, error) {
	report := progressOf(env)
	res, err := tensorops.Tucker(ctx, env.Backend, x, p.options(), func(pr tensorops.Progress) {
		report(pr.Stage, pr.Iteration, pr.MaxIterations, pr.RelError, pr.Fraction)
	})
	if err != nil {
		return nil, prefixParams(err)
	}
	out := &Output{
		Factors:        []*Tensor{newTensor("core", res.Core.Shape, res.Core.Data)},
		Ranks:          res.Ranks,
		RelError:       res.RelError,
		ParamsOriginal: res.ParamsOriginal,
		ParamsFactors:  res.ParamsFactors,
		Iterations:     res.Iterations,
		Converged:      res.Converged,
		Extras:         map[string]any{"modes": res.Modes, "rel_errors": finite(res.RelErrors)},
	}
	for k, f := range res.Factors {
		out.Factors = append(out.Factors, newTensor("factor_"+strconv.Itoa(res.Modes[k]), []int{f.Rows, f.Cols}, f.Data))
	}
	return out, nil
}

// finite replaces NaN and Inf (which JSON cannot hold) by -1.
func finite(v []float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			x = -1
		}
		out[i] = x
	}
	return out
}

func toF64(t *Tensor) []float64 {
	if t.F64 != nil {
		return t.F64
	}
	out := make([]float64, len(t.F32))
	for i, v := range t.F32 {
		out[i] = float64(v)
	}
	return out
}

func toF32(t *Tensor) []float32 {
	if t.F32 != nil {
		return t.F32
	}
	out := make([]float32, len(t.F64))
	for i, v := range t.F64 {
		out[i] = float32(v)
	}
	return out
}

func newTensor[T linalg.Float](name string, shape []int, data []T) *Tensor {
	t := &Tensor{Name: name, Shape: shape}
	switch d := any(data).(type) {
	case []float64:
		t.F64, t.DType = d, "float64"
	case []float32:
		t.F32, t.DType = d, "float32"
	}
	return t
}
