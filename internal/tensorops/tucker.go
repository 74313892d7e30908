package tensorops

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"

	"gonum.org/v1/gonum/blas"

	"github.com/lowrank/lowrank"
	"github.com/lowrank/lowrank/internal/linalg"
)

// TuckerOptions configures Tucker.
type TuckerOptions struct {
	// Modes lists the modes to compress, distinct and in the order the
	// truncated HOSVD processes them; nil means every mode. Partial Tucker
	// leaves the other modes at full size with no factor: Tucker-2 of a conv
	// filter (out, in, kh, kw) is Modes = {0, 1}.
	Modes []int `json:"modes,omitempty"`
	// Ranks gives one rank per entry of Modes (per mode when Modes is nil),
	// 1 ≤ Ranks[k] ≤ I_{Modes[k]}. Exactly one of Ranks and Rule is set.
	Ranks []int `json:"ranks,omitempty"`
	// Rule chooses the ranks instead: Rank (the same for every mode),
	// RelError ε or Energy e (taken as ε = sqrt(1 − e), i.e. at least a
	// fraction e of ‖X‖² kept), guaranteeing ‖X − X̂‖ ≤ ε‖X‖; see Tucker.
	// Compression is not supported.
	Rule *linalg.RankRule `json:"rule,omitempty"`
	// MaxIter is the number of HOOI sweeps after the initialisation (≥ 0);
	// 0 returns the sequentially truncated HOSVD.
	MaxIter int `json:"max_iter"`
	// Tol stops HOOI once the relative error changes by less than Tol
	// between sweeps (≥ 0; 0 runs all MaxIter sweeps).
	Tol float64 `json:"tol"`
	// Init is InitSVD (truncated HOSVD, the default when empty) or
	// InitRandom (orthonormalised Gaussian factors; needs Ranks or
	// Rule.Rank).
	Init string `json:"init"`
	Seed uint64 `json:"seed"`
}

// TuckerResult is a (partial) Tucker decomposition
// X ≈ G ×_{Modes[0]} U₀ ×_{Modes[1]} U₁ ….
type TuckerResult[T Float] struct {
	// Core has shape Ranks[k] at mode Modes[k] and I_n at the other modes.
	Core *Dense[T]
	// Modes and Ranks say which modes were compressed and to what rank.
	Modes []int
	Ranks []int
	// Factors[k] is I_{Modes[k]} × Ranks[k] with orthonormal columns.
	Factors []*Matrix[T]
	// RelErrors[0] is the error of the initialisation, RelErrors[k] that
	// after HOOI sweep k, all from ‖X − X̂‖² = ‖X‖² − ‖G‖².
	RelErrors []float64
	// RelError is ‖X − X̂‖/‖X‖ of the result (from an explicit reconstruction
	// when the formula above is at round-off).
	RelError   float64
	Iterations int
	Converged  bool
	// ParamsOriginal is the element count of X; ParamsFactors that of the
	// core plus the factors.
	ParamsOriginal int64
	ParamsFactors  int64
}

// Validate reports the first option out of range for a tensor of the given
// shape as an EINVALID *lowrank.Error naming it (e.g. "ranks[2]").
func (o TuckerOptions) Validate(shape []int) error {
	_, err := o.validate(shape)
	return err
}

// validate checks o for a tensor of the given shape and returns the modes
// to compress.
func (o TuckerOptions) validate(shape []int) ([]int, error) {
	nModes := len(shape)
	modes := o.Modes
	if modes == nil {
		modes = make([]int, nModes)
		for i := range modes {
			modes[i] = i
		}
	}
	if len(modes) == 0 {
		return nil, lowrank.Errorf(lowrank.EINVALID, "modes", "must name at least one mode")
	}
	seen := make([]bool, nModes)
	for k, m := range modes {
		field := fmt.Sprintf("modes[%d]", k)
		if m < 0 || m >= nModes {
			return nil, lowrank.Errorf(lowrank.EINVALID, field, "mode %d is out of range for an order-%d tensor", m, nModes)
		}
		if seen[m] {
			return nil, lowrank.Errorf(lowrank.EINVALID, field, "mode %d is listed twice", m)
		}
		seen[m] = true
	}
	switch {
	case o.Ranks != nil && o.Rule != nil:
		return nil, lowrank.Errorf(lowrank.EINVALID, "ranks", "give ranks or a rank rule, not both")
	case o.Ranks == nil && o.Rule == nil:
		return nil, lowrank.Errorf(lowrank.EINVALID, "ranks", "give ranks or a rank rule")
	case o.Ranks != nil:
		if len(o.Ranks) != len(modes) {
			return nil, lowrank.Errorf(lowrank.EINVALID, "ranks", "has %d entries for %d modes", len(o.Ranks), len(modes))
		}
		for k, r := range o.Ranks {
			if r < 1 || r > shape[modes[k]] {
				return nil, lowrank.Errorf(lowrank.EINVALID, fmt.Sprintf("ranks[%d]", k), "must be in [1, %d] (the size of mode %d), got %d", shape[modes[k]], modes[k], r)
			}
		}
	default:
		if err := o.Rule.Validate(); err != nil {
			return nil, err
		}
		if o.Rule.Compression != 0 {
			return nil, lowrank.Errorf(lowrank.EINVALID, "compression", "is not supported for Tucker; use rank, energy or rel_error")
		}
		if o.Rule.Rank > 0 {
			for _, m := range modes {
				if o.Rule.Rank > shape[m] {
					return nil, lowrank.Errorf(lowrank.EINVALID, "rank", "%d exceeds the size %d of mode %d", o.Rule.Rank, shape[m], m)
				}
			}
		}
	}
	if o.MaxIter < 0 {
		return nil, lowrank.Errorf(lowrank.EINVALID, "max_iter", "must be ≥ 0, got %d", o.MaxIter)
	}
	if !(o.Tol >= 0) || math.IsInf(o.Tol, 0) {
		return nil, lowrank.Errorf(lowrank.EINVALID, "tol", "must be a finite number ≥ 0, got %g", o.Tol)
	}
	switch o.Init {
	case "", InitSVD:
	case InitRandom:
		if o.Ranks == nil && o.Rule.Rank == 0 {
			return nil, lowrank.Errorf(lowrank.EINVALID, "init", "random init needs explicit ranks")
		}
	default:
		return nil, lowrank.Errorf(lowrank.EINVALID, "init", "must be %q or %q, got %q", InitSVD, InitRandom, o.Init)
	}
	return modes, nil
}

// Tucker computes a Tucker decomposition of x, or a partial one on
// opts.Modes, by truncated HOSVD followed by opts.MaxIter sweeps of HOOI
// (De Lathauwer, De Moor & Vandewalle 2000).
//
// Factors from Grams. The leading left singular vectors of an unfolding
// Y₍ₙ₎ are the leading eigenvectors of its Gram matrix Y₍ₙ₎Y₍ₙ₎ᵀ
// (I_n × I_n, by SYRK on a row-major view of Y), and its eigenvalues are the
// squared singular values σᵢ⁽ⁿ⁾². No SVD of a wide unfolding is ever run.
//
// HOSVD. With MaxIter = 0 the result is the sequentially truncated HOSVD
// (Vannieuwenhoven, Vandebril & Meerbergen 2012): each mode's Gram is of the
// tensor already projected on the earlier modes, which is cheaper and in
// practice at least as accurate. HOOI starts from the classic truncated HOSVD (every Gram of X),
// as De Lathauwer et al. do, so that its sweeps follow the textbook
// iterates. Either way the error obeys
//
//	‖X − X̂‖² ≤ Σₙ Σ_{i>rₙ} σᵢ⁽ⁿ⁾²,
//
// so a rank rule with target ε gives each of the N' compressed modes the
// budget ε²‖X‖²/N' of discarded energy, chosen by linalg.RankRule.Choose on
// that mode's spectrum: the total relative error is then ≤ ε, and HOOI only
// lowers it.
//
// HOOI. Each sweep replaces, mode by mode, Uₙ by the leading eigenvectors
// of the Gram of X ×_{m≠n} U_mᵀ. Modes kept at full rank (rₙ = I_n, e.g. a
// 3×3 kernel) do not change that Gram's eigenvectors and are skipped; their
// factors are fixed at the end as the eigenvectors of the core's mode-n
// Gram, which leaves the fit unchanged and the core all-orthogonal in them;
// the HOSVD start does not compute them either. With two compressed modes n
// and m (Tucker-2, or a conv filter with its kernel modes kept whole), X is
// copied once per mode into the axis order (n, rest, m): the projection is
// one GEMM X'·U_m and its result's mode-n unfolding is a row-major view, so
// the Gram is one SYRK (projectLast). With more, the first, most expensive,
// projection is one GEMM on a row-major view of X with the mode that
// shrinks X most first (X itself for mode 0, else one copy of X made once).
// The eigenvectors are the rₙ leading eigenpairs of the Gram, computed
// alone (linalg.Syevr, exact like a full eigendecomposition and about a
// quarter cheaper), or, when rₙ ≪ I_n makes it cheaper (useSubspace), come
// from subspace iteration on an oversampled basis carried over from the
// previous sweep (refineSubspace).
//
// The error after each step comes from ‖X − X̂‖² = ‖X‖² − ‖G‖² (orthonormal
// factors); below 10·sqrt(u) it is recomputed from an explicit
// reconstruction. Progress and cancellation work as in CPALS.
func Tucker[T Float](ctx context.Context, b linalg.Backend, x *Dense[T], opts TuckerOptions, progress func(Progress)) (*TuckerResult[T], error) {
	if err := x.Validate(); err != nil {
		return nil, err
	}
	modes, err := opts.validate(x.Shape)
	if err != nil {
		return nil, err
	}
	s := &tuckerState[T]{b: b, x: x, modes: modes, normX2: sumSq(x.Data), perms: map[int][]T{}, bases: map[int][]float64{}}
	res, err := s.run(ctx, opts, progress)
	if err != nil {
		return nil, canceled(err)
	}
	return res, nil
}

type tuckerState[T Float] struct {
	b       linalg.Backend
	x       *Dense[T]
	modes   []int
	normX2  float64
	ranks   []int        // per mode of x; I_n where not compressed
	factors []*Matrix[T] // per mode of x; nil where not compressed
	perms   map[int][]T  // x with mode m moved first
	// arranged holds, per pair (n, m), x with mode n first and m last
	// (projectLast); arrangedMu guards it while HOSVD's modes run at once.
	arranged   map[[2]int][]T
	arrangedMu sync.Mutex
	// bases holds, per compressed mode, the oversampled orthonormal basis
	// (I_n × k, float64) HOOI refines from sweep to sweep.
	bases map[int][]float64
	// refineSteps counts subspace-iteration steps, for tests and tuning.
	refineSteps int
	// startPending asks the next refine for startNorm2: ‖G‖² of the
	// starting core, trace(UᵀGU) with the Gram G of its projection and
	// the factor U it is about to replace (HOOI's first update; see run).
	startPending bool
	startNorm2   float64
	// projected (projectLast's output) and gram (eig's Gram matrix) are
	// reused from call to call: fresh ones faulted in their pages while
	// the kernels wrote them (HOOI 256 → 64: 3 % of the time).
	projected, gram []T
}

func (s *tuckerState[T]) run(ctx context.Context, opts TuckerOptions, progress func(Progress)) (*TuckerResult[T], error) {
	x := s.x
	s.ranks = slices.Clone(x.Shape)
	s.factors = make([]*Matrix[T], x.Order())
	var core *Dense[T]
	var err error
	if opts.Init == InitRandom {
		rng := newRand(opts.Seed)
		for k, m := range s.modes {
			r := fixedRank(opts, k)
			s.ranks[m] = r
			u := NewMatrix[T](x.Shape[m], r)
			for i, v := range randomOrthonormal(s.b, x.Shape[m], r, rng) {
				u.Data[i] = T(v)
			}
			s.factors[m] = u
		}
		core = MultiModeProduct(s.b, x, s.factors, true)
	} else if core, err = s.hosvd(ctx, opts, opts.MaxIter == 0); err != nil {
		return nil, err
	}
	res := &TuckerResult[T]{Modes: slices.Clone(s.modes), ParamsOriginal: int64(x.Len())}
	var active []int
	for _, m := range s.modes {
		if s.ranks[m] < x.Shape[m] {
			active = append(active, m)
		}
	}
	if len(active) == 0 {
		res.Converged = true
	}
	start := slices.Clone(s.factors)
	var rel float64
	started := func(rel float64) {
		res.RelErrors = append(res.RelErrors, rel)
		if progress != nil {
			progress(Progress{Stage: "hosvd", MaxIterations: opts.MaxIter, RelError: rel, Fraction: 1 / float64(opts.MaxIter+1)})
		}
	}
	if core == nil && len(active) == 0 {
		core = MultiModeProduct(s.b, x, s.factors, true)
	}
	if core != nil {
		if rel, err = s.relError(ctx, sumSq(core.Data), func() *Dense[T] { return core }); err != nil {
			return nil, err
		}
		started(rel)
	} else {
		// HOSVD left its core unformed (hosvd): the first update's Gram
		// gives its norm.
		s.startPending = true
	}
	for it := 1; it <= opts.MaxIter && len(active) > 0; it++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		sweepCore, norm2, err := s.hooiSweep(ctx, active)
		if err != nil {
			return nil, err
		}
		if it == 1 && len(res.RelErrors) == 0 {
			rel0, err := s.startError(ctx, start)
			if err != nil {
				return nil, err
			}
			started(rel0)
		}
		// The last sweep's error comes from the core itself, as the
		// result reports it.
		core = nil
		if it == opts.MaxIter || math.IsNaN(norm2) {
			core = sweepCore()
			norm2 = sumSq(core.Data)
		}
		if rel, err = s.relError(ctx, norm2, sweepCore); err != nil {
			return nil, err
		}
		converged := opts.Tol > 0 && math.Abs(res.RelErrors[it-1]-rel) < opts.Tol
		if converged && core == nil {
			core = sweepCore()
			if rel, err = s.relError(ctx, sumSq(core.Data), sweepCore); err != nil {
				return nil, err
			}
		}
		res.RelErrors = append(res.RelErrors, rel)
		res.Iterations = it
		if progress != nil {
			progress(Progress{Stage: "hooi", Iteration: it, MaxIterations: opts.MaxIter, RelError: rel, Fraction: float64(it+1) / float64(opts.MaxIter+1)})
		}
		if converged {
			res.Converged = true
			break
		}
	}
	if res.Iterations > 0 {
		// HOOI left the full-rank modes unprojected: rotate them to the
		// eigenvectors of the core's Grams.
		for _, m := range s.modes {
			if s.ranks[m] < x.Shape[m] {
				continue
			}
			vecs, err := s.eig(ctx, core.Data, core.Shape, m, x.Shape[m])
			if err != nil {
				return nil, err
			}
			s.factors[m] = vecs
			core = ModeProduct(s.b, core, vecs, m, true)
		}
	}
	res.Core = core
	res.RelError = rel
	res.ParamsFactors = int64(core.Len())
	for _, m := range s.modes {
		res.Ranks = append(res.Ranks, s.ranks[m])
		res.Factors = append(res.Factors, s.factors[m])
		res.ParamsFactors += int64(x.Shape[m]) * int64(s.ranks[m])
	}
	return res, nil
}

// fixedRank returns the rank given for entry k of Modes: Ranks[k] or
// Rule.Rank (0 when the rule chooses it from a spectrum).
func fixedRank(o TuckerOptions, k int) int {
	if o.Ranks != nil {
		return o.Ranks[k]
	}
	return o.Rule.Rank
}

// hosvd computes the truncated HOSVD over s.modes, choosing the ranks, and
// returns the core, or nil when HOOI follows: HOOI's first update has the
// core's norm for almost nothing (startError), and the core itself took 2
// of 137 ms of HOOI 256 → 64. sequential selects the sequentially
// truncated variant:
// each mode's Gram is taken of the tensor already projected on the earlier
// modes (cheaper, and a lower error); otherwise every Gram is of X itself,
// the classic HOSVD that De Lathauwer et al. start HOOI from.
func (s *tuckerState[T]) hosvd(ctx context.Context, opts TuckerOptions, sequential bool) (*Dense[T], error) {
	x := s.x
	// Before HOOI with fixed ranks: a mode kept whole is skipped by the
	// sweeps and rotated at the end, so its HOSVD factor would be thrown
	// away; it stays the identity (nil), which changes neither the core's
	// norm nor the sweeps. With exactly two compressed modes, their Grams
	// come from the copies of X that HOOI will project (projectLast).
	var compressed []int
	for k, m := range s.modes {
		if r := fixedRank(opts, k); r == 0 || r < x.Shape[m] {
			compressed = append(compressed, m)
		}
	}
	hooiNext := !sequential && opts.MaxIter > 0 && len(compressed) > 0
	cur, shape := x.Data, slices.Clone(x.Shape)
	type task struct {
		k, m, axis int
		src        []T
		srcShape   []int
		srcNorm2   float64
		// pair, when set, is the other compressed mode: the task's source
		// is X arranged with m first and pair last (projectLast's copy),
		// made in the task; with m = 0 (X itself is the source), the task
		// makes that copy after its eigensolve, for HOOI's first update,
		// so that the two tasks both copy X once and end together.
		pair int
	}
	var tasks []task
	for k, m := range s.modes {
		if hooiNext && !slices.Contains(compressed, m) {
			s.ranks[m], s.factors[m] = x.Shape[m], nil
			continue
		}
		t := task{k: k, m: m, axis: m, src: x.Data, srcShape: x.Shape, srcNorm2: s.normX2, pair: -1}
		if hooiNext && len(compressed) == 2 {
			t.pair = compressed[0]
			if t.pair == m {
				t.pair = compressed[1]
			}
		}
		tasks = append(tasks, t)
	}
	// factor sets the rank and factor of one mode from the Gram of its
	// unfolding of src.
	factor := func(b linalg.Backend, t task) error {
		if t.pair >= 0 && t.m != 0 {
			t.src, t.srcShape, _ = s.arrange(t.m, t.pair)
			t.axis = 0
		}
		in := t.srcShape[t.axis]
		g := make([]T, in*in)
		if err := modeGram(ctx, b, t.src, t.srcShape, t.axis, g); err != nil {
			return err
		}
		r := fixedRank(opts, t.k)
		var vecs []T
		var err error
		if r > 0 {
			vecs, _, err = topEigvecs(b, g, in, r)
		} else {
			// A rank rule needs the whole spectrum.
			var vals []float64
			if vecs, vals, err = leadingEigvecs(b, g, in, in); err == nil {
				r, err = s.chooseRank(opts.Rule, vals, t.srcNorm2, t.srcShape, t.axis)
			}
			if err == nil && r < in {
				for i := range in {
					copy(vecs[i*r:(i+1)*r], vecs[i*in:i*in+r])
				}
				vecs = vecs[:in*r]
			}
		}
		if err != nil {
			return err
		}
		s.ranks[t.m], s.factors[t.m] = r, &Matrix[T]{Rows: in, Cols: r, Data: vecs}
		if t.pair >= 0 && t.m == 0 {
			s.arrange(t.m, t.pair)
		}
		return nil
	}
	if !sequential {
		// Every Gram is of X itself, so the modes are independent: they
		// run side by side, each on its share of the budget. Each one's
		// eigensolver is mostly serial (the tridiagonal reduction), so
		// one mode per core beats two-thread calls one mode at a time.
		threads := max(1, min(len(tasks), s.b.Threads()))
		b := s.b.WithThreads(max(1, s.b.Threads()/threads))
		errs := make([]error, len(tasks))
		parallelFor(threads, len(tasks), func(lo, hi int) {
			for i := lo; i < hi; i++ {
				errs[i] = factor(b, tasks[i])
			}
		})
		for _, err := range errs {
			if err != nil {
				return nil, err
			}
		}
		if hooiNext {
			return nil, nil // run takes the start's error from the first sweep
		}
		return MultiModeProduct(s.b, x, s.factors, true), nil
	}
	for _, t := range tasks {
		t.src, t.srcShape, t.srcNorm2 = cur, shape, sumSq(cur)
		if err := factor(s.b, t); err != nil {
			return nil, err
		}
		next := slices.Clone(shape)
		next[t.m] = s.ranks[t.m]
		out := make([]T, sizeOf(next))
		ttm(s.b, cur, shape, t.m, s.factors[t.m], true, out)
		cur, shape = out, next
	}
	return &Dense[T]{Shape: shape, Data: cur}, nil
}

// chooseRank picks the rank of a mode from the eigenvalues vals of the
// Gram of the current (partly projected) tensor's unfolding along axis of
// shape (the mode's place in that tensor's axis order, which HOOI's start
// may have rearranged), whose squared norm is curNorm2, so that this mode
// discards at most ε²‖X‖²/N' (N' compressed modes), ε = rule.RelError or
// sqrt(1 − rule.Energy).
func (s *tuckerState[T]) chooseRank(rule *linalg.RankRule, vals []float64, curNorm2 float64, shape []int, axis int) (int, error) {
	eps := rule.RelError
	if rule.Energy > 0 {
		eps = math.Sqrt(1 - rule.Energy)
	}
	in := shape[axis]
	if eps == 0 {
		return in, nil
	}
	if curNorm2 == 0 {
		return 1, nil
	}
	budget := eps * eps * s.normX2 / float64(len(s.modes))
	sigma := make([]float64, len(vals))
	for i, v := range vals {
		sigma[i] = math.Sqrt(v)
	}
	rest := int64(sizeOf(shape) / in)
	r := linalg.RankRule{RelError: min(math.Sqrt(budget/curNorm2), 1-1e-12), Multiple: rule.Multiple}
	ch, err := r.Choose(sigma, curNorm2, in, func(k int) int64 { return int64(k) * (int64(in) + rest) }, int64(in)*rest)
	if err != nil {
		return 0, err
	}
	return ch.Rank, nil
}

// hooiSweep runs one HOOI sweep over the active modes (rank < size). It
// returns the core, unprojected on the other modes, as a function that
// computes it on the first call and must be called before the next sweep
// (it reads the sweep's last projection), and ‖core‖² when the
// eigensolver gave it (NaN otherwise).
//
// ‖core‖² = ‖Y ×ₙ Uₙᵀ‖² = trace(Uₙᵀ·Y₍ₙ₎Y₍ₙ₎ᵀ·Uₙ) for the last mode n
// and its projection Y is the sum of the eigenvalues Uₙ was chosen for, so
// the error of a sweep needs no core. Forming it (a TTM and a copy into
// mode order) took 5 of 140 ms of HOOI 256 → 64, 10 sweeps.
func (s *tuckerState[T]) hooiSweep(ctx context.Context, active []int) (core func() *Dense[T], norm2 float64, err error) {
	x := s.x
	for _, m := range s.modes {
		if s.ranks[m] == x.Shape[m] {
			s.factors[m] = nil // identity while iterating
		}
	}
	for idx, n := range active {
		data, shape, perm, err := s.projectAllBut(ctx, active, n)
		if err != nil {
			return nil, 0, err
		}
		axis := slices.Index(perm, n)
		if norm2, err = s.refine(ctx, data, shape, axis, n); err != nil {
			return nil, 0, err
		}
		if idx == len(active)-1 {
			u := s.factors[n]
			var c *Dense[T]
			core = func() *Dense[T] {
				if c == nil {
					next := slices.Clone(shape)
					next[axis] = s.ranks[n]
					out := make([]T, sizeOf(next))
					ttm(s.b, data, shape, axis, u, true, out)
					c = permuteToModeOrder(out, next, perm)
				}
				return c
			}
		}
	}
	return core, norm2, nil
}

// projectAllBut returns Y = X ×_{m∈active, m≠n} U_mᵀ with its axes in the
// order perm (axis a holds mode perm[a]). The first product is one GEMM
// U_m₁ᵀ·X₍m₁₎ on the row-major view of X with mode m₁ first, m₁ the mode
// that shrinks X most; the others follow by ttm on the smaller result.
func (s *tuckerState[T]) projectAllBut(ctx context.Context, active []int, n int) ([]T, []int, []int, error) {
	x := s.x
	var others []int
	for _, m := range active {
		if m != n {
			others = append(others, m)
		}
	}
	if len(others) == 0 {
		perm := make([]int, x.Order())
		for i := range perm {
			perm[i] = i
		}
		return x.Data, x.Shape, perm, nil
	}
	if len(others) == 1 {
		return s.projectLast(ctx, n, others[0])
	}
	slices.SortStableFunc(others, func(a, b int) int {
		fa := float64(s.ranks[a]) / float64(x.Shape[a])
		fb := float64(s.ranks[b]) / float64(x.Shape[b])
		switch {
		case fa < fb:
			return -1
		case fa > fb:
			return 1
		}
		return 0
	})
	m1 := others[0]
	perm := []int{m1}
	shape := []int{s.ranks[m1]}
	for m, d := range x.Shape {
		if m != m1 {
			perm = append(perm, m)
			shape = append(shape, d)
		}
	}
	xp := s.permuted(m1)
	i1, rest, r1 := x.Shape[m1], x.Len()/x.Shape[m1], s.ranks[m1]
	y := make([]T, r1*rest)
	if err := projectFirst(ctx, s.b, xp, i1, rest, s.factors[m1], y); err != nil {
		return nil, nil, nil, err
	}
	for _, m := range others[1:] {
		if err := ctx.Err(); err != nil {
			return nil, nil, nil, err
		}
		axis := slices.Index(perm, m)
		next := slices.Clone(shape)
		next[axis] = s.ranks[m]
		out := make([]T, sizeOf(next))
		ttm(s.b, y, shape, axis, s.factors[m], true, out)
		y, shape = out, next
	}
	return y, shape, perm, nil
}

// projectLast returns Y = X ×_m U_mᵀ with its axes in the order perm =
// (n, the other modes in order, m), the case of two compressed modes (every
// other mode is kept whole). X is copied once into that axis order
// (arranged), so Y is one GEMM, X' (P × I_m) · U_m, and Y's mode-n
// unfolding is a row-major view of it: its Gram is one SYRK, with no copy.
func (s *tuckerState[T]) projectLast(ctx context.Context, n, m int) ([]T, []int, []int, error) {
	x := s.x
	xp, shape, perm := s.arrange(n, m)
	shape = slices.Clone(shape)
	im, rm := x.Shape[m], s.ranks[m]
	rows := x.Len() / im
	if cap(s.projected) < rows*rm {
		s.projected = make([]T, rows*rm)
	}
	y := s.projected[:rows*rm]
	// Single-threaded products on row ranges run by goroutines: see
	// splitThreads.
	rb := max(1, min(rows, 4*blockElems/max(rm, im)))
	threads, one := splitThreads(s.b, float64(rows)*float64(rm)*float64(im))
	parallelFor(threads, rows, func(lo, hi int) {
		for r0 := lo; r0 < hi && ctx.Err() == nil; r0 += rb {
			r1 := min(hi, r0+rb)
			gemm(one, blas.NoTrans, blas.NoTrans, r1-r0, rm, im, 1, xp[r0*im:], im, s.factors[m].Data, rm, 0, y[r0*rm:], rm)
		}
	})
	if err := ctx.Err(); err != nil {
		return nil, nil, nil, err
	}
	shape[len(shape)-1] = rm
	return y, shape, perm, nil
}

// arrange returns x's data with its axes in the order perm = (n, the other
// modes in order, m), and its shape, copied once and cached.
func (s *tuckerState[T]) arrange(n, m int) (data []T, shape, perm []int) {
	x := s.x
	perm = []int{n}
	for k := range x.Order() {
		if k != n && k != m {
			perm = append(perm, k)
		}
	}
	perm = append(perm, m)
	shape = make([]int, len(perm))
	for a, k := range perm {
		shape[a] = x.Shape[k]
	}
	key := [2]int{n, m}
	s.arrangedMu.Lock()
	data, ok := s.arranged[key]
	s.arrangedMu.Unlock()
	if !ok {
		data = permuteAxes(x, perm)
		s.arrangedMu.Lock()
		if s.arranged == nil {
			s.arranged = map[[2]int][]T{}
		}
		s.arranged[key] = data
		s.arrangedMu.Unlock()
	}
	return data, shape, perm
}

// permuteAxes returns x's data with its axes in the order perm: axis a of
// the result is mode perm[a] of x.
func permuteAxes[T Float](x *Dense[T], perm []int) []T {
	nm := x.Order()
	stride := make([]int, nm) // of x, per mode
	st := 1
	for k := nm - 1; k >= 0; k-- {
		stride[k] = st
		st *= x.Shape[k]
	}
	shape := make([]int, nm)
	inStride := make([]int, nm) // per axis of the result
	for a, k := range perm {
		shape[a], inStride[a] = x.Shape[k], stride[k]
	}
	out := make([]T, x.Len())
	last := nm - 1
	inner, step := shape[last], inStride[last]
	idx := make([]int, nm)
	off := 0
	for o := 0; o < len(out); o += inner {
		src := off
		for j := range inner {
			out[o+j] = x.Data[src]
			src += step
		}
		for k := last - 1; k >= 0; k-- {
			idx[k]++
			off += inStride[k]
			if idx[k] < shape[k] {
				break
			}
			off -= idx[k] * inStride[k]
			idx[k] = 0
		}
	}
	return out
}

// permuted returns x's data with mode m moved first (the others keeping
// their order), copied once and cached; mode 0 is x itself.
func (s *tuckerState[T]) permuted(m int) []T {
	if m == 0 {
		return s.x.Data
	}
	if d, ok := s.perms[m]; ok {
		return d
	}
	p, in, q := splitAt(s.x.Shape, m)
	out := make([]T, s.x.Len())
	for pi := range p {
		for i := range in {
			copy(out[(i*p+pi)*q:(i*p+pi+1)*q], s.x.Data[(pi*in+i)*q:(pi*in+i+1)*q])
		}
	}
	s.perms[m] = out
	return out
}

// eig returns the r leading eigenvectors of the Gram of the given axis's
// unfolding of data.
func (s *tuckerState[T]) eig(ctx context.Context, data []T, shape []int, axis, r int) (*Matrix[T], error) {
	in := shape[axis]
	g := s.gramBuf(in)
	if err := modeGram(ctx, s.b, data, shape, axis, g); err != nil {
		return nil, err
	}
	vecs, _, err := topEigvecs(s.b, g, in, r)
	if err != nil {
		return nil, err
	}
	return &Matrix[T]{Rows: in, Cols: r, Data: vecs}, nil
}

// gramBuf returns the reused buffer for an in×in Gram matrix.
func (s *tuckerState[T]) gramBuf(in int) []T {
	if cap(s.gram) < in*in {
		s.gram = make([]T, in*in)
	}
	return s.gram[:in*in]
}

// startError is the relative error of the starting factors start (HOSVD's),
// from s.startNorm2, or near round-off from their core formed explicitly.
func (s *tuckerState[T]) startError(ctx context.Context, start []*Matrix[T]) (float64, error) {
	cur := s.factors
	s.factors = start
	defer func() { s.factors = cur }()
	var core *Dense[T]
	return s.relError(ctx, s.startNorm2, func() *Dense[T] {
		if core == nil {
			core = MultiModeProduct(s.b, s.x, start, true)
		}
		return core
	})
}

// quadTrace returns trace(UᵀGU) for the n×n symmetric g (upper triangle,
// stride n) and the n×r u: Σᵢⱼ Gᵢⱼ·(UUᵀ)ᵢⱼ over the upper triangle, the
// off-diagonal terms twice, in float64.
func quadTrace[T Float](b linalg.Backend, g []T, n int, u *Matrix[T]) float64 {
	p := make([]T, n*n)
	syrk(b, blas.NoTrans, n, u.Cols, 1, u.Data, u.Cols, 0, p, n)
	var diag, off float64
	for i := range n {
		diag += float64(g[i*n+i]) * float64(p[i*n+i])
		for j := i + 1; j < n; j++ {
			off += float64(g[i*n+j]) * float64(p[i*n+j])
		}
	}
	return diag + 2*off
}

// HOOI's inner eigensolver, when the subspace iteration is the cheaper
// one: a basis oversampled by max(8, r/2) columns (capped at I_n),
// warm-started from the previous sweep, refined until a step changes the
// discarded energy by less than the fraction refineTol, at most
// refineMaxSteps steps per mode and sweep.
const (
	refineTol      = 1e-6
	refineMaxSteps = 30
)

func oversampled(r, n int) int { return min(n, r+max(8, r/2)) }

// useSubspace reports whether refineMaxSteps subspace-iteration steps on an
// n×n Gram with k columns cost less than a full eigendecomposition (about
// 10·n³ flops with vectors): true only for ranks well below n.
func useSubspace(n, k int) bool {
	step := 2*float64(n)*float64(n)*float64(k) + 4*float64(n)*float64(k)*float64(k)
	return step*refineMaxSteps < 10*float64(n)*float64(n)*float64(n)
}

// refine replaces the factor of mode (at the given axis of data) by the
// leading eigenvectors of the Gram of that unfolding: by the partial
// eigensolver, or by subspace iteration from the previous sweep's basis
// when that costs less (useSubspace). The partial eigensolver also returns
// the sum of the eigenvalues kept, ‖data ×_axis Uᵀ‖² (NaN otherwise).
func (s *tuckerState[T]) refine(ctx context.Context, data []T, shape []int, axis, mode int) (float64, error) {
	in, r := shape[axis], s.ranks[mode]
	k := oversampled(r, in)
	g := s.gramBuf(in)
	if err := modeGram(ctx, s.b, data, shape, axis, g); err != nil {
		return 0, err
	}
	if s.startPending {
		// One thread: a threaded call would leave OpenBLAS's workers
		// spinning beside the eigensolvers (splitThreads).
		s.startNorm2 = quadTrace(s.b.WithThreads(1), g, in, s.factors[mode])
		s.startPending = false
	}
	if !useSubspace(in, k) {
		vecs, sum, err := topEigvecs(s.b, g, in, r)
		if err != nil {
			return 0, err
		}
		s.factors[mode] = &Matrix[T]{Rows: in, Cols: r, Data: vecs}
		return sum, nil
	}
	g64 := toFloat64(make([]float64, in*in), g)
	q, ok := s.bases[mode]
	if !ok {
		// First use: the current factor plus seeded random columns.
		q = randomOrthonormal(s.b, in, k, newRand(uint64(mode)))
		for i := range in {
			for c := range r {
				q[i*k+c] = float64(s.factors[mode].Data[i*r+c])
			}
		}
		tau := make([]float64, k)
		s.b.Dgeqrf(in, k, q, k, tau)
		s.b.Dorgqr(in, k, k, q, k, tau)
		s.bases[mode] = q
	}
	s.refineSteps += refineSubspace(s.b, g64, in, k, q, refineMaxSteps, refineTol)
	u := NewMatrix[T](in, r)
	for i := range in {
		for c := range r {
			u.Data[i*r+c] = T(q[i*k+c])
		}
	}
	s.factors[mode] = u
	return math.NaN(), nil
}

// relError is ‖X − X̂‖/‖X‖ for the current factors and the core G, whose
// ‖G‖² is coreNorm2: from ‖X‖² − ‖G‖², or, near round-off, from an
// explicit reconstruction with core().
func (s *tuckerState[T]) relError(ctx context.Context, coreNorm2 float64, core func() *Dense[T]) (float64, error) {
	if s.normX2 == 0 {
		return 0, nil
	}
	rel := math.Sqrt(max(0, s.normX2-coreNorm2) / s.normX2)
	if rel >= 10*math.Sqrt(linalg.Roundoff[T]()) {
		return rel, nil
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	hat := MultiModeProduct(s.b, core(), s.factors, false)
	var sum float64
	for i, v := range s.x.Data {
		d := float64(v) - float64(hat.Data[i])
		sum += d * d
	}
	return math.Sqrt(sum / s.normX2), nil
}

// permuteToModeOrder copies data, whose axis a holds mode perm[a] with size
// shape[a], into the tensor with its modes in increasing order.
func permuteToModeOrder[T Float](data []T, shape, perm []int) *Dense[T] {
	nm := len(shape)
	outShape := make([]int, nm)
	inStride := make([]int, nm) // per mode
	stride := 1
	for a := nm - 1; a >= 0; a-- {
		outShape[perm[a]] = shape[a]
		inStride[perm[a]] = stride
		stride *= shape[a]
	}
	out := NewDense[T](outShape...)
	idx := make([]int, nm)
	off := 0
	for o := range out.Data {
		out.Data[o] = data[off]
		for k := nm - 1; k >= 0; k-- {
			idx[k]++
			off += inStride[k]
			if idx[k] < outShape[k] {
				break
			}
			off -= idx[k] * inStride[k]
			idx[k] = 0
		}
	}
	return out
}

// randomOrthonormal returns an n×r matrix (r ≤ n) with orthonormal columns:
// the Q factor of a seeded Gaussian matrix.
func randomOrthonormal(b linalg.Backend, n, r int, rng interface{ NormFloat64() float64 }) []float64 {
	a := make([]float64, n*r)
	for i := range a {
		a[i] = rng.NormFloat64()
	}
	tau := make([]float64, r)
	b.Dgeqrf(n, r, a, r, tau)
	b.Dorgqr(n, r, r, a, r, tau)
	return a
}
