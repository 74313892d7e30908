package compress

import (
	"container/heap"
	"errors"
	"fmt"
	"math"

	"github.com/lowrank/lowrank"
	"github.com/lowrank/lowrank/internal/linalg"
)

// Allocation is the rank chosen for one layer.
type Allocation struct {
	Name   string `json:"name"`
	Method string `json:"method"`
	// Ranks are [r] for svd, [r_out, r_in] for tucker2 and [R] for cp;
	// empty when the layer is kept as it is (no rank saves parameters, or
	// the budget did not need it).
	Ranks []int `json:"ranks,omitempty"`
	// Params is the parameter count after factoring (the original count
	// when kept).
	Params int64 `json:"params"`
	// PredictedRelError is ‖W − Ŵ‖_F/‖W‖_F as priced from the spectra:
	// exact for svd (Eckart–Young), the HOSVD bound for tucker2 (HOOI only
	// lowers it); absent for cp.
	PredictedRelError *float64 `json:"predicted_rel_error,omitempty"`
	// By says what chose the rank: "rule", "layer_rule" (a Policy.Layers
	// entry), "auto" or "budget".
	By   string `json:"by"`
	Note string `json:"note,omitempty"`
}

// Kept reports whether the layer stays unfactored.
func (a *Allocation) Kept() bool { return len(a.Ranks) == 0 }

// Allocate chooses every layer's ranks from its analysis (analyses[i] is of
// plan.Layers[i]).
//
// Per-layer rules. For svd, linalg.RankRule.Choose on σ with params(r) =
// r·(rows + cols), a rank above min(rows, cols) taken as min(rows, cols). For tucker2 with spectra σ⁽⁰⁾ (out) and σ⁽¹⁾ (in):
// rank k sets r_out = min(k, out), r_in = min(k, in); rel_error ε (or
// energy e, taken as ε = sqrt(1 − e)) gives each mode ε/√2, so that by the
// HOSVD bound ‖W − Ŵ‖² ≤ Σ_{i≥r_out} σ⁽⁰⁾ᵢ² + Σ_{i≥r_in} σ⁽¹⁾ᵢ² ≤ ε²‖W‖²
// (as tensorops.Tucker does); compression c keeps r_out/out ≈ r_in/in and
// takes the largest pair with params ≤ c·original; auto takes each mode's
// EVBMF rank (Kim et al. 2016 chose Tucker-2 ranks this way). For cp, rank
// or compression (largest R with R·(out + in + kh + kw) ≤ c·original).
// Every rank is then rounded up to a multiple of Policy.RankMultiple
// (capped at the mode size), and a layer whose factors would not be
// smaller than its weight is kept.
//
// Budget. The layers with a Policy.Layers rule take it; cp layers without
// one, whose error is not known before CP runs, take compression = budget,
// their proportional share. The remaining layers share what is left of
// budget × (selected parameters) so as to minimise Σ_layers (relative
// error)², the sum of squared relative errors (relative, so that a layer's
// scale does not decide its share). Each layer's error-versus-parameters
// curve is priced exactly from its spectra: for svd one point per allowed
// rank; for tucker2 a path from full ranks down that lowers, at each step,
// the mode whose decrement adds the least error per parameter saved. Each
// curve is replaced by its lower convex hull, and hull segments are taken
// across layers in order of increasing error per parameter saved until the
// budget is met; this is the exact solution of the Lagrangian relaxation
// min Σ err² + λ·params at every hull vertex, where plain greedy on the raw
// curves can stop at a non-convex kink (a rank whose next step is cheap but
// whose first is expensive). The last layer moved then takes, among the
// ranks between its last two hull vertices, the largest that still meets
// the budget, so the total lands within one rank step of the target.
//
// A budget that cannot be met even at rank 1 everywhere is an EINVALID
// error on "policy.budget".
//
// References:
//   - Y.-D. Kim, E. Park, S. Yoo, T. Choi, L. Yang and D. Shin, Compression
//     of Deep Convolutional Neural Networks for Fast and Low Power Mobile
//     Applications, ICLR 2016.
//   - S. Nakajima, R. Tomioka, M. Sugiyama and S. D. Babacan, Global
//     analytic solution of fully-observed variational Bayesian matrix
//     factorization, JMLR 14, 1–37, 2013.
//   - H. Everett, Generalized Lagrange multiplier method for solving
//     problems of optimum allocation of resources, Operations Research
//     11(3), 1963 (why hull vertices are optimal).
func Allocate(plan *Plan, analyses []*Analysis) ([]Allocation, error) {
	if len(analyses) != len(plan.Layers) {
		panic("compress: Allocate: one analysis per layer")
	}
	p := plan.Policy
	mult := max(1, p.RankMultiple)
	allocs := make([]Allocation, len(plan.Layers))
	var priced []int
	var pinnedParams int64
	for i := range plan.Layers {
		l, a := &plan.Layers[i], analyses[i]
		if a.Name != l.Name {
			panic("compress: Allocate: analyses out of order")
		}
		rule, by := p.ruleFor(l.Name), "rule"
		if rule != p.Rule {
			by = "layer_rule"
		}
		if rule == nil && l.Method == MethodCP {
			rule, by = &Rule{Compression: p.Budget}, "budget"
		}
		if rule == nil {
			priced = append(priced, i)
			continue
		}
		if rule.Auto {
			by = "auto"
		}
		al, err := allocateRule(l, a, *rule, mult)
		if err != nil {
			return nil, err
		}
		al.By = by
		allocs[i] = al
		pinnedParams += al.Params
	}
	if len(priced) == 0 {
		return allocs, nil
	}
	target := int64(math.Floor(p.Budget*float64(plan.ParamsSelected))) - pinnedParams
	if err := allocateBudget(plan, analyses, priced, target, mult, allocs); err != nil {
		return nil, err
	}
	return allocs, nil
}

// allocateRule applies one rule to one layer.
func allocateRule(l *Layer, a *Analysis, r Rule, mult int) (Allocation, error) {
	al := Allocation{Name: l.Name, Method: l.Method}
	var ranks []int
	switch l.Method {
	case MethodSVD:
		rows, cols := l.Matrix()
		if r.Auto {
			k, err := evbmfRank(a.Spectra[0], rows, cols)
			if err != nil {
				return al, err
			}
			ranks = []int{roundUp(max(1, k), mult, min(rows, cols))}
			break
		}
		paramsOf := func(k int) int64 { return svdParams(rows, cols, k) }
		// A rank above the matrix's is capped at it, as for tucker2, so one
		// rule can serve layers of every size (the layer is then kept).
		r.Rank = min(r.Rank, min(rows, cols))
		ch, err := r.rankRule(mult).Choose(a.Spectra[0], a.NormSq, min(rows, cols), paramsOf, l.Params)
		if err != nil {
			if r.Compression > 0 {
				return keep(al, l, "compression: "+err.Error()), nil
			}
			return al, ruleError(l, err)
		}
		ranks = []int{ch.Rank}
	case MethodTucker2:
		rs, err := tucker2Ranks(l, a, r, mult)
		if err != nil {
			return al, err
		}
		if rs == nil {
			return keep(al, l, fmt.Sprintf("compression %g is below what ranks (1, 1) need", r.Compression)), nil
		}
		ranks = rs
	case MethodCP:
		R := r.Rank
		if r.Compression > 0 {
			R = int(r.Compression * float64(l.Params) / float64(cpParams(l, 1)))
			if R < 1 {
				return keep(al, l, fmt.Sprintf("compression %g is below what rank 1 needs", r.Compression)), nil
			}
		}
		ranks = []int{roundUp(R, mult, math.MaxInt)}
	}
	al.Ranks = ranks
	al.Params = factorParams(l, ranks)
	if al.Params >= l.Params {
		return keep(al, l, fmt.Sprintf("ranks %v need %d parameters, not fewer than the %d of the weight", ranks, al.Params, l.Params)), nil
	}
	if e, ok := predictedError(l, a, ranks); ok {
		al.PredictedRelError = &e
	}
	return al, nil
}

// keep marks al as kept unfactored, with the reason.
func keep(al Allocation, l *Layer, why string) Allocation {
	al.Ranks, al.Params, al.Note = nil, l.Params, why
	return al
}

// ruleError names the layer in a rank rule's error.
func ruleError(l *Layer, err error) error {
	var e *lowrank.Error
	if errors.As(err, &e) {
		return lowrank.Errorf(e.Code, "policy.rule."+e.Field, "layer %q: %s", l.Name, e.Message)
	}
	return err
}

// tucker2Ranks applies a per-layer rule to a tucker2 layer; nil ranks mean
// compression cannot be met.
func tucker2Ranks(l *Layer, a *Analysis, r Rule, mult int) ([]int, error) {
	out, in := l.Shape[0], l.Shape[1]
	var ro, ri int
	switch {
	case r.Auto:
		k := l.Shape[2] * l.Shape[3]
		var err error
		if ro, err = evbmfRank(a.Spectra[0], out, in*k); err != nil {
			return nil, err
		}
		if ri, err = evbmfRank(a.Spectra[1], in, out*k); err != nil {
			return nil, err
		}
		ro, ri = max(ro, 1), max(ri, 1)
	case r.Rank > 0:
		ro, ri = min(r.Rank, out), min(r.Rank, in)
	case r.Compression > 0:
		for c := 1; c <= out; c++ {
			ci := max(1, min(in, int(math.Round(float64(c)*float64(in)/float64(out)))))
			if float64(tucker2Params(l, c, ci)) > r.Compression*float64(l.Params) {
				break
			}
			ro, ri = c, ci
		}
		if ro == 0 {
			return nil, nil
		}
	default:
		eps := r.RelError
		if r.Energy > 0 {
			eps = math.Sqrt(max(0, 1-r.Energy))
		}
		ro, ri = out, in
		if eps > 0 {
			rule := linalg.RankRule{RelError: eps / math.Sqrt2}
			unit := func(int) int64 { return 0 }
			c0, err := rule.Choose(a.Spectra[0], a.NormSq, out, unit, 0)
			if err != nil {
				return nil, ruleError(l, err)
			}
			c1, err := rule.Choose(a.Spectra[1], a.NormSq, in, unit, 0)
			if err != nil {
				return nil, ruleError(l, err)
			}
			ro, ri = c0.Rank, c1.Rank
		}
	}
	return []int{roundUp(ro, mult, out), roundUp(ri, mult, in)}, nil
}

// roundUp rounds k up to a multiple of mult, capped at limit.
func roundUp(k, mult, limit int) int {
	if mult > 1 && k%mult != 0 {
		k = (k/mult + 1) * mult
	}
	return min(k, limit)
}

func svdParams(rows, cols, k int) int64 { return int64(k) * int64(rows+cols) }

// tucker2Params counts a Tucker-2 layer's parameters. A mode kept at full
// rank has no factor of its own: the core absorbs it (see Factor).
func tucker2Params(l *Layer, ro, ri int) int64 {
	out, in := l.Shape[0], l.Shape[1]
	n := int64(ro) * int64(ri) * int64(l.Shape[2]*l.Shape[3])
	if ro < out {
		n += int64(ro) * int64(out)
	}
	if ri < in {
		n += int64(ri) * int64(in)
	}
	return n
}

func cpParams(l *Layer, r int) int64 {
	return int64(r) * int64(l.Shape[0]+l.Shape[1]+l.Shape[2]+l.Shape[3])
}

// factorParams counts the factors' parameters at ranks.
func factorParams(l *Layer, ranks []int) int64 {
	switch l.Method {
	case MethodSVD:
		rows, cols := l.Matrix()
		return svdParams(rows, cols, ranks[0])
	case MethodTucker2:
		return tucker2Params(l, ranks[0], ranks[1])
	default:
		return cpParams(l, ranks[0])
	}
}

// tailSq returns Σ_{i≥r} σᵢ² as normSq − Σ_{i<r} σᵢ², the way
// linalg.RankRule counts energy not in the spectrum as discarded.
func tailSq(s []float64, normSq float64, r int) float64 {
	kept := 0.0
	for _, v := range s[:min(r, len(s))] {
		kept += v * v
	}
	return max(0, normSq-kept)
}

// predictedError prices ranks from the spectra (false for cp).
func predictedError(l *Layer, a *Analysis, ranks []int) (float64, bool) {
	if a.NormSq == 0 {
		return 0, l.Method != MethodCP
	}
	switch l.Method {
	case MethodSVD:
		return math.Sqrt(tailSq(a.Spectra[0], a.NormSq, ranks[0]) / a.NormSq), true
	case MethodTucker2:
		t := tailSq(a.Spectra[0], a.NormSq, ranks[0]) + tailSq(a.Spectra[1], a.NormSq, ranks[1])
		return math.Sqrt(min(1, t/a.NormSq)), true
	}
	return 0, false
}

// point is one choice on a layer's error curve: ranks (nil: kept), the
// parameters saved against the weight, and the squared relative error.
type point struct {
	ranks []int
	saved int64
	errSq float64
}

// allowedBelow returns the next allowed rank below r (a multiple of mult,
// at least 1), or 0 when there is none.
func allowedBelow(r, mult int) int {
	if mult <= 1 {
		return r - 1
	}
	k := (r - 1) / mult * mult
	if k < mult {
		return 0
	}
	return k
}

// curve lists a layer's choices by increasing parameters saved: kept
// first, then every allowed rank whose factors are smaller than the weight.
func curve(l *Layer, a *Analysis, mult int) []point {
	pts := []point{{}}
	inv := 0.0
	if a.NormSq > 0 {
		inv = 1 / a.NormSq
	}
	add := func(ranks []int, tail float64) {
		if s := l.Params - factorParams(l, ranks); s > 0 {
			pts = append(pts, point{ranks: ranks, saved: s, errSq: min(1, tail*inv)})
		}
	}
	switch l.Method {
	case MethodSVD:
		rows, cols := l.Matrix()
		p := min(rows, cols)
		s := a.Spectra[0]
		// Walk ranks down from p, keeping the running tail.
		for r := p; r >= 1; {
			add([]int{r}, tailSq(s, a.NormSq, r))
			if r == p && mult > 1 && p%mult != 0 {
				r = p / mult * mult
				if r == 0 {
					break
				}
				continue
			}
			r = allowedBelow(r, mult)
		}
	case MethodTucker2:
		s0, s1 := a.Spectra[0], a.Spectra[1]
		ro, ri := l.Shape[0], l.Shape[1]
		down := func(r int, full int) int {
			if r == full && mult > 1 && full%mult != 0 {
				return full / mult * mult
			}
			return allowedBelow(r, mult)
		}
		for {
			add([]int{ro, ri}, tailSq(s0, a.NormSq, ro)+tailSq(s1, a.NormSq, ri))
			no, ni := down(ro, l.Shape[0]), down(ri, l.Shape[1])
			cur := tucker2Params(l, ro, ri)
			best, bestRatio := 0, math.Inf(1)
			if no > 0 {
				d := tailSq(s0, a.NormSq, no) - tailSq(s0, a.NormSq, ro)
				if q := d / float64(cur-tucker2Params(l, no, ri)); q < bestRatio {
					best, bestRatio = 1, q
				}
			}
			if ni > 0 {
				d := tailSq(s1, a.NormSq, ni) - tailSq(s1, a.NormSq, ri)
				if q := d / float64(cur-tucker2Params(l, ro, ni)); q < bestRatio {
					best = 2
				}
			}
			switch best {
			case 0:
				return pts
			case 1:
				ro = no
			case 2:
				ri = ni
			}
		}
	}
	// Ranks were walked down, so saved grows, apart from rank_multiple
	// making no difference at the top; keep it strictly increasing.
	out := pts[:1]
	for _, pt := range pts[1:] {
		if pt.saved > out[len(out)-1].saved {
			out = append(out, pt)
		}
	}
	return out
}

// lowerHull returns the indices of the lower convex hull of pts (saved
// increasing) in the (saved, errSq) plane, from pts[0] on.
func lowerHull(pts []point) []int {
	h := []int{0}
	for i := 1; i < len(pts); i++ {
		for len(h) >= 2 {
			a, b := pts[h[len(h)-2]], pts[h[len(h)-1]]
			cross := float64(b.saved-a.saved)*(pts[i].errSq-a.errSq) - (b.errSq-a.errSq)*float64(pts[i].saved-a.saved)
			if cross > 0 {
				break
			}
			h = h[:len(h)-1]
		}
		h = append(h, i)
	}
	return h
}

// hullStep is a layer's next hull segment, keyed by its slope.
type hullStep struct {
	layer int // index into the budget's layers
	slope float64
}

type stepHeap []hullStep

func (h stepHeap) Len() int { return len(h) }
func (h stepHeap) Less(i, j int) bool {
	if h[i].slope != h[j].slope {
		return h[i].slope < h[j].slope
	}
	return h[i].layer < h[j].layer
}
func (h stepHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *stepHeap) Push(x any)   { *h = append(*h, x.(hullStep)) }
func (h *stepHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// allocateBudget fills allocs[i] for the priced layers so that their
// parameters total at most target (see Allocate).
func allocateBudget(plan *Plan, analyses []*Analysis, priced []int, target int64, mult int, allocs []Allocation) error {
	curves := make([][]point, len(priced))
	hulls := make([][]int, len(priced))
	pos := make([]int, len(priced))
	choice := make([]int, len(priced)) // index into curves[k]
	var orig int64
	for k, i := range priced {
		curves[k] = curve(&plan.Layers[i], analyses[i], mult)
		hulls[k] = lowerHull(curves[k])
		orig += plan.Layers[i].Params
	}
	need := orig - target
	slope := func(k int) float64 {
		a, b := curves[k][hulls[k][pos[k]]], curves[k][hulls[k][pos[k]+1]]
		return (b.errSq - a.errSq) / float64(b.saved-a.saved)
	}
	h := &stepHeap{}
	for k := range priced {
		if len(hulls[k]) > 1 {
			*h = append(*h, hullStep{layer: k, slope: slope(k)})
		}
	}
	heap.Init(h)
	var saved int64
	for saved < need {
		if h.Len() == 0 {
			return lowrank.Errorf(lowrank.EINVALID, "policy.budget",
				"%g cannot be met: at their smallest ranks the layers the budget prices keep %d parameters, the budget leaves them %d",
				plan.Policy.Budget, orig-saved, target)
		}
		st := heap.Pop(h).(hullStep)
		k := st.layer
		from := hulls[k][pos[k]]
		pos[k]++
		to := hulls[k][pos[k]]
		saved += curves[k][to].saved - curves[k][from].saved
		choice[k] = to
		if saved >= need {
			// Back off to the first point past the previous vertex that
			// still meets the budget: the least error that does.
			for j := from + 1; j < to; j++ {
				if saved-(curves[k][to].saved-curves[k][j].saved) >= need {
					saved -= curves[k][to].saved - curves[k][j].saved
					choice[k] = j
					break
				}
			}
			break
		}
		if pos[k]+1 < len(hulls[k]) {
			heap.Push(h, hullStep{layer: k, slope: slope(k)})
		}
	}
	for k, i := range priced {
		l := &plan.Layers[i]
		pt := curves[k][choice[k]]
		al := Allocation{Name: l.Name, Method: l.Method, By: "budget", Ranks: pt.ranks, Params: l.Params - pt.saved}
		if pt.ranks == nil {
			al.Note = "the budget was met without factoring this layer"
		} else {
			e := math.Sqrt(pt.errSq)
			al.PredictedRelError = &e
		}
		allocs[i] = al
	}
	return nil
}
