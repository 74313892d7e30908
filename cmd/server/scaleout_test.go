package main

import (
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/lowrank/lowrank/client"
	"github.com/lowrank/lowrank/internal/store/pgtest"
)

// pg is this package's Postgres server, started by the first test that
// needs one; without Postgres those tests skip.
var pg pgtest.Server

func TestMain(m *testing.M) {
	code := m.Run()
	pg.Stop()
	os.Exit(code)
}

// The end-to-end flow on a server whose metadata and queue are in Postgres:
// upload, decompose, download and check the reconstruction, cancel, and a
// restart that finishes the jobs it left.
func TestEndToEndPostgres(t *testing.T) {
	t.Parallel()
	url := pg.NewDatabase(t)
	dir := t.TempDir()
	s := startWithSleep(t, dir, "--database-url", url, "--workers", "1", "--shutdown-grace", "50ms")
	c := s.client("")
	if r, err := c.GetReadyWithResponse(ctx); err != nil || r.StatusCode() != http.StatusOK {
		t.Fatalf("readyz: %v %d", err, r.StatusCode())
	}

	const m, n = 48, 32
	a := randTensor("", []int{m, n}, 11, false)
	tn := mustUpload(t, c, npyBytes(t, a), nil)
	j := mustSubmit(t, c, client.JobRequest{Method: client.MethodSvd, TensorId: &tn.Id, Params: &map[string]any{"rank": 5}})
	checkSVD(t, c, poll(t, c, j.Id, 30*time.Second), f64s(a), m, n, tolF32)
	b := randTensor("", []int{7, 5}, 12, true)
	j = mustSubmit(t, c, client.JobRequest{Method: client.MethodSvd, Tensor: &client.InlineTensor{Shape: b.Shape, Data: b.F64},
		Params: &map[string]any{"rank": 3}})
	checkSVD(t, c, poll(t, c, j.Id, 30*time.Second), b.F64, 7, 5, 1e-12)

	running := mustSubmit(t, c, sleepJob(60))
	waitStatus(t, c, running.Id, client.JobStatusRunning)
	if dr, err := c.DeleteJobWithResponse(ctx, running.Id); err != nil || dr.JSON200 == nil || dr.JSON200.Status != client.JobStatusCanceled {
		t.Fatalf("cancel running: %v %d %s", err, dr.StatusCode(), dr.Body)
	}

	// A job cut short by the shutdown and one still queued both finish
	// after a restart on the same database.
	ids := []string{mustSubmit(t, c, sleepJob(2)).Id}
	ids = append(ids, mustSubmit(t, c, client.JobRequest{Method: client.MethodSvd, TensorId: &tn.Id, Params: &map[string]any{"rank": 2}}).Id)
	waitStatus(t, c, ids[0], client.JobStatusRunning)
	s.stop()
	s2 := startWithSleep(t, dir, "--database-url", url, "--workers", "2")
	c2 := s2.client("")
	for _, id := range ids {
		if d := poll(t, c2, id, 60*time.Second); d.Status != client.JobStatusSucceeded {
			t.Errorf("job %s after restart: %s %+v", id, d.Status, d.Error)
		}
	}
	checkSVD(t, c2, poll(t, c2, ids[1], time.Second), f64s(a), m, n, tolF32)
	if r, _ := c2.GetJobWithResponse(ctx, running.Id); r.JSON200 == nil || r.JSON200.Status != client.JobStatusCanceled {
		t.Errorf("canceled job after restart: %s", r.Body)
	}
}

// Two servers on one database (and one blob directory) are replicas: a
// job submitted to one is seen, and downloaded, through the other, and a
// cancel sent to the replica not running a job stops it at once (River's
// LISTEN/NOTIFY reaches the one that is).
func TestReplicasShareJobs(t *testing.T) {
	t.Parallel()
	url := pg.NewDatabase(t)
	dir := t.TempDir()
	s1 := startWithSleep(t, dir, "--database-url", url, "--workers", "1")
	c1 := s1.client("")
	running := mustSubmit(t, c1, sleepJob(60))
	waitStatus(t, c1, running.Id, client.JobStatusRunning)

	s2 := startWithSleep(t, dir, "--database-url", url, "--workers", "1")
	c2 := s2.client("")
	start := time.Now()
	if dr, err := c2.DeleteJobWithResponse(ctx, running.Id); err != nil || dr.JSON200 == nil || dr.JSON200.Status != client.JobStatusCanceled {
		t.Fatalf("cancel through the other replica: %v %d %s", err, dr.StatusCode(), dr.Body)
	}
	// Two jobs at once need both replicas' single workers, so the second
	// one finishing shows that the cancel freed replica 1's worker.
	busy := mustSubmit(t, c2, sleepJob(60))
	waitStatus(t, c2, busy.Id, client.JobStatusRunning)
	const m, n = 12, 9
	a := randTensor("", []int{m, n}, 13, true)
	tn := mustUpload(t, c2, npyBytes(t, a), nil)
	j := mustSubmit(t, c2, client.JobRequest{Method: client.MethodSvd, TensorId: &tn.Id, Params: &map[string]any{"rank": 4}})
	checkSVD(t, c1, poll(t, c1, j.Id, 30*time.Second), a.F64, m, n, 1e-10)
	// The cancel crossed replicas by notification, not by River's
	// once-a-minute poll for missed ones.
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("replica 1 freed after %s", d)
	}
	if dr, _ := c1.DeleteJobWithResponse(ctx, busy.Id); dr.JSON200 == nil || dr.JSON200.Status != client.JobStatusCanceled {
		t.Errorf("cancel busy: %d %s", dr.StatusCode(), dr.Body)
	}
}

// waitStatus polls job id until it has status want.
func waitStatus(t *testing.T, c *client.ClientWithResponses, id string, want client.JobStatus) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err := c.GetJobWithResponse(ctx, id)
		if err == nil && r.JSON200 != nil && r.JSON200.Status == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s never %s: %v %s", id, want, err, r.Body)
		}
		time.Sleep(pollInterval)
	}
}
