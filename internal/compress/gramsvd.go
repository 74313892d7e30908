package compress

import (
	"math"

	"gonum.org/v1/gonum/blas"

	"github.com/lowrank/lowrank"
	"github.com/lowrank/lowrank/internal/linalg"
	"github.com/lowrank/lowrank/internal/tensorops"
)

// gramFactors returns the rank-r factors L (rows×r) and R (r×cols) of the
// rows×cols row-major w with L·R the best rank-r approximation of w and the
// singular values split evenly, L = U·diag(sqrt σ), R = diag(sqrt σ)·Vᵀ.
//
// They come from the Gram matrix of the shorter side, formed in float64:
// for rows ≤ cols, G = W·Wᵀ, whose r leading eigenvectors (xSYEVR) are U;
// then Σ·Vᵀ = Uᵀ·W by one GEMM and σⱼ is the norm of its row j (for
// rows > cols the same with G = Wᵀ·W, V and W·V). The Gram squares the
// condition number, so eigenvectors of eigenvalues below about 1e-16·σ₁²
// are noise (Golub & Van Loan 2013, §8.6); but U only has to span the
// leading subspace, the second factor is computed from W itself (so L·R is
// the projection U·Uᵀ·W, whatever U's accuracy), and Factor measures the
// error of the stored factors. This costs rows·cols·p flops for the Gram
// plus 2·rows·cols·r for the projection (p = min(rows, cols)), a few times
// less than xGESDD with vectors when r is a sizeable fraction of p, the
// case of whole-model compression, where the randomized SVDs do not pay.
//
// References:
//   - G. H. Golub and C. F. Van Loan, Matrix Computations, 4th ed., Johns
//     Hopkins, 2013.
func gramFactors[T tensorops.Float](b linalg.Backend, rows, cols, r int, w []T) (left, right []T, err error) {
	p := min(rows, cols)
	wide := rows <= cols
	x := make([]float64, len(w))
	for i, v := range w {
		x[i] = float64(v)
	}
	g := make([]float64, p*p)
	if wide {
		b.Dsyrk(blas.Upper, blas.NoTrans, p, cols, 1, x, cols, 0, g, p)
	} else {
		b.Dsyrk(blas.Upper, blas.Trans, p, rows, 1, x, cols, 0, g, p)
	}
	x = nil
	lam := make([]float64, r)
	z := make([]float64, p*r)
	if !b.Dsyevr(p, p-r+1, p, g, p, lam, z, r) {
		return nil, nil, &lowrank.Error{Code: lowrank.EINTERNAL, Field: "tensor", Message: "the eigensolver did not converge"}
	}
	// Columns come in ascending order: reverse them into q (p×r, T).
	q := make([]T, p*r)
	for i := range p {
		for j := range r {
			q[i*r+j] = T(z[i*r+r-1-j])
		}
	}
	if wide {
		// Σ·Vᵀ = Uᵀ·W (r×cols); σⱼ = ‖row j‖.
		sv := make([]T, r*cols)
		linalg.Gemm(b, blas.Trans, blas.NoTrans, r, cols, rows, 1, q, r, w, cols, 0, sv, cols)
		for j := range r {
			s := rowNorm(sv[j*cols : (j+1)*cols])
			scaleRow(sv[j*cols:(j+1)*cols], invSqrt(s))
			for i := range rows {
				q[i*r+j] *= T(math.Sqrt(s))
			}
		}
		return q, sv, nil
	}
	// U·Σ = W·V (rows×r); σⱼ = ‖column j‖.
	us := make([]T, rows*r)
	linalg.Gemm(b, blas.NoTrans, blas.NoTrans, rows, r, cols, 1, w, cols, q, r, 0, us, r)
	right = make([]T, r*cols)
	for j := range r {
		var s2 float64
		for i := range rows {
			s2 += float64(us[i*r+j]) * float64(us[i*r+j])
		}
		s := math.Sqrt(s2)
		for i := range rows {
			us[i*r+j] *= T(invSqrt(s))
		}
		for c := range cols {
			right[j*cols+c] = q[c*r+j] * T(math.Sqrt(s))
		}
	}
	return us, right, nil
}

func rowNorm[T tensorops.Float](x []T) float64 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s)
}

func scaleRow[T tensorops.Float](x []T, a float64) {
	for i := range x {
		x[i] *= T(a)
	}
}

// invSqrt is 1/sqrt(s), and 0 for s = 0 (a zero component stays zero).
func invSqrt(s float64) float64 {
	if s == 0 {
		return 0
	}
	return 1 / math.Sqrt(s)
}
