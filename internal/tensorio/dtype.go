package tensorio

import (
	"math"
)

// DType names an element type as it is stored in a file. The names are
// safetensors' (F16, BF16, F32, F64, I64, ...). Only F16, BF16, F32 and F64
// are readable; the other known dtypes have a known size, so a file holding
// them can still be inspected and validated, but their data is not decoded.
type DType string

// The readable dtypes.
const (
	F16  DType = "F16"  // IEEE 754 binary16
	BF16 DType = "BF16" // bfloat16: the top half of a binary32
	F32  DType = "F32"  // IEEE 754 binary32
	F64  DType = "F64"  // IEEE 754 binary64
)

// knownSizes maps every dtype whose size is known to its size in bytes.
// Sub-byte and exotic safetensors dtypes (F4, F6_*, ...) are left out: a
// header naming them cannot be checked, so it is rejected as unsupported.
var knownSizes = map[DType]int{
	"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
	"I16": 2, "U16": 2, F16: 2, BF16: 2,
	"I32": 4, "U32": 4, F32: 4,
	"I64": 8, "U64": 8, F64: 8,
}

// Size is the size of one element in bytes, or 0 for an unknown dtype.
func (d DType) Size() int { return knownSizes[d] }

// Readable reports whether this package decodes data of dtype d.
func (d DType) Readable() bool {
	switch d {
	case F16, BF16, F32, F64:
		return true
	}
	return false
}

// F16ToF32 decodes an IEEE 754 binary16 value. The conversion is exact.
func F16ToF32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch exp {
	case 0:
		// Zero or subnormal: mant × 2⁻²⁴, exact in binary32.
		v := float32(mant) * (1.0 / (1 << 24))
		if sign != 0 {
			v = -v
		}
		return v
	case 0x1f:
		// ±Inf, or NaN with its payload kept in the top mantissa bits.
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// BF16ToF32 decodes a bfloat16 value. The conversion is exact.
func BF16ToF32(b uint16) float32 { return math.Float32frombits(uint32(b) << 16) }

// F32ToF16 rounds x to the nearest binary16 value, ties to even. Values
// beyond the largest finite half (65504) round to ±Inf the way IEEE 754
// prescribes; NaN stays NaN (quiet).
func F32ToF16(x float32) uint16 { return roundSmall(float64(x), 5, 10) }

// F64ToF16 rounds x to the nearest binary16 value, ties to even, in one step
// (going through float32 first could round twice).
func F64ToF16(x float64) uint16 { return roundSmall(x, 5, 10) }

// F32ToBF16 rounds x to the nearest bfloat16 value, ties to even.
func F32ToBF16(x float32) uint16 { return roundSmall(float64(x), 8, 7) }

// F64ToBF16 rounds x to the nearest bfloat16 value, ties to even, in one step.
func F64ToBF16(x float64) uint16 { return roundSmall(x, 8, 7) }

// roundSmall rounds x to a binary floating-point format of at most 16 bits
// with ebits exponent bits and mbits fraction bits, to nearest, ties to even.
// Both binary16 (5, 10) and bfloat16 (8, 7) go through it, so the one
// rounding rule is tested on two formats.
func roundSmall(x float64, ebits, mbits uint) uint16 {
	bits := math.Float64bits(x)
	sign := uint64(bits>>63) << (ebits + mbits)
	expOnes := uint64(1)<<ebits - 1
	inf := sign | expOnes<<mbits
	if math.IsNaN(x) {
		// Keep the top payload bits and set the quiet bit so that the
		// result is a NaN even when those bits are all zero.
		frac := bits & (1<<52 - 1) >> (52 - mbits)
		return uint16(inf | 1<<(mbits-1) | frac)
	}
	abs := bits &^ (1 << 63)
	if abs == 0x7ff<<52 {
		return uint16(inf)
	}
	if abs>>52 == 0 {
		// binary64 subnormals are far below half the smallest subnormal of
		// either target format.
		return uint16(sign)
	}
	bias := int(expOnes >> 1)
	e := int(abs>>52) - 1023   // unbiased exponent
	m := abs&(1<<52-1) | 1<<52 // 53-bit significand with the hidden bit
	if e > bias {
		return uint16(inf)
	}
	shift := 52 - int(mbits)
	subnormal := e < 1-bias
	if subnormal {
		shift += 1 - bias - e
		if shift > 54 {
			return uint16(sign)
		}
	}
	q := m >> uint(shift)
	rem := m & (1<<uint(shift) - 1)
	half := uint64(1) << uint(shift-1)
	if rem > half || rem == half && q&1 == 1 {
		q++
	}
	var r uint64
	if subnormal {
		// q ≤ 2^mbits; q == 2^mbits is exactly the smallest normal.
		r = q
	} else {
		// q holds the hidden bit, which adds one to the exponent field; a
		// carry out of the fraction moves the exponent up once more.
		r = uint64(e+bias-1)<<mbits + q
		if r >= expOnes<<mbits {
			return uint16(inf)
		}
	}
	return uint16(sign | r)
}
