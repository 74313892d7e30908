package jobs_test

import (
	"context"
	"github.com/prometheus/client_golang/prometheus"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lowrank/lowrank/internal/jobs"
	"github.com/lowrank/lowrank/internal/store"
)

// rescueAfter is the replicas' RescueAfter in these tests; they heartbeat
// and sweep every 200 ms (a fifth of it, at the lower bound).
const (
	rescueAfter = time.Second
	period      = 200 * time.Millisecond
)

func withRescue(workers int) func(*jobs.Config) {
	return func(c *jobs.Config) { c.Workers, c.RescueAfter = workers, rescueAfter }
}

// riverRow is what these tests read of a job's River row.
type riverRow struct {
	state, lastBy string
	attempt       int
	errors        int // attempt errors recorded
	handedBack    bool
}

func readRiver(t *testing.T, b *bundle, riverID int64) riverRow {
	t.Helper()
	var r riverRow
	var errs string
	err := b.db.QueryRowContext(context.Background(), `SELECT state::text, coalesce(attempted_by[cardinality(attempted_by)], ''),
		attempt, coalesce(cardinality(errors), 0), coalesce(array_to_string(errors, ' '), '') FROM river_job WHERE id = $1`, riverID).
		Scan(&r.state, &r.lastBy, &r.attempt, &r.errors, &errs)
	if err != nil {
		t.Fatal(err)
	}
	r.handedBack = strings.Contains(errs, "stopped heartbeating")
	return r
}

// A replica that stops heartbeating (killed, or cut off from the database)
// has its running job handed back RescueAfter after its last heartbeat,
// plus at most one sweep period, and another replica runs it; the job's
// length (longer than RescueAfter here) does not matter.
func TestSilentReplicasJobTakenOver(t *testing.T) {
	at := newPlace(t, onPostgres)
	ctx := context.Background()
	// The dead replica starts alone, so it is the one that runs the job.
	dead := setupAt(t, at, true, withRescue(1))
	j, err := dead.svc.Submit(ctx, jobs.SubmitRequest{Inline: randMatrix(2, 2, 1), Method: "sleep", Params: []byte(`{"seconds": 4}`)})
	if err != nil {
		t.Fatal(err)
	}
	wait(t, dead, j.ID, store.JobRunning)
	live := setupAt(t, at, true, withRescue(1))
	if r := readRiver(t, dead, j.RiverID); r.lastBy != dead.svc.ReplicaID() {
		t.Fatalf("the job runs on %q, want the first replica %s", r.lastBy, dead.svc.ReplicaID())
	}
	dead.svc.PauseHeartbeat()
	silent := time.Now() // its last heartbeat was at most a period before
	var handedBack time.Duration
	for {
		if r := readRiver(t, live, j.RiverID); r.handedBack {
			handedBack = time.Since(silent)
			break
		}
		if time.Since(silent) > 10*time.Second {
			t.Fatal("the silent replica's job was not handed back in 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// RescueAfter, then the sweep's next tick (a period); the heartbeat
	// may have been up to a period before the pause, which only makes it
	// sooner. 300 ms of slack for a loaded machine's scheduling and
	// queries.
	if limit := rescueAfter + period + 300*time.Millisecond; handedBack > limit {
		t.Errorf("handed back %s after the heartbeat stopped, want ≤ %s", handedBack, limit)
	}
	if handedBack < rescueAfter-period {
		t.Errorf("handed back %s after the heartbeat stopped: before RescueAfter %s", handedBack, rescueAfter)
	}
	t.Logf("handed back %s after the heartbeat stopped (RescueAfter %s)", handedBack.Round(time.Millisecond), rescueAfter)
	// The live replica runs it (its second attempt); the first to finish
	// records the result.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		r := readRiver(t, live, j.RiverID)
		if r.attempt == 2 && r.lastBy == live.svc.ReplicaID() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the live replica did not take the job: %+v", r)
		}
	}
	done := waitWithin(t, live, j.ID, store.JobSucceeded, 20*time.Second)
	if done.Result == nil {
		t.Errorf("no result")
	}
}

// A live replica keeps a job that runs longer than RescueAfter: it is not
// handed back nor run twice, however many replicas sweep.
func TestLongJobKeptByLiveReplica(t *testing.T) {
	at := newPlace(t, onPostgres)
	ctx := context.Background()
	runner := setupAt(t, at, true, withRescue(1))
	others := []*bundle{setupAt(t, at, true, withRescue(1)), setupAt(t, at, true, withRescue(1))}
	j, err := runner.svc.Submit(ctx, jobs.SubmitRequest{Inline: randMatrix(2, 2, 1), Method: "sleep", Params: []byte(`{"seconds": 3.5}`)})
	if err != nil {
		t.Fatal(err)
	}
	wait(t, runner, j.ID, store.JobRunning)
	by := readRiver(t, runner, j.RiverID).lastBy
	// Explicit sweeps besides the periodic ones.
	for range 10 {
		for _, b := range others {
			if n, err := b.svc.SweepReplicas(ctx); n != 0 || err != nil {
				t.Fatalf("sweep took %d jobs (%v), want none", n, err)
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	waitWithin(t, runner, j.ID, store.JobSucceeded, 20*time.Second)
	// River records the completion a moment after the worker returns.
	r := readRiver(t, runner, j.RiverID)
	for deadline := time.Now().Add(5 * time.Second); r.state == "running" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		r = readRiver(t, runner, j.RiverID)
	}
	if r.attempt != 1 || r.errors != 0 || r.lastBy != by || r.state != "completed" {
		t.Errorf("river row %+v: want one attempt by %s, completed", r, by)
	}
}

// Replicas sweeping at once hand each lost job back exactly once, and its
// record goes back to queued with its progress cleared.
func TestConcurrentSweepsHandBackOnce(t *testing.T) {
	at := newPlace(t, onPostgres)
	ctx := context.Background()
	const replicas, n = 4, 30
	bs := make([]*bundle, replicas)
	for i := range bs {
		bs[i] = setupAt(t, at, false, withRescue(1)) // not started: only sweeping
	}
	var ids []string
	var riverIDs []int64
	for k := range n {
		j, err := bs[0].svc.Submit(ctx, jobs.SubmitRequest{Inline: randMatrix(2, 2, uint64(k)), Method: "sleep", Params: []byte(`{}`)})
		if err != nil {
			t.Fatal(err)
		}
		ids, riverIDs = append(ids, j.ID), append(riverIDs, j.RiverID)
		if ok, err := bs[0].meta.TransitionJob(ctx, j.ID, []store.JobStatus{store.JobQueued},
			store.JobUpdate{Status: store.JobRunning, Progress: &store.Progress{Iteration: 3, Fraction: 0.5}}); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	// Running on a replica that heartbeated 2 s ago, on one without a row
	// (since 2 s, or since now, as a replica of a version without
	// heartbeats), and on one that is alive: the lost ones are the
	// first two.
	if _, err := bs[0].db.ExecContext(ctx, `INSERT INTO lowrank_replica (id, heartbeat_at) VALUES
		('gone', now() - interval '2 seconds'), ('alive', now() + interval '1 hour'), ('ancient', now() - interval '2 hours')`); err != nil {
		t.Fatal(err)
	}
	if _, err := bs[0].db.ExecContext(ctx, `UPDATE river_job SET state = 'running', attempt = 1,
		attempted_at = CASE id % 4 WHEN 3 THEN now() ELSE now() - interval '2 seconds' END,
		attempted_by = ARRAY[CASE id % 4 WHEN 0 THEN 'gone' WHEN 1 THEN 'never' WHEN 2 THEN 'alive' ELSE 'norow' END]`); err != nil {
		t.Fatal(err)
	}
	// A compression step lost with it goes back too (its records need
	// nothing: steps are idempotent).
	var stepID int64
	if err := bs[0].db.QueryRowContext(ctx, `INSERT INTO river_job (kind, args, max_attempts, state, attempt, attempted_at, attempted_by)
		VALUES ('lowrank_compress', '{"compression_id": "c", "step": "plan"}', 10, 'running', 1, now() - interval '2 seconds', '{gone}')
		RETURNING id`).Scan(&stepID); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	counts := make([]int, replicas)
	errs := make([]error, replicas)
	for i, b := range bs {
		wg.Go(func() { counts[i], errs[i] = b.svc.SweepReplicas(ctx) })
	}
	wg.Wait()
	total := 0
	for i := range bs {
		if errs[i] != nil {
			t.Fatalf("sweep %d: %v", i, errs[i])
		}
		total += counts[i]
	}
	want := 1 // the step
	if r := readRiver(t, bs[0], stepID); r.state != "available" || !r.handedBack {
		t.Errorf("lost compression step: %+v, want available", r)
	}
	for k, rid := range riverIDs {
		r := readRiver(t, bs[0], rid)
		j, err := bs[0].meta.GetJobByID(ctx, ids[k])
		if err != nil {
			t.Fatal(err)
		}
		if rid%4 >= 2 { // alive, or just begun
			if r.state != "running" || r.errors != 0 || j.Status != store.JobRunning {
				t.Errorf("job %d not lost: river %+v, record %s", rid, r, j.Status)
			}
			continue
		}
		want++
		if r.state != "available" || r.errors != 1 || !r.handedBack {
			t.Errorf("lost job %d: river %+v, want available with one error", rid, r)
		}
		if j.Status != store.JobQueued || j.Progress.Iteration != 0 || j.Progress.Fraction != 0 {
			t.Errorf("lost job %d: record %s %+v, want queued with no progress", rid, j.Status, j.Progress)
		}
	}
	if total != want {
		t.Errorf("sweeps handed back %v = %d jobs, want %d", counts, total, want)
	}
	// Each replica counts what it took over; together, every lost job once.
	var counted float64
	for _, b := range bs {
		counted += counterValue(t, b.metrics, "lowrank_job_takeovers_total", "action", "requeued")
	}
	if counted != float64(want) {
		t.Errorf("lowrank_job_takeovers_total{action=\"requeued\"} summed over replicas = %g, want %d", counted, want)
	}
	// A silent replica's row is forgotten after an hour, not before.
	var left string
	if err := bs[0].db.QueryRowContext(ctx, `SELECT string_agg(id, ',' ORDER BY id) FROM lowrank_replica
		WHERE id IN ('gone', 'alive', 'ancient')`).Scan(&left); err != nil || left != "alive,gone" {
		t.Errorf("replica rows left %q (%v), want alive,gone", left, err)
	}
}

// A graceful stop deletes the replica's row; a start creates it.
func TestReplicaRowLifecycle(t *testing.T) {
	at := newPlace(t, onPostgres)
	ctx := context.Background()
	b := setupAt(t, at, true, withRescue(1))
	count := func() int {
		var n int
		if err := b.db.QueryRowContext(ctx, `SELECT count(*) FROM lowrank_replica WHERE id = $1 AND heartbeat_at > now() - interval '1 second'`,
			b.svc.ReplicaID()).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	time.Sleep(3 * period)
	if count() != 1 {
		t.Fatalf("no fresh row for the running replica %s", b.svc.ReplicaID())
	}
	stop, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := b.svc.Stop(stop); err != nil {
		t.Fatal(err)
	}
	if count() != 0 {
		t.Errorf("the stopped replica's row is still there")
	}
}

// A live replica whose database missed the end of one of its jobs (River's
// row still says running, but no worker holds it: the database was away
// when the job ended) hands that job back itself, RescueAfter after the
// attempt began, and it runs again.
func TestLostEndHandedBack(t *testing.T) {
	at := newPlace(t, onPostgres)
	ctx := context.Background()
	b := setupAt(t, at, true, withRescue(1))
	j, err := b.svc.Submit(ctx, jobs.SubmitRequest{Inline: randMatrix(2, 2, 1), Method: "sleep", Params: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	wait(t, b, j.ID, store.JobSucceeded)
	for deadline := time.Now().Add(5 * time.Second); readRiver(t, b, j.RiverID).state != "completed"; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("River did not record the end")
		}
	}
	// As if neither end had been recorded.
	if _, err := b.db.ExecContext(ctx, `UPDATE river_job SET state = 'running', finalized_at = NULL WHERE id = $1`, j.RiverID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.db.ExecContext(ctx, `UPDATE lowrank_job SET status = 'running', result = NULL, finished_at = NULL WHERE id = $1`, j.ID); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !readRiver(t, b, j.RiverID).handedBack; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the job whose end was lost was not handed back")
		}
	}
	waitWithin(t, b, j.ID, store.JobSucceeded, 20*time.Second)
	if r := readRiver(t, b, j.RiverID); r.attempt != 2 {
		t.Errorf("river row %+v: want a second attempt", r)
	}
}

// counterValue is the value of the counter name{label="value"} in g (0 if
// the series is absent).
func counterValue(t *testing.T, g prometheus.Gatherer, name, label, value string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
