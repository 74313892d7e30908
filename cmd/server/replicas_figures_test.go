package main

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lowrank/lowrank/client"
)

// TestReplicaFigures measures the scale-out deployment on this machine; it
// runs only with LOWRANK_FIGURES=1 (and without -race, whose cost would
// dominate):
//
//	LOWRANK_FIGURES=1 go test -run TestReplicaFigures -v ./cmd/server
//
// It prints the jobs/s of small svd jobs against one and two replicas, the
// time a replica takes to finish a killed replica's job, and the counts of
// the fault scenarios (which fail the test if anything is lost).
func TestReplicaFigures(t *testing.T) {
	if os.Getenv("LOWRANK_FIGURES") == "" {
		t.Skip("set LOWRANK_FIGURES=1 to measure")
	}
	// The embedded deployment and Postgres with local files are there for
	// comparison: they show what S3 adds to a small job.
	for _, tc := range []struct {
		name         string
		replicas     int
		postgres, s3 bool
	}{
		{"sqlite+files", 1, false, false},
		{"postgres+files", 1, true, false},
		{"postgres+s3", 1, true, true},
		{"postgres+s3", 2, true, true},
	} {
		t.Run(fmt.Sprintf("Throughput64x64/%s/replicas=%d", tc.name, tc.replicas), func(t *testing.T) {
			args := []string{"--queue-capacity", "10000"}
			switch {
			case tc.s3:
				args = append(args, scaleOutArgs(t)...)
			case tc.postgres:
				// Blobs in a dir every replica is given (one here).
				args = append(args, "--database-url", pg.NewDatabase(t), "--data-dir", t.TempDir())
			}
			rs := startReplicas(t, args, []string{"A", "B"}[:tc.replicas]...)
			cs := make([]*client.ClientWithResponses, len(rs))
			for i, r := range rs {
				// A plain client: validating every response against the
				// spec costs the test process more CPU than a job costs.
				r.http = &http.Client{Timeout: time.Minute}
				cs[i] = r.client()
			}
			a := randTensor("", []int{64, 64}, 1, false)
			tn := mustUpload(t, cs[0], npyBytes(t, a), nil)
			req := client.JobRequest{Method: client.MethodSvd, TensorId: &tn.Id, Params: &map[string]any{"rank": 8}}
			const clients, perClient = 8, 40
			start := time.Now()
			var wg sync.WaitGroup
			for k := range clients {
				c := cs[k%len(cs)] // clients spread over the replicas
				wg.Go(func() {
					for range perClient {
						resp, err := c.CreateJobWithResponse(ctx, req)
						if err != nil || resp.JSON202 == nil {
							t.Errorf("submit: %v %d %s", err, resp.StatusCode(), resp.Body)
							return
						}
						if !pollQuietly(t, c, resp.JSON202.Id) {
							return
						}
					}
				})
			}
			wg.Wait()
			el := time.Since(start)
			counts := waitJobsTotal(t, rs, "svd", clients*perClient)
			t.Logf("%s, %d replica(s): %d svd jobs on 64x64 f32 rank 8 from %d clients (submit+poll): %.1f jobs/s; run per replica %v",
				tc.name, tc.replicas, clients*perClient, clients, float64(clients*perClient)/el.Seconds(), counts)
			// Where a job's time goes: mean phase timings of the last ones.
			if lr, err := cs[0].ListJobsWithResponse(ctx, &client.ListJobsParams{Limit: ptr(100)}); err == nil && lr.JSON200 != nil {
				sum := map[string]float64{}
				for _, j := range lr.JSON200.Items {
					for k, v := range j.Timings {
						sum[k] += v / float64(len(lr.JSON200.Items))
					}
				}
				var parts []string
				for _, k := range []string{"queue_wait", "load", "compute", "write", "total"} {
					parts = append(parts, fmt.Sprintf("%s %.1f ms", k, 1000*sum[k]))
				}
				t.Logf("mean of the last %d jobs: %s", len(lr.JSON200.Items), strings.Join(parts, ", "))
			}
		})
	}
	t.Run("KillTakeover", func(t *testing.T) {
		st := killScenario(t)
		t.Logf("kill -9 mid-job: finished on the other replica %s after the kill (--rescue-after %s, the job runs %s); %d jobs, %d lost, %d finished twice",
			st.takeover.Round(10*time.Millisecond), rescueAfter, slowSVDPause, st.jobs, st.lost, st.doubleFinish)
	})
	for _, crash := range []bool{false, true} {
		how := map[bool]string{false: "stopped", true: "crashed"}[crash]
		t.Run("Postgres-"+how, func(t *testing.T) {
			st := restartScenario(t, crash)
			t.Logf("Postgres %s for 2 s under load: %d jobs accepted (%d after the restart), %d lost; %d submissions answered 503, %d other errors; all not ready %s after the stop, all ready %s after the start",
				how, st.accepted, st.acceptedAfter, st.lost, st.unavailable, st.otherErrors, st.notReadyAfter.Round(time.Millisecond), st.readyAfter.Round(time.Millisecond))
		})
	}
}

// pollQuietly waits for a job to succeed, reporting a failure with Errorf
// (it runs on a client goroutine, where Fatal may not be called).
func pollQuietly(t *testing.T, c *client.ClientWithResponses, id string) bool {
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(pollInterval) {
		r, err := c.GetJobWithResponse(ctx, id)
		if err != nil || r.JSON200 == nil {
			t.Errorf("job %s: %v", id, err)
			return false
		}
		switch r.JSON200.Status {
		case client.JobStatusSucceeded:
			return true
		case client.JobStatusFailed, client.JobStatusCanceled:
			t.Errorf("job %s: %s %+v", id, r.JSON200.Status, r.JSON200.Error)
			return false
		}
	}
	t.Errorf("job %s not done after a minute", id)
	return false
}
