// Package jobstest holds helpers for tests of packages that run jobs.
package jobstest

import (
	"context"
	"encoding/json"
	"time"

	"github.com/lowrank/lowrank/internal/jobs"
)

// SleepMethod is a controllable job for lifecycle tests: it reports
// progress every 10 ms for {"seconds": s} and honours cancellation.
func SleepMethod() jobs.Method {
	return jobs.Method{
		Name: "sleep",
		Validate: func(raw json.RawMessage, _ jobs.InputInfo, _ jobs.Limits) (json.RawMessage, error) {
			if len(raw) == 0 {
				raw = json.RawMessage(`{}`)
			}
			return raw, nil
		},
		Run: func(ctx context.Context, env jobs.Env, in *jobs.Tensor, raw json.RawMessage) (*jobs.Output, error) {
			var p struct{ Seconds float64 }
			_ = json.Unmarshal(raw, &p)
			end := time.Now().Add(time.Duration(p.Seconds * float64(time.Second)))
			for i := 0; time.Now().Before(end); i++ {
				select {
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-time.After(10 * time.Millisecond):
				}
				env.Progress(jobs.Progress{Iteration: i, MaxIterations: 1000, RelError: 1, Fraction: 0.5})
			}
			return &jobs.Output{Factors: []*jobs.Tensor{{Name: "X", DType: "float64", Shape: []int{1}, F64: []float64{1}}}, Ranks: []int{1}}, nil
		},
	}
}
