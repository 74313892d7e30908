package linalg_test

import (
	"context"
	"fmt"

	"github.com/lowrank/lowrank/internal/linalg"
)

func ExampleTruncatedSVD() {
	// A 4×3 matrix of rank 2; keep the components holding 99 % of its energy.
	a := []float32{
		3, 1, 2,
		1, 3, 2,
		4, 4, 4,
		2, 2, 2,
	}
	r, err := linalg.TruncatedSVD(context.Background(), linalg.Default(1), 4, 3, a, 3,
		linalg.SVDOptions{Rule: linalg.RankRule{Energy: 0.99}}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("rank %d, σ = %.4f, error %.4f, %d of %d parameters\n",
		r.K, r.S, r.Choice.RelError, r.Choice.ParamsFactors, r.Choice.ParamsOriginal)
	// Output:
	// rank 2, σ = [9.1652 2.0000], error 0.0000, 16 of 12 parameters
}

func ExamplePCA() {
	x := []float64{
		2, 0, 1,
		1, 3, -1,
		4, 1, 0,
		0, 2, 2,
		3, -1, 1,
	}
	r, err := linalg.PCA(context.Background(), linalg.Default(1), 5, 3, x, 3,
		linalg.PCAOptions{VarianceFraction: 0.9}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%d components, explained variance %.4f, ratio %.4f\n", r.K, r.ExplainedVariance, r.ExplainedVarianceRatio)
	// Output:
	// 2 components, explained variance [4.0127 2.0373], ratio [0.6369 0.3234]
}
