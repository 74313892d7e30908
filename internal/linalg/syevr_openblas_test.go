//go:build cgo && openblas

package linalg

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestSteinSplit(t *testing.T) {
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
	split := make([]float64, 39)
	copy(split, e)
	split[17] = 1e-30
	for _, c := range []struct {
		name    string
		d, e, w []float64
		want    int
		wantOK  bool
	}{
		{"even gaps: the middle", d, e, evenly, 16, true},
		{"the gap nearest the middle", d, e, clustered, 20, true},
		{"no gap above the threshold", d, e, tight, 0, true},
		{"too few to split", d, e, evenly[:15], 0, true},
		{"T nearly splits", d, split, evenly, 0, false},
	} {
		got, ok := steinSplit(c.d, c.e, c.w)
		if got != c.want || ok != c.wantOK {
			t.Errorf("%s: steinSplit = %d, %v; want %d, %v", c.name, got, ok, c.want, c.wantOK)
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
// diagonal A) takes the divide-and-conquer step instead of inverse
// iteration.
func TestSyevrSplitT(t *testing.T) {
	const n, m = 50, 20
	a := make([]float64, n*n)
	perm := rand.New(rand.NewPCG(1, 1)).Perm(n)
	for i, p := range perm {
		a[i*n+i] = float64(p)
	}
	d, e := make([]float64, n), make([]float64, n-1)
	for i := range n {
		d[i] = a[i*n+i]
	}
	if _, ok := steinSplit(d, e, d[:m]); ok {
		t.Fatal("steinSplit accepts a split T")
	}
	w, z := make([]float64, m), make([]float64, n*m)
	if !(OpenBLAS{threads: 2}).Dsyevr(n, n-m+1, n, a, n, w, z, m) {
		t.Fatal("no convergence")
	}
	for j := range m {
		want := float64(n - m + j)
		if w[j] != want {
			t.Fatalf("w[%d] = %v, want %v", j, w[j], want)
		}
		// The eigenvector of eigenvalue p is ±e_i with perm[i] = p.
		i := slices.Index(perm, int(want))
		if math.Abs(math.Abs(z[i*m+j])-1) > 1e-15 {
			t.Fatalf("z column %d = ±e_%d expected, has %v there", j, i, z[i*m+j])
		}
	}
}
