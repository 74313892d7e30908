package main

import (
	"net/http"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/lowrank/lowrank/client"
)

// TestReplicaProcess checks the process harness on the embedded store: a
// replica serves, runs the test-only sleep method, logs the job it ran, and
// stops cleanly on SIGTERM.
func TestReplicaProcess(t *testing.T) {
	r := startReplica(t, "A", "--workers", "1")
	c := r.client()
	j := mustSubmit(t, c, sleepJob(0.05))
	if d := poll(t, c, j.Id, 30*time.Second); d.Status != client.JobStatusSucceeded {
		t.Fatalf("job %s %+v", d.Status, d.Error)
	}
	if code := r.ready(); code != http.StatusOK {
		t.Errorf("/readyz %d", code)
	}
	// The worker counts the job just after recording it, so poll briefly.
	for deadline := time.Now().Add(5 * time.Second); r.metric(`lowrank_jobs_total{method="sleep",outcome="succeeded"}`) != 1; {
		if time.Now().After(deadline) {
			t.Fatal("lowrank_jobs_total for the sleep job never reached 1")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := r.logged("job succeeded", j.Id); n != 1 {
		t.Errorf("%d 'job succeeded' log lines for %s, want 1", n, j.Id)
	}
	r.stop()
	if r.err != nil {
		t.Fatalf("exit after SIGTERM: %v", r.err)
	}
	k := startReplica(t, "B")
	k.kill()
	if ee, ok := k.err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("after kill: %v, want killed by SIGKILL", k.err)
	}
}
