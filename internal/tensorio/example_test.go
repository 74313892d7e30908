package tensorio_test

import (
	"bytes"
	"fmt"

	"github.com/lowrank/lowrank/internal/tensorio"
)

// A job writes its factors as one safetensors bundle; a download later
// lists the bundle and reads one factor without touching the others.
func Example() {
	u := &tensorio.Tensor{Name: "U", DType: tensorio.F16, Shape: []int{2, 2}, F32: []float32{1, 0.5, -1, 2}}
	s := &tensorio.Tensor{Name: "S", Shape: []int{2}, F64: []float64{3, 0.25}}
	var bundle bytes.Buffer
	if err := tensorio.WriteSafetensors(&bundle, []*tensorio.Tensor{u, s}, map[string]string{"method": "svd"}); err != nil {
		panic(err)
	}
	r := bytes.NewReader(bundle.Bytes())
	format, infos, err := tensorio.Inspect(r, r.Size())
	if err != nil {
		panic(err)
	}
	for _, in := range infos {
		fmt.Printf("%s %s %s %v bytes [%d,%d)\n", format, in.Name, in.DType, in.Shape, in.Offset, in.Offset+in.Length)
	}
	t, err := tensorio.ReadTensor(r, r.Size(), "S")
	if err != nil {
		panic(err)
	}
	fmt.Println(t.Name, t.DType, t.Shape, t.F64)

	_, err = tensorio.ReadTensor(r, r.Size(), "V")
	fmt.Println(err)
	// Output:
	// safetensors U F16 [2 2] bytes [152,160)
	// safetensors S F64 [2] bytes [160,176)
	// S F64 [2] [3 0.25]
	// tensor: safetensors: no tensor named "V"; the file holds "U", "S"
}
