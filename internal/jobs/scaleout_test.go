package jobs_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lowrank/lowrank"
	"github.com/lowrank/lowrank/internal/jobs"
	"github.com/lowrank/lowrank/internal/store"
)

// Replicas starting together on a fresh database all migrate (River's
// tables and Lowrank's) without error, then share the work.
func TestReplicasStartTogether(t *testing.T) {
	at := newPlace(t, onPostgres)
	const replicas = 3
	bs := make([]*bundle, replicas)
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := range bs {
		wg.Go(func() {
			if bs[i], errs[i] = build(t, at, nil); errs[i] == nil {
				errs[i] = bs[i].svc.Start(context.Background())
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
	}
	ctx := context.Background()
	var ids []string
	for k := range 6 {
		j, err := bs[k%replicas].svc.Submit(ctx, jobs.SubmitRequest{Inline: randMatrix(5, 4, uint64(k)), Method: "svd", Params: []byte(`{"rank": 2}`)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, j.ID)
	}
	for k, id := range ids {
		wait(t, bs[(k+1)%replicas], id, store.JobSucceeded)
	}
}

// A job cut short by a shutdown goes back to queued, unless that was its
// last attempt: River will not run it again, so it is recorded failed.
func TestShutdownOnLastAttempt(t *testing.T) {
	eachDatabase(t, func(t *testing.T, database string) {
		for _, tc := range []struct {
			attempt int // the attempt the shutdown cuts short
			want    store.JobStatus
		}{
			{1, store.JobQueued},
			{10, store.JobFailed},
		} {
			b := setupAt(t, newPlace(t, database), false, func(c *jobs.Config) { c.Workers = 1 })
			ctx := context.Background()
			j, err := b.svc.Submit(ctx, jobs.SubmitRequest{Inline: randMatrix(2, 2, 1), Method: "sleep", Params: []byte(`{"seconds": 30}`)})
			if err != nil {
				t.Fatal(err)
			}
			// River counts the attempt when it fetches the job.
			if _, err := b.db.ExecContext(ctx, `UPDATE river_job SET attempt = `+strconv.Itoa(tc.attempt-1)); err != nil {
				t.Fatal(err)
			}
			if err := b.svc.Start(ctx); err != nil {
				t.Fatal(err)
			}
			wait(t, b, j.ID, store.JobRunning)
			stop, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			_ = b.svc.Stop(stop)
			cancel()
			got, err := b.meta.GetJobByID(ctx, j.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != tc.want {
				t.Fatalf("attempt %d cut short: %s, want %s", tc.attempt, got.Status, tc.want)
			}
			if tc.want == store.JobFailed && (got.Error == nil || got.Error.Code != lowrank.EINTERNAL ||
				!strings.Contains(got.Error.Message, "cut short 10 times") || got.FinishedAt == nil) {
				t.Errorf("given-up job: %+v %+v", got, got.Error)
			}
		}
	})
}

// A job whose server died while running it (River's row and the metadata
// say running, no worker holds it) is rescued by River on another server
// (SingleProcess off, as replicas run) and runs again; on its last attempt
// River discards it instead, and ReconcileDiscarded records it failed.
func TestDeadServersJobRescued(t *testing.T) {
	eachDatabase(t, func(t *testing.T, database string) {
		for _, tc := range []struct {
			attempt int
			want    store.JobStatus
		}{
			{1, store.JobSucceeded},
			{10, store.JobFailed},
		} {
			at := newPlace(t, database)
			ctx := context.Background()
			dead := setupAt(t, at, false, nil)
			j, err := dead.svc.Submit(ctx, jobs.SubmitRequest{Inline: randMatrix(4, 3, 9), Method: "svd", Params: []byte(`{"rank": 2}`)})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := dead.db.ExecContext(ctx, `UPDATE river_job SET state = 'running', attempt = `+strconv.Itoa(tc.attempt)+`, attempted_at = created_at`); err != nil {
				t.Fatal(err)
			}
			if ok, err := dead.meta.TransitionJob(ctx, j.ID, []store.JobStatus{store.JobQueued}, store.JobUpdate{Status: store.JobRunning}); !ok || err != nil {
				t.Fatal(ok, err)
			}
			// Rescued after a second: the job is taken for lost at the
			// rescuer's first pass, just after the leader is elected.
			time.Sleep(1100 * time.Millisecond)
			live := setupAt(t, at, true, func(c *jobs.Config) { c.RescueAfter, c.JobTimeout = time.Second, time.Second })
			if tc.want == store.JobSucceeded {
				wait(t, live, j.ID, store.JobSucceeded)
				continue
			}
			deadline := time.Now().Add(30 * time.Second)
			for {
				n, err := live.svc.ReconcileDiscarded(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if n == 1 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the job was not discarded and recorded failed")
				}
				time.Sleep(50 * time.Millisecond)
			}
			got, err := live.meta.GetJobByID(ctx, j.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != store.JobFailed || got.Error == nil || !strings.Contains(got.Error.Message, "cut short 10 times") {
				t.Errorf("discarded job: %s %+v", got.Status, got.Error)
			}
			if n, err := live.svc.ReconcileDiscarded(ctx); n != 0 || err != nil {
				t.Errorf("second pass: %d %v, want nothing to do", n, err)
			}
		}
	})
}

// A cancel sent to one replica stops the job another replica runs:
// River's notification reaches it, and its worker lets go at once.
func TestCancelAcrossReplicas(t *testing.T) {
	at := newPlace(t, onPostgres)
	ctx := context.Background()
	runner := setupAt(t, at, true, func(c *jobs.Config) { c.Workers = 1 })
	j, err := runner.svc.Submit(ctx, jobs.SubmitRequest{Inline: randMatrix(2, 2, 1), Method: "sleep", Params: []byte(`{"seconds": 60}`)})
	if err != nil {
		t.Fatal(err)
	}
	wait(t, runner, j.ID, store.JobRunning)
	other := setupAt(t, at, false, nil) // not started: it only cancels
	start := time.Now()
	if got, err := other.svc.Delete(ctx, "", j.ID); err != nil || got.Status != store.JobCanceled {
		t.Fatalf("cancel: %+v %v", got, err)
	}
	next, err := runner.svc.Submit(ctx, jobs.SubmitRequest{Inline: randMatrix(3, 3, 2), Method: "svd", Params: []byte(`{"rank": 1}`)})
	if err != nil {
		t.Fatal(err)
	}
	wait(t, runner, next.ID, store.JobSucceeded)
	// By notification it takes milliseconds; River's fallback poll for
	// missed cancels runs once a minute.
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("the runner's worker was freed after %s", d)
	}
	if got, _ := runner.meta.GetJobByID(ctx, j.ID); got.Status != store.JobCanceled {
		t.Errorf("canceled job ended %s", got.Status)
	}
}
