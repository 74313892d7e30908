package tensorio

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/lowrank/lowrank"
)

// randTensor returns a tensor of the given dtype and shape whose values are
// exactly representable in dt (so a round trip must be bit-exact), with a
// few special values (±0, ±Inf, NaN, subnormals) mixed in.
func randTensor(rng *rand.Rand, name string, dt DType, shape []int) *Tensor {
	t := &Tensor{Name: name, DType: dt, Shape: shape}
	n := t.Len()
	vals := make([]float64, n)
	specials := []float64{0, math.Copysign(0, -1), math.Inf(1), math.Inf(-1), math.NaN(), 1, -1}
	for i := range vals {
		v := math.Ldexp(rng.NormFloat64(), rng.IntN(20)-10)
		if rng.IntN(8) == 0 {
			v = specials[rng.IntN(len(specials))]
		}
		if rng.IntN(16) == 0 {
			// A subnormal of the dtype.
			switch dt {
			case F16:
				v = float64(F16ToF32(uint16(1 + rng.IntN(0x3ff))))
			case BF16:
				v = float64(BF16ToF32(uint16(1 + rng.IntN(0x7f))))
			case F32:
				v = float64(math.Float32frombits(uint32(1 + rng.IntN(0x7fffff))))
			case F64:
				v = math.Float64frombits(uint64(1 + rng.Int64N(1<<52-1)))
			}
		}
		vals[i] = v
	}
	switch dt {
	case F64:
		t.F64 = vals
	default:
		t.F32 = make([]float32, n)
		for i, v := range vals {
			switch dt {
			case F16:
				t.F32[i] = F16ToF32(F64ToF16(v))
			case BF16:
				t.F32[i] = BF16ToF32(F64ToBF16(v))
			default:
				t.F32[i] = float32(v)
			}
		}
	}
	return t
}

// sameTensor reports the first difference between two tensors; values are
// compared by bits, except that any NaN equals any NaN.
func sameTensor(got, want *Tensor) error {
	if got.Name != want.Name {
		return fmt.Errorf("name %q, want %q", got.Name, want.Name)
	}
	if got.DType != want.DType {
		return fmt.Errorf("%s: dtype %s, want %s", want.Name, got.DType, want.DType)
	}
	if !equalInts(got.Shape, want.Shape) || got.Shape == nil {
		return fmt.Errorf("%s: shape %v, want %v", want.Name, got.Shape, want.Shape)
	}
	if (got.F64 == nil) != (want.F64 == nil) || len(got.F32) != len(want.F32) || len(got.F64) != len(want.F64) {
		return fmt.Errorf("%s: data kinds or lengths differ: f32 %d/%d f64 %d/%d", want.Name, len(got.F32), len(want.F32), len(got.F64), len(want.F64))
	}
	for i := range want.F32 {
		a, b := got.F32[i], want.F32[i]
		if math.Float32bits(a) != math.Float32bits(b) && !(a != a && b != b) {
			return fmt.Errorf("%s: element %d = %v, want %v", want.Name, i, a, b)
		}
	}
	for i := range want.F64 {
		a, b := got.F64[i], want.F64[i]
		if math.Float64bits(a) != math.Float64bits(b) && !(a != a && b != b) {
			return fmt.Errorf("%s: element %d = %v, want %v", want.Name, i, a, b)
		}
	}
	return nil
}

// wantErr checks that err is a *lowrank.Error with the code and a message
// containing every fragment.
func wantErr(t *testing.T, what string, err error, code string, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error, want %s", what, code)
		return
	}
	var le *lowrank.Error
	if !errors.As(err, &le) {
		t.Errorf("%s: error %T %v is not a *lowrank.Error", what, err, err)
		return
	}
	if le.Code != code {
		t.Errorf("%s: code %s (%v), want %s", what, le.Code, err, code)
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("%s: error %q does not mention %q", what, err, f)
		}
	}
}

// rangeReader is an io.ReaderAt that records the byte ranges read, to show
// what a reader touches.
type rangeReader struct {
	b      []byte
	mu     sync.Mutex
	ranges [][2]int64
}

func (r *rangeReader) ReadAt(p []byte, off int64) (int, error) {
	r.mu.Lock()
	r.ranges = append(r.ranges, [2]int64{off, off + int64(len(p))})
	r.mu.Unlock()
	return bytes.NewReader(r.b).ReadAt(p, off)
}

// outside returns the first range read that is not inside one of allowed.
func (r *rangeReader) outside(allowed ...[2]int64) ([2]int64, bool) {
	for _, g := range r.ranges {
		if g[0] == g[1] {
			continue
		}
		ok := false
		for _, a := range allowed {
			if g[0] >= a[0] && g[1] <= a[1] {
				ok = true
			}
		}
		if !ok {
			return g, true
		}
	}
	return [2]int64{}, false
}

var testShapes = [][]int{{}, {0}, {1}, {7}, {2, 3}, {3, 0, 2}, {2, 3, 4}, {1, 1, 1, 1, 1}, {5, 1, 3, 2}, {70, 130}}
