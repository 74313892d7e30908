package jobs

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"go.uber.org/zap"

	"github.com/lowrank/lowrank/internal/store"
)

// Replica liveness. Replicas sharing a Postgres queue each keep a row in
// lowrank_replica and renew its heartbeat_at every livenessPeriod; every
// replica also sweeps, at the same period, for running River jobs whose
// last attempt belongs to a replica whose heartbeat is older than
// RescueAfter (or which has no row at all), and hands them back to the
// queue. So a replica killed mid-job loses its jobs RescueAfter after its
// last heartbeat, plus at most a period, whatever the jobs' length, while a
// live replica keeps a job however long it runs: its heartbeat comes from a
// goroutine of its own, not from the job.
//
// A replica that cannot reach the database for longer than RescueAfter is
// taken for dead although its jobs may still run; a job then runs twice.
// That is safe: each attempt writes its own bundle (attemptBundleKey), the
// first to record its result wins, and the other deletes its bundle.
//
// River's own stuck-job rescuer remains as a backstop, at the job timeout
// plus a minute.

// livenessQueue is the part of a Queue that keeps the replica table; only
// the Postgres queue has one (SQLite serves one process).
type livenessQueue interface {
	// heartbeat records that replica id is alive, now by the database's
	// clock, creating its row if it has none.
	heartbeat(ctx context.Context, id string) error
	// sweep hands back the running jobs of replicas whose heartbeat is
	// older than stale, and those of replica self attempted more than
	// stale ago that it no longer works (mine: River ids of the jobs it
	// does), and forgets replicas silent for longer than forget.
	sweep(ctx context.Context, self string, mine []int64, stale, forget time.Duration) (sweepResult, error)
	// leave deletes replica id's row.
	leave(ctx context.Context, id string) error
}

// sweepResult counts what a sweep did to River's rows.
type sweepResult struct {
	requeued  int64 // made available again (and their jobs queued)
	discarded int64 // on their last attempt: given up, for ReconcileDiscarded
	canceled  int64 // canceled while their replica was gone
}

// Bounds of livenessPeriod: a heartbeat at most five times a second keeps
// the database's load small with any number of replicas; one at least
// every ten seconds keeps a replica's silence noticed soon.
const (
	minLivenessPeriod = 200 * time.Millisecond
	maxLivenessPeriod = 10 * time.Second
)

// DefaultRescueAfter is how long after its last heartbeat a replica's jobs
// go to other replicas, when Config.RescueAfter is 0.
const DefaultRescueAfter = 30 * time.Second

// forgetReplicaAfter is how long the row of a replica that stopped
// heartbeating stays, for an operator to see; its jobs were handed back
// long before, and a replica with no row counts as dead anyway.
const forgetReplicaAfter = time.Hour

// livenessPeriod is the heartbeat and sweep period: five heartbeats per
// RescueAfter, so a replica is taken for dead only after missing several.
func livenessPeriod(rescueAfter time.Duration) time.Duration {
	return min(max(rescueAfter/5, minLivenessPeriod), maxLivenessPeriod)
}

// newReplicaID names this process among the replicas (and is its River
// client id, at most 100 bytes): its host name, which is the pod's name in
// Kubernetes, and a random part, since one host may run several.
func newReplicaID() string {
	host, _ := os.Hostname()
	host = strings.NewReplacer(".", "_", " ", "_").Replace(host)
	if host == "" {
		host = "replica"
	}
	if len(host) > 60 {
		host = host[:60]
	}
	return host + "_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
}

// liveness is a Service's part in the protocol.
type liveness struct {
	q      livenessQueue
	id     string
	period time.Duration
	stale  time.Duration
	// healthySince is when the heartbeats last began to succeed (Unix
	// nanoseconds; 0 while they fail). Sweeping waits until they have
	// succeeded for a whole RescueAfter: after the database was away,
	// every replica's heartbeat is old, and the live ones need that long
	// to renew theirs before anyone may judge them dead.
	healthySince atomic.Int64
	stopBeat     context.CancelFunc
	beatDone     chan struct{}
}

// beat renews the heartbeat every period until ctx ends.
func (s *Service) beat(ctx context.Context) {
	l := s.live
	defer close(l.beatDone)
	tick := time.NewTicker(l.period)
	defer tick.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		hctx, cancel := context.WithTimeout(ctx, l.stale)
		err := l.q.heartbeat(hctx, l.id)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil:
			l.healthySince.Store(0)
			if !failing {
				s.log.Warn("replica heartbeat failed; other replicas take this one's jobs if it lasts", zap.Duration("rescue_after", l.stale), zap.Error(err))
			}
			failing = true
		case err == nil:
			l.healthySince.CompareAndSwap(0, time.Now().UnixNano())
			if failing {
				s.log.Info("replica heartbeat resumed")
			}
			failing = false
		}
	}
}

// sweepLoop runs SweepReplicas every period until ctx ends.
func (s *Service) sweepLoop(ctx context.Context) {
	tick := time.NewTicker(s.live.period)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		since := s.live.healthySince.Load()
		if since == 0 || time.Since(time.Unix(0, since)) < s.live.stale {
			continue
		}
		if _, err := s.SweepReplicas(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("sweep for dead replicas' jobs", zap.Error(err))
		}
	}
}

// SweepReplicas hands back to the queue, once, the running jobs of replicas
// that stopped heartbeating more than RescueAfter ago, and returns how many.
// It does nothing unless replicas share a Postgres queue. Replicas may
// sweep at once: each job is handed back by one of them.
func (s *Service) SweepReplicas(ctx context.Context) (int, error) {
	if s.live == nil {
		return 0, nil
	}
	s.mu.Lock()
	mine := make([]int64, 0, len(s.working)+len(s.ended))
	for id := range s.working {
		mine = append(mine, id)
	}
	for id, at := range s.ended {
		if time.Since(at) > s.live.stale {
			delete(s.ended, id) // River has recorded its end, or lost it
			continue
		}
		mine = append(mine, id)
	}
	s.mu.Unlock()
	res, err := s.live.q.sweep(ctx, s.live.id, mine, s.live.stale, forgetReplicaAfter)
	if err != nil {
		return 0, err
	}
	s.metrics.takeovers.WithLabelValues("requeued").Add(float64(res.requeued))
	s.metrics.takeovers.WithLabelValues("given_up").Add(float64(res.discarded))
	s.metrics.takeovers.WithLabelValues("canceled").Add(float64(res.canceled))
	if res.requeued+res.discarded+res.canceled > 0 {
		s.log.Warn("took over the jobs of replicas that stopped heartbeating",
			zap.Int64("requeued", res.requeued), zap.Int64("given_up", res.discarded), zap.Int64("canceled", res.canceled))
	}
	if res.discarded > 0 {
		if _, err := s.ReconcileDiscarded(ctx); err != nil {
			s.log.Warn("reconcile discarded jobs", zap.Error(err))
		}
	}
	return int(res.requeued), nil
}

// workTracker is River middleware that keeps Service.working and ended,
// whatever the job's kind.
type workTracker struct {
	river.MiddlewareDefaults
	s *Service
}

func (w *workTracker) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	s := w.s
	if s.live == nil {
		return doInner(ctx)
	}
	s.mu.Lock()
	s.working[job.ID] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.working, job.ID)
		s.ended[job.ID] = time.Now()
		s.mu.Unlock()
	}()
	return doInner(ctx)
}

func (q postgresQueue) heartbeat(ctx context.Context, id string) error {
	_, err := q.pool.Exec(ctx, `INSERT INTO lowrank_replica (id) VALUES ($1)
		ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()`, id)
	if err != nil {
		return fmt.Errorf("jobs: heartbeat: %w", err)
	}
	return nil
}

func (q postgresQueue) leave(ctx context.Context, id string) error {
	if _, err := q.pool.Exec(ctx, `DELETE FROM lowrank_replica WHERE id = $1`, id); err != nil {
		return fmt.Errorf("jobs: leave: %w", err)
	}
	return nil
}

// sweepSQL hands back lost River rows: running, and last attempted by a
// replica without a recent heartbeat, or by the sweeper itself (long ago,
// and not among the jobs it works: its database missed their end). A
// replica with no row at all (it stopped, or was forgotten, or is of a
// version without heartbeats) loses only jobs it began RescueAfter ago. FOR
// UPDATE SKIP LOCKED, with the state re-checked on the locked row, makes
// concurrent sweeps take disjoint rows, and leaves alone a row River is
// finishing meanwhile. A row goes back to available at once, or, as
// River's rescuer would, to cancelled if a cancel was asked while it was
// lost, and to discarded on its last attempt (River's fetch does not check
// max_attempts). The reason is appended to the row's errors, as River
// records an attempt's error.
const sweepSQL = `
WITH lost AS (
	SELECT j.id, j.attempted_by[cardinality(j.attempted_by)] AS replica
	FROM river_job j
	WHERE j.state = 'running' AND j.kind = ANY($1)
	AND (
		(j.attempted_by[cardinality(j.attempted_by)] = $2
			AND j.attempted_at < now() - $4 * interval '1 microsecond'
			AND j.id <> ALL($3::bigint[]))
		OR (coalesce(j.attempted_by[cardinality(j.attempted_by)], '') <> $2
			AND NOT EXISTS (
				SELECT 1 FROM lowrank_replica r
				WHERE r.id = j.attempted_by[cardinality(j.attempted_by)]
				AND r.heartbeat_at > now() - $4 * interval '1 microsecond')
			AND (j.attempted_at < now() - $4 * interval '1 microsecond' OR EXISTS (
				SELECT 1 FROM lowrank_replica r WHERE r.id = j.attempted_by[cardinality(j.attempted_by)])))
	)
	ORDER BY j.id
	FOR UPDATE OF j SKIP LOCKED
)
UPDATE river_job j SET
	state = CASE
		WHEN j.metadata ? 'cancel_attempted_at' THEN 'cancelled'::river_job_state
		WHEN j.attempt >= j.max_attempts THEN 'discarded'::river_job_state
		ELSE 'available'::river_job_state END,
	finalized_at = CASE WHEN j.metadata ? 'cancel_attempted_at' OR j.attempt >= j.max_attempts THEN now() END,
	scheduled_at = now(),
	errors = array_append(j.errors, jsonb_build_object(
		'at', now(), 'attempt', j.attempt, 'trace', '',
		'error', 'lowrank: replica ' || coalesce(lost.replica, '(none)') || ' stopped heartbeating while running the job'))
FROM lost
WHERE j.id = lost.id AND j.state = 'running'
RETURNING j.id, j.state::text`

func (q postgresQueue) sweep(ctx context.Context, self string, mine []int64, stale, forget time.Duration) (res sweepResult, err error) {
	if mine == nil {
		mine = []int64{}
	}
	err = pgx.BeginFunc(ctx, q.pool, func(tx pgx.Tx) error {
		// Compression steps are retried as they are: their records do
		// not say which step runs, and each step is idempotent.
		kinds := []string{jobArgs{}.Kind(), compressArgs{}.Kind()}
		rows, err := tx.Query(ctx, sweepSQL, kinds, self, mine, stale.Microseconds())
		if err != nil {
			return err
		}
		var requeued []int64
		for rows.Next() {
			var id int64
			var state string
			if err := rows.Scan(&id, &state); err != nil {
				rows.Close()
				return err
			}
			switch state {
			case "available":
				requeued = append(requeued, id)
			case "discarded":
				res.discarded++
			default:
				res.canceled++
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		res.requeued = int64(len(requeued))
		if len(requeued) > 0 {
			// Their records say running until a worker takes them again.
			if _, err := tx.Exec(ctx, `UPDATE lowrank_job SET status = $1, progress = '{}' WHERE river_id = ANY($2) AND status = $3`,
				string(store.JobQueued), requeued, string(store.JobRunning)); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `DELETE FROM lowrank_replica WHERE heartbeat_at < now() - $1 * interval '1 microsecond'`, forget.Microseconds())
		return err
	})
	if err != nil {
		return sweepResult{}, fmt.Errorf("jobs: sweep: %w", err)
	}
	return res, nil
}
