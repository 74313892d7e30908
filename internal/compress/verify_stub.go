//go:build !cmath

package compress

import (
	"github.com/lowrank/lowrank"
	"github.com/lowrank/lowrank/internal/linalg"
	"github.com/lowrank/lowrank/internal/tensorio"
)

// VerifyOutput stands in for the verification by convolution until
// tensorops.Conv2D is merged (build tag cmath).
func VerifyOutput(b linalg.Backend, l *Layer, t *tensorio.Tensor, r *LayerResult, seed uint64) (float64, error) {
	return 0, lowrank.Errorf(lowrank.EUNSUPPORTED, "verify", "this build has no Conv2D")
}
