package tensorio

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

func TestF16KnownBits(t *testing.T) {
	for _, c := range []struct {
		h uint16
		v float32
	}{
		{0x0000, 0},
		{0x3c00, 1},
		{0xc000, -2},
		{0x3555, 0.333251953125},
		{0x7bff, 65504},                  // largest finite
		{0x0400, 6.103515625e-05},        // smallest normal, 2⁻¹⁴
		{0x03ff, 6.097555160522461e-05},  // largest subnormal
		{0x0001, 5.960464477539063e-08},  // smallest subnormal, 2⁻²⁴
		{0x8001, -5.960464477539063e-08}, // its negative
		{0x7c00, float32(math.Inf(1))},   // +Inf
		{0xfc00, float32(math.Inf(-1))},  // -Inf
	} {
		if got := F16ToF32(c.h); got != c.v {
			t.Errorf("F16ToF32(%#04x) = %v, want %v", c.h, got, c.v)
		}
		if got := F32ToF16(c.v); got != c.h {
			t.Errorf("F32ToF16(%v) = %#04x, want %#04x", c.v, got, c.h)
		}
	}
	if got := F16ToF32(0x8000); got != 0 || !math.Signbit(float64(got)) {
		t.Errorf("F16ToF32(0x8000) = %v, want -0", got)
	}
	if got := F32ToF16(float32(math.Copysign(0, -1))); got != 0x8000 {
		t.Errorf("F32ToF16(-0) = %#04x, want 0x8000", got)
	}
	for _, h := range []uint16{0x7e00, 0x7c01, 0xfe00, 0x7fff} {
		if v := F16ToF32(h); !math.IsNaN(float64(v)) {
			t.Errorf("F16ToF32(%#04x) = %v, want NaN", h, v)
		}
	}
	if got := F32ToF16(float32(math.NaN())); got&0x7c00 != 0x7c00 || got&0x3ff == 0 {
		t.Errorf("F32ToF16(NaN) = %#04x, not a NaN", got)
	}
	// A NaN whose payload lies only in bits that binary16 drops must stay NaN.
	if got := F32ToF16(math.Float32frombits(0x7f800001)); got&0x7c00 != 0x7c00 || got&0x3ff == 0 {
		t.Errorf("F32ToF16(NaN 0x7f800001) = %#04x, not a NaN", got)
	}
}

func TestF16Rounding(t *testing.T) {
	for _, c := range []struct {
		x float64
		h uint16
	}{
		{1 + 1.0/2048, 0x3c00},        // tie between 1 and 1+2⁻¹⁰: to even (1)
		{1 + 3.0/2048, 0x3c02},        // tie between 1+2⁻¹⁰ and 1+2⁻⁹: to even (…02)
		{1 + 1.0/2048 + 1e-9, 0x3c01}, // just above the tie
		// Through float32 this would round twice (to the tie 1+2⁻¹¹, then
		// to 1); one step sees it is above the tie.
		{1 + 1.0/2048 + math.Ldexp(1, -40), 0x3c01},
		{65519, 0x7bff}, // below the overflow threshold
		{65520, 0x7c00}, // the tie above 65504 rounds to even: Inf
		{-65520, 0xfc00},
		{1e10, 0x7c00},
		{math.Ldexp(1, -25), 0x0000},                      // half the smallest subnormal: ties to 0
		{math.Ldexp(1, -25) * (1 + 1e-9), 0x0001},         // just above: smallest subnormal
		{math.Ldexp(3, -25), 0x0002},                      // 1.5 × 2⁻²⁴: tie to even (2)
		{math.Ldexp(1, -14) - math.Ldexp(1, -26), 0x0400}, // rounds up into the normals
		{5e-324, 0},                                       // binary64 subnormal
		{-5e-324, 0x8000},
	} {
		if got := F64ToF16(c.x); got != c.h {
			t.Errorf("F64ToF16(%g) = %#04x, want %#04x", c.x, got, c.h)
		}
	}
}

func TestBF16KnownBits(t *testing.T) {
	for _, c := range []struct {
		b uint16
		v float32
	}{
		{0x3f80, 1},
		{0xc000, -2},
		{0x7f7f, 3.3895313892515355e+38}, // largest finite
		{0x0080, 1.1754943508222875e-38}, // smallest normal, 2⁻¹²⁶
		{0x0001, 9.183549615799121e-41},  // smallest subnormal, 2⁻¹³³
		{0x7f80, float32(math.Inf(1))},
		{0xff80, float32(math.Inf(-1))},
	} {
		if got := BF16ToF32(c.b); got != c.v {
			t.Errorf("BF16ToF32(%#04x) = %v, want %v", c.b, got, c.v)
		}
		if got := F32ToBF16(c.v); got != c.b {
			t.Errorf("F32ToBF16(%v) = %#04x, want %#04x", c.v, got, c.b)
		}
	}
	for _, c := range []struct {
		f32 uint32
		b   uint16
	}{
		{0x3f808000, 0x3f80}, // tie: to even
		{0x3f818000, 0x3f82}, // tie: to even (up)
		{0x3f808001, 0x3f81}, // above the tie
		{0x3f807fff, 0x3f80}, // below the tie
		{0x7f7fffff, 0x7f80}, // largest binary32 rounds past the largest bfloat16: Inf
		{0x00008000, 0x0000}, // tie between 0 and the smallest subnormal: to even (0)
		{0x00018000, 0x0002}, // subnormal tie: to even (up)
		{0x807fffff, 0x8080}, // negative subnormal rounds up into the normals
	} {
		if got := F32ToBF16(math.Float32frombits(c.f32)); got != c.b {
			t.Errorf("F32ToBF16(%#08x) = %#04x, want %#04x", c.f32, got, c.b)
		}
	}
	if got := F32ToBF16(math.Float32frombits(0x7f800001)); got&0x7f80 != 0x7f80 || got&0x7f == 0 {
		t.Errorf("F32ToBF16(NaN 0x7f800001) = %#04x, not a NaN", got)
	}
	if got := BF16ToF32(0x7fc0); !math.IsNaN(float64(got)) {
		t.Errorf("BF16ToF32(0x7fc0) = %v, want NaN", got)
	}
}

// TestHalfRoundTripExhaustive decodes every 16-bit pattern and encodes it
// back: every non-NaN value must return to its own bits.
func TestHalfRoundTripExhaustive(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		if v := F16ToF32(h); !math.IsNaN(float64(v)) {
			if got := F32ToF16(v); got != h {
				t.Fatalf("f16 %#04x → %v → %#04x", h, v, got)
			}
			if got := F64ToF16(float64(v)); got != h {
				t.Fatalf("f16 %#04x → %v → (f64) %#04x", h, v, got)
			}
		}
		if v := BF16ToF32(h); !math.IsNaN(float64(v)) {
			if got := F32ToBF16(v); got != h {
				t.Fatalf("bf16 %#04x → %v → %#04x", h, v, got)
			}
		}
	}
}

// nearestRef rounds x to the nearest value of a 16-bit format by searching
// the sorted table of its finite non-negative values: an oracle that shares
// no code with roundSmall. maxBits is the largest finite pattern.
type nearestRef struct {
	vals    []float64 // vals[i] is the value of pattern i, increasing
	inf     uint16
	halfUlp float64 // half the spacing just below the largest finite value
}

func newRef(decode func(uint16) float32, maxBits, inf uint16) *nearestRef {
	r := &nearestRef{inf: inf}
	for i := 0; i <= int(maxBits); i++ {
		r.vals = append(r.vals, float64(decode(uint16(i))))
	}
	n := len(r.vals)
	r.halfUlp = (r.vals[n-1] - r.vals[n-2]) / 2
	return r
}

func (r *nearestRef) round(x float64) uint16 {
	var sign uint16
	if math.Signbit(x) {
		sign = 0x8000
		x = -x
	}
	n := len(r.vals)
	if x >= r.vals[n-1]+r.halfUlp {
		return sign | r.inf // at or past the tie above the largest value
	}
	i := sort.SearchFloat64s(r.vals, x) // vals[i-1] < x ≤ vals[i]
	if i == n {
		return sign | uint16(n-1)
	}
	if r.vals[i] == x || i == 0 {
		return sign | uint16(i)
	}
	lo, hi := r.vals[i-1], r.vals[i]
	switch {
	case x-lo < hi-x:
		return sign | uint16(i-1)
	case x-lo > hi-x:
		return sign | uint16(i)
	case (i-1)%2 == 0:
		return sign | uint16(i-1)
	}
	return sign | uint16(i)
}

func TestHalfRoundingAgainstOracle(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	f16 := newRef(F16ToF32, 0x7bff, 0x7c00)
	bf16 := newRef(BF16ToF32, 0x7f7f, 0x7f80)
	for i := 0; i < 300000; i++ {
		// Random float32 bit patterns cover every exponent; values drawn
		// near the formats' ranges exercise subnormals and overflow.
		var x32 float32
		switch i % 3 {
		case 0:
			x32 = math.Float32frombits(rng.Uint32())
		case 1:
			x32 = float32(math.Ldexp(rng.Float64()*2-1, rng.IntN(50)-30))
		default:
			// Midpoints between neighbouring halves: exact ties.
			h := uint16(rng.IntN(0x7bff))
			x32 = (F16ToF32(h) + F16ToF32(h+1)) / 2
		}
		if math.IsNaN(float64(x32)) || math.IsInf(float64(x32), 0) {
			continue
		}
		if got, want := F32ToF16(x32), f16.round(float64(x32)); got != want {
			t.Fatalf("F32ToF16(%g [%#08x]) = %#04x, oracle %#04x", x32, math.Float32bits(x32), got, want)
		}
		if got, want := F32ToBF16(x32), bf16.round(float64(x32)); got != want {
			t.Fatalf("F32ToBF16(%g [%#08x]) = %#04x, oracle %#04x", x32, math.Float32bits(x32), got, want)
		}
		x64 := math.Ldexp(rng.Float64()*2-1, rng.IntN(300)-150)
		if got, want := F64ToF16(x64), f16.round(x64); got != want {
			t.Fatalf("F64ToF16(%g) = %#04x, oracle %#04x", x64, got, want)
		}
		if got, want := F64ToBF16(x64), bf16.round(x64); got != want {
			t.Fatalf("F64ToBF16(%g) = %#04x, oracle %#04x", x64, got, want)
		}
	}
}
