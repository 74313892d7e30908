package compress

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/lowrank/lowrank/internal/linalg"
	"github.com/lowrank/lowrank/internal/tensorio"
)

// TestAllocateAuto: on a weight that is low rank plus Gaussian noise,
// the auto rule (EVBMF on the spectrum) finds the rank, for a matrix and
// for each channel mode of a conv filter; rank_multiple rounds it up.
func TestAllocateAuto(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	b := linalg.Default(1)
	// Signal singular values 30…12 against noise of norm about
	// sqrt(m)+sqrt(n) ≈ 24 per unit variance · 0.3: well separated.
	w := withSpectrum(rng, 120, 200, []float64{30, 26, 22, 19, 16, 14, 12})
	for i := range w {
		w[i] += 0.3 * rng.NormFloat64()
	}
	conv := make([]float64, 48*40*9)
	{
		// A Tucker-2 tensor of ranks (6, 4): core × U_out × U_in, plus noise.
		uo, ui := orthonormal(rng, 48, 6), orthonormal(rng, 40, 4)
		g := gaussian(rng, 6*4*9, 10)
		for o := range 48 {
			for i := range 40 {
				for k := range 9 {
					var s float64
					for a := range 6 {
						for c := range 4 {
							s += uo[o*6+a] * ui[i*4+c] * g[(a*4+c)*9+k]
						}
					}
					conv[(o*40+i)*9+k] = s + 0.05*rng.NormFloat64()
				}
			}
		}
	}
	infos := []tensorio.Info{
		{Name: "fc.weight", DType: tensorio.F64, Shape: []int{120, 200}},
		{Name: "conv.weight", DType: tensorio.F64, Shape: []int{48, 40, 3, 3}},
	}
	data := map[string][]float64{"fc.weight": w, "conv.weight": conv}
	for _, tc := range []struct {
		mult int
		want [][]int
	}{{1, [][]int{{7}, {6, 4}}}, {4, [][]int{{8}, {8, 4}}}} {
		plan, err := NewPlan(infos, Policy{Rule: &Rule{Auto: true}, MinElements: 1, RankMultiple: tc.mult})
		if err != nil {
			t.Fatal(err)
		}
		var as []*Analysis
		for i := range plan.Layers {
			l := &plan.Layers[i]
			a, err := Analyze(context.Background(), b, l, &tensorio.Tensor{Name: l.Name, DType: tensorio.F64, Shape: l.Shape, F64: data[l.Name]})
			if err != nil {
				t.Fatal(err)
			}
			as = append(as, a)
		}
		allocs, err := Allocate(plan, as)
		if err != nil {
			t.Fatal(err)
		}
		for i, al := range allocs {
			if !slices.Equal(al.Ranks, tc.want[i]) || al.By != "auto" {
				t.Errorf("mult %d: %s: ranks %v by %q, want %v by auto", tc.mult, al.Name, al.Ranks, al.By, tc.want[i])
			}
		}
	}
}
