package compress

import (
	"github.com/lowrank/lowrank"
	"github.com/lowrank/lowrank/internal/linalg"
)

// evbmfRank is the rank EVBMF keeps for an m×n matrix with singular values
// s (Nakajima et al. 2013, see linalg.EVBMF). linalg.EVBMF wants all
// min(m, n) of them and panics otherwise; an analysis decoded from
// elsewhere is checked here instead.
func evbmfRank(s []float64, m, n int) (int, error) {
	if len(s) != min(m, n) {
		return 0, lowrank.Errorf(lowrank.EINVALID, "analysis.spectra", "%d singular values for a %d×%d matrix", len(s), m, n)
	}
	for _, v := range s {
		if !(v >= 0) || !finite(v) {
			return 0, lowrank.Errorf(lowrank.EINVALID, "analysis.spectra", "singular value %v", v)
		}
	}
	r, _ := linalg.EVBMF(s, m, n)
	return r, nil
}
