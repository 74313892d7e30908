package jobs

import (
	"context"
	"encoding/json"
	"math"
	"strconv"

	"gonum.org/v1/gonum/lapack"

	"github.com/lowrank/lowrank"
	"github.com/lowrank/lowrank/internal/linalg"
)

// SVDParams are the params of "svd": a truncated SVD A ≈ U·diag(S)·Vᵀ of
// the input read as a matrix (see matrixShape).
type SVDParams struct {
	linalg.RankRule
	// Algorithm is auto, full or randomized.
	Algorithm string `json:"algorithm"`
	// Oversamples are the extra sketch columns of the randomized algorithm.
	Oversamples *int `json:"oversamples,omitempty"`
	// PowerIterations are the subspace iterations of the randomized algorithm.
	PowerIterations *int   `json:"power_iterations,omitempty"`
	Seed            uint64 `json:"seed"`
	Common
}

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
	if err := oneOf("algorithm", p.Algorithm, "auto", "full", "randomized"); err != nil {
		return err
	}
	if p.Oversamples == nil {
		v := 10
		p.Oversamples = &v
	}
	if *p.Oversamples < 0 || *p.Oversamples > maxOversamples {
		return invalid("oversamples", "must be in [0, %d], got %d", maxOversamples, *p.Oversamples)
	}
	if p.PowerIterations == nil {
		v := 4
		p.PowerIterations = &v
	}
	if *p.PowerIterations < 0 || *p.PowerIterations > lim.MaxIterations {
		return invalid("power_iterations", "must be in [0, %d], got %d", lim.MaxIterations, *p.PowerIterations)
	}
	return p.Common.validate(in)
}

// maxOversamples bounds the sketch's extra columns; beyond a few dozen they
// buy no accuracy (Halko et al. 2011, §4.2) and only cost memory.
const maxOversamples = 1000

// PCAParams are the params of "pca": rows are samples, columns features.
type PCAParams struct {
	// NComponents is a count (an integer ≥ 1) or, when in (0, 1), the share
	// of variance to explain.
	NComponents json.Number `json:"n_components"`
	Whiten      bool        `json:"whiten"`
	Solver      string      `json:"solver"`
	Seed        uint64      `json:"seed"`
	Common
}

func (p *PCAParams) validate(in InputInfo, lim Limits) error {
	if len(in.Shape) != 2 {
		return lowrank.Errorf(lowrank.EINVALID, "tensor", "pca needs a 2-D tensor (samples × features), got shape %v", in.Shape)
	}
	if p.NComponents == "" {
		return invalid("n_components", "is required: a count ≥ 1 or a variance share in (0, 1)")
	}
	if k, err := p.NComponents.Int64(); err == nil {
		if k < 1 || k > int64(min(in.Shape[0], in.Shape[1])) {
			return invalid("n_components", "must be in [1, %d], got %d", min(in.Shape[0], in.Shape[1]), k)
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
	if err := oneOf("solver", p.Solver, "auto", "full", "randomized"); err != nil {
		return err
	}
	return p.Common.validate(in)
}

// CPParams are the params of "cp": a rank-R CANDECOMP/PARAFAC decomposition
// by alternating least squares.
type CPParams struct {
	Rank    int     `json:"rank"`
	MaxIter int     `json:"max_iter"`
	Tol     float64 `json:"tol"`
	Init    string  `json:"init"`
	Seed    uint64  `json:"seed"`
	L2Reg   float64 `json:"l2_reg"`
	Common
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
		p.Init = "svd"
	}
	if err := oneOf("init", p.Init, "svd", "random"); err != nil {
		return err
	}
	if !(p.L2Reg >= 0) || math.IsInf(p.L2Reg, 0) {
		return invalid("l2_reg", "must be ≥ 0, got %g", p.L2Reg)
	}
	return p.Common.validate(in)
}

// TuckerParams are the params of "tucker": a Tucker decomposition by HOOI,
// with per-mode ranks given or chosen by an energy or error target.
type TuckerParams struct {
	Ranks    []int   `json:"ranks,omitempty"`
	Energy   float64 `json:"energy,omitempty"`
	RelError float64 `json:"rel_error,omitempty"`
	Modes    []int   `json:"modes,omitempty"`
	MaxIter  int     `json:"max_iter"`
	Tol      float64 `json:"tol"`
	Init     string  `json:"init"`
	Seed     uint64  `json:"seed"`
	Common
}

func (p *TuckerParams) validate(in InputInfo, lim Limits) error {
	nd := len(in.Shape)
	if nd < 2 {
		return lowrank.Errorf(lowrank.EINVALID, "tensor", "tucker needs at least 2 dimensions, got shape %v", in.Shape)
	}
	set := 0
	if p.Ranks != nil {
		set++
		if len(p.Ranks) != nd {
			return invalid("ranks", "needs one rank per mode (%d), got %d", nd, len(p.Ranks))
		}
		for i, r := range p.Ranks {
			if r < 1 || r > in.Shape[i] {
				return lowrank.Errorf(lowrank.EINVALID, "ranks["+itoa(i)+"]", "must be in [1, %d], got %d", in.Shape[i], r)
			}
			if r > lim.MaxRank {
				return lowrank.Errorf(lowrank.ETOOLARGE, "ranks["+itoa(i)+"]", "%d exceeds the server's limit of %d", r, lim.MaxRank)
			}
		}
	}
	if p.Energy != 0 {
		set++
		if !(p.Energy > 0 && p.Energy <= 1) {
			return invalid("energy", "must be in (0, 1], got %g", p.Energy)
		}
	}
	if p.RelError != 0 {
		set++
		if !(p.RelError > 0 && p.RelError < 1) {
			return invalid("rel_error", "must be in (0, 1), got %g", p.RelError)
		}
	}
	if set != 1 {
		return invalid("ranks", "give exactly one of ranks, energy, rel_error (got %d)", set)
	}
	if p.Modes == nil {
		for i := range nd {
			p.Modes = append(p.Modes, i)
		}
	}
	seen := map[int]bool{}
	for i, m := range p.Modes {
		if m < 0 || m >= nd || seen[m] {
			return lowrank.Errorf(lowrank.EINVALID, "modes["+itoa(i)+"]", "must be a distinct mode in [0, %d), got %d", nd, m)
		}
		seen[m] = true
	}
	if len(p.Modes) == 0 {
		return invalid("modes", "must name at least one mode")
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
	return p.Common.validate(in)
}

func itoa(i int) string { return strconv.Itoa(i) }

func runPCA(context.Context, Env, *Tensor, *PCAParams) (*Output, error) { return nil, errNotYet("pca") }
func runCP(context.Context, Env, *Tensor, *CPParams) (*Output, error)   { return nil, errNotYet("cp") }
func runTucker(context.Context, Env, *Tensor, *TuckerParams) (*Output, error) {
	return nil, errNotYet("tucker")
}

// runSVD computes the truncated SVD in the requested precision.
func runSVD(ctx context.Context, env Env, in *Tensor, p *SVDParams) (*Output, error) {
	m, n, err := matrixShape(in.Shape)
	if err != nil {
		return nil, err
	}
	if p.Precision == "float64" {
		return svdKernel(ctx, env, m, n, toF64(in), p)
	}
	return svdKernel(ctx, env, m, n, toF32(in), p)
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

// svdKernel is the interim full SVD (xGESDD on all of A, then truncation
// by the rank rule) until linalg.TruncatedSVD lands.
func svdKernel[T linalg.Float](ctx context.Context, env Env, m, n int, a []T, p *SVDParams) (*Output, error) {
	k := min(m, n)
	work := make([]T, len(a))
	copy(work, a)
	s := make([]T, k)
	u := make([]T, m*k)
	vt := make([]T, k*n)
	var ok bool
	switch w := any(work).(type) {
	case []float64:
		ok = env.Backend.Dgesdd(lapack.SVDStore, m, n, w, n, any(s).([]float64), any(u).([]float64), k, any(vt).([]float64), n)
	case []float32:
		ok = env.Backend.Sgesdd(lapack.SVDStore, m, n, w, n, any(s).([]float32), any(u).([]float32), k, any(vt).([]float32), n)
	}
	if !ok {
		return nil, lowrank.Errorf(lowrank.EINTERNAL, "", "svd did not converge")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sigma := make([]float64, k)
	var normSq float64
	for i, v := range s {
		sigma[i] = float64(v)
		normSq += sigma[i] * sigma[i]
	}
	ch, err := p.RankRule.Choose(sigma, normSq, k, func(r int) int64 { return int64(r) * int64(m+n+1) }, int64(m)*int64(n))
	if err != nil {
		return nil, prefixField(err, "params")
	}
	r := ch.Rank
	uk := make([]T, m*r)
	for i := range m {
		copy(uk[i*r:(i+1)*r], u[i*k:i*k+r])
	}
	out := &Output{
		Ranks:          []int{r},
		RelError:       ch.RelError,
		ParamsOriginal: ch.ParamsOriginal,
		ParamsFactors:  ch.ParamsFactors,
		Iterations:     1,
		Converged:      true,
		Extras: map[string]any{
			"algorithm":       "full",
			"retained_energy": ch.RetainedEnergy,
			"matrix_shape":    []int{m, n},
		},
	}
	out.Factors = []*Tensor{
		newTensor("U", []int{m, r}, uk),
		newTensor("S", []int{r}, append([]T(nil), s[:r]...)),
		newTensor("Vt", []int{r, n}, append([]T(nil), vt[:r*n]...)),
	}
	if env.Progress != nil {
		env.Progress(Progress{Iteration: 1, MaxIterations: 1, RelError: ch.RelError, Fraction: 1})
	}
	return out, nil
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
