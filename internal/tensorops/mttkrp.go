package tensorops

import (
	"context"

	"gonum.org/v1/gonum/blas"

	"github.com/lowrank/lowrank/internal/linalg"
)

// blockElems bounds the partial Khatri–Rao products and GEMM outputs the
// MTTKRP kernels hold at once (elements, i.e. 1 MiB of float32): small
// enough to stay in L2/L3 and far below the tensor, large enough for the
// GEMMs to run near peak.
var blockElems = 1 << 18 // a variable only so tests can force many blocks

// MTTKRP returns the matricized tensor times Khatri–Rao product for mode n,
//
//	Mₙ = X₍ₙ₎ · (A_{N−1} ⊙ … ⊙ A_{n+1} ⊙ A_{n−1} ⊙ … ⊙ A₀),
//
// an I_n × R matrix, where factors[k] is I_k × R (factors[n] is not read and
// may be nil). Elementwise, Mₙ[i, r] = Σ x(…, i, …)·Π_{k≠n} A_k[i_k, r].
//
// The Khatri–Rao product of all other factors is never formed: x is viewed
// as P × I_n × Q and multiplied slab by slab against partial products of at
// most blockElems elements; see mttkrp. ctx is checked between blocks.
func MTTKRP[T Float](ctx context.Context, b linalg.Backend, x *Dense[T], factors []*Matrix[T], n int) (*Matrix[T], error) {
	r := factorRank(factors, n)
	m := NewMatrix[T](x.Shape[n], r)
	if err := mttkrp(ctx, b, x.Data, x.Shape, factors, n, r, m.Data); err != nil {
		return nil, err
	}
	return m, nil
}

func factorRank[T Float](factors []*Matrix[T], skip int) int {
	r := -1
	for k, f := range factors {
		if k == skip {
			continue
		}
		if r >= 0 && f.Cols != r {
			panic(errShape)
		}
		r = f.Cols
	}
	if r < 0 {
		panic(errShape)
	}
	return r
}

// mttkrp writes Mₙ (I_n × r, row-major) into dst. Three shapes of the
// P × I_n × Q view:
//
//   - n = 0: Mₙ = X (I₀ × Q) · K, one GEMM per block of rows of the
//     trailing product K, accumulated in dst.
//   - n = N−1: Mₙ = Xᵀ · L with X viewed as P × I_n, one GEMM per
//     block of rows of the leading product L.
//   - otherwise: for a block of slabs, Z = [X[p]; …] · K (stacked slabs are
//     a contiguous (pb·I_n) × Q matrix), then Mₙ[i,r] += Σ_p L[p,r]·Z[p,i,r].
func mttkrp[T Float](ctx context.Context, b linalg.Backend, x []T, shape []int, factors []*Matrix[T], n, r int, dst []T) error {
	p, in, q := splitAt(shape, n)
	lead, trail := factors[:n], factors[n+1:]
	if len(shape) != len(factors) {
		panic(errShape)
	}
	for k, f := range factors {
		if k != n && (f.Rows != shape[k] || f.Cols != r) {
			panic(errShape)
		}
	}
	dst = dst[:in*r]
	threads := b.Threads()
	rowsPerBlock := max(1, blockElems/max(r, 1))
	switch {
	case n == 0:
		qb := min(q, rowsPerBlock)
		kr := make([]T, qb*r)
		for q0 := 0; q0 < q; q0 += qb {
			if err := ctx.Err(); err != nil {
				return err
			}
			q1 := min(q, q0+qb)
			krpRowsParallel(threads, kr, trail, q0, q1, r)
			beta := T(1)
			if q0 == 0 {
				beta = 0
			}
			gemm(b, blas.NoTrans, blas.NoTrans, in, r, q1-q0, 1, x[q0:], q, kr, r, beta, dst, r)
		}
	case n == len(shape)-1:
		pb := min(p, rowsPerBlock)
		kl := make([]T, pb*r)
		for p0 := 0; p0 < p; p0 += pb {
			if err := ctx.Err(); err != nil {
				return err
			}
			p1 := min(p, p0+pb)
			krpRowsParallel(threads, kl, lead, p0, p1, r)
			beta := T(1)
			if p0 == 0 {
				beta = 0
			}
			gemm(b, blas.Trans, blas.NoTrans, in, r, p1-p0, 1, x[p0*in:], in, kl, r, beta, dst, r)
		}
	default:
		clear(dst)
		qb := min(q, max(1, 4*rowsPerBlock))
		kr := make([]T, qb*r)
		if qb == q {
			krpRowsParallel(threads, kr, trail, 0, q, r)
		}
		pb := max(1, min(p, rowsPerBlock/max(in, 1)))
		z := make([]T, pb*in*r)
		kl := make([]T, pb*r)
		for p0 := 0; p0 < p; p0 += pb {
			p1 := min(p, p0+pb)
			rows := (p1 - p0) * in
			for q0 := 0; q0 < q; q0 += qb {
				if err := ctx.Err(); err != nil {
					return err
				}
				q1 := min(q, q0+qb)
				if qb < q {
					krpRowsParallel(threads, kr, trail, q0, q1, r)
				}
				beta := T(1)
				if q0 == 0 {
					beta = 0
				}
				gemm(b, blas.NoTrans, blas.NoTrans, rows, r, q1-q0, 1, x[p0*in*q+q0:], q, kr, r, beta, z, r)
			}
			krpRowsParallel(threads, kl, lead, p0, p1, r)
			parallelFor(threads, in, func(lo, hi int) {
				for i := lo; i < hi; i++ {
					d := dst[i*r : (i+1)*r]
					for pi := range p1 - p0 {
						l := kl[pi*r : (pi+1)*r]
						zr := z[(pi*in+i)*r : (pi*in+i+1)*r]
						for c := range d {
							d[c] += l[c] * zr[c]
						}
					}
				}
			})
		}
	}
	return nil
}

// krpRowsParallel is krpRows split over threads by rows.
func krpRowsParallel[T Float](threads int, dst []T, mats []*Matrix[T], lo, hi, r int) {
	if (hi-lo)*r < 1<<14 {
		threads = 1
	}
	parallelFor(threads, hi-lo, func(a, b int) {
		krpRows(dst[a*r:], mats, lo+a, lo+b, r)
	})
}
