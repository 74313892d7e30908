package jobs_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/lowrank/lowrank/internal/jobs"
	"github.com/lowrank/lowrank/internal/store"
)

// probeMethod reports the thread budget each job runs with on got, then
// holds its threads until release yields a value.
func probeMethod(got chan<- int, release <-chan struct{}) jobs.Method {
	return jobs.Method{
		Name: "probe",
		Validate: func(raw json.RawMessage, _ jobs.InputInfo, _ jobs.Limits) (json.RawMessage, error) {
			return json.RawMessage(`{}`), nil
		},
		Run: func(ctx context.Context, env jobs.Env, _ *jobs.Tensor, _ json.RawMessage) (*jobs.Output, error) {
			got <- env.Backend.Threads()
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return &jobs.Output{Factors: []*jobs.Tensor{{Name: "X", DType: "float64", Shape: []int{1}, F64: []float64{1}}}, Ranks: []int{1}}, nil
		},
	}
}

func TestThreadBudget(t *testing.T) {
	for _, tc := range []struct {
		threads, workers int
		// want[i] is the budget of the i-th job started while the earlier
		// ones still run: all C for the first, then the free threads but
		// at least C/W.
		want []int
	}{
		{8, 4, []int{8, 2, 2, 2}},
		{2, 2, []int{2, 1}},
		{3, 2, []int{3, 1}}, // C/W rounds down
	} {
		got := make(chan int)
		release := make(chan struct{})
		b := setup(t, func(c *jobs.Config) {
			c.Threads, c.Workers = tc.threads, tc.workers
			c.Registry["probe"] = probeMethod(got, release)
		})
		ctx := context.Background()
		submit := func() string {
			j, err := b.svc.Submit(ctx, jobs.SubmitRequest{Inline: randMatrix(1, 1, 1), Method: "probe"})
			if err != nil {
				t.Fatal(err)
			}
			return j.ID
		}
		recv := func() int {
			select {
			case n := <-got:
				return n
			case <-time.After(20 * time.Second):
				t.Fatal("a probe job did not start")
				return 0
			}
		}
		var ids []string
		for i, want := range tc.want {
			ids = append(ids, submit())
			if n := recv(); n != want {
				t.Errorf("C=%d W=%d: job %d got %d threads, want %d", tc.threads, tc.workers, i, n, want)
			}
		}
		// Once all have ended, a job alone takes all C again.
		for range ids {
			release <- struct{}{}
		}
		for _, id := range ids {
			wait(t, b, id, store.JobSucceeded)
		}
		id := submit()
		if n := recv(); n != tc.threads {
			t.Errorf("C=%d W=%d: job alone after the others got %d threads, want %d", tc.threads, tc.workers, n, tc.threads)
		}
		release <- struct{}{}
		wait(t, b, id, store.JobSucceeded)
	}
}

// TestProgressNotWrittenForShortJobs: progress reported within the first
// interval of a job is not written; once the interval has passed it is.
func TestProgressNotWrittenForShortJobs(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	reported := make(chan struct{})
	proceed := make(chan struct{})
	b := setup(t, func(c *jobs.Config) {
		c.Now, c.ProgressInterval = clock.Now, time.Minute
		c.Registry["steps"] = jobs.Method{
			Name: "steps",
			Validate: func(json.RawMessage, jobs.InputInfo, jobs.Limits) (json.RawMessage, error) {
				return json.RawMessage(`{}`), nil
			},
			Run: func(ctx context.Context, env jobs.Env, _ *jobs.Tensor, _ json.RawMessage) (*jobs.Output, error) {
				for i := 1; i <= 2; i++ {
					env.Progress(jobs.Progress{Iteration: i, MaxIterations: 2, Fraction: float64(i) / 2})
					reported <- struct{}{}
					<-proceed
				}
				return &jobs.Output{Factors: []*jobs.Tensor{{Name: "X", DType: "float64", Shape: []int{1}, F64: []float64{1}}}, Ranks: []int{1}}, nil
			},
		}
	})
	ctx := context.Background()
	j, err := b.svc.Submit(ctx, jobs.SubmitRequest{Inline: randMatrix(1, 1, 1), Method: "steps"})
	if err != nil {
		t.Fatal(err)
	}
	<-reported // iteration 1, at the job's start
	if r, _ := b.meta.GetJobByID(ctx, j.ID); r.Progress.Iteration != 0 {
		t.Errorf("progress written within the first interval: %+v", r.Progress)
	}
	clock.Advance(2 * time.Minute)
	proceed <- struct{}{}
	<-reported // iteration 2, two minutes in
	if r, _ := b.meta.GetJobByID(ctx, j.ID); r.Progress.Iteration != 2 || r.Progress.Fraction != 1 {
		t.Errorf("progress after the interval: %+v, want iteration 2", r.Progress)
	}
	proceed <- struct{}{}
	wait(t, b, j.ID, store.JobSucceeded)
}
