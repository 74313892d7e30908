package tensorio

import (
	"bytes"
	"testing"
)

// BenchmarkReadSafetensors decodes a 4 Mi-element tensor of each dtype.
func BenchmarkReadSafetensors(b *testing.B) {
	for _, dt := range []DType{F16, BF16, F32, F64} {
		b.Run(string(dt), func(b *testing.B) {
			tt := &Tensor{Name: "w", DType: dt, Shape: []int{1024, 4096}, F32: make([]float32, 1024*4096)}
			for i := range tt.F32 {
				tt.F32[i] = float32(i%1000) / 7
			}
			var buf bytes.Buffer
			if err := WriteSafetensors(&buf, []*Tensor{tt}, nil); err != nil {
				b.Fatal(err)
			}
			file := buf.Bytes()
			b.SetBytes(int64(len(file)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := ReadTensor(bytes.NewReader(file), int64(len(file)), "w"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWriteSafetensors encodes a 4 Mi-element float32 tensor.
func BenchmarkWriteSafetensors(b *testing.B) {
	for _, dt := range []DType{F16, BF16, F32, F64} {
		b.Run(string(dt), func(b *testing.B) {
			tt := &Tensor{Name: "w", DType: dt, Shape: []int{1024, 4096}, F32: make([]float32, 1024*4096)}
			for i := range tt.F32 {
				tt.F32[i] = float32(i%1000) / 7
			}
			b.SetBytes(int64(len(tt.F32) * dt.Size()))
			var buf bytes.Buffer
			for i := 0; i < b.N; i++ {
				buf.Reset()
				if err := WriteSafetensors(&buf, []*Tensor{tt}, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
