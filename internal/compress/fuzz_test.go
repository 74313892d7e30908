package compress

import (
	"testing"

	"github.com/lowrank/lowrank"
)

// FuzzParsePolicy: any bytes give a valid policy or a *lowrank.Error, and a
// valid policy plans the synthetic checkpoint without panicking.
//
//	go test -run '^$' -fuzz FuzzParsePolicy -fuzztime 30s ./internal/compress/
func FuzzParsePolicy(f *testing.F) {
	for _, s := range []string{
		`{"budget": 0.4}`,
		`{"rule": {"rank": 8}, "rank_multiple": 8, "conv_method": "cp"}`,
		`{"rule": {"auto": true}, "layers": [{"pattern": "fc*", "energy": 0.9}]}`,
		`{"rule": {"rel_error": 0.1}, "include": ["a.*"], "exclude": [], "layouts": [{"pattern": "*c_attn*", "layout": "hf_conv1d"}]}`,
		`{"budget": 0.5, "layouts": [{"pattern": "conv*", "layout": "conv2d", "stride": [2, 2], "padding": [0, 1], "input_size": [32, 32]}]}`,
		`{"rule": {"rank": 3}, "include": ["a["]}`,
	} {
		f.Add([]byte(s))
	}
	infos := synthInfos()
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePolicy(data)
		if err != nil {
			if _, ok := err.(*lowrank.Error); !ok {
				t.Fatalf("%q: %T %v", data, err, err)
			}
			return
		}
		if _, err := NewPlan(infos, p); err != nil {
			if _, ok := err.(*lowrank.Error); !ok {
				t.Fatalf("%q: plan: %T %v", data, err, err)
			}
		}
	})
}
