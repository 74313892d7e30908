package linalg

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/lapack"
)

// The conformance suite: every backend compiled in, with budgets of 1 and 2
// threads, runs the same checks, written once for float32 and float64
// through the generic dispatchers.
//
// Conventions, after gonum's testlapack: fixed seeds; sizes 0, 1, 2, 3, 5,
// 10 and the block edges 64, 65; strides padded by 3 with the padding filled
// with a sentinel that must survive; outputs pre-filled with NaN so that an
// entry left unwritten shows.

func TestOpenBLASCompiledIn(t *testing.T) {
	if openBLAS == nil {
		t.Skip("OpenBLAS backend not compiled in (build with -tags openblas)")
	}
	if d := Describe(Default(1)); d[:8] != "openblas" {
		t.Fatalf("Default(1) is %q, want the OpenBLAS backend", d)
	}
}

func forEachBackend(t *testing.T, f func(t *testing.T, b Backend)) {
	for _, threads := range []int{1, 2} {
		for _, b := range Backends(threads) {
			if b.Threads() != threads {
				t.Fatalf("%s: Threads() = %d, want %d", b.Name(), b.Threads(), threads)
			}
			t.Run(fmt.Sprintf("%s/threads=%d", b.Name(), threads), func(t *testing.T) { f(t, b) })
		}
	}
}

// bothTypes runs f for float32 and float64.
func bothTypes(t *testing.T, b Backend, f32 func(*testing.T, Backend), f64 func(*testing.T, Backend)) {
	t.Run("float32", func(t *testing.T) { f32(t, b) })
	t.Run("float64", func(t *testing.T) { f64(t, b) })
}

const sentinel = 7777.5

// eps is the machine epsilon of T (twice the unit roundoff: the bounds below
// are then a factor 2 generous).
func eps[T Float]() float64 { return 2 * Roundoff[T]() }

// newMat returns an r×c matrix with stride ld holding uniform values in
// [-1, 1), and the sentinel in the padding after each row.
func newMat[T Float](rng *rand.Rand, r, c, ld int) []T {
	a := make([]T, r*ld)
	for i := range r {
		for j := range ld {
			if j < c {
				a[i*ld+j] = T(2*rng.Float64() - 1)
			} else {
				a[i*ld+j] = sentinel
			}
		}
	}
	return a
}

// nanMat returns an r×c matrix of NaN with stride ld and sentinel padding.
func nanMat[T Float](r, c, ld int) []T {
	a := make([]T, r*ld)
	for i := range a {
		if i%ld < c {
			a[i] = T(math.NaN())
		} else {
			a[i] = sentinel
		}
	}
	return a
}

func checkPadding[T Float](t *testing.T, name string, r, c, ld int, a []T) {
	t.Helper()
	for i := range r {
		for j := c; j < ld; j++ {
			if a[i*ld+j] != sentinel {
				t.Fatalf("%s: padding (%d, %d) overwritten with %v", name, i, j, a[i*ld+j])
			}
		}
	}
}

func checkNoNaN[T Float](t *testing.T, name string, r, c, ld int, a []T) {
	t.Helper()
	for i := range r {
		for j := range c {
			if math.IsNaN(float64(a[i*ld+j])) {
				t.Fatalf("%s: element (%d, %d) not written", name, i, j)
			}
		}
	}
}

// at reads element (i, j) of op(X) in float64, X having stride ld.
func at[T Float](x []T, ld int, tr blas.Transpose, i, j int) float64 {
	if tr != blas.NoTrans {
		i, j = j, i
	}
	return float64(x[i*ld+j])
}

// dense copies an r×c matrix into a contiguous float64 one.
func dense[T Float](r, c int, a []T, ld int) []float64 {
	d := make([]float64, r*c)
	for i := range r {
		for j := range c {
			d[i*c+j] = float64(a[i*ld+j])
		}
	}
	return d
}

// mul returns the r×c product of the contiguous r×k x (or xᵀ when tx) and k×c y.
func mul(r, c, k int, x []float64, tx bool, y []float64) []float64 {
	z := make([]float64, r*c)
	for i := range r {
		for l := range k {
			xil := x[i*k+l]
			if tx {
				xil = x[l*r+i]
			}
			for j := range c {
				z[i*c+j] += xil * y[l*c+j]
			}
		}
	}
	return z
}

func frob(a []float64) float64 {
	var s float64
	for _, v := range a {
		s += v * v
	}
	return math.Sqrt(s)
}

// orthoErr returns max |QᵀQ − I| for the r×c contiguous q (its columns), or
// max |QQᵀ − I| when rows is true.
func orthoErr(r, c int, q []float64, rows bool) float64 {
	var g []float64
	n := c
	if rows {
		n = r
		qt := make([]float64, c*r)
		for i := range r {
			for j := range c {
				qt[j*r+i] = q[i*c+j]
			}
		}
		g = mul(r, r, c, q, false, qt)
	} else {
		g = mul(c, c, r, q, true, q)
	}
	var e float64
	for i := range n {
		for j := range n {
			want := 0.0
			if i == j {
				want = 1
			}
			e = max(e, math.Abs(g[i*n+j]-want))
		}
	}
	return e
}

var transposes = []blas.Transpose{blas.NoTrans, blas.Trans}

func TestGemm(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b Backend) {
		bothTypes(t, b, testGemm[float32], testGemm[float64])
	})
}

func testGemm[T Float](t *testing.T, b Backend) {
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{0, 1, 2, 3, 5, 10, 64, 65, 150}
	type shape struct{ m, n, k int }
	var shapes []shape
	for _, s := range sizes {
		shapes = append(shapes, shape{s, s, s})
	}
	// Odd mixes: each dimension in turn small, large or zero.
	shapes = append(shapes, shape{1, 65, 3}, shape{65, 1, 10}, shape{3, 5, 150}, shape{150, 10, 1},
		shape{64, 65, 2}, shape{5, 3, 0}, shape{0, 3, 5}, shape{10, 150, 65})
	scalars := [][2]float64{{1, 0}, {-0.5, 1}, {2, -1.5}, {0, 0.5}}
	for _, sh := range shapes {
		m, n, k := sh.m, sh.n, sh.k
		for ti, tA := range transposes {
			for tj, tB := range transposes {
				sc := scalars
				if m*n*k > 1000 {
					// Large shapes: one scalar pair per transpose
					// combination, all four pairs over the four.
					sc = scalars[2*ti+tj : 2*ti+tj+1]
				}
				for _, ab := range sc {
					alpha, beta := T(ab[0]), T(ab[1])
					ar, ac := opShape(tA, m, k)
					br, bc := opShape(tB, k, n)
					lda, ldb, ldc := ac+3, bc+3, n+3
					a := newMat[T](rng, ar, ac, lda)
					bm := newMat[T](rng, br, bc, ldb)
					var c []T
					if beta == 0 {
						c = nanMat[T](m, n, ldc) // beta = 0 must not read C
					} else {
						c = newMat[T](rng, m, n, ldc)
					}
					c0 := slices.Clone(c)
					Gemm(b, tA, tB, m, n, k, alpha, a, lda, bm, ldb, beta, c, ldc)
					name := fmt.Sprintf("m=%d n=%d k=%d tA=%c tB=%c alpha=%v beta=%v", m, n, k, tA, tB, alpha, beta)
					checkPadding(t, name+" C", m, n, ldc, c)
					checkPadding(t, name+" A", ar, ac, lda, a)
					for i := range m {
						for j := range n {
							var ref, mag float64
							for l := range k {
								p := at(a, lda, tA, i, l) * at(bm, ldb, tB, l, j)
								ref += p
								mag += math.Abs(p)
							}
							ref *= float64(alpha)
							mag *= math.Abs(float64(alpha))
							if beta != 0 {
								ref += float64(beta) * float64(c0[i*ldc+j])
								mag += math.Abs(float64(beta) * float64(c0[i*ldc+j]))
							}
							// Higham's bound for a dot product of length k,
							// plus the scaling by alpha and the update by
							// beta: |error| ≤ (k+2)·u·Σ|terms|.
							tol := float64(k+2)*eps[T]()*mag + 1e-300
							if got := float64(c[i*ldc+j]); !(math.Abs(got-ref) <= tol) {
								t.Fatalf("%s: C(%d, %d) = %v, want %v ± %g", name, i, j, got, ref, tol)
							}
						}
					}
				}
			}
		}
	}
}

func TestSyrk(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b Backend) {
		bothTypes(t, b, testSyrk[float32], testSyrk[float64])
	})
}

func testSyrk[T Float](t *testing.T, b Backend) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, nk := range [][2]int{{0, 3}, {3, 0}, {1, 1}, {2, 5}, {5, 2}, {10, 10}, {65, 3}, {64, 150}, {150, 65}} {
		n, k := nk[0], nk[1]
		for _, ul := range []blas.Uplo{blas.Upper, blas.Lower} {
			for _, tr := range transposes {
				alpha, beta := T(1.5), T(-0.5)
				ar, ac := opShape(tr, n, k)
				lda, ldc := ac+3, n+3
				a := newMat[T](rng, ar, ac, lda)
				c := newMat[T](rng, n, n, ldc)
				c0 := slices.Clone(c)
				Syrk(b, ul, tr, n, k, alpha, a, lda, beta, c, ldc)
				name := fmt.Sprintf("n=%d k=%d uplo=%c t=%c", n, k, ul, tr)
				checkPadding(t, name, n, n, ldc, c)
				for i := range n {
					for j := range n {
						got := float64(c[i*ldc+j])
						if (ul == blas.Upper && j < i) || (ul == blas.Lower && j > i) {
							if got != float64(c0[i*ldc+j]) {
								t.Fatalf("%s: C(%d, %d) outside the triangle changed", name, i, j)
							}
							continue
						}
						var ref, mag float64
						for l := range k {
							p := at(a, lda, tr, i, l) * at(a, lda, tr, j, l)
							ref += p
							mag += math.Abs(p)
						}
						ref = float64(alpha)*ref + float64(beta)*float64(c0[i*ldc+j])
						mag = math.Abs(float64(alpha))*mag + math.Abs(float64(beta)*float64(c0[i*ldc+j]))
						tol := float64(k+2)*eps[T]()*mag + 1e-300 // as for Gemm
						if !(math.Abs(got-ref) <= tol) {
							t.Fatalf("%s: C(%d, %d) = %v, want %v ± %g", name, i, j, got, ref, tol)
						}
					}
				}
			}
		}
	}
}

func TestTrsm(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b Backend) {
		bothTypes(t, b, testTrsm[float32], testTrsm[float64])
	})
}

// testTrsm checks the residual of op(A)·X = αB or X·op(A) = αB entry by
// entry, with A's other triangle NaN (and its diagonal 1000 when Unit) so a
// solver that reads them fails, and B's padding untouched.
func testTrsm[T Float](t *testing.T, b Backend) {
	rng := rand.New(rand.NewPCG(3, 5))
	for _, mn := range [][2]int{{0, 3}, {3, 0}, {1, 1}, {5, 2}, {2, 5}, {65, 3}, {10, 64}, {150, 65}} {
		m, n := mn[0], mn[1]
		for _, side := range []blas.Side{blas.Left, blas.Right} {
			k := n
			if side == blas.Left {
				k = m
			}
			for _, ul := range []blas.Uplo{blas.Upper, blas.Lower} {
				for _, tr := range transposes {
					for _, d := range []blas.Diag{blas.NonUnit, blas.Unit} {
						lda, ldb := k+2, n+3
						// Off-diagonal entries of size 1/k and a diagonal of
						// at least 2 keep A well conditioned (κ < 3), so the
						// residual bound below is not swamped by κ.
						a := newMat[T](rng, k, k, lda)
						for i := range k {
							for j := range k {
								switch {
								case i == j && d == blas.Unit:
									a[i*lda+j] = 1000
								case i == j:
									a[i*lda+j] = T(2 + rng.Float64())
								case (ul == blas.Upper) == (j > i):
									a[i*lda+j] /= T(k)
								default:
									a[i*lda+j] = T(math.NaN())
								}
							}
						}
						x := newMat[T](rng, m, n, ldb)
						b0 := slices.Clone(x)
						alpha := T(1.5)
						Trsm(b, side, ul, tr, d, m, n, alpha, a, lda, x, ldb)
						name := fmt.Sprintf("m=%d n=%d side=%c uplo=%c t=%c diag=%c", m, n, side, ul, tr, d)
						checkPadding(t, name, m, n, ldb, x)
						tri := func(i, j int) float64 { // op(A)(i, j)
							if tr != blas.NoTrans {
								i, j = j, i
							}
							switch {
							case i == j && d == blas.Unit:
								return 1
							case i == j || (ul == blas.Upper) == (j > i):
								return float64(a[i*lda+j])
							}
							return 0
						}
						for i := range m {
							for j := range n {
								var ref, mag float64
								for l := range k {
									var p float64
									if side == blas.Left {
										p = tri(i, l) * float64(x[l*ldb+j])
									} else {
										p = float64(x[i*ldb+l]) * tri(l, j)
									}
									ref += p
									mag += math.Abs(p)
								}
								want := float64(alpha) * float64(b0[i*ldb+j])
								// Backward stable: a residual of a few k·u·|op(A)|·|X|.
								tol := 4*float64(k+2)*eps[T]()*(mag+math.Abs(want)) + 1e-300
								if !(math.Abs(ref-want) <= tol) {
									t.Fatalf("%s: (op(A)·X)(%d, %d) = %v, want %v ± %g", name, i, j, ref, want, tol)
								}
							}
						}
					}
				}
			}
		}
	}
}

// svdShapes are the SVD test inputs: tall, wide, square, at block edges,
// and rank deficient (rank > 0 builds the matrix as a product of rank
// factors).
var svdShapes = []struct{ m, n, rank int }{
	{0, 0, 0}, {0, 3, 0}, {3, 0, 0}, {1, 1, 0}, {1, 5, 0}, {5, 1, 0}, {2, 2, 0}, {3, 3, 0},
	{10, 3, 0}, {3, 10, 0}, {64, 64, 0}, {65, 64, 0}, {64, 65, 0}, {150, 20, 0}, {20, 150, 0},
	{30, 20, 5}, {20, 30, 5}, {40, 40, 1}, {10, 10, 9},
}

func svdInput[T Float](rng *rand.Rand, m, n, rank, lda int) []T {
	if rank == 0 {
		return newMat[T](rng, m, n, lda)
	}
	x := dense(m, rank, newMat[T](rng, m, rank, rank), rank)
	y := dense(rank, n, newMat[T](rng, rank, n, n), n)
	xy := mul(m, n, rank, x, false, y)
	a := nanMat[T](m, n, lda)
	for i := range m {
		for j := range n {
			a[i*lda+j] = T(xy[i*n+j])
		}
	}
	return a
}

func TestGesdd(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b Backend) {
		bothTypes(t, b, testGesdd[float32], testGesdd[float64])
	})
}

func testGesdd[T Float](t *testing.T, b Backend) {
	rng := rand.New(rand.NewPCG(5, 6))
	ref := NewGonum(1)
	for _, sh := range svdShapes {
		m, n, p := sh.m, sh.n, min(sh.m, sh.n)
		lda := n + 3
		a0 := svdInput[T](rng, m, n, sh.rank, lda)
		ad := dense(m, n, a0, lda)
		norm := frob(ad)
		// The singular values of the same matrix in float64 by gonum,
		// the reference for every backend.
		sref := make([]float64, p)
		ref.Dgesdd(lapack.SVDNone, m, n, slices.Clone(ad), max(1, n), sref, nil, 1, nil, 1)
		for _, job := range []lapack.SVDJob{lapack.SVDAll, lapack.SVDStore, lapack.SVDNone} {
			name := fmt.Sprintf("m=%d n=%d rank=%d job=%c", m, n, sh.rank, job)
			ur, vr := m, n // U is m×ur, Vᵀ is vr×n
			if job == lapack.SVDStore {
				ur, vr = p, p
			}
			ldu, ldvt := ur+3, n+3
			a := slices.Clone(a0)
			s := nanMat[T](1, p, p+1) // one sentinel after the values
			var u, vt []T
			if job != lapack.SVDNone {
				u = nanMat[T](m, ur, ldu)
				vt = nanMat[T](vr, n, ldvt)
			}
			if !Gesdd(b, job, m, n, a, lda, s, u, ldu, vt, ldvt) {
				t.Fatalf("%s: no convergence", name)
			}
			checkPadding(t, name+" A", m, n, lda, a)
			checkPadding(t, name+" s", 1, p, p+1, s)
			checkNoNaN(t, name+" s", 1, p, p+1, s)
			for i := range p {
				if s[i] < 0 || (i > 0 && s[i] > s[i-1]) {
					t.Fatalf("%s: singular values not non-negative and decreasing: %v", name, s[:p])
				}
				// Weyl: a backward error E moves each σ by at most ‖E‖₂,
				// and both backends have ‖E‖ ≲ max(m,n)·u·‖A‖.
				if tol := 10 * float64(max(m, n)) * eps[T]() * norm; math.Abs(float64(s[i])-sref[i]) > tol {
					t.Fatalf("%s: σ[%d] = %v, gonum float64 gives %v ± %g", name, i, s[i], sref[i], tol)
				}
			}
			if job == lapack.SVDNone {
				continue
			}
			checkPadding(t, name+" U", m, ur, ldu, u)
			checkPadding(t, name+" Vt", vr, n, ldvt, vt)
			if p == 0 {
				continue // as in LAPACK, an empty A leaves U and Vᵀ untouched
			}
			checkNoNaN(t, name+" U", m, ur, ldu, u)
			checkNoNaN(t, name+" Vt", vr, n, ldvt, vt)
			ud, vd := dense(m, ur, u, ldu), dense(vr, n, vt, ldvt)
			// A backward stable SVD has ‖A − UΣVᵀ‖ ≲ c·max(m,n)·u·‖A‖ and
			// factors orthonormal to c·max(m,n)·u; c = 10 leaves room for
			// the constants of the LAPACK error bounds.
			tol := 10 * float64(max(m, n)) * eps[T]()
			us := make([]float64, m*p)
			for i := range m {
				for j := range p {
					us[i*p+j] = ud[i*ur+j] * float64(s[j])
				}
			}
			res := mul(m, n, p, us, false, vd[:p*n])
			for i := range res {
				res[i] -= ad[i]
			}
			if e := frob(res); e > tol*norm {
				t.Fatalf("%s: ‖A − UΣVᵀ‖ = %g, want ≤ %g", name, e, tol*norm)
			}
			if e := orthoErr(m, ur, ud, false); e > tol {
				t.Fatalf("%s: ‖UᵀU − I‖ = %g, want ≤ %g", name, e, tol)
			}
			if e := orthoErr(vr, n, vd, true); e > tol {
				t.Fatalf("%s: ‖VᵀV − I‖ = %g, want ≤ %g", name, e, tol)
			}
		}
	}
}

func TestSyevd(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b Backend) {
		bothTypes(t, b, testSyevd[float32], testSyevd[float64])
	})
}

func testSyevd[T Float](t *testing.T, b Backend) {
	rng := rand.New(rand.NewPCG(7, 8))
	ref := NewGonum(1)
	for _, n := range []int{0, 1, 2, 3, 5, 10, 64, 65, 100} {
		lda := n + 3
		// Only the upper triangle is set; NaN below it shows a read of it.
		a := nanMat[T](n, n, lda)
		sym := make([]float64, n*n)
		for i := range n {
			for j := i; j < n; j++ {
				v := T(2*rng.Float64() - 1)
				a[i*lda+j] = v
				sym[i*n+j], sym[j*n+i] = float64(v), float64(v)
			}
		}
		wref := make([]float64, n)
		ref.Dsyevd(n, slices.Clone(sym), max(1, n), wref)
		w := nanMat[T](1, n, n+1)
		name := fmt.Sprintf("n=%d", n)
		if !Syevd(b, n, a, lda, w) {
			t.Fatalf("%s: no convergence", name)
		}
		checkPadding(t, name+" A", n, n, lda, a)
		checkPadding(t, name+" w", 1, n, n+1, w)
		checkNoNaN(t, name+" A", n, n, lda, a)
		checkNoNaN(t, name+" w", 1, n, n+1, w)
		norm := frob(sym)
		// As for the SVD: backward error and orthogonality within
		// c·n·u, eigenvalues within that much of ‖A‖ (Weyl).
		tol := 10 * float64(max(n, 1)) * eps[T]()
		for i := range n {
			if i > 0 && w[i] < w[i-1] {
				t.Fatalf("%s: eigenvalues not ascending: %v", name, w[:n])
			}
			if math.Abs(float64(w[i])-wref[i]) > tol*norm {
				t.Fatalf("%s: w[%d] = %v, gonum float64 gives %v", name, i, w[i], wref[i])
			}
		}
		v := dense(n, n, a, lda)
		av := mul(n, n, n, sym, false, v)
		for i := range n {
			for j := range n {
				av[i*n+j] -= v[i*n+j] * float64(w[j])
			}
		}
		if e := frob(av); e > tol*norm {
			t.Fatalf("%s: ‖AV − VΛ‖ = %g, want ≤ %g (eigenvectors not in the columns?)", name, e, tol*norm)
		}
		if e := orthoErr(n, n, v, false); e > tol {
			t.Fatalf("%s: ‖VᵀV − I‖ = %g, want ≤ %g", name, e, tol)
		}
	}
}

func TestSyevr(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b Backend) {
		bothTypes(t, b, testSyevr[float32], testSyevr[float64])
	})
}

// testSyevr checks the partial eigensolver on A = Q·diag(λ)·Qᵀ with a known
// orthogonal Q and eigenvalues λᵢ = i − n/2 (1-based i), one apart, so each
// computed eigenvector must match a column of Q up to sign; and on a random
// symmetric matrix against the full eigensolver's eigenvalues, by residual
// and orthogonality.
func testSyevr[T Float](t *testing.T, b Backend) {
	rng := rand.New(rand.NewPCG(9, 10))
	ref := NewGonum(1)
	// 128 and 257 reach parallelMinWork, where a budget of two threads
	// runs the library threaded.
	for _, n := range []int{0, 1, 2, 3, 5, 10, 64, 65, 100, 128, 257} {
		ranges := [][2]int{{1, n}, {n, n}, {1, 1}, {max(1, n-n/4), n}, {max(1, n/3), max(1, n/2)}}
		if n == 0 {
			ranges = [][2]int{{1, 0}}
		}
		// The known-spectrum matrix.
		q := make([]float64, n*n)
		for i := range q {
			q[i] = rng.NormFloat64()
		}
		if n > 0 {
			tau := make([]float64, n)
			ref.Dgeqrf(n, n, q, n, tau)
			ref.Dorgqr(n, n, n, q, n, tau)
		}
		lambda := make([]float64, n)
		for i := range lambda {
			lambda[i] = float64(i+1) - float64(n)/2
		}
		known := make([]float64, n*n)
		for i := range n {
			for j := range n {
				var v float64
				for k := range n {
					v += q[i*n+k] * lambda[k] * q[j*n+k]
				}
				known[i*n+j] = v
			}
		}
		random := make([]float64, n*n)
		for i := range n {
			for j := i; j < n; j++ {
				v := float64(T(2*rng.Float64() - 1))
				random[i*n+j], random[j*n+i] = v, v
			}
		}
		wRandom := make([]float64, n)
		ref.Dsyevd(n, slices.Clone(random), max(1, n), wRandom)
		for _, rg := range ranges {
			il, iu := rg[0], rg[1]
			m := iu - il + 1
			for _, c := range []struct {
				name  string
				sym   []float64
				exact bool
			}{{"known", known, true}, {"random", random, false}} {
				name := fmt.Sprintf("%s n=%d il=%d iu=%d", c.name, n, il, iu)
				lda, ldz := n+3, m+2
				// Only the upper triangle is set; NaN below it shows a read of it.
				a := nanMat[T](n, n, lda)
				sym := make([]float64, n*n)
				for i := range n {
					for j := i; j < n; j++ {
						v := T(c.sym[i*n+j])
						a[i*lda+j] = v
						sym[i*n+j], sym[j*n+i] = float64(v), float64(v)
					}
				}
				w := nanMat[T](1, m, m+1)
				z := nanMat[T](n, m, ldz)
				if !Syevr(b, n, il, iu, a, lda, w, z, ldz) {
					t.Fatalf("%s: no convergence", name)
				}
				checkPadding(t, name+" w", 1, m, m+1, w)
				checkPadding(t, name+" z", n, m, ldz, z)
				checkNoNaN(t, name+" w", 1, m, m+1, w)
				checkNoNaN(t, name+" z", n, m, ldz, z)
				norm := frob(sym)
				// As for Syevd: backward error, orthogonality and
				// eigenvalues within c·n·u (Weyl).
				tol := 10 * float64(max(n, 1)) * eps[T]()
				for j := range m {
					want := wRandom[il-1+j]
					if c.exact {
						want = lambda[il-1+j]
					}
					if math.Abs(float64(w[j])-want) > tol*max(norm, 1) {
						t.Fatalf("%s: w[%d] = %v, want %v", name, j, w[j], want)
					}
				}
				v := dense(n, m, z, ldz)
				av := mul(n, m, n, sym, false, v)
				for i := range n {
					for j := range m {
						av[i*m+j] -= v[i*m+j] * float64(w[j])
					}
				}
				if e := frob(av); e > tol*max(norm, 1) {
					t.Fatalf("%s: ‖AZ − ZΛ‖ = %g, want ≤ %g (eigenvectors not in the columns?)", name, e, tol*norm)
				}
				// MRRR keeps vectors orthogonal without explicit
				// reorthogonalization, within O(n·u) but with a larger
				// constant than divide and conquer; LAPACK's own tests
				// accept ratios up to 50.
				if e := orthoErr(n, m, v, false); e > 5*tol {
					t.Fatalf("%s: ‖ZᵀZ − I‖ = %g, want ≤ %g", name, e, 5*tol)
				}
				if !c.exact {
					continue
				}
				// Gap 1 and ‖A‖₂ ≤ n/2: each vector is within about
				// n·u·‖A‖₂ of ±q_{il+j} (Davis–Kahan).
				for j := range m {
					var d float64
					for i := range n {
						d += v[i*m+j] * q[i*n+il-1+j]
					}
					if e := 1 - math.Abs(d); e > tol*float64(n) {
						t.Fatalf("%s: eigenvector %d has |cos| %v to the exact one", name, j, math.Abs(d))
					}
				}
			}
		}
	}
}

// TestSyevrBadRange checks that an eigenvalue range LAPACK would reject
// panics before reaching C.
func TestSyevrBadRange(t *testing.T) {
	for _, b := range Backends(1) {
		for _, rg := range [][3]int{{3, 0, 2}, {3, 2, 1}, {3, 1, 4}, {0, 1, 1}} {
			n, il, iu := rg[0], rg[1], rg[2]
			func() {
				defer func() {
					if recover() == nil {
						t.Errorf("%s: n=%d il=%d iu=%d did not panic", b.Name(), n, il, iu)
					}
				}()
				a := make([]float64, max(1, n*n))
				b.Dsyevr(n, il, iu, a, max(1, n), make([]float64, 4), make([]float64, 16), 4)
			}()
		}
	}
}

func TestGeqrfOrgqr(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b Backend) {
		bothTypes(t, b, testQR[float32], testQR[float64])
	})
}

func testQR[T Float](t *testing.T, b Backend) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, mn := range [][2]int{{0, 0}, {1, 1}, {2, 1}, {1, 2}, {3, 3}, {5, 2}, {2, 5}, {10, 10}, {65, 64}, {64, 65}, {150, 10}, {10, 150}, {150, 150}} {
		m, n, p := mn[0], mn[1], min(mn[0], mn[1])
		lda := n + 3
		a := newMat[T](rng, m, n, lda)
		ad := dense(m, n, a, lda)
		tau := nanMat[T](1, p, p+1)
		name := fmt.Sprintf("m=%d n=%d", m, n)
		Geqrf(b, m, n, a, lda, tau)
		checkPadding(t, name+" A", m, n, lda, a)
		checkPadding(t, name+" tau", 1, p, p+1, tau)
		checkNoNaN(t, name+" tau", 1, p, p+1, tau)
		// R and the reflectors are stored as by gonum's row-major Dgeqrf
		// (other code may apply them with gonum's routines): compare with
		// it in float64. Householder QR of these small random matrices is
		// forward accurate to about cond(A)·u, cond(A) ≲ 10³ here.
		if m <= 65 && n <= 65 {
			refA, refTau := slices.Clone(ad), make([]float64, p)
			NewGonum(1).Dgeqrf(m, n, refA, max(1, n), refTau)
			tol := 1e3 * float64(max(m, n)) * eps[T]()
			for i := range m {
				for j := range n {
					if d := math.Abs(float64(a[i*lda+j]) - refA[i*n+j]); d > tol {
						t.Fatalf("%s: a(%d, %d) = %v, gonum's Dgeqrf stores %v", name, i, j, a[i*lda+j], refA[i*n+j])
					}
				}
			}
			for i := range p {
				if d := math.Abs(float64(tau[i]) - refTau[i]); d > tol {
					t.Fatalf("%s: tau[%d] = %v, gonum's Dgeqrf gives %v", name, i, tau[i], refTau[i])
				}
			}
		}
		r := make([]float64, p*n)
		for i := range p {
			for j := i; j < n; j++ {
				r[i*n+j] = float64(a[i*lda+j])
			}
		}
		// Q: the first p columns, and for tall inputs also one more column
		// than there are reflectors (n > k in xORGQR).
		for _, qc := range []int{p, min(m, p+1)} {
			ldq := qc + 3
			q := nanMat[T](m, qc, ldq)
			for i := range m {
				for j := range min(qc, p) {
					q[i*ldq+j] = a[i*lda+j]
				}
				for j := p; j < qc; j++ {
					q[i*ldq+j] = 0 // not referenced by the reflectors, overwritten
				}
			}
			Orgqr(b, m, qc, p, q, ldq, tau)
			qname := fmt.Sprintf("%s q cols=%d", name, qc)
			checkPadding(t, qname, m, qc, ldq, q)
			checkNoNaN(t, qname, m, qc, ldq, q)
			qd := dense(m, qc, q, ldq)
			// Householder QR is backward stable with error and loss of
			// orthogonality ≲ c·m·n·u; c·max(m,n)·u with c = 10 holds
			// for these sizes.
			tol := 10 * float64(max(m, n, 1)) * eps[T]()
			if e := orthoErr(m, qc, qd, false); e > tol {
				t.Fatalf("%s: ‖QᵀQ − I‖ = %g, want ≤ %g", qname, e, tol)
			}
			qp := dense(m, p, q, ldq)
			res := mul(m, n, p, qp, false, r)
			for i := range res {
				res[i] -= ad[i]
			}
			if e := frob(res); e > tol*frob(ad) {
				t.Fatalf("%s: ‖QR − A‖ = %g, want ≤ %g", qname, e, tol*frob(ad))
			}
		}
	}
}

func TestPotrfPotrs(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b Backend) {
		rng := rand.New(rand.NewPCG(11, 12))
		for _, n := range []int{0, 1, 2, 3, 5, 10, 64, 65, 150} {
			for _, nrhs := range []int{1, 3} {
				lda, ldb := n+3, nrhs+3
				// A = GᵀG + n·I is well conditioned and positive definite.
				g := dense(n, n, newMat[float64](rng, n, n, n), n)
				spd := mul(n, n, n, g, true, g)
				a := nanMat[float64](n, n, lda) // NaN below the diagonal: not read
				for i := range n {
					spd[i*n+i] += float64(n)
					for j := i; j < n; j++ {
						a[i*lda+j] = spd[i*n+j]
					}
				}
				x := dense(n, nrhs, newMat[float64](rng, n, nrhs, nrhs), nrhs)
				rhs := mul(n, nrhs, n, spd, false, x)
				bm := nanMat[float64](n, nrhs, ldb)
				for i := range n {
					copy(bm[i*ldb:i*ldb+nrhs], rhs[i*nrhs:(i+1)*nrhs])
				}
				name := fmt.Sprintf("n=%d nrhs=%d", n, nrhs)
				if !b.Dpotrf(n, a, lda) {
					t.Fatalf("%s: Dpotrf reports a positive definite matrix as not", name)
				}
				checkPadding(t, name+" A", n, n, lda, a)
				for i := range n {
					for j := range i {
						if !math.IsNaN(a[i*lda+j]) {
							t.Fatalf("%s: Dpotrf wrote below the diagonal at (%d, %d)", name, i, j)
						}
					}
				}
				u := make([]float64, n*n)
				for i := range n {
					for j := i; j < n; j++ {
						u[i*n+j] = a[i*lda+j]
					}
				}
				utu := mul(n, n, n, u, true, u)
				for i := range utu {
					utu[i] -= spd[i]
				}
				// Cholesky is backward stable: ‖UᵀU − A‖ ≲ c·n·u·‖A‖.
				tol := 10 * float64(max(n, 1)) * 0x1p-52
				if e := frob(utu); e > tol*frob(spd) {
					t.Fatalf("%s: ‖UᵀU − A‖ = %g, want ≤ %g", name, e, tol*frob(spd))
				}
				b.Dpotrs(n, nrhs, a, lda, bm, ldb)
				checkPadding(t, name+" B", n, nrhs, ldb, bm)
				// cond(A) ≤ (‖G‖² + n)/n is small, so the forward error
				// is a small multiple of the backward error.
				for i := range n {
					for j := range nrhs {
						if d := math.Abs(bm[i*ldb+j] - x[i*nrhs+j]); !(d <= 100*tol) {
							t.Fatalf("%s: X(%d, %d) = %v, want %v", name, i, j, bm[i*ldb+j], x[i*nrhs+j])
						}
					}
				}
			}
		}
		// Indefinite: diag(1, -1, 1) plus a small symmetric coupling.
		a := []float64{1, 0.1, 0, 0, -1, 0.1, 0, 0, 1}
		if b.Dpotrf(3, a, 3) {
			t.Fatal("Dpotrf reports an indefinite matrix as positive definite")
		}
	})
}

// TestConcurrentMixedBudgets runs gemm and gesdd from 8 goroutines at once
// with budgets 1 and 2, and checks each result bit for bit against the same
// call run alone: the thread gate must keep concurrent calls from disturbing
// one another, whatever thread count each one asked for.
func TestConcurrentMixedBudgets(t *testing.T) {
	for _, base := range Backends(1) {
		t.Run(base.Name(), func(t *testing.T) {
			const (
				workers = 8
				n       = 140 // above parallelMinWork, so budget 2 really uses 2 threads
			)
			rng := rand.New(rand.NewPCG(13, 14))
			type result struct{ c, s []float32 }
			inputs := make([][2][]float32, workers)
			for w := range inputs {
				inputs[w] = [2][]float32{newMat[float32](rng, n, n, n), newMat[float32](rng, n, n-40, n-40)}
			}
			compute := func(w int) result {
				b := base.WithThreads(1 + w%2)
				c := make([]float32, n*n)
				b.Sgemm(blas.NoTrans, blas.Trans, n, n, n, 1, inputs[w][0], n, inputs[w][0], n, 0, c, n)
				a := slices.Clone(inputs[w][1])
				s := make([]float32, n-40)
				u := make([]float32, n*(n-40))
				vt := make([]float32, (n-40)*(n-40))
				if !b.Sgesdd(lapack.SVDStore, n, n-40, a, n-40, s, u, n-40, vt, n-40) {
					t.Errorf("worker %d: no convergence", w)
				}
				return result{c, s}
			}
			serial := make([]result, workers)
			for w := range workers {
				serial[w] = compute(w)
			}
			par := make([]result, workers)
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					for range 2 {
						par[w] = compute(w)
					}
				})
			}
			wg.Wait()
			for w := range workers {
				if !slices.Equal(par[w].c, serial[w].c) || !slices.Equal(par[w].s, serial[w].s) {
					t.Fatalf("worker %d (budget %d): concurrent result differs from the serial one", w, 1+w%2)
				}
			}
		})
	}
}
