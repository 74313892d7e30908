//go:build cgo && openblas

package linalg

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestInvitSplit(t *testing.T) {
	ones := func(n int, v float64) []float64 {
		s := make([]float64, n)
		for i := range s {
			s[i] = v
		}
		return s
	}
	// ‖T‖₁ = 2 + 2·1 = 4 here, so gaps above 4·10⁻³ may be cut.
	d, e := ones(40, 2), ones(39, 1)
	evenly := make([]float64, 32)
	for i := range evenly {
		evenly[i] = float64(i) * 0.01
	}
	clustered := make([]float64, 32) // two clusters, the gap at 20
	for i := range clustered {
		clustered[i] = float64(i) * 1e-4
		if i >= 20 {
			clustered[i] += 1
		}
	}
	tight := make([]float64, 32)
	for i := range tight {
		tight[i] = float64(i) * 1e-4
	}
	for _, c := range []struct {
		name    string
		d, e, w []float64
		want    int
	}{
		{"even gaps: the middle", d, e, evenly, 16},
		{"the gap nearest the middle", d, e, clustered, 20},
		{"no gap above the threshold", d, e, tight, 0},
		{"too few to split", d, e, evenly[:15], 0},
	} {
		if got := invitSplit(c.d, c.e, c.w); got != c.want {
			t.Errorf("%s: invitSplit = %d, want %d", c.name, got, c.want)
		}
	}
}

// TestSyevrBudgets: the eigenvector halves run at once on two threads and
// one after the other on one, with the same split, so both give the same
// bits; and clusters of equal eigenvalues, which the split must not cut,
// still come back orthonormal.
func TestSyevrBudgets(t *testing.T) {
	for _, n := range []int{40, 256} {
		for _, clusters := range []bool{false, true} {
			name := fmt.Sprintf("n=%d clusters=%v", n, clusters)
			rng := rand.New(rand.NewPCG(4, uint64(n)))
			q := make([]float64, n*n)
			for i := range q {
				q[i] = rng.NormFloat64()
			}
			tau := make([]float64, n)
			ref := NewGonum(1)
			ref.Dgeqrf(n, n, q, n, tau)
			ref.Dorgqr(n, n, n, q, n, tau)
			a := make([]float32, n*n)
			lambda := make([]float64, n)
			for k := range lambda {
				lambda[k] = rng.Float64() * 10
				if clusters {
					lambda[k] = float64(k / 3) // multiplicity 3: the middle of the top n/4 falls inside one
				}
			}
			for i := range n {
				for j := range n {
					var v float64
					for k := range n {
						v += q[i*n+k] * lambda[k] * q[j*n+k]
					}
					a[i*n+j] = float32(v)
				}
			}
			m := n / 4
			var ws, zs [2][]float32
			for bi, threads := range []int{1, 2} {
				ac := slices.Clone(a)
				ws[bi], zs[bi] = make([]float32, m), make([]float32, n*m)
				if !(OpenBLAS{threads: threads}).Ssyevr(n, n-m+1, n, ac, n, ws[bi], zs[bi], m) {
					t.Fatalf("%s: no convergence", name)
				}
			}
			if !slices.Equal(ws[0], ws[1]) || !slices.Equal(zs[0], zs[1]) {
				t.Errorf("%s: one and two threads differ", name)
			}
			z := make([]float64, n*m)
			for i, v := range zs[1] {
				z[i] = float64(v)
			}
			// As in testSyevr: orthogonality within 50·n·u.
			if e, tol := orthoErr(n, m, z, false), 50*float64(n)*eps[float32](); e > tol {
				t.Errorf("%s: ‖ZᵀZ − I‖ = %g, want ≤ %g", name, e, tol)
			}
		}
	}
}

// TestSyevrSplitT: a tridiagonal form with zero off-diagonal entries (a
// diagonal A), which inverse iteration takes as it is and the
// divide-and-conquer fallback too.
func TestSyevrSplitT(t *testing.T) {
	const n, m = 50, 20
	a := make([]float64, n*n)
	perm := rand.New(rand.NewPCG(1, 1)).Perm(n)
	for i, p := range perm {
		a[i*n+i] = float64(p)
	}
	for _, fallback := range []bool{false, true} {
		if fallback {
			setTridiagTest(false, 0)
		}
		w, z := make([]float64, m), make([]float64, n*m)
		ok := (OpenBLAS{threads: 2}).Dsyevr(n, n-m+1, n, slices.Clone(a), n, w, z, m)
		setTridiagTest(false, 5)
		if !ok {
			t.Fatalf("fallback %v: no convergence", fallback)
		}
		for j := range m {
			// Bisection stops within u·‖T‖ of the eigenvalue, plus the
			// Sturm count's backward error of a few u·‖T‖; ‖T‖ = n − 1.
			want := float64(n - m + j)
			if math.Abs(w[j]-want) > 16*(n-1)*eps[float64]() {
				t.Fatalf("fallback %v: w[%d] = %v, want %v", fallback, j, w[j], want)
			}
			// The eigenvector of eigenvalue p is ±e_i with perm[i] = p.
			i := slices.Index(perm, int(want))
			if math.Abs(math.Abs(z[i*m+j])-1) > 1e-15 {
				t.Fatalf("fallback %v: z column %d = ±e_%d expected, has %v there", fallback, j, i, z[i*m+j])
			}
		}
	}
}

// TestSyevrPaths runs testSyevr's checks on LR_TRI's 16-byte lanes, and
// with inverse iteration made to fail at once, so that DSTEDC takes its
// place.
func TestSyevrPaths(t *testing.T) {
	for _, c := range []struct {
		name   string
		narrow bool
		maxits int
	}{{"narrow lanes", true, 5}, {"fallback", false, 0}} {
		t.Run(c.name, func(t *testing.T) {
			setTridiagTest(c.narrow, c.maxits)
			defer setTridiagTest(false, 5)
			bothTypes(t, OpenBLAS{threads: 2}, testSyevr[float32], testSyevr[float64])
		})
	}
}

// TestSyevrLanes: LR_TRI's 32-byte and 16-byte lanes give the same bits,
// on spread and on clustered eigenvalues.
func TestSyevrLanes(t *testing.T) {
	if !setTridiagTest(false, 5) {
		t.Skip("no AVX2 here: LR_TRI has only its 16-byte lanes")
	}
	t.Run("float32", testSyevrLanes[float32])
	t.Run("float64", testSyevrLanes[float64])
}

func testSyevrLanes[T Float](t *testing.T) {
	const n, m = 120, 40
	rng := rand.New(rand.NewPCG(5, 6))
	for _, clustered := range []bool{false, true} {
		a := make([]T, n*n)
		for i := range n {
			for j := i; j < n; j++ {
				v := T(rng.NormFloat64())
				if clustered {
					v = T(rng.NormFloat64() * 1e-4)
					if i == j {
						v += T(i / 4) // multiplicity 4, split by 1e-4
					}
				}
				a[i*n+j], a[j*n+i] = v, v
			}
		}
		var ws, zs [2][]T
		for k, narrow := range []bool{false, true} {
			setTridiagTest(narrow, 5)
			ws[k], zs[k] = make([]T, m), make([]T, n*m)
			ok := Syevr(OpenBLAS{threads: 1}, n, n-m+1, n, slices.Clone(a), n, ws[k], zs[k], m)
			setTridiagTest(false, 5)
			if !ok {
				t.Fatalf("clustered %v narrow %v: no convergence", clustered, narrow)
			}
		}
		if !slices.Equal(ws[0], ws[1]) || !slices.Equal(zs[0], zs[1]) {
			t.Errorf("clustered %v: the two lane widths differ", clustered)
		}
	}
}
