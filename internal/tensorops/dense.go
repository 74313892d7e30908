package tensorops

import (
	"fmt"
	"math"

	"github.com/lowrank/lowrank"
	"github.com/lowrank/lowrank/internal/linalg"
)

// Float is the element type of tensors: float32 or float64.
type Float interface {
	float32 | float64
}

// Dense is an N-way tensor stored row-major (the last mode varies fastest).
// len(Data) is the product of Shape; an order-0 tensor (empty Shape) holds
// one element.
type Dense[T Float] struct {
	Shape []int
	Data  []T
}

// Matrix is a dense row-major Rows × Cols matrix with stride Cols. CP and
// Tucker factors are Matrices with one row per index of their mode.
type Matrix[T Float] struct {
	Rows, Cols int
	Data       []T
}

// NewDense returns a zero tensor of the given shape.
func NewDense[T Float](shape ...int) *Dense[T] {
	return &Dense[T]{Shape: append([]int(nil), shape...), Data: make([]T, sizeOf(shape))}
}

// NewMatrix returns a zero rows × cols matrix.
func NewMatrix[T Float](rows, cols int) *Matrix[T] {
	return &Matrix[T]{Rows: rows, Cols: cols, Data: make([]T, rows*cols)}
}

// At returns element (i, j) of m.
func (m *Matrix[T]) At(i, j int) T { return m.Data[i*m.Cols+j] }

// Order is the number of modes of x.
func (x *Dense[T]) Order() int { return len(x.Shape) }

// Len is the number of elements of x.
func (x *Dense[T]) Len() int { return len(x.Data) }

// Clone returns a deep copy of x.
func (x *Dense[T]) Clone() *Dense[T] {
	return &Dense[T]{Shape: append([]int(nil), x.Shape...), Data: append([]T(nil), x.Data...)}
}

// Validate checks that x is a well-formed tensor to decompose: at least one
// mode, every mode of size ≥ 1, Data of the right length and no NaN or ±Inf.
// It returns an EINVALID *lowrank.Error whose Field starts with "tensor".
func (x *Dense[T]) Validate() error {
	if x == nil || len(x.Shape) == 0 {
		return lowrank.Errorf(lowrank.EINVALID, "tensor.shape", "the tensor has no modes")
	}
	n := 1
	for i, d := range x.Shape {
		if d < 1 {
			return lowrank.Errorf(lowrank.EINVALID, fmt.Sprintf("tensor.shape[%d]", i), "must be ≥ 1, got %d", d)
		}
		if n > math.MaxInt/d {
			return lowrank.Errorf(lowrank.EINVALID, "tensor.shape", "%v has too many elements", x.Shape)
		}
		n *= d
	}
	if len(x.Data) != n {
		return lowrank.Errorf(lowrank.EINVALID, "tensor.data", "has %d elements, shape %v needs %d", len(x.Data), x.Shape, n)
	}
	// A NaN or ±Inf makes the sum of squares NaN or +Inf, and SumSquares
	// runs several times faster than a test per element; the scan then
	// finds which (or nothing, where large float64 entries overflowed).
	if s := sumSq(x.Data); !math.IsNaN(s) && !math.IsInf(s, 0) {
		return nil
	}
	for i, v := range x.Data {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return lowrank.Errorf(lowrank.EINVALID, "tensor.data", "element %d is %v", i, v)
		}
	}
	return nil
}

// Norm returns the Frobenius norm ‖x‖ = sqrt(Σ x_i²), accumulated in
// float64.
func (x *Dense[T]) Norm() float64 { return math.Sqrt(sumSq(x.Data)) }

// Inner returns the inner product ⟨x, y⟩ = Σ x_i·y_i, accumulated in
// float64. x and y must have the same shape.
func Inner[T Float](x, y *Dense[T]) float64 {
	if !sameShape(x.Shape, y.Shape) {
		panic(errShape)
	}
	return dot(x.Data, y.Data)
}

// Unfold returns the mode-n unfolding X₍ₙ₎ of x in Kolda & Bader's column
// order (see the package documentation): an I_n × (len(x)/I_n) matrix.
func (x *Dense[T]) Unfold(n int) *Matrix[T] {
	p, in, q := splitAt(x.Shape, n)
	lead, trail := koldaTables(x.Shape, n)
	cols := p * q
	m := NewMatrix[T](in, cols)
	for pi := range p {
		for i := range in {
			src := x.Data[(pi*in+i)*q : (pi*in+i+1)*q]
			dst := m.Data[i*cols+lead[pi]:]
			for qi, v := range src {
				dst[trail[qi]] = v
			}
		}
	}
	return m
}

// Fold is the inverse of Unfold: it returns the tensor of the given shape
// whose mode-n unfolding is m.
func Fold[T Float](m *Matrix[T], n int, shape []int) *Dense[T] {
	x := NewDense[T](shape...)
	p, in, q := splitAt(shape, n)
	if m.Rows != in || m.Cols != p*q {
		panic(errShape)
	}
	lead, trail := koldaTables(shape, n)
	cols := p * q
	for pi := range p {
		for i := range in {
			dst := x.Data[(pi*in+i)*q : (pi*in+i+1)*q]
			src := m.Data[i*cols+lead[pi]:]
			for qi := range dst {
				dst[qi] = src[trail[qi]]
			}
		}
	}
	return x
}

// koldaTables maps row-major indices of the modes before n (lead, length P)
// and after n (trail, length Q) to their parts of the Kolda column index.
func koldaTables(shape []int, n int) (lead, trail []int) {
	p, _, q := splitAt(shape, n)
	lead = colMajorOf(shape[:n], p, 1)
	trail = colMajorOf(shape[n+1:], q, p)
	return lead, trail
}

// colMajorOf returns, for each row-major index of a tensor of shape dims
// (count elements), its column-major index times scale.
func colMajorOf(dims []int, count, scale int) []int {
	out := make([]int, count)
	idx := make([]int, len(dims))
	for r := range count {
		c, s := 0, scale
		for k, d := range dims {
			c += idx[k] * s
			s *= d
		}
		out[r] = c
		for k := len(dims) - 1; k >= 0; k-- {
			idx[k]++
			if idx[k] < dims[k] {
				break
			}
			idx[k] = 0
		}
	}
	return out
}

// splitAt views shape as P × I_n × Q.
func splitAt(shape []int, n int) (p, in, q int) {
	if n < 0 || n >= len(shape) {
		panic(errMode)
	}
	return sizeOf(shape[:n]), shape[n], sizeOf(shape[n+1:])
}

func sizeOf(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func sumSq[T Float](a []T) float64 { return linalg.SumSquares(a) }

func dot[T Float](a, b []T) float64 {
	b = b[:len(a)]
	var s0, s1 float64
	i := 0
	for ; i+2 <= len(a); i += 2 {
		s0 += float64(a[i]) * float64(b[i])
		s1 += float64(a[i+1]) * float64(b[i+1])
	}
	for ; i < len(a); i++ {
		s0 += float64(a[i]) * float64(b[i])
	}
	return s0 + s1
}

// Programmer errors: internal shape mismatches panic with these messages.
const (
	errShape = "tensorops: shape mismatch"
	errMode  = "tensorops: mode out of range"
)
