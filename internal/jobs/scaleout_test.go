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
// say running, no live replica holds it) is handed back by another
// replica's sweep and runs again; on its last attempt it is discarded
// instead, and recorded failed. (On SQLite, the one process requeues such
// jobs when it starts: TestOrphansRequeuedAtStart.)
func TestDeadServersJobRescued(t *testing.T) {
	for _, tc := range []struct {
		attempt int
		want    store.JobStatus
	}{
		{1, store.JobSucceeded},
		{10, store.JobFailed},
	} {
		at := newPlace(t, onPostgres)
		ctx := context.Background()
		dead := setupAt(t, at, false, nil)
		j, err := dead.svc.Submit(ctx, jobs.SubmitRequest{Inline: randMatrix(4, 3, 9), Method: "svd", Params: []byte(`{"rank": 2}`)})
		if err != nil {
			t.Fatal(err)
		}
		// attempted_by names no replica with a row: it died long ago.
		if _, err := dead.db.ExecContext(ctx, `UPDATE river_job SET state = 'running', attempt = `+strconv.Itoa(tc.attempt)+`, attempted_at = created_at, attempted_by = '{gone}'`); err != nil {
			t.Fatal(err)
		}
		if ok, err := dead.meta.TransitionJob(ctx, j.ID, []store.JobStatus{store.JobQueued}, store.JobUpdate{Status: store.JobRunning}); !ok || err != nil {
			t.Fatal(ok, err)
		}
		live := setupAt(t, at, true, func(c *jobs.Config) { c.RescueAfter = time.Second })
		// The first sweep comes a RescueAfter after the start, then a
		// fetch poll (1 s): about 2 s, given 20 for a loaded machine.
		got := waitWithin(t, live, j.ID, tc.want, 20*time.Second)
		if tc.want == store.JobFailed {
			if got.Error == nil || !strings.Contains(got.Error.Message, "cut short 10 times") {
				t.Errorf("discarded job: %s %+v", got.Status, got.Error)
			}
			if n, err := live.svc.ReconcileDiscarded(ctx); n != 0 || err != nil {
				t.Errorf("a later pass: %d %v, want nothing to do", n, err)
			}
		}
	}
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

// A job rescued while its first attempt still runs (on a replica taken for
// dead) runs twice; the first to finish records its result, and the other
// deletes its own bundle, not the recorded one. Which attempt wins is a
// race (they start tens of milliseconds apart), so either may.
func TestTwoAttemptsAtOnce(t *testing.T) {
	at := newPlace(t, onPostgres)
	ctx := context.Background()
	first := setupAt(t, at, true, func(c *jobs.Config) { c.Workers = 1 })
	j, err := first.svc.Submit(ctx, jobs.SubmitRequest{Inline: randMatrix(2, 2, 1), Method: "sleep", Params: []byte(`{"seconds": 1.5}`)})
	if err != nil {
		t.Fatal(err)
	}
	wait(t, first, j.ID, store.JobRunning)
	// What the rescuer does to a job it takes for lost, less the delay.
	if _, err := first.db.ExecContext(ctx, `UPDATE river_job SET state = 'available'`); err != nil {
		t.Fatal(err)
	}
	second := setupAt(t, at, true, func(c *jobs.Config) { c.Workers = 1 })
	done := wait(t, second, j.ID, store.JobSucceeded)
	attempts := []string{jobs.BundleKey(j.ID), j.ID + ".attempt2.safetensors"}
	loser := ""
	switch done.BundleKey {
	case attempts[0]:
		loser = attempts[1]
	case attempts[1]:
		loser = attempts[0]
	default:
		t.Fatalf("recorded bundle %s, want one of %v", done.BundleKey, attempts)
	}
	// Stopping drains: both attempts have ended when Stop returns.
	stop, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for _, b := range []*bundle{first, second} {
		if err := b.svc.Stop(stop); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := second.blobs.Open(ctx, loser); lowrank.ErrorCode(err) != lowrank.ENOTFOUND {
		t.Errorf("the losing attempt's bundle %s: %v, want it deleted", loser, err)
	}
	blob, err := second.blobs.Open(ctx, done.BundleKey)
	if err != nil {
		t.Fatalf("the recorded bundle: %v", err)
	}
	blob.Close()
	var attempt int
	if err := first.db.QueryRowContext(ctx, `SELECT attempt FROM river_job`).Scan(&attempt); err != nil || attempt != 2 {
		t.Errorf("river attempt %d (%v): the second attempt did not run", attempt, err)
	}
}

// Every replica runs the retention cleaner; two passes at once each remove
// what the other has not, without failing on what the other removed.
func TestConcurrentExpire(t *testing.T) {
	at := newPlace(t, onPostgres)
	ctx := context.Background()
	clock := &fakeClock{now: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	mod := func(c *jobs.Config) { c.Now, c.Retention, c.CleanInterval = clock.Now, time.Hour, time.Hour }
	a := setupAt(t, at, true, mod)
	b := setupAt(t, at, true, mod)
	const n = 40
	for k := range n {
		j, err := a.svc.Submit(ctx, jobs.SubmitRequest{Inline: randMatrix(2, 2, uint64(k)), Method: "sleep", Params: []byte(`{}`)})
		if err != nil {
			t.Fatal(err)
		}
		wait(t, a, j.ID, store.JobSucceeded)
		id := "t" + strconv.Itoa(k)
		if err := a.meta.CreateTensor(ctx, &store.Tensor{ID: id, Format: "npy", CreatedAt: clock.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(2 * time.Hour)
	var wg sync.WaitGroup
	var tensors, jobsRemoved [2]int
	var errs [2]error
	for i, svc := range []*jobs.Service{a.svc, b.svc} {
		wg.Go(func() { tensors[i], jobsRemoved[i], errs[i] = svc.Expire(ctx) })
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("concurrent passes: %v, %v", errs[0], errs[1])
	}
	if tensors[0]+tensors[1] != n || jobsRemoved[0]+jobsRemoved[1] != n {
		t.Errorf("removed %v tensors and %v jobs, want %d of each in all", tensors, jobsRemoved, n)
	}
	if left, err := a.meta.CountJobs(ctx, store.JobSucceeded); err != nil || left != 0 {
		t.Errorf("%d jobs left (%v)", left, err)
	}
}
