package linalg

import (
	"math"
	"testing"

	"gonum.org/v1/gonum/blas"
)

// The generic wrappers only route by type; one product per type shows the
// routing and the argument order are right.
func TestGenericGemmRoutes(t *testing.T) {
	b := NewGonum(1)
	// [1 2; 3 4] * [5 6; 7 8] = [19 22; 43 50]
	want := []float64{19, 22, 43, 50}
	c32 := make([]float32, 4)
	Gemm(b, blas.NoTrans, blas.NoTrans, 2, 2, 2, 1, []float32{1, 2, 3, 4}, 2, []float32{5, 6, 7, 8}, 2, 0, c32, 2)
	c64 := make([]float64, 4)
	Gemm(b, blas.NoTrans, blas.NoTrans, 2, 2, 2, 1, []float64{1, 2, 3, 4}, 2, []float64{5, 6, 7, 8}, 2, 0, c64, 2)
	for i, w := range want {
		if float64(c32[i]) != w || c64[i] != w {
			t.Fatalf("element %d: float32 %v, float64 %v, want %v", i, c32[i], c64[i], w)
		}
	}
}

func TestGenericRejectsNamedType(t *testing.T) {
	type weight float32
	defer func() {
		if r := recover(); r != errElemType {
			t.Fatalf("recover() = %v, want %q", r, errElemType)
		}
	}()
	Geqrf(NewGonum(1), 1, 1, []weight{1}, 1, []weight{0})
}

func TestDescribe(t *testing.T) {
	if got, want := Describe(NewGonum(2)), "gonum (pure Go), threads=2"; got != want {
		t.Errorf("Describe(NewGonum(2)) = %q, want %q", got, want)
	}
	for _, b := range Backends(3) {
		d := Describe(b)
		if len(d) < len(b.Name()) || d[:len(b.Name())] != b.Name() || d[len(d)-len("threads=3"):] != "threads=3" {
			t.Errorf("Describe(%s) = %q, want the name first and threads=3 last", b.Name(), d)
		}
	}
}

func TestSumSquares(t *testing.T) {
	for n := range 10 {
		x := make([]float32, n)
		var want float64
		for i := range x {
			x[i] = float32(i) - 2.5
			want += float64(x[i]) * float64(x[i])
		}
		if got := SumSquares(x); got != want {
			t.Errorf("n=%d: SumSquares = %v, want %v", n, got, want)
		}
		if n > 0 {
			x[n-1] = float32(math.NaN())
			if got := SumSquares(x); !math.IsNaN(got) {
				t.Errorf("n=%d: SumSquares with a NaN = %v", n, got)
			}
		}
	}
}
