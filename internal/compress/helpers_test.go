package compress

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/lowrank/lowrank"
	"github.com/lowrank/lowrank/internal/tensorio"
)

// orthonormal returns an n×k matrix (row-major) with orthonormal columns,
// from the QR factorisation of a Gaussian one.
func orthonormal(rng *rand.Rand, n, k int) []float64 {
	g := mat.NewDense(n, k, nil)
	for i := range n {
		for j := range k {
			g.Set(i, j, rng.NormFloat64())
		}
	}
	var qr mat.QR
	qr.Factorize(g)
	var q mat.Dense
	qr.QTo(&q)
	out := make([]float64, n*k)
	for i := range n {
		for j := range k {
			out[i*k+j] = q.At(i, j)
		}
	}
	return out
}

// withSpectrum returns the m×n matrix U·diag(s)·Vᵀ with random orthonormal
// U and V, so its singular values are s (len(s) ≤ min(m, n)).
func withSpectrum(rng *rand.Rand, m, n int, s []float64) []float64 {
	k := len(s)
	u, v := orthonormal(rng, m, k), orthonormal(rng, n, k)
	a := make([]float64, m*n)
	for i := range m {
		for j := range n {
			var sum float64
			for r := range k {
				sum += u[i*k+r] * s[r] * v[j*k+r]
			}
			a[i*n+j] = sum
		}
	}
	return a
}

// decaying returns p singular values σᵢ = scale·rate^i.
func decaying(p int, scale, rate float64) []float64 {
	s := make([]float64, p)
	for i := range s {
		s[i] = scale * math.Pow(rate, float64(i))
	}
	return s
}

func gaussian(rng *rand.Rand, n int, scale float64) []float64 {
	x := make([]float64, n)
	for i := range x {
		x[i] = scale * rng.NormFloat64()
	}
	return x
}

// tensor64 makes a tensor of dtype dt from float64 data (rounded to dt).
func tensor64(name string, dt tensorio.DType, shape []int, x []float64) *tensorio.Tensor {
	t := &tensorio.Tensor{Name: name, DType: dt, Shape: shape}
	if dt == tensorio.F64 {
		t.F64 = x
		return t
	}
	t.F32 = make([]float32, len(x))
	for i, v := range x {
		t.F32[i] = float32(v)
	}
	roundTo(dt, t.F32)
	return t
}

// checkpoint writes tensors as a safetensors file in memory.
func checkpoint(t *testing.T, tensors []*tensorio.Tensor, meta map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := tensorio.WriteSafetensors(&buf, tensors, meta); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// wantCode fails unless err is a *lowrank.Error with code and field.
func wantCode(t *testing.T, err error, code, field string) {
	t.Helper()
	var e *lowrank.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T), want a *lowrank.Error %s on %q", err, err, code, field)
	}
	if e.Code != code || e.Field != field {
		t.Fatalf("error %s on %q (%v), want %s on %q", e.Code, e.Field, err, code, field)
	}
}

// toF64 returns a tensor's data as float64.
func toF64(t *tensorio.Tensor) []float64 {
	if t.F64 != nil {
		return t.F64
	}
	x := make([]float64, len(t.F32))
	for i, v := range t.F32 {
		x[i] = float64(v)
	}
	return x
}

// relDiff is ‖a − b‖/‖b‖.
func relDiff(a, b []float64) float64 {
	var num, den float64
	for i := range a {
		d := a[i] - b[i]
		num += d * d
		den += b[i] * b[i]
	}
	return math.Sqrt(num / den)
}
