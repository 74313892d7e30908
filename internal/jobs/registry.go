// Package jobs runs Lowrank's decomposition jobs: the method registry
// (params, validation, kernels), the job lifecycle (queued → running →
// succeeded | failed | canceled) on a River queue, progress, cancellation
// and the results' bundle of factors.
package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strings"

	"github.com/lowrank/lowrank"
	"github.com/lowrank/lowrank/internal/linalg"
)

// Limits bound what one job may ask for.
type Limits struct {
	MaxElements   int64 // elements of the input tensor
	MaxRank       int   // any rank or component count
	MaxIterations int   // iterations of an iterative kernel
	// MaxInlineElements bounds a tensor sent inside a job request (0: only
	// MaxElements applies); larger ones are uploaded as files.
	MaxInlineElements int64
}

// InputInfo is what validation knows of a job's input before reading it.
type InputInfo struct {
	Shape []int
	DType string // float16, bfloat16, float32, float64
}

// Progress is what a kernel reports while it runs.
type Progress struct {
	Iteration     int
	MaxIterations int
	RelError      float64 // NaN when unknown
	Fraction      float64 // in [0, 1]
}

// Env is what a method's Run gets besides its input: the numeric backend
// with the job's thread budget and the progress callback.
type Env struct {
	Backend  linalg.Backend
	Limits   Limits
	Progress func(Progress)
}

// Output is a finished decomposition: its factors, in the order they are
// written to the bundle, and its summary.
type Output struct {
	Factors        []*Tensor
	Ranks          []int
	RelError       float64
	ParamsOriginal int64
	ParamsFactors  int64
	Iterations     int
	Converged      bool
	Extras         map[string]any
}

// Method is one registry entry. Validate decodes a request's params object,
// checks every field against the input and the limits, fills defaults and
// returns the params normalised; its errors name the field as "params.x".
// Run decodes normalised params and computes the decomposition.
type Method struct {
	Name     string
	Validate func(raw json.RawMessage, in InputInfo, lim Limits) (json.RawMessage, error)
	Run      func(ctx context.Context, env Env, in *Tensor, params json.RawMessage) (*Output, error)
}

// Registry maps method names to their entries.
type Registry map[string]Method

// Names lists the registered methods, sorted.
func (r Registry) Names() []string {
	names := make([]string, 0, len(r))
	for n := range r {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Lookup returns the entry for name or an EINVALID error naming "method".
func (r Registry) Lookup(name string) (Method, error) {
	m, ok := r[name]
	if !ok {
		return Method{}, lowrank.Errorf(lowrank.EINVALID, "method", "unknown method %q (have %s)", name, strings.Join(r.Names(), ", "))
	}
	return m, nil
}

// params is the constraint on a method's params type: a pointer that can
// check itself (filling defaults) against the input and the limits.
type params[T any] interface {
	*T
	validate(in InputInfo, lim Limits) error
}

// newMethod builds a registry entry from a params type and a kernel, so
// every method decodes, validates and normalises its params the same way.
func newMethod[T any, P params[T]](name string, run func(ctx context.Context, env Env, in *Tensor, p P) (*Output, error)) Method {
	return Method{
		Name: name,
		Validate: func(raw json.RawMessage, in InputInfo, lim Limits) (json.RawMessage, error) {
			p, err := decodeParams[T, P](raw)
			if err != nil {
				return nil, err
			}
			if err := P(p).validate(in, lim); err != nil {
				return nil, prefixField(err, "params")
			}
			return json.Marshal(p)
		},
		Run: func(ctx context.Context, env Env, in *Tensor, raw json.RawMessage) (*Output, error) {
			p, err := decodeParams[T, P](raw)
			if err != nil {
				return nil, err
			}
			return run(ctx, env, in, p)
		},
	}
}

// decodeParams decodes raw strictly: an unknown field or a wrong type is an
// EINVALID error naming the field.
func decodeParams[T any, P params[T]](raw json.RawMessage) (P, error) {
	p := P(new(T))
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		raw = json.RawMessage("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(p); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, lowrank.Errorf(lowrank.EINVALID, "params."+jsonPath(te.Field), "must be a %s, got a JSON %s", te.Type, te.Value)
		}
		if msg := err.Error(); strings.HasPrefix(msg, "json: unknown field ") {
			field := strings.Trim(strings.TrimPrefix(msg, "json: unknown field "), `"`)
			return nil, lowrank.Errorf(lowrank.EINVALID, "params."+field, "unknown parameter")
		}
		return nil, lowrank.Errorf(lowrank.EINVALID, "params", "not a valid JSON object: %v", err)
	}
	return p, nil
}

// jsonPath drops the Go names of embedded structs (RankRule, Common) from
// a decoding error's field path, leaving the JSON names.
func jsonPath(field string) string {
	var keep []string
	for _, p := range strings.Split(field, ".") {
		if p != "" && !(p[0] >= 'A' && p[0] <= 'Z') {
			keep = append(keep, p)
		}
	}
	return strings.Join(keep, ".")
}

// prefixField puts prefix before the field of an *lowrank.Error.
func prefixField(err error, prefix string) error {
	var e *lowrank.Error
	if !errors.As(err, &e) {
		return err
	}
	if e.Field == "tensor" {
		return err // the input is at fault, not a param
	}
	c := *e
	if c.Field == "" {
		c.Field = prefix
	} else {
		c.Field = prefix + "." + c.Field
	}
	return &c
}

func invalid(field, format string, args ...any) error {
	return lowrank.Errorf(lowrank.EINVALID, field, format, args...)
}

// Common are the params every method shares.
type Common struct {
	// Precision is the arithmetic of the kernel: float32 or float64
	// (default: float64 for float64 input, float32 otherwise).
	Precision string `json:"precision,omitempty"`
	// OutputDType is the dtype factors are stored in (default: the precision).
	OutputDType string `json:"output_dtype,omitempty"`
}

func (c *Common) validate(in InputInfo) error {
	switch c.Precision {
	case "":
		c.Precision = "float32"
		if in.DType == "float64" {
			c.Precision = "float64"
		}
	case "float32", "float64":
	default:
		return invalid("precision", "must be float32 or float64, got %q", c.Precision)
	}
	switch c.OutputDType {
	case "":
		c.OutputDType = c.Precision
	case "float16", "bfloat16", "float32", "float64":
	default:
		return invalid("output_dtype", "must be float16, bfloat16, float32 or float64, got %q", c.OutputDType)
	}
	return nil
}

func oneOf(field, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return invalid(field, "must be one of %s, got %q", strings.Join(allowed, ", "), v)
}

func elements(shape []int) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= int64(d)
	}
	return n
}

// matrixShape is how a tensor of order ≥ 2 is read as a matrix: its first
// dimension by the product of the rest (a conv kernel out×in×kh×kw becomes
// out × (in·kh·kw)), the usual layout for compressing a layer's weights.
func matrixShape(shape []int) (m, n int, err error) {
	if len(shape) < 2 {
		return 0, 0, lowrank.Errorf(lowrank.EINVALID, "tensor", "needs at least 2 dimensions, got shape %v", shape)
	}
	m, n = shape[0], 1
	for _, d := range shape[1:] {
		n *= d
	}
	if m == 0 || n == 0 {
		return 0, 0, lowrank.Errorf(lowrank.EINVALID, "tensor", "shape %v has an empty dimension", shape)
	}
	return m, n, nil
}

func checkRankRule(r linalg.RankRule, maxRank int, lim Limits) error {
	if err := r.Validate(); err != nil {
		return err
	}
	if r.Rank > maxRank {
		return invalid("rank", "%d exceeds the largest possible rank %d", r.Rank, maxRank)
	}
	if r.Rank > lim.MaxRank {
		return lowrank.Errorf(lowrank.ETOOLARGE, "rank", "%d exceeds the server's limit of %d", r.Rank, lim.MaxRank)
	}
	if r.Multiple > lim.MaxRank {
		return invalid("rank_multiple", "%d exceeds the server's rank limit %d", r.Multiple, lim.MaxRank)
	}
	return nil
}

func checkIterations(field string, v *int, def int, lim Limits) error {
	if *v == 0 {
		*v = min(def, lim.MaxIterations)
	}
	if *v < 1 {
		return invalid(field, "must be ≥ 1, got %d", *v)
	}
	if *v > lim.MaxIterations {
		return lowrank.Errorf(lowrank.ETOOLARGE, field, "%d exceeds the server's limit of %d", *v, lim.MaxIterations)
	}
	return nil
}

// DefaultRegistry is every method Lowrank has.
func DefaultRegistry() Registry {
	r := Registry{}
	for _, m := range []Method{
		newMethod("svd", runSVD),
		newMethod("pca", runPCA),
		newMethod("cp", runCP),
		newMethod("tucker", runTucker),
	} {
		r[m.Name] = m
	}
	return r
}
