package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"go.uber.org/zap"

	"github.com/lowrank/lowrank/internal/store"
)

// reconcileInterval is how often ReconcileDiscarded runs. The replicas'
// sweep reconciles at once the jobs it discards; River's rescuer, the
// backstop, discards the jobs it finds stuck on their last attempt every
// 30 s, so a minute leaves such a job looking active for a minute and a half
// at most.
const reconcileInterval = time.Minute

// reconcileBatch is the page of River's discarded jobs read at a time.
const reconcileBatch = 100

// ReconcileDiscarded records as failed every job that River gave up on
// (discarded after maxAttempts) while metadata still shows it queued or
// running, and returns how many it changed. The worker records the jobs it
// sees cut short on their last attempt; this catches those that no worker
// saw end: a job whose server died on its last attempt is discarded by the
// replicas' sweep (liveness.go), or by River's rescuer, without running
// again.
//
// Each pass reads the jobs discarded since the previous pass began (less a
// minute, for clocks that disagree), newest first; the first pass reads all
// that River keeps (a week's). Replicas may run it at once: the transition
// applies once.
func (s *Service) ReconcileDiscarded(ctx context.Context) (int, error) {
	s.reconcileMu.Lock()
	defer s.reconcileMu.Unlock()
	began := time.Now()
	params := river.NewJobListParams().Kinds(jobArgs{}.Kind()).States(rivertype.JobStateDiscarded).
		OrderBy(river.JobListOrderByFinalizedAt, river.SortOrderDesc).First(reconcileBatch)
	n := 0
	for {
		res, err := s.river.JobList(ctx, params)
		if err != nil {
			return n, fmt.Errorf("jobs: list discarded: %w", err)
		}
		for _, row := range res.Jobs {
			if row.FinalizedAt != nil && row.FinalizedAt.Before(s.reconciledSince) {
				s.reconciledSince = began.Add(-time.Minute)
				return n, nil
			}
			var args jobArgs
			if err := json.Unmarshal(row.EncodedArgs, &args); err != nil {
				s.log.Warn("discarded job with unreadable args", zap.Int64("river_id", row.ID), zap.Error(err))
				continue
			}
			finished := s.cfg.Now().UTC()
			ok, err := s.cfg.Meta.TransitionJob(ctx, args.JobID, []store.JobStatus{store.JobQueued, store.JobRunning},
				store.JobUpdate{Status: store.JobFailed, FinishedAt: &finished, Error: givenUp(row.Attempt)})
			if err != nil {
				return n, err
			}
			if ok {
				n++
				j, err := s.cfg.Meta.GetJobByID(ctx, args.JobID)
				if err == nil {
					s.metrics.finished(j.Method, "failed")
				}
				s.log.Warn("job given up by the queue recorded failed", zap.String("job_id", args.JobID), zap.Int("attempts", row.Attempt))
			}
		}
		if len(res.Jobs) < reconcileBatch || res.LastCursor == nil {
			break
		}
		params = params.After(res.LastCursor)
	}
	s.reconciledSince = began.Add(-time.Minute)
	return n, nil
}

// reconcile runs ReconcileDiscarded now and every interval until ctx ends.
func (s *Service) reconcile(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if _, err := s.ReconcileDiscarded(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("reconcile discarded jobs", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
