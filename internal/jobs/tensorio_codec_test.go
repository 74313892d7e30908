package jobs

import (
	"bytes"
	"fmt"
	"math"
	"testing"

	"github.com/lowrank/lowrank/internal/tensorio"
)

// TestReadRawMatchesDecode checks that the in-place read of stored
// float32/float64 data gives bit for bit what tensorio's decoder gives,
// and that it declines every layout it cannot read in place.
func TestReadRawMatchesDecode(t *testing.T) {
	// Values whose bits a wrong byte order or stride would scramble,
	// including a NaN payload, −0, a subnormal and infinities.
	vals := []float64{1, -2.5, math.Copysign(0, -1), math.NaN(), 5e-324, math.Inf(1), math.Inf(-1), 3.25, -7, 1e300, 0.1, 42}
	f32 := func(shape ...int) *tensorio.Tensor {
		n := 1
		for _, d := range shape {
			n *= d
		}
		x := &tensorio.Tensor{Name: "a", DType: tensorio.F32, Shape: shape, F32: make([]float32, n)}
		for i := range x.F32 {
			x.F32[i] = float32(vals[i%len(vals)]) * float32(1+i/len(vals))
		}
		return x
	}
	f64 := func(shape ...int) *tensorio.Tensor {
		n := 1
		for _, d := range shape {
			n *= d
		}
		x := &tensorio.Tensor{Name: "b", DType: tensorio.F64, Shape: shape, F64: make([]float64, n)}
		for i := range x.F64 {
			x.F64[i] = vals[i%len(vals)] * float64(1+i/len(vals))
		}
		return x
	}
	write := func(f func(*bytes.Buffer) error) []byte {
		var b bytes.Buffer
		if err := f(&b); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	npy := func(x *tensorio.Tensor) []byte {
		return write(func(b *bytes.Buffer) error { x.Name = ""; return tensorio.WriteNPY(b, x) })
	}
	// A hand-made .npy header (version 1.0, padded so data starts at 128).
	rawNPY := func(descr string, fortran bool, shape string, data []byte) []byte {
		h := fmt.Sprintf("{'descr': '%s', 'fortran_order': %s, 'shape': %s, }", descr, map[bool]string{false: "False", true: "True"}[fortran], shape)
		h += string(bytes.Repeat([]byte(" "), 128-10-len(h)-1)) + "\n"
		out := append([]byte("\x93NUMPY\x01\x00"), byte(len(h)), 0)
		return append(append(out, h...), data...)
	}
	be := make([]byte, 0, 24) // [1, 2, 3] as big-endian float64
	for _, v := range []float64{1, 2, 3} {
		u := math.Float64bits(v)
		for s := 56; s >= 0; s -= 8 {
			be = append(be, byte(u>>s))
		}
	}
	le := make([]byte, 0, 24) // [[1, 2, 3]] stored column-major
	for _, v := range []float64{1, 2, 3} {
		u := math.Float64bits(v)
		for s := 0; s < 64; s += 8 {
			le = append(le, byte(u>>s))
		}
	}
	st := write(func(b *bytes.Buffer) error {
		return tensorio.WriteSafetensors(b, []*tensorio.Tensor{f32(3, 5), f64(2, 2, 3)}, nil)
	})
	half := &tensorio.Tensor{Name: "h", DType: tensorio.F16, Shape: []int{2}, F32: []float32{1, 2}}
	for _, tc := range []struct {
		what    string
		file    []byte
		name    string
		inPlace bool
	}{
		{"f32 npy", npy(f32(7, 9)), "", true},
		{"f64 npy", npy(f64(4, 1, 3)), "", true},
		{"f32 npy 1 element", npy(f32(1)), "", true},
		{"f32 npy 0 elements", npy(f32(0, 4)), "", false},
		{"safetensors f32", st, "a", true},
		{"safetensors f64", st, "b", true},
		{"safetensors by no name", st, "", false},
		{"stored npz", write(func(b *bytes.Buffer) error { return tensorio.WriteNPZ(b, []*tensorio.Tensor{f32(2, 3)}, false) }), "a", true},
		{"deflated npz", write(func(b *bytes.Buffer) error { return tensorio.WriteNPZ(b, []*tensorio.Tensor{f32(2, 3)}, true) }), "a", false},
		{"big-endian npy", rawNPY(">f8", false, "(3,)", be), "", false},
		{"fortran npy", rawNPY("<f8", true, "(1, 3)", le), "", false},
		{"f16 safetensors", write(func(b *bytes.Buffer) error { return tensorio.WriteSafetensors(b, []*tensorio.Tensor{half}, nil) }), "h", false},
	} {
		c := TensorioCodec{}
		r := bytes.NewReader(tc.file)
		raw := c.readRaw(r, int64(len(tc.file)), tc.name)
		if (raw != nil) != tc.inPlace {
			t.Errorf("%s: read in place %v, want %v", tc.what, raw != nil, tc.inPlace)
		}
		got, err := c.ReadTensor(r, int64(len(tc.file)), tc.name)
		want, werr := tensorio.Limits{}.ReadTensor(r, int64(len(tc.file)), tc.name)
		if (err != nil) != (werr != nil) {
			t.Fatalf("%s: error %v, tensorio's %v", tc.what, err, werr)
		}
		if err != nil {
			continue
		}
		if got.Name != want.Name || fmt.Sprint(got.Shape) != fmt.Sprint(want.Shape) || got.DType != toAPIDType(want.DType) ||
			len(got.F32) != len(want.F32) || len(got.F64) != len(want.F64) {
			t.Fatalf("%s: got %s %s %v (%d f32, %d f64), want %s %s %v (%d, %d)", tc.what, got.Name, got.DType, got.Shape, len(got.F32), len(got.F64),
				want.Name, want.DType, want.Shape, len(want.F32), len(want.F64))
		}
		for i := range got.F32 {
			if math.Float32bits(got.F32[i]) != math.Float32bits(want.F32[i]) {
				t.Fatalf("%s: F32[%d] = %v, want %v", tc.what, i, got.F32[i], want.F32[i])
			}
		}
		for i := range got.F64 {
			if math.Float64bits(got.F64[i]) != math.Float64bits(want.F64[i]) {
				t.Fatalf("%s: F64[%d] = %v, want %v", tc.what, i, got.F64[i], want.F64[i])
			}
		}
	}
	// A file cut short in its data falls back, and tensorio reports it.
	full := npy(f64(10, 10))
	short := full[:len(full)-8]
	if raw := (TensorioCodec{}).readRaw(bytes.NewReader(short), int64(len(short)), ""); raw != nil {
		t.Error("a truncated file was read in place")
	}
	if _, err := (TensorioCodec{}).ReadTensor(bytes.NewReader(short), int64(len(short)), ""); err == nil {
		t.Error("a truncated file read without error")
	}
}
