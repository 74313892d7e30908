package tensorops_test

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/lowrank/lowrank/internal/linalg"
	"github.com/lowrank/lowrank/internal/tensorops"
)

// Tucker-2 of a conv filter (out, in, kh, kw): compress the channel modes,
// keep the 3×3 kernel.
func ExampleTucker() {
	rng := rand.New(rand.NewPCG(1, 2))
	w := tensorops.NewDense[float32](32, 16, 3, 3)
	for i := range w.Data {
		w.Data[i] = float32(rng.NormFloat64())
	}
	res, err := tensorops.Tucker(context.Background(), linalg.Default(1), w, tensorops.TuckerOptions{
		Modes:   []int{0, 1},
		Ranks:   []int{8, 4},
		MaxIter: 5,
	}, nil)
	if err != nil {
		panic(err)
	}
	fmt.Println("core", res.Core.Shape)
	fmt.Println("factors", res.Factors[0].Rows, "x", res.Factors[0].Cols, "and", res.Factors[1].Rows, "x", res.Factors[1].Cols)
	fmt.Println("parameters", res.ParamsFactors, "of", res.ParamsOriginal)
	// Output:
	// core [8 4 3 3]
	// factors 32 x 8 and 16 x 4
	// parameters 608 of 4608
}

// CP of an exactly rank-2 tensor recovers it to round-off.
func ExampleCPALS() {
	a := []float64{1, 2, 3, 0, 1, -1} // 3×2
	b := []float64{1, 0, 1, 1, 2, -1} // 3×2
	c := []float64{2, 1, -1, 3}       // 2×2
	x := tensorops.NewDense[float64](3, 3, 2)
	for i := range 3 {
		for j := range 3 {
			for k := range 2 {
				for r := range 2 {
					x.Data[(i*3+j)*2+k] += a[i*2+r] * b[j*2+r] * c[k*2+r]
				}
			}
		}
	}
	res, err := tensorops.CPALS(context.Background(), linalg.Default(1), x, tensorops.CPOptions{Rank: 2, MaxIter: 200, Tol: 1e-15}, nil)
	if err != nil {
		panic(err)
	}
	fmt.Println("rank", len(res.Weights), "exact:", res.RelError < 1e-8)
	// Output:
	// rank 2 exact: true
}
