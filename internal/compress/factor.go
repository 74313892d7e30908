package compress

import (
	"context"
	"io"
	"math"
	"slices"

	"gonum.org/v1/gonum/blas"

	"github.com/lowrank/lowrank"
	"github.com/lowrank/lowrank/internal/linalg"
	"github.com/lowrank/lowrank/internal/tensorio"
	"github.com/lowrank/lowrank/internal/tensorops"
)

// LayerResult is one factored layer.
type LayerResult struct {
	Name   string `json:"name"`
	Method string `json:"method"`
	Ranks  []int  `json:"ranks"`
	// Factors are the tensors that replace the weight, in the layer's
	// dtype, in the order the rebuilt modules apply them (see the package
	// documentation for their names and shapes).
	Factors []*tensorio.Tensor `json:"-"`
	// FactorInfos describe Factors without their data.
	FactorInfos []FactorInfo `json:"factors"`
	// RelError is ‖W − Ŵ‖_F/‖W‖_F measured against the weight rebuilt from
	// the factors as stored (rounded to the layer's dtype).
	RelError float64 `json:"rel_error"`
	// OutputRelError is VerifyOutput's measure, when Run was asked for it.
	OutputRelError *float64 `json:"output_rel_error,omitempty"`
	ParamsBefore   int64    `json:"params_before"`
	ParamsAfter    int64    `json:"params_after"`
	// MACsBefore and MACsAfter are the multiply-accumulates of one input
	// vector (matrices) or one input image of the layer's input size
	// (convolutions; 0 when the size is unknown).
	MACsBefore int64 `json:"macs_before"`
	MACsAfter  int64 `json:"macs_after"`
}

// FactorInfo names one factor tensor.
type FactorInfo struct {
	Name  string         `json:"name"`
	Shape []int          `json:"shape"`
	DType tensorio.DType `json:"dtype"`
}

// Factor factors one layer's weight t at the allocated ranks (al must not
// be kept) under policy p: svd from the Gram matrix of the shorter side
// (see gramFactors), the singular values split evenly between the two
// factors (each takes sqrt(σ), so neither factor's range is much wider
// than the weight's in F16); tucker2 by tensorops.Tucker on modes (0, 1)
// with p.TuckerIterations HOOI sweeps, a mode at full rank folded into the
// core; cp by tensorops.CPALS with p.CPIterations sweeps, λ folded into
// the last factor. The factors are rounded to the layer's dtype, the weight rebuilt
// from them and the error measured against t.
//
// Bad data gives an EINVALID error; a canceled ctx gives ECANCELED.
func Factor(ctx context.Context, b linalg.Backend, p Policy, l *Layer, al *Allocation, t *tensorio.Tensor) (*LayerResult, error) {
	if al.Kept() || al.Name != l.Name {
		panic("compress: Factor: no ranks for layer " + l.Name)
	}
	p = p.withDefaults()
	res := &LayerResult{Name: l.Name, Method: l.Method, Ranks: append([]int(nil), al.Ranks...), ParamsBefore: l.Params, ParamsAfter: factorParams(l, al.Ranks)}
	res.MACsBefore, res.MACsAfter = macs(l, al.Ranks)
	var err error
	switch {
	case t.F64 != nil && t.DType == tensorio.F64:
		err = factorT(ctx, b, p, l, al.Ranks, t.F64, res)
	case t.F32 != nil:
		err = factorT(ctx, b, p, l, al.Ranks, t.F32, res)
	default:
		err = lowrank.Errorf(lowrank.EINVALID, "tensor", "layer %q: no data of dtype %s", l.Name, t.DType)
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

// factorT computes the factors of w in T, fills res.Factors, FactorInfos
// and RelError.
func factorT[T tensorops.Float](ctx context.Context, b linalg.Backend, p Policy, l *Layer, ranks []int, w []T, res *LayerResult) error {
	if len(w) != int(l.Params) {
		return lowrank.Errorf(lowrank.EINVALID, "tensor", "layer %q: %d elements, shape %v needs %d", l.Name, len(w), l.Shape, l.Params)
	}
	var factors [][]T
	var shapes [][]int
	var rebuilt []T
	switch l.Method {
	case MethodSVD:
		rows, cols := l.Matrix()
		r := ranks[0]
		left, right, err := gramFactors(b, rows, cols, r, w)
		if err != nil {
			return err
		}
		roundTo(l.DType, left)
		roundTo(l.DType, right)
		rebuilt = make([]T, rows*cols)
		linalg.Gemm(b, blas.NoTrans, blas.NoTrans, rows, cols, r, 1, left, r, right, cols, 0, rebuilt, cols)
		switch l.Kind {
		case KindHFConv:
			factors, shapes = [][]T{left, right}, [][]int{{rows, r}, {r, cols}}
		case KindConv1x1:
			factors, shapes = [][]T{right, left}, [][]int{{r, cols, 1, 1}, {rows, r, 1, 1}}
		default:
			factors, shapes = [][]T{right, left}, [][]int{{r, cols}, {rows, r}}
		}
	case MethodTucker2:
		out, in := l.Shape[0], l.Shape[1]
		x := &tensorops.Dense[T]{Shape: l.Shape, Data: w}
		tk, err := tensorops.Tucker(ctx, b, x, tensorops.TuckerOptions{Modes: []int{0, 1}, Ranks: ranks, MaxIter: p.hooiSweeps(), Seed: p.Seed}, nil)
		if err != nil {
			return err
		}
		uOut, uIn := orIdentity(tk.Factors[0], out), orIdentity(tk.Factors[1], in)
		ro, ri := uOut.Cols, uIn.Cols
		core := tk.Core
		if tk.Factors[0] == nil || tk.Factors[1] == nil {
			// A mode HOOI left whole: project on the identity basis.
			core = tensorops.MultiModeProduct(b, x, []*tensorops.Matrix[T]{uOut, uIn, nil, nil}, true)
		}
		// A mode at full rank keeps no factor: its square orthogonal
		// factor is folded into the core, which saves its parameters and
		// a 1×1 convolution.
		if ri == in {
			core = tensorops.ModeProduct(b, core, uIn, 1, false)
		}
		if ro == out {
			core = tensorops.ModeProduct(b, core, uOut, 0, false)
		}
		roundTo(l.DType, core.Data)
		var first []T
		if ri < in {
			first = transpose(uIn.Data, in, ri) // (r_in, in)
			roundTo(l.DType, first)
			uIn = &tensorops.Matrix[T]{Rows: in, Cols: ri, Data: transpose(first, ri, in)}
			factors, shapes = append(factors, first), append(shapes, []int{ri, in, 1, 1})
		}
		factors, shapes = append(factors, core.Data), append(shapes, core.Shape)
		if ro < out {
			roundTo(l.DType, uOut.Data)
			factors, shapes = append(factors, uOut.Data), append(shapes, []int{out, ro, 1, 1})
		}
		us := []*tensorops.Matrix[T]{uOut, uIn, nil, nil}
		if ro == out {
			us[0] = nil
		}
		if ri == in {
			us[1] = nil
		}
		rebuilt = core.Data
		if us[0] != nil || us[1] != nil {
			rebuilt = tensorops.MultiModeProduct(b, core, us, false).Data
		}
	case MethodCP:
		out, in, kh, kw := l.Shape[0], l.Shape[1], l.Shape[2], l.Shape[3]
		R := ranks[0]
		x := &tensorops.Dense[T]{Shape: l.Shape, Data: w}
		cp, err := tensorops.CPALS(ctx, b, x, tensorops.CPOptions{Rank: R, MaxIter: p.CPIterations, Tol: cpTol, Seed: p.Seed}, nil)
		if err != nil {
			return err
		}
		f0 := transpose(cp.Factors[1].Data, in, R) // (R, in): 1×1 in → R
		fh := transpose(cp.Factors[2].Data, kh, R) // (R, kh): depthwise kh×1
		fw := transpose(cp.Factors[3].Data, kw, R) // (R, kw): depthwise 1×kw
		last := make([]T, out*R)                   // (out, R): 1×1 R → out, λ folded in
		for o := range out {
			for r := range R {
				last[o*R+r] = cp.Factors[0].Data[o*R+r] * cp.Weights[r]
			}
		}
		for _, f := range [][]T{f0, fh, fw, last} {
			roundTo(l.DType, f)
		}
		// W[o, (i, h, w)] = Σ_r last[o, r]·f0[r, i]·fh[r, h]·fw[r, w].
		k := make([]T, R*in*kh*kw)
		for r := range R {
			row := k[r*in*kh*kw:]
			for i := range in {
				for h := range kh {
					for c := range kw {
						row[(i*kh+h)*kw+c] = f0[r*in+i] * fh[r*kh+h] * fw[r*kw+c]
					}
				}
			}
		}
		rebuilt = make([]T, len(w))
		linalg.Gemm(b, blas.NoTrans, blas.NoTrans, out, in*kh*kw, R, 1, last, R, k, in*kh*kw, 0, rebuilt, in*kh*kw)
		factors = [][]T{f0, fh, fw, last}
		shapes = [][]int{{R, in, 1, 1}, {R, 1, kh, 1}, {R, 1, 1, kw}, {out, R, 1, 1}}
	}
	var num, den float64
	for i, v := range w {
		d := float64(v) - float64(rebuilt[i])
		num += d * d
		den += float64(v) * float64(v)
	}
	if den > 0 {
		res.RelError = math.Sqrt(num / den)
	}
	for i, f := range factors {
		t := newTensor(l.factorName(i), l.DType, shapes[i], f)
		res.Factors = append(res.Factors, t)
		res.FactorInfos = append(res.FactorInfos, FactorInfo{Name: t.Name, Shape: t.Shape, DType: t.DType})
	}
	return nil
}

// orIdentity returns u, or the n×n identity when u is nil.
func orIdentity[T tensorops.Float](u *tensorops.Matrix[T], n int) *tensorops.Matrix[T] {
	if u != nil {
		return u
	}
	id := tensorops.NewMatrix[T](n, n)
	for i := range n {
		id.Data[i*n+i] = 1
	}
	return id
}

// transpose returns the cols×rows transpose of the rows×cols row-major a.
func transpose[T tensorops.Float](a []T, rows, cols int) []T {
	t := make([]T, len(a))
	for i := range rows {
		for j := range cols {
			t[j*rows+i] = a[i*cols+j]
		}
	}
	return t
}

// roundTo rounds x in place to the nearest value of dtype dt (ties to
// even, as the safetensors writer does), so the error measured is that of
// the factors as stored.
func roundTo[T tensorops.Float](dt tensorio.DType, x []T) {
	switch dt {
	case tensorio.F16:
		for i, v := range x {
			x[i] = T(tensorio.F16ToF32(tensorio.F64ToF16(float64(v))))
		}
	case tensorio.BF16:
		for i, v := range x {
			x[i] = T(tensorio.BF16ToF32(tensorio.F64ToBF16(float64(v))))
		}
	case tensorio.F32:
		for i, v := range x {
			x[i] = T(float32(v))
		}
	}
}

// newTensor wraps data as a tensorio tensor of dtype dt.
func newTensor[T tensorops.Float](name string, dt tensorio.DType, shape []int, data []T) *tensorio.Tensor {
	t := &tensorio.Tensor{Name: name, DType: dt, Shape: shape}
	switch d := any(data).(type) {
	case []float32:
		t.F32 = d
	case []float64:
		t.F64 = d
	}
	return t
}

// macs returns the multiply-accumulates of the layer before and after
// factoring at ranks (0, 0 for a conv of unknown input size). The modules
// are those of the manifest: for tucker2 the first 1×1 runs at the input's
// resolution and the rest at the output's; for cp the kh×1 depthwise runs
// at output height and input width.
func macs(l *Layer, ranks []int) (before, after int64) {
	switch l.Kind {
	case KindLinear, KindHFConv:
		return l.Params, factorParams(l, ranks)
	}
	out, in, kh, kw := int64(l.Shape[0]), int64(l.Shape[1]), int64(l.Shape[2]), int64(l.Shape[3])
	g := l.Geometry
	ho, wo := g.outputSize(int(kh), int(kw))
	if ho == 0 || wo == 0 {
		return 0, 0
	}
	posOut := int64(ho) * int64(wo)
	before = out * in * kh * kw * posOut
	switch l.Method {
	case MethodSVD:
		after = factorParams(l, ranks) * posOut
	case MethodTucker2:
		ro, ri := int64(ranks[0]), int64(ranks[1])
		posIn := int64(g.InputSize[0]) * int64(g.InputSize[1])
		after = ri * ro * kh * kw * posOut
		if ri < in {
			after += in * ri * posIn
		}
		if ro < out {
			after += ro * out * posOut
		}
	case MethodCP:
		R := int64(ranks[0])
		posIn := int64(g.InputSize[0]) * int64(g.InputSize[1])
		after = in*R*posIn + R*kh*int64(ho)*int64(g.InputSize[1]) + R*kw*posOut + R*out*posOut
	}
	return before, after
}

// WriteFactors writes r's factors as one safetensors bundle, the form a
// layer's result travels in between sub-jobs (its JSON carries the rest).
func (r *LayerResult) WriteFactors(w io.Writer) error {
	if len(r.Factors) != len(r.FactorInfos) {
		panic("compress: WriteFactors: the result holds no factor data")
	}
	return tensorio.WriteSafetensors(w, r.Factors, nil)
}

// ReadFactors loads r's factors (named by r.FactorInfos) from a bundle
// WriteFactors wrote, checking their shapes and dtypes against the infos.
// A bundle that does not match is an EINVALID error.
func (r *LayerResult) ReadFactors(src io.ReaderAt, size int64) error {
	fs := make([]*tensorio.Tensor, len(r.FactorInfos))
	for i, fi := range r.FactorInfos {
		t, err := tensorio.ReadTensor(src, size, fi.Name)
		if err != nil {
			return err
		}
		if t.DType != fi.DType || !slices.Equal(t.Shape, fi.Shape) {
			return lowrank.Errorf(lowrank.EINVALID, "factors", "%s is %s %v in the bundle, the result says %s %v", fi.Name, t.DType, t.Shape, fi.DType, fi.Shape)
		}
		fs[i] = t
	}
	r.Factors = fs
	return nil
}
