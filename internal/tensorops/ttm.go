package tensorops

import (
	"slices"

	"gonum.org/v1/gonum/blas"

	"github.com/lowrank/lowrank/internal/linalg"
)

// ModeProduct returns the mode-n product Y = X ×ₙ U of x with the J × I_n
// matrix u (Kolda & Bader 2009, §2.5): Y has shape[n] = J and
// Y₍ₙ₎ = U·X₍ₙ₎. With transpose it returns X ×ₙ Uᵀ for an I_n × J matrix u,
// the projection used by Tucker.
func ModeProduct[T Float](b linalg.Backend, x *Dense[T], u *Matrix[T], n int, transpose bool) *Dense[T] {
	j := u.Rows
	if transpose {
		j = u.Cols
	}
	shape := slices.Clone(x.Shape)
	shape[n] = j
	y := &Dense[T]{Shape: shape, Data: make([]T, sizeOf(shape))}
	ttm(b, x.Data, x.Shape, n, u, transpose, y.Data)
	return y
}

// MultiModeProduct returns X ×ₙ op(Uₙ) over every n with us[n] != nil
// (len(us) == order of x), op(U) = Uᵀ when transpose. Products commute
// across distinct modes; they are applied in the order that shrinks the
// intermediate tensor fastest, through two buffers allocated once.
func MultiModeProduct[T Float](b linalg.Backend, x *Dense[T], us []*Matrix[T], transpose bool) *Dense[T] {
	if len(us) != len(x.Shape) {
		panic(errShape)
	}
	type step struct {
		mode     int
		in, out  int
		shrinkBy float64
	}
	var steps []step
	for n, u := range us {
		if u == nil {
			continue
		}
		out := u.Rows
		if transpose {
			out = u.Cols
		}
		steps = append(steps, step{mode: n, in: x.Shape[n], out: out, shrinkBy: float64(out) / float64(x.Shape[n])})
	}
	slices.SortStableFunc(steps, func(a, b step) int {
		switch {
		case a.shrinkBy < b.shrinkBy:
			return -1
		case a.shrinkBy > b.shrinkBy:
			return 1
		}
		return 0
	})
	shape := slices.Clone(x.Shape)
	biggest := 0
	for _, s := range steps {
		shape[s.mode] = s.out
		biggest = max(biggest, sizeOf(shape))
	}
	if len(steps) == 0 {
		return x.Clone()
	}
	bufs := [2][]T{make([]T, biggest), nil}
	if len(steps) > 1 {
		bufs[1] = make([]T, biggest)
	}
	cur, curShape := x.Data, slices.Clone(x.Shape)
	for i, s := range steps {
		next := slices.Clone(curShape)
		next[s.mode] = s.out
		dst := bufs[i%2][:sizeOf(next)]
		ttm(b, cur, curShape, s.mode, us[s.mode], transpose, dst)
		cur, curShape = dst, next
	}
	return &Dense[T]{Shape: curShape, Data: slices.Clone(cur)}
}

// ttm writes X ×ₙ op(U) into y, where x has the given shape and op(U) is U
// (J × I_n) or, with trans, Uᵀ (U is I_n × J). x is viewed as P × I_n × Q:
// one GEMM when P == 1 or Q == 1 (split into column or row ranges run in
// parallel), otherwise one GEMM per slab p, Y[p] = op(U)·X[p], run in
// parallel across slabs; slabs of at most ttmTinySlab multiply-adds are
// multiplied in Go (ttmTiny).
func ttm[T Float](b linalg.Backend, x []T, shape []int, n int, u *Matrix[T], trans bool, y []T) {
	p, in, q := splitAt(shape, n)
	tU, j, ldu := blas.NoTrans, u.Rows, u.Cols
	if trans {
		tU, j = blas.Trans, u.Cols
		if u.Rows != in {
			panic(errShape)
		}
	} else if u.Cols != in {
		panic(errShape)
	}
	switch {
	case p == 1:
		// Column ranges of Y = op(U)·X on single-threaded calls
		// (splitThreads).
		threads, one := splitThreads(b, float64(j)*float64(q)*float64(in))
		parallelFor(threads, q, func(lo, hi int) {
			gemm(one, tU, blas.NoTrans, j, hi-lo, in, 1, u.Data, ldu, x[lo:], q, 0, y[lo:], q)
		})
	case q == 1:
		// Row ranges of Y (P×J) = X (P×I) · op(U)ᵀ.
		tB := blas.Trans
		if trans {
			tB = blas.NoTrans
		}
		threads, one := splitThreads(b, float64(p)*float64(j)*float64(in))
		parallelFor(threads, p, func(lo, hi int) {
			gemm(one, blas.NoTrans, tB, hi-lo, j, in, 1, x[lo*in:], in, u.Data, ldu, 0, y[lo*j:], j)
		})
	case j*in*q <= ttmTinySlab:
		ttmTiny(x, p, in, q, j, u.Data, ldu, trans, y)
	default:
		threads := b.Threads()
		one := b
		if p >= 2*threads {
			one = b.WithThreads(1)
		} else {
			threads = 1
		}
		parallelFor(threads, p, func(lo, hi int) {
			for pi := lo; pi < hi; pi++ {
				gemm(one, tU, blas.NoTrans, j, q, in, 1, u.Data, ldu, x[pi*in*q:], q, 0, y[pi*j*q:], q)
			}
		})
	}
}

// ttmTinySlab is the largest slab product, in multiply-adds, that ttm
// computes in Go: below it a cgo GEMM call costs more than its arithmetic.
// Rotating the 3 × 3 kernel modes of a (64, 64, 3, 3) Tucker core (4096
// slabs of 3·3·3) took 2.8 ms as GEMM calls.
const ttmTinySlab = 1024

// ttmTiny is ttm's slab loop in plain Go: Y[p] (j × q) = op(U)·X[p]
// (in × q) for each of the p slabs, op(U) = U (j × in, stride ldu) or, with
// trans, Uᵀ (U in × j).
func ttmTiny[T Float](x []T, p, in, q, j int, u []T, ldu int, trans bool, y []T) {
	for pi := range p {
		xs := x[pi*in*q : (pi+1)*in*q]
		ys := y[pi*j*q : (pi+1)*j*q]
		for a := range j {
			yr := ys[a*q : (a+1)*q]
			clear(yr)
			for c := range in {
				var w T
				if trans {
					w = u[c*ldu+a]
				} else {
					w = u[a*ldu+c]
				}
				for t, v := range xs[c*q : (c+1)*q] {
					yr[t] += w * v
				}
			}
		}
	}
}
