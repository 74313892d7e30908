package tensorops

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/lowrank/lowrank/internal/linalg"
)

// Shapes of orders 1 to 5, with modes of size 1 and conv-like tiny modes.
var testShapes = [][]int{
	{5},
	{1, 1},
	{4, 3},
	{3, 1, 4},
	{2, 3, 4},
	{5, 4, 3, 3},
	{1, 3, 1, 2},
	{3, 2, 2, 3, 2},
	{2, 1, 3, 1, 2},
}

func randDense[T Float](rng *rand.Rand, shape ...int) *Dense[T] {
	x := NewDense[T](shape...)
	for i := range x.Data {
		x.Data[i] = T(rng.NormFloat64())
	}
	return x
}

func randMatrix[T Float](rng *rand.Rand, rows, cols int) *Matrix[T] {
	m := NewMatrix[T](rows, cols)
	for i := range m.Data {
		m.Data[i] = T(rng.NormFloat64())
	}
	return m
}

// offset is the row-major offset of idx in shape, written out the slow way.
func offset(shape, idx []int) int {
	o := 0
	for k := range shape {
		o = o*shape[k] + idx[k]
	}
	return o
}

// forEachIndex calls fn with every multi-index of shape in row-major order.
func forEachIndex(shape []int, fn func(idx []int)) {
	idx := make([]int, len(shape))
	for range sizeOf(shape) {
		fn(idx)
		for k := len(shape) - 1; k >= 0; k-- {
			idx[k]++
			if idx[k] < shape[k] {
				break
			}
			idx[k] = 0
		}
	}
}

// koldaColumn is Kolda & Bader's column index of idx in the mode-n unfolding.
func koldaColumn(shape, idx []int, n int) int {
	j, stride := 0, 1
	for k := range shape {
		if k == n {
			continue
		}
		j += idx[k] * stride
		stride *= shape[k]
	}
	return j
}

func TestUnfoldFold(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, shape := range testShapes {
		x := randDense[float64](rng, shape...)
		for n := range shape {
			m := x.Unfold(n)
			if m.Rows != shape[n] || m.Rows*m.Cols != x.Len() {
				t.Fatalf("shape %v mode %d: unfolding is %d×%d", shape, n, m.Rows, m.Cols)
			}
			forEachIndex(shape, func(idx []int) {
				got := m.At(idx[n], koldaColumn(shape, idx, n))
				if want := x.Data[offset(shape, idx)]; got != want {
					t.Fatalf("shape %v mode %d idx %v: X(n) holds %v, want %v", shape, n, idx, got, want)
				}
			})
			y := Fold(m, n, shape)
			for i := range y.Data {
				if y.Data[i] != x.Data[i] {
					t.Fatalf("shape %v mode %d: fold(unfold(x)) differs at %d", shape, n, i)
				}
			}
		}
	}
}

func TestKhatriRao(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	a := randMatrix[float64](rng, 3, 4)
	b := randMatrix[float64](rng, 1, 4)
	c := randMatrix[float64](rng, 2, 4)
	k := KhatriRao(a, b, c)
	if k.Rows != 6 || k.Cols != 4 {
		t.Fatalf("shape %d×%d, want 6×4", k.Rows, k.Cols)
	}
	for i := range 3 {
		for l := range 2 {
			for r := range 4 {
				want := a.At(i, r) * b.At(0, r) * c.At(l, r)
				if got := k.At(i*2+l, r); got != want {
					t.Fatalf("row (%d,0,%d) col %d: %v, want %v", i, l, r, got, want)
				}
			}
		}
	}
}

// TestKoldaIdentity checks the documented identity
// X(n) = Aₙ·diag(λ)·(A_{N−1} ⊙ … ⊙ A_{n+1} ⊙ A_{n−1} ⊙ … ⊙ A₀)ᵀ.
func TestKoldaIdentity(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	shape := []int{3, 2, 4, 2}
	r := 3
	factors := make([]*Matrix[float64], len(shape))
	for k, d := range shape {
		factors[k] = randMatrix[float64](rng, d, r)
	}
	lambda := []float64{1.5, -0.5, 2}
	x := cpTensor(shape, factors, lambda)
	for n := range shape {
		var rev []*Matrix[float64]
		for k := len(shape) - 1; k >= 0; k-- {
			if k != n {
				rev = append(rev, factors[k])
			}
		}
		kr := KhatriRao(rev...)
		xn := x.Unfold(n)
		for i := range xn.Rows {
			for j := range xn.Cols {
				var want float64
				for c := range r {
					want += factors[n].At(i, c) * lambda[c] * kr.At(j, c)
				}
				if d := math.Abs(xn.At(i, j) - want); d > 1e-12 {
					t.Fatalf("mode %d (%d,%d): off by %g", n, i, j, d)
				}
			}
		}
	}
}

// cpTensor builds Σ_r λ_r a₀,r ∘ … ∘ a_{N−1},r by the definition.
func cpTensor[T Float](shape []int, factors []*Matrix[T], lambda []float64) *Dense[T] {
	x := NewDense[T](shape...)
	r := len(lambda)
	forEachIndex(shape, func(idx []int) {
		var s float64
		for c := range r {
			p := lambda[c]
			for k, f := range factors {
				p *= float64(f.At(idx[k], c))
			}
			s += p
		}
		x.Data[offset(shape, idx)] = T(s)
	})
	return x
}

func naiveModeProduct(x *Dense[float64], u *Matrix[float64], n int, transpose bool) *Dense[float64] {
	j := u.Rows
	if transpose {
		j = u.Cols
	}
	shape := append([]int(nil), x.Shape...)
	shape[n] = j
	y := NewDense[float64](shape...)
	forEachIndex(shape, func(idx []int) {
		src := append([]int(nil), idx...)
		var s float64
		for i := range x.Shape[n] {
			src[n] = i
			w := 0.0
			if transpose {
				w = u.At(i, idx[n])
			} else {
				w = u.At(idx[n], i)
			}
			s += w * x.Data[offset(x.Shape, src)]
		}
		y.Data[offset(shape, idx)] = s
	})
	return y
}

func TestModeProduct(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	// The small shapes' middle modes run ttmTiny; (3, 40, 30, 2)'s mode 1
	// has slabs past ttmTinySlab, one GEMM each.
	shapes := append(slices.Clone(testShapes), []int{3, 40, 30, 2})
	for _, b := range linalg.Backends(2) {
		for _, shape := range shapes {
			x := randDense[float64](rng, shape...)
			for n := range shape {
				for _, transpose := range []bool{false, true} {
					for _, j := range []int{1, 2, 5} {
						var u *Matrix[float64]
						if transpose {
							u = randMatrix[float64](rng, shape[n], j)
						} else {
							u = randMatrix[float64](rng, j, shape[n])
						}
						got := ModeProduct(b, x, u, n, transpose)
						want := naiveModeProduct(x, u, n, transpose)
						// Sums of ≤ 5 products of N(0,1) values: 1e-13 is
						// a few hundred ulps.
						assertClose(t, fmt.Sprintf("%s %v n=%d T=%v j=%d", b.Name(), shape, n, transpose, j), got.Data, want.Data, 1e-13)
					}
				}
			}
		}
	}
}

func TestMultiModeProduct(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	b := linalg.Default(2)
	shape := []int{4, 3, 5, 2}
	x := randDense[float64](rng, shape...)
	us := []*Matrix[float64]{randMatrix[float64](rng, 4, 2), nil, randMatrix[float64](rng, 5, 5), randMatrix[float64](rng, 2, 1)}
	got := MultiModeProduct(b, x, us, true)
	want := x
	for n, u := range us {
		if u != nil {
			want = naiveModeProduct(want, u, n, true)
		}
	}
	if !sameShape(got.Shape, want.Shape) {
		t.Fatalf("shape %v, want %v", got.Shape, want.Shape)
	}
	assertClose(t, "multi", got.Data, want.Data, 1e-12)
}

func naiveMTTKRP(x *Dense[float64], factors []*Matrix[float64], n int) *Matrix[float64] {
	r := factors[(n+1)%len(factors)].Cols
	m := NewMatrix[float64](x.Shape[n], r)
	forEachIndex(x.Shape, func(idx []int) {
		v := x.Data[offset(x.Shape, idx)]
		for c := range r {
			p := v
			for k, f := range factors {
				if k != n {
					p *= f.At(idx[k], c)
				}
			}
			m.Data[idx[n]*r+c] += p
		}
	})
	return m
}

func TestMTTKRP(t *testing.T) {
	defer func(old int) { blockElems = old }(blockElems)
	rng := rand.New(rand.NewPCG(11, 12))
	ctx := context.Background()
	// blockElems 7 forces one-row blocks and partial last blocks.
	for _, be := range []int{1 << 18, 7, 40} {
		blockElems = be
		for _, b := range linalg.Backends(2) {
			for _, shape := range testShapes[1:] {
				for _, r := range []int{1, 3, 8} {
					x := randDense[float64](rng, shape...)
					factors := make([]*Matrix[float64], len(shape))
					for k, d := range shape {
						factors[k] = randMatrix[float64](rng, d, r)
					}
					for n := range shape {
						got, err := MTTKRP(ctx, b, x, factors, n)
						if err != nil {
							t.Fatal(err)
						}
						want := naiveMTTKRP(x, factors, n)
						assertClose(t, fmt.Sprintf("%s block=%d %v r=%d n=%d", b.Name(), be, shape, r, n), got.Data, want.Data, 1e-12)

						// The same through the Kolda unfolding and an explicit
						// Khatri–Rao product.
						var rev []*Matrix[float64]
						for k := len(shape) - 1; k >= 0; k-- {
							if k != n {
								rev = append(rev, factors[k])
							}
						}
						kr := KhatriRao(rev...)
						xn := x.Unfold(n)
						viaKR := make([]float64, shape[n]*r)
						for i := range shape[n] {
							for c := range r {
								for j := range xn.Cols {
									viaKR[i*r+c] += xn.At(i, j) * kr.At(j, c)
								}
							}
						}
						assertClose(t, "via explicit Khatri-Rao", got.Data, viaKR, 1e-12)
					}
				}
			}
		}
	}
}

func TestMTTKRPFloat32(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	shape := []int{6, 5, 3, 3}
	x64 := randDense[float64](rng, shape...)
	x32 := NewDense[float32](shape...)
	for i, v := range x64.Data {
		x32.Data[i] = float32(v)
	}
	f64 := make([]*Matrix[float64], 4)
	f32 := make([]*Matrix[float32], 4)
	for k, d := range shape {
		f64[k] = randMatrix[float64](rng, d, 4)
		f32[k] = NewMatrix[float32](d, 4)
		for i, v := range f64[k].Data {
			f64[k].Data[i] = float64(float32(v))
			f32[k].Data[i] = float32(v)
		}
	}
	for i, v := range x32.Data {
		x64.Data[i] = float64(v)
	}
	for _, b := range linalg.Backends(2) {
		for n := range shape {
			got, err := MTTKRP(context.Background(), b, x32, f32, n)
			if err != nil {
				t.Fatal(err)
			}
			want := naiveMTTKRP(x64, f64, n)
			w32 := make([]float32, len(want.Data))
			for i, v := range want.Data {
				w32[i] = float32(v)
			}
			// 50 terms summed in float32: relative error ~50·2⁻²⁴.
			assertClose(t, fmt.Sprintf("%s f32 n=%d", b.Name(), n), got.Data, w32, 1e-5)
		}
	}
}

func TestMTTKRPCancel(t *testing.T) {
	defer func(old int) { blockElems = old }(blockElems)
	blockElems = 4
	rng := rand.New(rand.NewPCG(15, 16))
	x := randDense[float64](rng, 8, 8, 8)
	factors := []*Matrix[float64]{randMatrix[float64](rng, 8, 2), randMatrix[float64](rng, 8, 2), randMatrix[float64](rng, 8, 2)}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for n := range 3 {
		if _, err := MTTKRP(ctx, linalg.Default(1), x, factors, n); err == nil {
			t.Fatalf("mode %d: no error from a canceled context", n)
		}
	}
}

// assertClose fails unless |got−want| ≤ tol·max(1, max|want|) elementwise.
func assertClose[T Float](t *testing.T, what string, got, want []T, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d elements, want %d", what, len(got), len(want))
	}
	scale := 1.0
	for _, w := range want {
		scale = max(scale, math.Abs(float64(w)))
	}
	for i := range got {
		if d := math.Abs(float64(got[i]) - float64(want[i])); !(d <= tol*scale) {
			t.Fatalf("%s: element %d is %v, want %v (|diff| %g > %g)", what, i, got[i], want[i], d, tol*scale)
		}
	}
}

// TestModeGramSplit: the mode-0 Gram summed over column ranges on any
// number of threads, including counts where the ranges number fewer than
// the threads (q = 5 on 4 threads: ranges of 2, 2, 1), matches the
// single-threaded one to rounding.
func TestModeGramSplit(t *testing.T) {
	const in = 1024 // in²·q/2 above splitMinWork, so the split happens
	for _, q := range []int{1, 5, 7} {
		rng := rand.New(rand.NewPCG(8, uint64(q)))
		x := make([]float64, in*q)
		for i := range x {
			x[i] = rng.NormFloat64()
		}
		want := make([]float64, in*in)
		if err := modeGram(context.Background(), linalg.NewGonum(1), x, []int{in, q}, 0, want); err != nil {
			t.Fatal(err)
		}
		for _, threads := range []int{2, 3, 4, 8} {
			got := make([]float64, in*in)
			if err := modeGram(context.Background(), linalg.NewGonum(threads), x, []int{in, q}, 0, got); err != nil {
				t.Fatal(err)
			}
			for i := range in {
				for j := i; j < in; j++ {
					// q products summed in another grouping: a few u·Σ|x_ik x_jk|.
					if d := math.Abs(got[i*in+j] - want[i*in+j]); d > 1e-13*float64(q) {
						t.Fatalf("q=%d threads=%d: G(%d, %d) = %v, want %v", q, threads, i, j, got[i*in+j], want[i*in+j])
					}
				}
			}
		}
	}
}

// TestDenseValidateValues: a NaN or ±Inf anywhere is named by its index;
// finite entries whose squares overflow float64 are valid.
func TestDenseValidateValues(t *testing.T) {
	for _, bad := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		for _, at := range []int{0, 6, 10} {
			x := NewDense[float64](11)
			x.Data[at] = bad
			err := x.Validate()
			assertInvalid(t, err, "tensor.data")
			if want := fmt.Sprintf("element %d is", at); !strings.Contains(err.Error(), want) {
				t.Errorf("%v at %d: %q does not say %q", bad, at, err, want)
			}
			y := NewDense[float32](11)
			y.Data[at] = float32(bad)
			assertInvalid(t, y.Validate(), "tensor.data")
		}
	}
	x := NewDense[float64](3)
	x.Data[0], x.Data[2] = 1e200, -1e200
	if err := x.Validate(); err != nil {
		t.Errorf("finite entries with overflowing squares: %v", err)
	}
	y := NewDense[float32](2)
	y.Data[0], y.Data[1] = math.MaxFloat32, -math.MaxFloat32
	if err := y.Validate(); err != nil {
		t.Errorf("±MaxFloat32: %v", err)
	}
}
