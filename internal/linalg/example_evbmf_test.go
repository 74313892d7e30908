package linalg_test

import (
	"fmt"
	"math/rand/v2"

	"gonum.org/v1/gonum/lapack"

	"github.com/lowrank/lowrank/internal/linalg"
)

func ExampleEVBMF() {
	// A 60×40 matrix: two strong directions plus Gaussian noise of
	// variance 0.25. EVBMF keeps the two and estimates the noise.
	const m, n = 60, 40
	rng := rand.New(rand.NewPCG(1, 2))
	a := make([]float64, m*n)
	u, v := make([]float64, 2*m), make([]float64, 2*n)
	for i := range u {
		u[i] = rng.NormFloat64()
	}
	for i := range v {
		v[i] = rng.NormFloat64()
	}
	for i := range m {
		for j := range n {
			a[i*n+j] = 0.5*u[i]*v[j] + 0.3*u[m+i]*v[n+j] + 0.5*rng.NormFloat64()
		}
	}
	s := make([]float64, n)
	linalg.NewGonum(1).Dgesdd(lapack.SVDNone, m, n, a, n, s, nil, 1, nil, 1)
	rank, sigma2 := linalg.EVBMF(s, m, n)
	fmt.Printf("rank %d, σ² ≈ %.2f\n", rank, sigma2)
	// Output:
	// rank 2, σ² ≈ 0.25
}
