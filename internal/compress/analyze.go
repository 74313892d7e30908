package compress

import (
	"context"
	"math"
	"slices"

	"gonum.org/v1/gonum/blas"

	"github.com/lowrank/lowrank"
	"github.com/lowrank/lowrank/internal/linalg"
	"github.com/lowrank/lowrank/internal/tensorio"
)

// Analysis is what Allocate needs to price every rank of one layer: the
// weight's squared Frobenius norm and its spectra.
type Analysis struct {
	Name   string  `json:"name"`
	NormSq float64 `json:"norm_sq"`
	// Spectra hold singular values in decreasing order: for svd one, of the
	// matrix; for tucker2 two, of the mode-0 (out) and mode-1 (in)
	// unfoldings; none for cp.
	Spectra [][]float64 `json:"spectra"`
}

// Analyze computes the spectra of one layer's weight t (see Analysis).
//
// A spectrum is taken from the Gram matrix of the unfolding's shorter
// side, G = X·Xᵀ (p×p, p = min(rows, cols)), formed in float64 by xSYRK and
// diagonalised by xSYEVD: σᵢ = sqrt(λᵢ(G)). The Gram costs rows·cols·p
// flops, about a quarter of a bidiagonalisation, and in float64 its
// eigenvalues carry an absolute error of about 1e-16·σ₁², so every σ above
// 1e-8·σ₁ (all that matters to the tail sums that price an error) is
// accurate. Negative rounding in λ is clamped to 0.
//
// Bad data (NaN, Inf, a shape that does not match the layer) gives an
// EINVALID error naming the tensor; a canceled ctx gives ECANCELED.
func Analyze(ctx context.Context, b linalg.Backend, l *Layer, t *tensorio.Tensor) (*Analysis, error) {
	x, err := layerData(l, t)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, &lowrank.Error{Code: lowrank.ECANCELED, Message: "canceled", Err: err}
	}
	a := &Analysis{Name: l.Name}
	for _, v := range x {
		a.NormSq += v * v
	}
	if !finite(a.NormSq) {
		return nil, lowrank.Errorf(lowrank.EINVALID, "tensor", "layer %q holds NaN or Inf", l.Name)
	}
	switch l.Method {
	case MethodSVD:
		rows, cols := l.Matrix()
		s, err := spectrum(b, rows, cols, x)
		if err != nil {
			return nil, err
		}
		a.Spectra = [][]float64{s}
	case MethodTucker2:
		out, in, k := l.Shape[0], l.Shape[1], l.Shape[2]*l.Shape[3]
		sOut, err := spectrum(b, out, in*k, x)
		if err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, &lowrank.Error{Code: lowrank.ECANCELED, Message: "canceled", Err: err}
		}
		sIn, err := spectrum(b, in, out*k, swapChannels(out, in, k, x))
		if err != nil {
			return nil, err
		}
		a.Spectra = [][]float64{sOut, sIn}
	}
	return a, nil
}

// layerData checks t against l and returns its data widened to float64.
func layerData(l *Layer, t *tensorio.Tensor) ([]float64, error) {
	if !slices.Equal(t.Shape, l.Shape) {
		return nil, lowrank.Errorf(lowrank.EINVALID, "tensor", "layer %q: tensor shape %v, the plan says %v", l.Name, t.Shape, l.Shape)
	}
	x := make([]float64, t.Len())
	switch {
	case t.F64 != nil && len(t.F64) == len(x):
		copy(x, t.F64)
	case t.F32 != nil && len(t.F32) == len(x):
		for i, v := range t.F32 {
			x[i] = float64(v)
		}
	default:
		return nil, lowrank.Errorf(lowrank.EINVALID, "tensor", "layer %q: the data does not match shape %v", l.Name, t.Shape)
	}
	return x, nil
}

// swapChannels returns the (out, in, k) array x as (in, out, k): the
// mode-1 unfolding's rows become contiguous.
func swapChannels[T float32 | float64](out, in, k int, x []T) []T {
	y := make([]T, len(x))
	for o := range out {
		for i := range in {
			copy(y[(i*out+o)*k:(i*out+o+1)*k], x[(o*in+i)*k:(o*in+i+1)*k])
		}
	}
	return y
}

// spectrum returns the min(rows, cols) singular values, decreasing, of the
// rows×cols row-major x, from the Gram of its shorter side.
func spectrum(b linalg.Backend, rows, cols int, x []float64) ([]float64, error) {
	p := min(rows, cols)
	g := make([]float64, p*p)
	if rows <= cols {
		b.Dsyrk(blas.Upper, blas.NoTrans, p, cols, 1, x, cols, 0, g, p) // X·Xᵀ
	} else {
		b.Dsyrk(blas.Upper, blas.Trans, p, rows, 1, x, cols, 0, g, p) // Xᵀ·X
	}
	w := make([]float64, p)
	if !b.Dsyevd(p, g, p, w) {
		return nil, &lowrank.Error{Code: lowrank.EINTERNAL, Field: "tensor", Message: "the eigensolver did not converge"}
	}
	s := make([]float64, p)
	for i := range p {
		s[i] = math.Sqrt(max(0, w[p-1-i]))
	}
	return s, nil
}
