package compress

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/lowrank/lowrank/internal/linalg"
)

// TestGramFactors checks the Gram route to a truncated SVD against
// linalg.SVD over shapes wide, tall and degenerate and every kind of rank,
// on every backend: L·R attains the Eckart–Young error, and the two
// factors' columns/rows carry sqrt(σ) each.
func TestGramFactors(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	for _, b := range linalg.Backends(2) {
		for _, sh := range [][2]int{{1, 1}, {1, 5}, {5, 1}, {2, 3}, {3, 2}, {10, 4}, {4, 10}, {30, 50}, {50, 30}, {64, 200}} {
			m, n := sh[0], sh[1]
			p := min(m, n)
			w := withSpectrum(rng, m, n, decaying(p, 1, 0.8))
			ref, err := linalg.SVD(b, m, n, w, n)
			if err != nil {
				t.Fatal(err)
			}
			var norm float64
			for _, v := range w {
				norm += v * v
			}
			for _, r := range []int{1, max(1, p/2), p} {
				name := fmt.Sprintf("%s %d×%d rank %d", b.Name(), m, n, r)
				left, right, err := gramFactors(b, m, n, r, w)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				rebuilt := matmul(left, right, m, r, n)
				var e2, tail float64
				for i := range w {
					d := w[i] - rebuilt[i]
					e2 += d * d
				}
				for _, s := range ref.S[r:] {
					tail += s * s
				}
				// The Gram route loses accuracy only in directions with
				// σ² below 1e-16·σ₁²; here σ ≥ 0.8^63 ≈ 1e-6, so the error
				// matches to about 1e-12 of ‖W‖².
				if math.Abs(e2-tail) > 1e-11*norm {
					t.Errorf("%s: error² %g, Eckart–Young %g", name, e2, tail)
				}
				for j := range r {
					var cl, rr float64
					for i := range m {
						cl += left[i*r+j] * left[i*r+j]
					}
					for c := range n {
						rr += right[j*n+c] * right[j*n+c]
					}
					if s := ref.S[j]; math.Abs(cl-s) > 1e-9 || math.Abs(rr-s) > 1e-9 {
						t.Errorf("%s: component %d has ‖L‖² %g, ‖R‖² %g, want σ = %g", name, j, cl, rr, s)
					}
				}
			}
		}
	}
}
