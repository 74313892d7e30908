// Package examples holds scripts that use Lowrank's outputs from other
// tools, and the tests that run them.
package examples

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/lowrank/lowrank/internal/compress"
	"github.com/lowrank/lowrank/internal/linalg"
	"github.com/lowrank/lowrank/internal/pyfind"
	"github.com/lowrank/lowrank/internal/tensorio"
)

// demoWeights writes the state dict of pytorch_apply.py's DemoNet: each
// weight a low-rank matrix plus noise (so its spectrum decays, as trained
// weights' do), scaled by 1/sqrt(fan-in) to keep activations of order one.
func demoWeights(rng *rand.Rand) []*tensorio.Tensor {
	var ts []*tensorio.Tensor
	// add writes name.weight of shape and name.bias; hf says the weight is a
	// Hugging Face Conv1D's (in, out), generated as the transpose of an
	// (out, in) one.
	add := func(name string, shape []int, hf bool) {
		out, fanIn := shape[0], 1
		for _, d := range shape[1:] {
			fanIn *= d
		}
		if hf {
			out, fanIn = shape[1], shape[0]
		}
		k := max(2, min(out, fanIn)/4)
		a, b := make([]float64, out*k), make([]float64, k*fanIn)
		for i := range a {
			a[i] = rng.NormFloat64()
		}
		for i := range b {
			b[i] = rng.NormFloat64()
		}
		w := make([]float32, out*fanIn)
		scale := 1 / math.Sqrt(float64(k*fanIn))
		for i := range out {
			for j := range fanIn {
				var s float64
				for r := range k {
					s += a[i*k+r] * b[r*fanIn+j] * math.Pow(0.9, float64(r))
				}
				v := float32(scale * (s + 0.3*rng.NormFloat64()))
				if hf {
					w[j*out+i] = v
				} else {
					w[i*fanIn+j] = v
				}
			}
		}
		bias := make([]float32, out)
		for i := range bias {
			bias[i] = float32(0.05 * rng.NormFloat64())
		}
		ts = append(ts, &tensorio.Tensor{Name: name + ".weight", DType: tensorio.F32, Shape: shape, F32: w},
			&tensorio.Tensor{Name: name + ".bias", DType: tensorio.F32, Shape: []int{out}, F32: bias})
	}
	add("conv1", []int{32, 8, 3, 3}, false)
	add("conv2", []int{48, 32, 3, 3}, false)
	add("conv3", []int{64, 48, 1, 1}, false)
	add("fc1", []int{128, 1024}, false)
	add("proj", []int{128, 64}, true)
	add("fc2", []int{10, 64}, false)
	return ts
}

type checkOutput struct {
	Layers         map[string]float64 `json:"layers"`
	Model          float64            `json:"model"`
	LowrankVersion string             `json:"lowrank_version"`
}

// TestPyTorchApply compresses every layer of DemoNet to 40 % of its
// parameters, with Tucker-2 and with CP
// for its 3×3 convs, and has pytorch_apply.py rebuild the model in PyTorch
// from the compressed file and the manifest. Each rebuilt layer's output
// error on random inputs must match the reported weight error within 20 %
// (see compress's TestProofConv for why it is not exact), and the whole
// model's output error must stay below the sum of the layers' errors: each
// layer adds its own relative error, and ReLU and the following layers do
// not amplify it on average at these scales.
func TestPyTorchApply(t *testing.T) {
	py := pyfind.Require(t, "numpy", "torch")
	dir := t.TempDir()
	var src bytes.Buffer
	if err := tensorio.WriteSafetensors(&src, demoWeights(rand.New(rand.NewPCG(8, 1))), nil); err != nil {
		t.Fatal(err)
	}
	orig := filepath.Join(dir, "demo.safetensors")
	if err := os.WriteFile(orig, src.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, method := range []string{compress.MethodTucker2, compress.MethodCP} {
		p := compress.Policy{Rule: &compress.Rule{Compression: 0.4}, MinElements: 600, ConvMethod: method, Seed: 1, CPIterations: 200,
			Layouts: []compress.LayoutHint{
				{Pattern: "conv2.weight", Layout: compress.LayoutConv2D, Stride: []int{2, 2}},
				{Pattern: "proj.weight", Layout: compress.LayoutHFConv1D},
			}}
		var out bytes.Buffer
		o, err := compress.Run(context.Background(), linalg.Default(2), bytes.NewReader(src.Bytes()), int64(src.Len()), p, &out, compress.Options{Workers: 2, Version: "test"})
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		comp, man := filepath.Join(dir, method+".safetensors"), filepath.Join(dir, method+".json")
		mj, err := json.Marshal(o.Manifest)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(comp, out.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(man, mj, 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(py, "pytorch_apply.py", "--check", orig, comp, man)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		res, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: pytorch_apply.py: %v\n%s", method, err, stderr.String())
		}
		var got checkOutput
		if err := json.Unmarshal(res, &got); err != nil {
			t.Fatalf("%s: %v in %q", method, err, res)
		}
		if got.LowrankVersion != "test" {
			t.Errorf("%s: the checkpoint's version %q", method, got.LowrankVersion)
		}
		if len(got.Layers) != len(o.Manifest.Layers) || len(got.Layers) != 6 {
			t.Fatalf("%s: PyTorch checked %d layers, the manifest has %d", method, len(got.Layers), len(o.Manifest.Layers))
		}
		var sum float64
		for _, l := range o.Manifest.Layers {
			e := got.Layers[l.Name]
			t.Logf("%s %s (%s %v): PyTorch output error %.4f, reported weight error %.4f", method, l.Name, l.Method, l.Ranks, e, l.RelError)
			if math.Abs(e-l.RelError) > 0.2*l.RelError {
				t.Errorf("%s %s: PyTorch output error %.4f, reported weight error %.4f", method, l.Name, e, l.RelError)
			}
			sum += l.RelError
		}
		t.Logf("%s: model output error %.4f, Σ layer errors %.4f", method, got.Model, sum)
		if got.Model > sum || got.Model == 0 {
			t.Errorf("%s: model output error %.4f, Σ layer errors %.4f", method, got.Model, sum)
		}
	}
}
