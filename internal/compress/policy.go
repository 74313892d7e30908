package compress

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"strings"

	"github.com/lowrank/lowrank"
	"github.com/lowrank/lowrank/internal/linalg"
)

// Methods a layer is factored by.
const (
	MethodSVD     = "svd"     // a matrix, or a 1×1 conv read as one
	MethodTucker2 = "tucker2" // a k×k conv: partial Tucker on the two channel modes
	MethodCP      = "cp"      // a k×k conv: CP of all four modes
)

// Layouts of a weight, as the framework that owns it stores it.
const (
	LayoutLinear   = "linear"    // PyTorch Linear: (out, in), y = W·x
	LayoutHFConv1D = "hf_conv1d" // Hugging Face Conv1D (GPT-2): (in, out), y = x·W
	LayoutConv2D   = "conv2d"    // PyTorch Conv2d: (out, in, kh, kw), groups = 1
)

// Defaults of Policy's zero values.
const (
	// DefaultMinElements: 2-D weights smaller than a 256×256 matrix are left
	// alone; factoring them saves little and costs a kernel launch each.
	DefaultMinElements = 256 * 256
	// DefaultTuckerIterations: two HOOI sweeps after the HOSVD bring most of
	// the gain HOOI gives on conv filters; more rarely change the error's
	// second digit.
	DefaultTuckerIterations = 2
	// DefaultCPIterations: ALS sweeps for CP, stopped earlier by cpTol.
	DefaultCPIterations = 50
	cpTol               = 1e-5
	// maxIterations bounds both iteration counts.
	maxIterations = 1000
)

// DefaultExclude are the patterns excluded when Policy.Exclude is nil:
// embeddings and the output head, which are lookup tables or tied to one,
// not operators whose low rank helps.
var DefaultExclude = []string{"*embed*", "*wte.*", "*wpe.*", "*lm_head*"}

// Policy says which tensors of a checkpoint to factor, how, and to what
// rank. It is read from JSON with snake_case fields; unknown fields are
// rejected (ParsePolicy). Exactly one of Rule and Budget is set; Layers may
// override the rank of single layers under either.
type Policy struct {
	// Include lists glob patterns (path.Match syntax; '*' also matches '.')
	// on tensor names. Empty: the default selection, every 2-D tensor whose
	// name ends in "weight" with at least MinElements elements and every
	// 4-D one whose name ends in "weight". When given, every 2-D and 4-D
	// tensor matching a pattern (and MinElements) is selected.
	Include []string `json:"include,omitempty"`
	// Exclude lists patterns removed from the selection; nil means
	// DefaultExclude, an empty list excludes nothing.
	Exclude []string `json:"exclude"`
	// MinElements is the size below which 2-D tensors are not selected;
	// 0 means DefaultMinElements.
	MinElements int64 `json:"min_elements,omitempty"`
	// Layouts gives layout hints (and conv geometry) by name pattern; the
	// first matching hint wins. Without one, a 2-D tensor is a Linear
	// weight and a 4-D one a Conv2d weight.
	Layouts []LayoutHint `json:"layouts,omitempty"`
	// ConvMethod is "tucker2" (default) or "cp" for k×k convolutions; 1×1
	// convolutions and matrices always use "svd".
	ConvMethod string `json:"conv_method,omitempty"`
	// Rule chooses every layer's rank from its own spectrum.
	Rule *Rule `json:"rule,omitempty"`
	// Budget keeps this fraction of the selected layers' parameters, in
	// (0, 1), spread over the layers by least error added per parameter
	// saved (see Allocate).
	Budget float64 `json:"budget,omitempty"`
	// Layers overrides the rule (or the budget) for the layers whose name
	// matches; the first matching entry wins.
	Layers []LayerRule `json:"layers,omitempty"`
	// RankMultiple rounds every rank up to a multiple of it (capped at the
	// largest possible rank), for hardware-friendly shapes; 0 or 1: none.
	RankMultiple int `json:"rank_multiple,omitempty"`
	// InputSize is the spatial input size [H, W] of the convolutions, for
	// the multiply-accumulate counts of the report; empty: conv MACs are
	// not counted (hints may give a size per layer).
	InputSize []int `json:"input_size,omitempty"`
	// TuckerIterations is the number of HOOI sweeps after the HOSVD;
	// 0 means DefaultTuckerIterations, negative means none.
	TuckerIterations int `json:"tucker_iterations,omitempty"`
	// CPIterations is the number of ALS sweeps; 0 means DefaultCPIterations.
	CPIterations int `json:"cp_iterations,omitempty"`
	// Seed fixes the random choices of the randomized SVD, Tucker and CP.
	Seed uint64 `json:"seed,omitempty"`
}

// Rule chooses a layer's rank. Exactly one field is set. Rank, Energy,
// RelError and Compression mean what they mean in linalg.RankRule, applied
// to the layer's spectrum (for Tucker-2, see Allocate); Auto takes the rank
// empirical variational Bayesian matrix factorisation (EVBMF) finds.
type Rule struct {
	Rank        int     `json:"rank,omitempty"`
	Energy      float64 `json:"energy,omitempty"`
	RelError    float64 `json:"rel_error,omitempty"`
	Compression float64 `json:"compression,omitempty"`
	Auto        bool    `json:"auto,omitempty"`
}

// LayerRule is a rule for the layers whose name matches Pattern.
type LayerRule struct {
	Pattern string `json:"pattern"`
	Rule
}

// LayoutHint says how the tensors matching Pattern are laid out and, for
// convolutions, their geometry (PyTorch's conv2d parameters), used for the
// MAC counts and recorded in the manifest. Omitted geometry: stride 1,
// dilation 1 and "same" padding dilation·(k−1)/2.
type LayoutHint struct {
	Pattern   string `json:"pattern"`
	Layout    string `json:"layout"`
	Stride    []int  `json:"stride,omitempty"`
	Padding   []int  `json:"padding,omitempty"`
	Dilation  []int  `json:"dilation,omitempty"`
	InputSize []int  `json:"input_size,omitempty"`
}

// ParsePolicy decodes a policy from JSON, rejecting unknown fields and
// trailing data, and validates it.
func ParsePolicy(data []byte) (Policy, error) {
	var p Policy
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return Policy{}, jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Policy{}, lowrank.Errorf(lowrank.EINVALID, "policy", "trailing data after the JSON object")
	}
	if err := p.Validate(); err != nil {
		return Policy{}, err
	}
	return p, nil
}

// jsonError names the field a JSON decoding error is about.
func jsonError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return lowrank.Errorf(lowrank.EINVALID, "policy."+te.Field, "must be a %s, got a JSON %s", te.Type, te.Value)
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return lowrank.Errorf(lowrank.EINVALID, "policy."+strings.Trim(name, `"`), "unknown field")
	}
	return lowrank.Errorf(lowrank.EINVALID, "policy", "not a valid JSON policy: %v", err)
}

// Validate reports the first field of p that is out of range, as an
// EINVALID *lowrank.Error whose Field is the field's path, e.g.
// "policy.budget" or "policy.layers[1].rank".
func (p Policy) Validate() error {
	for i, pat := range p.Include {
		if err := checkPattern(fmt.Sprintf("policy.include[%d]", i), pat); err != nil {
			return err
		}
	}
	for i, pat := range p.Exclude {
		if err := checkPattern(fmt.Sprintf("policy.exclude[%d]", i), pat); err != nil {
			return err
		}
	}
	if p.MinElements < 0 {
		return lowrank.Errorf(lowrank.EINVALID, "policy.min_elements", "must be ≥ 0, got %d", p.MinElements)
	}
	for i, h := range p.Layouts {
		if err := h.validate(fmt.Sprintf("policy.layouts[%d]", i)); err != nil {
			return err
		}
	}
	switch p.ConvMethod {
	case "", MethodTucker2, MethodCP:
	default:
		return lowrank.Errorf(lowrank.EINVALID, "policy.conv_method", "must be %q or %q, got %q", MethodTucker2, MethodCP, p.ConvMethod)
	}
	switch {
	case p.Rule != nil && p.Budget != 0:
		return lowrank.Errorf(lowrank.EINVALID, "policy.budget", "give a rule or a budget, not both")
	case p.Rule == nil && p.Budget == 0:
		return lowrank.Errorf(lowrank.EINVALID, "policy.rule", "give a rule or a budget")
	case p.Rule != nil:
		if err := p.Rule.validate("policy.rule", p.ConvMethod == MethodCP); err != nil {
			return err
		}
	default:
		if !(p.Budget > 0 && p.Budget < 1) {
			return lowrank.Errorf(lowrank.EINVALID, "policy.budget", "must be in (0, 1), got %g", p.Budget)
		}
	}
	for i, l := range p.Layers {
		field := fmt.Sprintf("policy.layers[%d]", i)
		if err := checkPattern(field+".pattern", l.Pattern); err != nil {
			return err
		}
		if err := l.Rule.validate(field, p.ConvMethod == MethodCP); err != nil {
			return err
		}
	}
	if p.RankMultiple < 0 || p.RankMultiple > 1<<16 {
		return lowrank.Errorf(lowrank.EINVALID, "policy.rank_multiple", "must be in [0, 65536], got %d", p.RankMultiple)
	}
	if err := checkPair("policy.input_size", p.InputSize, 1); err != nil {
		return err
	}
	if p.TuckerIterations > maxIterations {
		return lowrank.Errorf(lowrank.EINVALID, "policy.tucker_iterations", "must be ≤ %d, got %d", maxIterations, p.TuckerIterations)
	}
	if p.CPIterations < 0 || p.CPIterations > maxIterations {
		return lowrank.Errorf(lowrank.EINVALID, "policy.cp_iterations", "must be in [0, %d], got %d", maxIterations, p.CPIterations)
	}
	return nil
}

// validate checks r; cp says k×k convs use CP, whose error cannot be priced
// from a spectrum, so only rank and compression rules apply to them.
func (r Rule) validate(field string, cp bool) error {
	if r.Auto {
		if r.Rank != 0 || r.Energy != 0 || r.RelError != 0 || r.Compression != 0 {
			return lowrank.Errorf(lowrank.EINVALID, field+".auto", "give exactly one of rank, energy, rel_error, compression, auto")
		}
		if cp {
			return lowrank.Errorf(lowrank.EINVALID, field+".auto", "conv_method cp takes a rank or a compression rule, not auto")
		}
		return nil
	}
	if err := r.rankRule(0).Validate(); err != nil {
		var e *lowrank.Error
		if errors.As(err, &e) {
			return &lowrank.Error{Code: e.Code, Field: field + "." + e.Field, Message: e.Message}
		}
		return err
	}
	if cp && (r.Energy != 0 || r.RelError != 0) {
		f := "energy"
		if r.RelError != 0 {
			f = "rel_error"
		}
		return lowrank.Errorf(lowrank.EINVALID, field+"."+f, "conv_method cp takes a rank or a compression rule: CP's error is not known before it runs")
	}
	return nil
}

// rankRule is r as a linalg.RankRule rounding to multiple.
func (r Rule) rankRule(multiple int) linalg.RankRule {
	return linalg.RankRule{Rank: r.Rank, Energy: r.Energy, RelError: r.RelError, Compression: r.Compression, Multiple: multiple}
}

func (h LayoutHint) validate(field string) error {
	if err := checkPattern(field+".pattern", h.Pattern); err != nil {
		return err
	}
	switch h.Layout {
	case LayoutLinear, LayoutHFConv1D, LayoutConv2D:
	default:
		return lowrank.Errorf(lowrank.EINVALID, field+".layout", "must be %q, %q or %q, got %q", LayoutLinear, LayoutHFConv1D, LayoutConv2D, h.Layout)
	}
	if h.Layout != LayoutConv2D && (h.Stride != nil || h.Padding != nil || h.Dilation != nil || h.InputSize != nil) {
		return lowrank.Errorf(lowrank.EINVALID, field+".layout", "stride, padding, dilation and input_size apply to layout %q only", LayoutConv2D)
	}
	if err := checkPair(field+".stride", h.Stride, 1); err != nil {
		return err
	}
	if err := checkPair(field+".padding", h.Padding, 0); err != nil {
		return err
	}
	if err := checkPair(field+".dilation", h.Dilation, 1); err != nil {
		return err
	}
	return checkPair(field+".input_size", h.InputSize, 1)
}

// checkPair checks an optional [H, W] pair of integers ≥ lo (and sane).
func checkPair(field string, v []int, lo int) error {
	if v == nil {
		return nil
	}
	if len(v) != 2 {
		return lowrank.Errorf(lowrank.EINVALID, field, "must be a pair [h, w], got %d values", len(v))
	}
	for i, x := range v {
		if x < lo || x > 1<<20 {
			return lowrank.Errorf(lowrank.EINVALID, fmt.Sprintf("%s[%d]", field, i), "must be in [%d, %d], got %d", lo, 1<<20, x)
		}
	}
	return nil
}

func checkPattern(field, pat string) error {
	if pat == "" {
		return lowrank.Errorf(lowrank.EINVALID, field, "must not be empty")
	}
	if _, err := path.Match(pat, ""); err != nil {
		return lowrank.Errorf(lowrank.EINVALID, field, "bad glob pattern %q", pat)
	}
	return nil
}

// match reports whether name matches one of pats. Patterns were checked by
// Validate.
func match(pats []string, name string) bool {
	for _, p := range pats {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// withDefaults returns p with its zero values replaced by the defaults, as
// recorded in the plan and the output's metadata.
func (p Policy) withDefaults() Policy {
	if p.Exclude == nil {
		p.Exclude = append([]string(nil), DefaultExclude...)
	}
	if p.MinElements == 0 {
		p.MinElements = DefaultMinElements
	}
	if p.ConvMethod == "" {
		p.ConvMethod = MethodTucker2
	}
	if p.RankMultiple == 0 {
		p.RankMultiple = 1
	}
	if p.TuckerIterations == 0 {
		p.TuckerIterations = DefaultTuckerIterations
	}
	if p.TuckerIterations < 0 {
		p.TuckerIterations = -1
	}
	if p.CPIterations == 0 {
		p.CPIterations = DefaultCPIterations
	}
	return p
}

// hooiSweeps is the HOOI sweep count to hand to tensorops.Tucker.
func (p Policy) hooiSweeps() int { return max(0, p.TuckerIterations) }

// ruleFor returns the rule for the layer called name: the first matching
// override, else the policy's rule (nil under a budget).
func (p Policy) ruleFor(name string) *Rule {
	for i := range p.Layers {
		if ok, _ := path.Match(p.Layers[i].Pattern, name); ok {
			return &p.Layers[i].Rule
		}
	}
	return p.Rule
}

// finite reports whether x is neither NaN nor ±Inf.
func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
