package tensorops

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/lowrank/lowrank"
	"github.com/lowrank/lowrank/internal/linalg"
	"github.com/lowrank/lowrank/internal/pyfind"
)

// convCase is one Conv2D problem: input (N, C, H, W), O filters of KH×KW.
type convCase struct {
	name          string
	n, c, h, w, o int
	kh, kw        int
	p             ConvParams
	bias          bool
}

var convCases = []convCase{
	{"1x1", 2, 3, 5, 4, 4, 1, 1, ConvParams{}, true},
	{"1x1 stride 2", 1, 3, 5, 4, 2, 1, 1, ConvParams{Stride: [2]int{2, 2}}, false},
	{"1x1 padded", 1, 2, 3, 3, 2, 1, 1, ConvParams{Padding: [2]int{1, 2}}, true},
	{"3x3", 1, 3, 6, 6, 4, 3, 3, ConvParams{}, true},
	{"3x3 same", 2, 3, 7, 5, 4, 3, 3, ConvParams{Padding: [2]int{1, 1}}, false},
	{"2x3", 1, 2, 6, 7, 3, 2, 3, ConvParams{}, true},
	{"3x1 pad (1,0)", 1, 2, 5, 4, 3, 3, 1, ConvParams{Padding: [2]int{1, 0}}, true},
	{"1x5 pad (0,2)", 1, 2, 3, 8, 2, 1, 5, ConvParams{Padding: [2]int{0, 2}}, false},
	{"stride 2 odd", 2, 3, 7, 9, 5, 3, 3, ConvParams{Stride: [2]int{2, 2}, Padding: [2]int{1, 1}}, true},
	{"stride (2,1)", 1, 2, 8, 7, 3, 3, 2, ConvParams{Stride: [2]int{2, 1}}, true},
	{"stride 3 no fit", 1, 1, 10, 11, 2, 3, 3, ConvParams{Stride: [2]int{3, 3}}, true},
	{"padding (2,1)", 1, 3, 5, 6, 2, 3, 3, ConvParams{Padding: [2]int{2, 1}}, true},
	{"padding > kernel", 1, 1, 3, 3, 2, 2, 2, ConvParams{Padding: [2]int{3, 3}}, true},
	{"dilation 2", 1, 3, 9, 8, 4, 3, 3, ConvParams{Dilation: [2]int{2, 2}}, true},
	{"dilation (2,3) stride pad", 2, 2, 11, 13, 3, 3, 3, ConvParams{Stride: [2]int{2, 1}, Padding: [2]int{2, 1}, Dilation: [2]int{2, 3}}, true},
	{"depthwise", 2, 4, 6, 5, 4, 3, 3, ConvParams{Padding: [2]int{1, 1}, Groups: 4}, true},
	{"depthwise x2", 1, 3, 7, 7, 6, 3, 3, ConvParams{Stride: [2]int{2, 2}, Padding: [2]int{1, 1}, Groups: 3}, false},
	{"groups 2", 2, 4, 5, 5, 6, 3, 2, ConvParams{Padding: [2]int{1, 0}, Groups: 2}, true},
	{"kernel = input", 3, 2, 4, 3, 5, 4, 3, ConvParams{}, true},
	{"1x1 image", 2, 3, 1, 1, 2, 1, 1, ConvParams{}, true},
	{"empty batch", 0, 3, 5, 5, 2, 3, 3, ConvParams{}, true},
	// Large enough (32·9 rows × 400 columns) for the parallel im2col.
	{"parallel im2col", 2, 32, 20, 20, 8, 3, 3, ConvParams{Padding: [2]int{1, 1}}, true},
}

func (c convCase) data(seed uint64) (x, w *Dense[float64], bias []float64) {
	rng := rand.New(rand.NewPCG(seed, 9))
	groups := max(1, c.p.Groups)
	x = randDense[float64](rng, c.n, c.c, c.h, c.w)
	w = randDense[float64](rng, c.o, c.c/groups, c.kh, c.kw)
	if c.bias {
		bias = make([]float64, c.o)
		for i := range bias {
			bias[i] = rng.NormFloat64()
		}
	}
	return x, w, bias
}

// naiveConv is the definition of Conv2D written as a direct loop, with the
// bound Σ|terms| of each output element for the rounding tolerance.
func naiveConv(x, w *Dense[float64], bias []float64, p ConvParams) (y, bound *Dense[float64]) {
	n, c, h, wd := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	o, cg, kh, kw := w.Shape[0], w.Shape[1], w.Shape[2], w.Shape[3]
	or1 := func(v int) int { return max(v, 1) }
	sh, sw, dh, dw, groups := or1(p.Stride[0]), or1(p.Stride[1]), or1(p.Dilation[0]), or1(p.Dilation[1]), or1(p.Groups)
	ph, pw := p.Padding[0], p.Padding[1]
	oh := (h+2*ph-dh*(kh-1)-1)/sh + 1
	ow := (wd+2*pw-dw*(kw-1)-1)/sw + 1
	og := o / groups
	y, bound = NewDense[float64](n, o, oh, ow), NewDense[float64](n, o, oh, ow)
	for img := range n {
		for oc := range o {
			g := oc / og
			for i := range oh {
				for j := range ow {
					var s, b float64
					if bias != nil {
						s, b = bias[oc], math.Abs(bias[oc])
					}
					for ci := range cg {
						for a := range kh {
							for q := range kw {
								r, col := i*sh-ph+a*dh, j*sw-pw+q*dw
								if r < 0 || r >= h || col < 0 || col >= wd {
									continue
								}
								t := w.Data[((oc*cg+ci)*kh+a)*kw+q] * x.Data[((img*c+g*cg+ci)*h+r)*wd+col]
								s += t
								b += math.Abs(t)
							}
						}
					}
					k := ((img*o+oc)*oh+i)*ow + j
					y.Data[k], bound.Data[k] = s, b
				}
			}
		}
	}
	return y, bound
}

func toF32Dense(x *Dense[float64]) *Dense[float32] {
	y := NewDense[float32](x.Shape...)
	for i, v := range x.Data {
		y.Data[i] = float32(v)
	}
	return y
}

func toF32Slice(a []float64) []float32 {
	if a == nil {
		return nil
	}
	out := make([]float32, len(a))
	for i, v := range a {
		out[i] = float32(v)
	}
	return out
}

// checkConv compares got with the reference elementwise. A sum of K
// products in precision u is within γ_K·Σ|terms| ≤ 2K·u·Σ|terms| of the
// exact value (Higham, Accuracy and Stability, §3.1); the float64
// reference adds its own, smaller, error, and a float32 result also
// carries the rounding of its inputs (one u per factor, so 2u·Σ|terms|
// more): 2(K+2)·u covers both.
func checkConv[T Float](t *testing.T, got *Dense[T], want, bound *Dense[float64], k int, u float64) {
	t.Helper()
	if !sameShape(got.Shape, want.Shape) {
		t.Fatalf("shape %v, want %v", got.Shape, want.Shape)
	}
	tol := 2 * float64(k+2) * u
	for i, v := range got.Data {
		if d := math.Abs(float64(v) - want.Data[i]); !(d <= tol*bound.Data[i]) {
			t.Fatalf("element %d: %g, want %g (|diff| %g > %g)", i, v, want.Data[i], d, tol*bound.Data[i])
		}
	}
}

func TestConv2DAgainstDirectLoop(t *testing.T) {
	for _, b := range append(linalg.Backends(1), linalg.Backends(2)...) {
		for _, c := range convCases {
			t.Run(fmt.Sprintf("%s-%d/%s", b.Name(), b.Threads(), c.name), func(t *testing.T) {
				x, w, bias := c.data(1)
				want, bound := naiveConv(x, w, bias, c.p)
				k := w.Shape[1] * c.kh * c.kw
				y, err := Conv2D(b, x, w, bias, c.p)
				if err != nil {
					t.Fatal(err)
				}
				checkConv(t, y, want, bound, k, 0x1p-53)
				// float32 against the float64 reference of the rounded inputs.
				x32, w32, b32 := toF32Dense(x), toF32Dense(w), toF32Slice(bias)
				y32, err := Conv2D(b, x32, w32, b32, c.p)
				if err != nil {
					t.Fatal(err)
				}
				checkConv(t, y32, want, bound, k, 0x1p-24)
			})
		}
	}
}

func TestConv2DThreadsAgree(t *testing.T) {
	// im2col splits rows between goroutines without overlap, so with the
	// pure-Go GEMM (whose blocks do not depend on the thread count) the
	// result is the same bits for any budget.
	c := convCases[len(convCases)-1]
	x, w, bias := c.data(2)
	serial, err := Conv2D(linalg.NewGonum(1), x, w, bias, c.p)
	if err != nil {
		t.Fatal(err)
	}
	for _, th := range []int{2, 3, 7} {
		par, err := Conv2D(linalg.NewGonum(th), x, w, bias, c.p)
		if err != nil {
			t.Fatal(err)
		}
		for i := range serial.Data {
			if math.Float64bits(par.Data[i]) != math.Float64bits(serial.Data[i]) {
				t.Fatalf("threads %d: element %d is %g, serial %g", th, i, par.Data[i], serial.Data[i])
			}
		}
	}
}

func TestConv2DDoesNotModifyInputs(t *testing.T) {
	c := convCases[8]
	x, w, bias := c.data(3)
	x0, w0, b0 := x.Clone(), w.Clone(), append([]float64(nil), bias...)
	if _, err := Conv2D(linalg.Default(2), x, w, bias, c.p); err != nil {
		t.Fatal(err)
	}
	if !equalSlices(x.Data, x0.Data) || !equalSlices(w.Data, w0.Data) || !equalSlices(bias, b0) {
		t.Errorf("Conv2D modified its inputs")
	}
}

func equalSlices(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
			return false
		}
	}
	return true
}

func TestConv2DBadInput(t *testing.T) {
	b := linalg.NewGonum(1)
	x := NewDense[float64](1, 4, 5, 5)
	w := NewDense[float64](6, 2, 3, 3)
	cases := []struct {
		name  string
		x, w  *Dense[float64]
		bias  []float64
		p     ConvParams
		field string
	}{
		{"nil x", nil, w, nil, ConvParams{Groups: 2}, "x"},
		{"x order 3", NewDense[float64](4, 5, 5), w, nil, ConvParams{Groups: 2}, "x.shape"},
		{"w order 5", x, NewDense[float64](6, 2, 3, 3, 1), nil, ConvParams{Groups: 2}, "w.shape"},
		{"x zero channels", NewDense[float64](1, 0, 5, 5), w, nil, ConvParams{}, "x.shape[1]"},
		{"w zero height", x, NewDense[float64](6, 2, 0, 3), nil, ConvParams{Groups: 2}, "w.shape[2]"},
		{"x short data", &Dense[float64]{Shape: []int{1, 4, 5, 5}, Data: make([]float64, 99)}, w, nil, ConvParams{Groups: 2}, "x.data"},
		{"w long data", x, &Dense[float64]{Shape: []int{6, 2, 3, 3}, Data: make([]float64, 109)}, nil, ConvParams{Groups: 2}, "w.data"},
		{"channels mismatch", x, w, nil, ConvParams{}, "w.shape[1]"},
		{"groups do not divide C", x, NewDense[float64](6, 1, 3, 3), nil, ConvParams{Groups: 3}, "groups"},
		{"groups do not divide O", x, NewDense[float64](5, 1, 3, 3), nil, ConvParams{Groups: 4}, "groups"},
		{"negative groups", x, w, nil, ConvParams{Groups: -2}, "groups"},
		{"bias length", x, w, make([]float64, 5), ConvParams{Groups: 2}, "bias"},
		{"empty non-nil bias", x, w, []float64{}, ConvParams{Groups: 2}, "bias"},
		{"negative stride", x, w, nil, ConvParams{Groups: 2, Stride: [2]int{1, -1}}, "stride"},
		{"negative padding", x, w, nil, ConvParams{Groups: 2, Padding: [2]int{-1, 0}}, "padding"},
		{"negative dilation", x, w, nil, ConvParams{Groups: 2, Dilation: [2]int{0, -3}}, "dilation"},
		{"huge padding", x, w, nil, ConvParams{Groups: 2, Padding: [2]int{1 << 40, 0}}, "padding"},
		{"kernel too large", x, NewDense[float64](6, 2, 6, 3), nil, ConvParams{Groups: 2}, "x.shape"},
		{"dilated kernel too large", x, w, nil, ConvParams{Groups: 2, Dilation: [2]int{1, 3}}, "x.shape"},
	}
	for _, c := range cases {
		y, err := Conv2D(b, c.x, c.w, c.bias, c.p)
		var e *lowrank.Error
		if !errors.As(err, &e) || e.Code != lowrank.EINVALID || e.Field != c.field {
			t.Errorf("%s: %v (%#v), want EINVALID on %q", c.name, err, err, c.field)
		}
		if y != nil {
			t.Errorf("%s: non-nil result with an error", c.name)
		}
	}
	// The same shapes are fine with the right parameters.
	if _, err := Conv2D(b, x, w, make([]float64, 6), ConvParams{Groups: 2}); err != nil {
		t.Errorf("valid call: %v", err)
	}
}

// torchConv reads each case's x, w and bias (raw little-endian float64)
// and writes torch.nn.functional.conv2d's output beside them.
const torchConv = `
import json, os, sys
import numpy as np, torch
d = sys.argv[1]
for c in json.load(open(os.path.join(d, 'cases.json'))):
    rd = lambda name, shape: torch.from_numpy(np.fromfile(os.path.join(d, c['id'] + name), dtype='<f8').reshape(shape))
    x, w = rd('.x', c['x']), rd('.w', c['w'])
    b = rd('.b', [c['w'][0]]) if c['bias'] else None
    y = torch.nn.functional.conv2d(x, w, b, stride=c['stride'], padding=c['padding'], dilation=c['dilation'], groups=c['groups'])
    y.numpy().astype('<f8').tofile(os.path.join(d, c['id'] + '.y'))
    json.dump(list(y.shape), open(os.path.join(d, c['id'] + '.shape'), 'w'))
`

func TestConv2DAgainstTorch(t *testing.T) {
	py := pyfind.Require(t, "numpy", "torch")
	dir := t.TempDir()
	writeRaw := func(name string, a []float64) {
		var buf bytes.Buffer
		if err := binary.Write(&buf, binary.LittleEndian, a); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var cases []map[string]any
	for i, c := range convCases {
		if c.n == 0 {
			continue // torch rejects an empty batch for some builds
		}
		x, w, bias := c.data(uint64(100 + i))
		id := fmt.Sprintf("c%02d", i)
		writeRaw(id+".x", x.Data)
		writeRaw(id+".w", w.Data)
		if bias != nil {
			writeRaw(id+".b", bias)
		}
		or1 := func(v [2]int) [2]int { return [2]int{max(v[0], 1), max(v[1], 1)} }
		cases = append(cases, map[string]any{
			"id": id, "x": x.Shape, "w": w.Shape, "bias": bias != nil,
			"stride": or1(c.p.Stride), "padding": c.p.Padding, "dilation": or1(c.p.Dilation), "groups": max(1, c.p.Groups),
		})
	}
	js, _ := json.Marshal(cases)
	if err := os.WriteFile(filepath.Join(dir, "cases.json"), js, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, "-c", torchConv, dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	b := linalg.Default(2)
	for i, c := range convCases {
		if c.n == 0 {
			continue
		}
		id := fmt.Sprintf("c%02d", i)
		t.Run(c.name, func(t *testing.T) {
			x, w, bias := c.data(uint64(100 + i))
			got, err := Conv2D(b, x, w, bias, c.p)
			if err != nil {
				t.Fatal(err)
			}
			var shape []int
			sj, err := os.ReadFile(filepath.Join(dir, id+".shape"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(sj, &shape); err != nil {
				t.Fatal(err)
			}
			raw, err := os.ReadFile(filepath.Join(dir, id+".y"))
			if err != nil {
				t.Fatal(err)
			}
			want := &Dense[float64]{Shape: shape, Data: make([]float64, len(raw)/8)}
			if err := binary.Read(bytes.NewReader(raw), binary.LittleEndian, want.Data); err != nil {
				t.Fatal(err)
			}
			_, bound := naiveConv(x, w, bias, c.p)
			// Both results are float64 sums of the same K products in
			// different orders: each within 2K·u·Σ|terms| of the exact value.
			checkConv(t, got, want, bound, 2*w.Shape[1]*c.kh*c.kw, 0x1p-53)
		})
	}
}

// BenchmarkConv2D times a ResNet-like 3×3 layer (64→64 channels on 56×56,
// padding 1) and its depthwise variant, per backend:
//
//	go test -run '^$' -bench Conv2D -benchtime 5x ./internal/tensorops
func BenchmarkConv2D(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	x := randDense[float32](rng, 1, 64, 56, 56)
	for _, c := range []struct {
		name string
		w    *Dense[float32]
		p    ConvParams
	}{
		{"3x3", randDense[float32](rng, 64, 64, 3, 3), ConvParams{Padding: [2]int{1, 1}}},
		{"depthwise", randDense[float32](rng, 64, 1, 3, 3), ConvParams{Padding: [2]int{1, 1}, Groups: 64}},
		{"1x1", randDense[float32](rng, 64, 64, 1, 1), ConvParams{}},
	} {
		for _, be := range linalg.Backends(2) {
			b.Run(c.name+"/"+be.Name(), func(b *testing.B) {
				flops := 2 * 56 * 56 * float64(len(c.w.Data)) // multiply-adds per output pixel × pixels
				for b.Loop() {
					if _, err := Conv2D(be, x, c.w, nil, c.p); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
