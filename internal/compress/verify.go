package compress

import (
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/blas"

	"github.com/lowrank/lowrank/internal/linalg"
	"github.com/lowrank/lowrank/internal/tensorio"
	"github.com/lowrank/lowrank/internal/tensorops"
)

// Verification sizes: verifyBatch input vectors for a matrix, verifyImages
// images of the layer's input size (verifySide² when unknown) for a conv.
// With i.i.d. Gaussian inputs E‖ΔW·x‖² = ‖ΔW‖_F²·E‖x‖²/n, so the output
// error concentrates around the weight error; a few hundred vectors (or
// the pixels of a few images) bring the spread to a few percent.
const (
	verifyBatch  = 256
	verifyImages = 2
	verifySide   = 16
)

// VerifyOutput applies the original layer (weight t, no bias) and the
// rebuilt sequence of factor modules (r's factors, as the manifest
// describes them) to random inputs drawn from seed, and returns the
// relative difference ‖y − ŷ‖/‖y‖ of their outputs: matrix products for
// matrices, tensors.Conv2D (im2col) for convolutions, with the layer's
// geometry (stride, padding, dilation) where the manifest says "original".
// For i.i.d. inputs it estimates the relative weight error r.RelError.
func VerifyOutput(b linalg.Backend, l *Layer, t *tensorio.Tensor, r *LayerResult, seed uint64) (float64, error) {
	if t.F64 != nil && t.DType == tensorio.F64 {
		var fs [][]float64
		for _, f := range r.Factors {
			fs = append(fs, f.F64)
		}
		return verifyT(b, l, t.F64, r, fs, seed)
	}
	var fs [][]float32
	for _, f := range r.Factors {
		fs = append(fs, f.F32)
	}
	return verifyT(b, l, t.F32, r, fs, seed)
}

func verifyT[T tensorops.Float](b linalg.Backend, l *Layer, w []T, r *LayerResult, fs [][]T, seed uint64) (float64, error) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	gauss := func(n int) []T {
		x := make([]T, n)
		for i := range x {
			x[i] = T(rng.NormFloat64())
		}
		return x
	}
	var y, yr []T
	switch l.Kind {
	case KindLinear: // y = W·X, X in×batch; rebuilt F1·(F0·X)
		out, in, k := l.Shape[0], l.Shape[1], r.Ranks[0]
		x := gauss(in * verifyBatch)
		y = product(b, w, x, out, in, verifyBatch)
		yr = product(b, fs[1], product(b, fs[0], x, k, in, verifyBatch), out, k, verifyBatch)
	case KindHFConv: // y = X·W, X batch×in; rebuilt (X·F0)·F1
		in, out, k := l.Shape[0], l.Shape[1], r.Ranks[0]
		x := gauss(verifyBatch * in)
		y = product(b, x, w, verifyBatch, in, out)
		yr = product(b, product(b, x, fs[0], verifyBatch, in, k), fs[1], verifyBatch, k, out)
	default:
		g := l.Geometry
		h, wd := g.InputSize[0], g.InputSize[1]
		if h == 0 || wd == 0 {
			h, wd = verifySide, verifySide
		}
		x := &tensorops.Dense[T]{Shape: []int{verifyImages, l.Shape[1], h, wd}, Data: gauss(verifyImages * l.Shape[1] * h * wd)}
		orig, err := tensorops.Conv2D(b, x, &tensorops.Dense[T]{Shape: l.Shape, Data: w}, nil, convParams(g, GeometryOriginal, 1))
		if err != nil {
			return 0, err
		}
		cur := x
		for k, m := range modules(l, r) {
			if cur, err = tensorops.Conv2D(b, cur, &tensorops.Dense[T]{Shape: r.FactorInfos[k].Shape, Data: fs[k]}, nil, convParams(g, m.Geometry, m.Groups)); err != nil {
				return 0, err
			}
		}
		y, yr = orig.Data, cur.Data
	}
	var num, den float64
	for i := range y {
		d := float64(y[i]) - float64(yr[i])
		num += d * d
		den += float64(y[i]) * float64(y[i])
	}
	if den == 0 {
		return 0, nil
	}
	return math.Sqrt(num / den), nil
}

// convParams is a rebuilt module's geometry from the layer's and the
// manifest's geometry source.
func convParams(g *Geometry, src string, groups int) tensorops.ConvParams {
	p := tensorops.ConvParams{Stride: [2]int{1, 1}, Dilation: [2]int{1, 1}, Groups: max(1, groups)}
	for a := range 2 {
		if src == GeometryOriginal || src == GeometryOriginalH && a == 0 || src == GeometryOriginalW && a == 1 {
			p.Stride[a], p.Padding[a], p.Dilation[a] = g.Stride[a], g.Padding[a], g.Dilation[a]
		}
	}
	return p
}

// product returns the m×n product of the row-major m×k a and k×n c.
func product[T tensorops.Float](b linalg.Backend, a, c []T, m, k, n int) []T {
	out := make([]T, m*n)
	linalg.Gemm(b, blas.NoTrans, blas.NoTrans, m, n, k, 1, a, k, c, n, 0, out, n)
	return out
}
