package compress_test

import (
	"bytes"
	"context"
	"fmt"

	"github.com/lowrank/lowrank/internal/compress"
	"github.com/lowrank/lowrank/internal/linalg"
	"github.com/lowrank/lowrank/internal/tensorio"
)

func ExampleRun() {
	// A checkpoint with one 64×96 Linear weight of rank 2 (every row mixes
	// the same two vectors), its bias and a norm; every layer keeps 99.9 %
	// of its energy.
	w := make([]float64, 64*96)
	for i := range 64 {
		for j := range 96 {
			w[i*96+j] = float64(i%3+1) * float64((j*7)%5-2)
			if i%2 == 1 {
				w[i*96+j] += float64(j % 4)
			}
		}
	}
	var src bytes.Buffer
	_ = tensorio.WriteSafetensors(&src, []*tensorio.Tensor{
		{Name: "fc.weight", DType: tensorio.F64, Shape: []int{64, 96}, F64: w},
		{Name: "fc.bias", DType: tensorio.F64, Shape: []int{64}, F64: make([]float64, 64)},
		{Name: "norm.weight", DType: tensorio.F64, Shape: []int{96}, F64: make([]float64, 96)},
	}, nil)
	policy, err := compress.ParsePolicy([]byte(`{"rule": {"energy": 0.999}, "min_elements": 1024}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	var out bytes.Buffer
	o, err := compress.Run(context.Background(), linalg.Default(1), bytes.NewReader(src.Bytes()), int64(src.Len()), policy, &out, compress.Options{Version: "example"})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, l := range o.Manifest.Layers {
		fmt.Printf("%s %v: %s rank %v, error %.3f, %d → %d parameters\n", l.Name, l.Shape, l.Method, l.Ranks, l.RelError, l.ParamsBefore, l.ParamsAfter)
		for _, m := range l.Modules {
			fmt.Printf("  %s %d→%d weight %s bias %q\n", m.Type, m.In, m.Out, m.Weight, m.Bias)
		}
	}
	_, infos, _ := tensorio.Inspect(bytes.NewReader(out.Bytes()), int64(out.Len()))
	for _, in := range infos {
		fmt.Println(in.Name, in.Shape)
	}
	// Output:
	// fc.weight [64 96]: svd rank [2], error 0.000, 6144 → 320 parameters
	//   linear 96→2 weight fc.lowrank.0.weight bias ""
	//   linear 2→64 weight fc.lowrank.1.weight bias "fc.bias"
	// fc.lowrank.0.weight [2 96]
	// fc.lowrank.1.weight [64 2]
	// fc.bias [64]
	// norm.weight [96]
}
