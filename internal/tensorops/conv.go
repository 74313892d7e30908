package tensorops

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/blas"

	"github.com/lowrank/lowrank"
	"github.com/lowrank/lowrank/internal/linalg"
)

// ConvParams are a 2-D convolution's geometry (PyTorch's conv2d semantics).
// Index 0 of each pair is the height, index 1 the width. Zero Stride,
// Dilation or Groups mean 1.
type ConvParams struct {
	Stride, Padding, Dilation [2]int
	Groups                    int
}

// Conv2D returns the cross-correlation of x (N, C, H, W) with w (O, C/Groups, KH, KW), plus bias (len O or nil),
// computed by im2col and one GEMM per image and group.
//
// With G groups, Cg = C/G input and Og = O/G output channels per group,
// stride (sh, sw), padding (ph, pw) and dilation (dh, dw), the output y has
// shape (N, O, OH, OW),
//
//	OH = ⌊(H + 2·ph − dh·(KH − 1) − 1)/sh⌋ + 1,  OW likewise,
//
// and for output channel o in group g = ⌊o/Og⌋
//
//	y[n, o, i, j] = bias[o] + Σ_{c<Cg, p<KH, q<KW} w[o, c, p, q] · x[n, g·Cg + c, i·sh − ph + p·dh, j·sw − pw + q·dw],
//
// where x is zero outside its H × W plane (zero padding). This is
// torch.nn.functional.conv2d with padding_mode "zeros".
//
// For each image and group, im2col lays the receptive fields out as the
// (Cg·KH·KW) × (OH·OW) matrix X_col, so that the group's output is the
// single product W_g · X_col with W_g the Og × (Cg·KH·KW) row-major view of
// its filters, through b's GEMM and thread budget. A 1×1 kernel with unit
// stride and no padding needs no im2col: X_col is the image itself. The
// workspace is one X_col, allocated once.
//
// Bad shapes or parameters (x or w not of order 4, channel counts that do
// not match or divide by Groups, a bias of the wrong length, negative
// parameters, a kernel larger than the padded input) return an EINVALID
// *lowrank.Error whose Field names the argument. N may be 0.
//
// References:
//
//   - K. Chellapilla, S. Puri and P. Simard, High Performance Convolutional
//     Neural Networks for Document Processing, IWFHR 2006 (unrolling the
//     convolution into a matrix product).
func Conv2D[T Float](b linalg.Backend, x, w *Dense[T], bias []T, p ConvParams) (*Dense[T], error) {
	if x == nil || w == nil {
		return nil, lowrank.Errorf(lowrank.EINVALID, "x", "x and w must be tensors")
	}
	nb := -1
	if bias != nil {
		nb = len(bias)
	}
	g, err := p.geometry(convShape{"x", x.Shape, len(x.Data)}, convShape{"w", w.Shape, len(w.Data)}, nb)
	if err != nil {
		return nil, err
	}
	y := NewDense[T](g.n, g.o, g.oh, g.ow)
	if len(y.Data) == 0 {
		return y, nil
	}
	plane := g.oh * g.ow
	if bias != nil {
		for img := range g.n {
			for o := range g.o {
				row := y.Data[(img*g.o+o)*plane : (img*g.o+o+1)*plane]
				for i := range row {
					row[i] = bias[o]
				}
			}
		}
	}
	og, cg := g.o/g.groups, g.c/g.groups
	k := cg * g.kh * g.kw
	direct := g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0
	var col []T
	if !direct {
		col = make([]T, k*plane)
	}
	inPlane := g.h * g.wd
	for img := range g.n {
		for grp := range g.groups {
			xg := x.Data[(img*g.c+grp*cg)*inPlane : (img*g.c+(grp+1)*cg)*inPlane]
			src := xg
			if !direct {
				im2col(&g, b.Threads(), xg, cg, col)
				src = col
			}
			dst := y.Data[(img*g.o+grp*og)*plane:]
			gemm(b, blas.NoTrans, blas.NoTrans, og, plane, k, 1, w.Data[grp*og*k:], k, src, plane, 1, dst, plane)
		}
	}
	return y, nil
}

// convGeometry is a checked Conv2D problem with every default filled in.
type convGeometry struct {
	n, c, h, wd    int // input
	o, kh, kw      int // filters
	sh, sw, ph, pw int
	dh, dw, groups int
	oh, ow         int // output plane
}

// convShape is what the validation needs of a tensor argument.
type convShape struct {
	name  string // "x" or "w"
	shape []int
	len   int
}

// geometry validates a Conv2D call (bias < 0 means no bias) and returns
// its sizes.
func (p ConvParams) geometry(x, w convShape, bias int) (convGeometry, error) {
	var g convGeometry
	for _, t := range []convShape{x, w} {
		if len(t.shape) != 4 {
			return g, lowrank.Errorf(lowrank.EINVALID, t.name+".shape", "must have 4 modes, got %v", t.shape)
		}
		n := 1
		for i, d := range t.shape {
			if d < 1 && !(t.name == "x" && i == 0 && d == 0) {
				return g, lowrank.Errorf(lowrank.EINVALID, fmt.Sprintf("%s.shape[%d]", t.name, i), "must be ≥ 1, got %d", d)
			}
			if d > 0 && n > math.MaxInt/d {
				return g, lowrank.Errorf(lowrank.EINVALID, t.name+".shape", "%v has too many elements", t.shape)
			}
			n *= d
		}
		if t.len != n {
			return g, lowrank.Errorf(lowrank.EINVALID, t.name+".data", "has %d elements, shape %v needs %d", t.len, t.shape, n)
		}
	}
	g.n, g.c, g.h, g.wd = x.shape[0], x.shape[1], x.shape[2], x.shape[3]
	g.o, g.kh, g.kw = w.shape[0], w.shape[2], w.shape[3]
	g.sh, g.sw = p.Stride[0], p.Stride[1]
	g.ph, g.pw = p.Padding[0], p.Padding[1]
	g.dh, g.dw = p.Dilation[0], p.Dilation[1]
	g.groups = p.Groups
	for _, f := range []struct {
		name string
		v    *int
		zero int
	}{
		{"stride", &g.sh, 1}, {"stride", &g.sw, 1},
		{"padding", &g.ph, 0}, {"padding", &g.pw, 0},
		{"dilation", &g.dh, 1}, {"dilation", &g.dw, 1},
		{"groups", &g.groups, 1},
	} {
		// Values beyond any real input would overflow the size arithmetic;
		// 2³⁰ keeps every sum and product below in range.
		if *f.v < 0 || *f.v > 1<<30 {
			return g, lowrank.Errorf(lowrank.EINVALID, f.name, "must be in [0, 2³⁰], got %d", *f.v)
		}
		if *f.v == 0 {
			*f.v = f.zero
		}
	}
	if g.c%g.groups != 0 || g.o%g.groups != 0 {
		return g, lowrank.Errorf(lowrank.EINVALID, "groups", "%d does not divide %d input and %d output channels", g.groups, g.c, g.o)
	}
	if w.shape[1] != g.c/g.groups {
		return g, lowrank.Errorf(lowrank.EINVALID, "w.shape[1]", "must be C/groups = %d/%d, got %d", g.c, g.groups, w.shape[1])
	}
	if bias >= 0 && bias != g.o {
		return g, lowrank.Errorf(lowrank.EINVALID, "bias", "has %d elements, want one per output channel (%d)", bias, g.o)
	}
	g.oh = outSize(g.h, g.kh, g.sh, g.ph, g.dh)
	g.ow = outSize(g.wd, g.kw, g.sw, g.pw, g.dw)
	if g.oh < 1 || g.ow < 1 {
		return g, lowrank.Errorf(lowrank.EINVALID, "x.shape", "the dilated %d×%d kernel does not fit the padded %d×%d input",
			g.dh*(g.kh-1)+1, g.dw*(g.kw-1)+1, g.h+2*g.ph, g.wd+2*g.pw)
	}
	// The output (N·O·OH·OW) and the im2col workspace (Cg·KH·KW·OH·OW)
	// must be addressable.
	size, work := g.oh, g.oh
	for _, f := range []int{g.ow, g.n, g.o} {
		if f > 0 && size > math.MaxInt/f {
			return g, lowrank.Errorf(lowrank.EINVALID, "x.shape", "the output would have too many elements")
		}
		size *= f
	}
	for _, f := range []int{g.ow, g.c / g.groups, g.kh, g.kw} {
		if work > math.MaxInt/f {
			return g, lowrank.Errorf(lowrank.EINVALID, "w.shape", "the im2col workspace would have too many elements")
		}
		work *= f
	}
	return g, nil
}

// outSize is one output dimension of a convolution (PyTorch's formula);
// it is < 1 when the dilated kernel does not fit.
func outSize(in, k, stride, pad, dil int) int {
	span := dil*(k-1) + 1
	if in+2*pad < span {
		return 0
	}
	return (in+2*pad-span)/stride + 1
}

// im2col fills col, (cg·KH·KW) × (OH·OW) row-major, from the cg channels
// of one image in xg: row (c·KH + p)·KW + q holds, for every output
// position (i, j), the input x[c, i·sh − ph + p·dh, j·sw − pw + q·dw] or 0
// in the padding. Rows are independent, so they are filled in parallel.
func im2col[T Float](g *convGeometry, threads int, xg []T, cg int, col []T) {
	plane, kk := g.oh*g.ow, g.kh*g.kw
	rows := cg * kk
	// Below ~64k elements the goroutines cost more than the copy.
	if rows*plane < 1<<16 {
		threads = 1
	}
	parallelFor(threads, rows, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			c, p, q := r/kk, r%kk/g.kw, r%g.kw
			src := xg[c*g.h*g.wd : (c+1)*g.h*g.wd]
			dst := col[r*plane : (r+1)*plane]
			// The output columns j whose input column j·sw − pw + q·dw
			// lies in [0, W): j in [j0, j1).
			off := q*g.dw - g.pw
			j0 := 0
			if off < 0 {
				j0 = (-off + g.sw - 1) / g.sw
			}
			j1 := 0
			if g.wd-off > 0 {
				j1 = min(g.ow, (g.wd-off+g.sw-1)/g.sw)
			}
			j0 = min(j0, j1)
			for i := range g.oh {
				out := dst[i*g.ow : (i+1)*g.ow]
				row := i*g.sh - g.ph + p*g.dh
				if row < 0 || row >= g.h {
					clear(out)
					continue
				}
				in := src[row*g.wd : (row+1)*g.wd]
				clear(out[:j0])
				if g.sw == 1 {
					copy(out[j0:j1], in[j0+off:j1+off])
				} else {
					for j := j0; j < j1; j++ {
						out[j] = in[j*g.sw+off]
					}
				}
				clear(out[j1:])
			}
		}
	})
}
