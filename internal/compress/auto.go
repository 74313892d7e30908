//go:build cmath

package compress

import "github.com/lowrank/lowrank/internal/linalg"

// evbmfRank is the rank EVBMF keeps for an m×n matrix with singular values
// s (Nakajima et al. 2013, see linalg.EVBMF).
func evbmfRank(s []float64, m, n int) (int, error) {
	r, _ := linalg.EVBMF(s, m, n)
	return r, nil
}
