package compress

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/lowrank/lowrank/internal/linalg"
	"github.com/lowrank/lowrank/internal/tensorio"
	"github.com/lowrank/lowrank/internal/tensorops"
)

// convCheckpoint holds four convolutions with different geometries: a
// 3×3 with stride 2, a 3×3 with dilation 2 and a kh ≠ kw kernel, a
// strided, padded 1×1, and a 3×3 with only 4 input channels.
func convCheckpoint(t *testing.T) ([]byte, Policy) {
	rng := rand.New(rand.NewPCG(11, 3))
	var ts []*tensorio.Tensor
	add := func(name string, shape []int, rate float64) {
		out, rest := shape[0], shape[1]*shape[2]*shape[3]
		ts = append(ts, tensor64(name+".weight", tensorio.F32, shape, withSpectrum(rng, out, rest, decaying(min(out, rest), 1, rate))))
		ts = append(ts, tensor64(name+".bias", tensorio.F32, shape[:1], gaussian(rng, out, 0.01)))
	}
	add("c1", []int{24, 16, 3, 3}, 0.9)
	add("c2", []int{20, 12, 3, 5}, 0.85)
	add("c3", []int{32, 24, 1, 1}, 0.9)
	add("c4", []int{24, 4, 3, 3}, 0.8) // rank 8 keeps the 4 input channels whole: no first 1×1
	p := Policy{
		Rule: &Rule{Rank: 8}, Seed: 3, InputSize: []int{11, 13}, TuckerIterations: 3, CPIterations: 200,
		Layouts: []LayoutHint{
			{Pattern: "c1.weight", Layout: LayoutConv2D, Stride: []int{2, 2}},
			{Pattern: "c2.weight", Layout: LayoutConv2D, Stride: []int{1, 2}, Dilation: []int{2, 1}, Padding: []int{2, 1}},
			{Pattern: "c3.weight", Layout: LayoutConv2D, Stride: []int{2, 2}, Padding: []int{1, 1}},
		},
	}
	return checkpoint(t, ts, nil), p
}

// TestProofConv applies each factored conv, original and rebuilt (the
// manifest's modules, each by tensorops.Conv2D with the geometry the
// manifest gives it), to random images. The relative output error matches
// the reported weight error within 20 %: with i.i.d. inputs every output
// pixel away from the border sees E‖ΔW·patch‖² = ‖ΔW‖², and the border
// pixels, whose patches are partly zero padding, weigh the kernel taps
// unevenly; on 11×13 images with 3×3 kernels that shifts the ratio by a few
// percent, and the batch's sampling spread adds a few more.
func TestProofConv(t *testing.T) {
	for _, method := range []string{MethodTucker2, MethodCP} {
		src, p := convCheckpoint(t)
		p.ConvMethod = method
		var out bytes.Buffer
		o, err := Run(context.Background(), linalg.Default(2), bytes.NewReader(src), int64(len(src)), p, &out, Options{Workers: 2})
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(2, 2))
		b := linalg.Default(2)
		read := func(data []byte, name string) *tensorops.Dense[float32] {
			tt, err := tensorio.ReadTensor(bytes.NewReader(data), int64(len(data)), name)
			if err != nil {
				t.Fatal(err)
			}
			return &tensorops.Dense[float32]{Shape: tt.Shape, Data: tt.F32}
		}
		for _, ml := range o.Manifest.Layers {
			l := ml
			w := read(src, l.Name)
			bias := read(src, ml.Modules[len(ml.Modules)-1].Bias).Data
			x := tensorops.NewDense[float32](4, l.Shape[1], 11, 13)
			for i := range x.Data {
				x.Data[i] = float32(rng.NormFloat64())
			}
			g := l.Geometry
			y, err := tensorops.Conv2D(b, x, w, bias, tensorops.ConvParams{Stride: g.Stride, Padding: g.Padding, Dilation: g.Dilation, Groups: 1})
			if err != nil {
				t.Fatal(err)
			}
			h := x
			for _, m := range ml.Modules {
				var mb []float32
				if m.Bias != "" {
					mb = bias
				}
				cp := tensorops.ConvParams{Stride: [2]int{1, 1}, Dilation: [2]int{1, 1}, Groups: m.Groups}
				for a := range 2 {
					if m.Geometry == GeometryOriginal || m.Geometry == GeometryOriginalH && a == 0 || m.Geometry == GeometryOriginalW && a == 1 {
						cp.Stride[a], cp.Padding[a], cp.Dilation[a] = g.Stride[a], g.Padding[a], g.Dilation[a]
					}
				}
				if h, err = tensorops.Conv2D(b, h, read(out.Bytes(), m.Weight), mb, cp); err != nil {
					t.Fatalf("%s %s: %v", method, m.Weight, err)
				}
			}
			if !equalShape(h.Shape, y.Shape) {
				t.Fatalf("%s %s: rebuilt output %v, original %v", method, l.Name, h.Shape, y.Shape)
			}
			yd, hd := make([]float64, len(y.Data)), make([]float64, len(h.Data))
			for i := range yd {
				yd[i], hd[i] = float64(y.Data[i]), float64(h.Data[i])
			}
			got := relDiff(hd, yd)
			t.Logf("%s %s: output error %.4f, weight error %.4f", method, l.Name, got, l.RelError)
			if got > 1.2*l.RelError || got < 0.8*l.RelError {
				t.Errorf("%s %s: output error %.4f, reported weight error %.4f", method, l.Name, got, l.RelError)
			}
		}
		if len(o.Manifest.Layers) != 4 {
			t.Errorf("%s: %d layers factored, want 4", method, len(o.Manifest.Layers))
		}
	}
}

func equalShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestVerifyOutput: Run with Verify records, for every factored layer of
// both test checkpoints, an output error within 20 % of the weight error
// (the tolerance of TestProofConv, for the same reasons).
func TestVerifyOutput(t *testing.T) {
	src, p := convCheckpoint(t)
	p.ConvMethod = MethodCP
	for _, c := range []struct {
		src []byte
		p   Policy
	}{{synthCheckpoint(t, 1), synthPolicy()}, {src, p}} {
		o, err := Run(context.Background(), linalg.Default(2), bytes.NewReader(c.src), int64(len(c.src)), c.p, &bytes.Buffer{}, Options{Workers: 2, Verify: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range o.Report.Layers {
			if l.Kept {
				continue
			}
			if l.OutputRelError == nil || math.Abs(*l.OutputRelError-l.RelError) > 0.2*l.RelError {
				t.Errorf("%s (%s): output error %v, weight error %.4f", l.Name, l.Method, l.OutputRelError, l.RelError)
				continue
			}
			t.Logf("%s (%s): output error %.4f, weight error %.4f", l.Name, l.Method, *l.OutputRelError, l.RelError)
		}
	}
}
