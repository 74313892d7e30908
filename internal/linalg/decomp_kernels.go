package linalg

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/lapack"
)

// Private type switches from the generic decompositions onto the S/D
// methods of Backend. They stay private until the shared generic helpers
// (Gemm[T], Gesdd[T], ...) land; then these become thin aliases or go away.

func gemm[T Float](b Backend, tA, tB blas.Transpose, m, n, k int, alpha T, a []T, lda int, x []T, ldx int, beta T, c []T, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	switch a := any(a).(type) {
	case []float32:
		b.Sgemm(tA, tB, m, n, k, float32(alpha), a, lda, any(x).([]float32), ldx, float32(beta), any(c).([]float32), ldc)
	case []float64:
		b.Dgemm(tA, tB, m, n, k, float64(alpha), a, lda, any(x).([]float64), ldx, float64(beta), any(c).([]float64), ldc)
	default:
		panic(errBadType)
	}
}

func syrk[T Float](b Backend, ul blas.Uplo, t blas.Transpose, n, k int, alpha T, a []T, lda int, beta T, c []T, ldc int) {
	if n == 0 {
		return
	}
	switch a := any(a).(type) {
	case []float32:
		b.Ssyrk(ul, t, n, k, float32(alpha), a, lda, float32(beta), any(c).([]float32), ldc)
	case []float64:
		b.Dsyrk(ul, t, n, k, float64(alpha), a, lda, float64(beta), any(c).([]float64), ldc)
	default:
		panic(errBadType)
	}
}

func gesdd[T Float](b Backend, job lapack.SVDJob, m, n int, a []T, lda int, s, u []T, ldu int, vt []T, ldvt int) bool {
	if m == 0 || n == 0 {
		return true
	}
	switch a := any(a).(type) {
	case []float32:
		u32, _ := any(u).([]float32)
		vt32, _ := any(vt).([]float32)
		return b.Sgesdd(job, m, n, a, lda, any(s).([]float32), u32, ldu, vt32, ldvt)
	case []float64:
		u64, _ := any(u).([]float64)
		vt64, _ := any(vt).([]float64)
		return b.Dgesdd(job, m, n, a, lda, any(s).([]float64), u64, ldu, vt64, ldvt)
	default:
		panic(errBadType)
	}
}

func geqrf[T Float](b Backend, m, n int, a []T, lda int, tau []T) {
	if m == 0 || n == 0 {
		return
	}
	switch a := any(a).(type) {
	case []float32:
		b.Sgeqrf(m, n, a, lda, any(tau).([]float32))
	case []float64:
		b.Dgeqrf(m, n, a, lda, any(tau).([]float64))
	default:
		panic(errBadType)
	}
}

func orgqr[T Float](b Backend, m, n, k int, a []T, lda int, tau []T) {
	if m == 0 || n == 0 {
		return
	}
	switch a := any(a).(type) {
	case []float32:
		b.Sorgqr(m, n, k, a, lda, any(tau).([]float32))
	case []float64:
		b.Dorgqr(m, n, k, a, lda, any(tau).([]float64))
	default:
		panic(errBadType)
	}
}

const errBadType = "linalg: element type is neither float32 nor float64"
