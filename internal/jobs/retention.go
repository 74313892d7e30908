package jobs

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/lowrank/lowrank"
	"github.com/lowrank/lowrank/internal/store"
)

// expireBatch bounds the records one cleaning pass reads at a time, so a
// large backlog (after retention is shortened) is worked off in slices that
// never hold the shared database for long.
const expireBatch = 100

// cleanInterval is how often the cleaner looks for expired records: a tenth
// of the retention, so nothing outlives it by more than 10%, but at least a
// second and at most an hour.
func cleanInterval(retention time.Duration) time.Duration {
	return min(max(retention/10, time.Second), time.Hour)
}

// Expire removes, once, every tensor created and every finished job
// finished more than the retention before now (by the Service's clock),
// with their blobs, and returns how many of each it removed. A tensor read
// by a queued or running job is kept until that job ends. With no retention
// it does nothing.
func (s *Service) Expire(ctx context.Context) (tensors, jobs int, err error) {
	if s.cfg.Retention <= 0 {
		return 0, 0, nil
	}
	cutoff := s.cfg.Now().Add(-s.cfg.Retention)
	for {
		js, err := s.cfg.Meta.ExpiredJobs(ctx, cutoff, expireBatch)
		if err != nil {
			return tensors, jobs, err
		}
		for _, j := range js {
			if err := s.deleteFinished(ctx, j); err != nil {
				return tensors, jobs, err
			}
			jobs++
			s.metrics.expired.WithLabelValues("job").Inc()
		}
		if len(js) < expireBatch {
			break
		}
	}
	for {
		ts, err := s.cfg.Meta.ExpiredTensors(ctx, cutoff, expireBatch)
		if err != nil {
			return tensors, jobs, err
		}
		kept := 0
		for _, t := range ts {
			err := s.cfg.Meta.DeleteTensor(ctx, t.Owner, t.ID)
			if lowrank.ErrorCode(err) == lowrank.ECONFLICT {
				// A job was submitted for it since the listing; it
				// expires once that job ends.
				kept++
				continue
			}
			if err != nil {
				return tensors, jobs, err
			}
			if err := s.cfg.Blobs.Delete(ctx, t.ID); err != nil {
				s.log.Warn("delete expired tensor blob", zap.String("tensor_id", t.ID), zap.Error(err))
			}
			tensors++
			s.metrics.expired.WithLabelValues("tensor").Inc()
		}
		if len(ts) < expireBatch || kept == len(ts) {
			break
		}
	}
	return tensors, jobs, nil
}

// deleteFinished removes a finished job's record, then its factor bundle
// and its inline input copy. Blobs go after the record, so a crash in
// between leaves an orphan blob rather than a record without its factors.
func (s *Service) deleteFinished(ctx context.Context, j *store.Job) error {
	if err := s.cfg.Meta.DeleteJob(ctx, j.Owner, j.ID); err != nil {
		return err
	}
	if j.BundleKey != "" {
		if err := s.cfg.Blobs.Delete(ctx, j.BundleKey); err != nil {
			s.log.Warn("delete bundle", zap.String("job_id", j.ID), zap.Error(err))
		}
	}
	if j.InputKey != "" && j.InputKey != j.TensorID {
		if err := s.cfg.Blobs.Delete(ctx, j.InputKey); err != nil {
			s.log.Warn("delete inline input", zap.String("job_id", j.ID), zap.Error(err))
		}
	}
	return nil
}

// clean runs Expire every interval until ctx ends.
func (s *Service) clean(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		nt, nj, err := s.Expire(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("expire", zap.Error(err))
		}
		if nt+nj > 0 {
			s.log.Info("expired", zap.Int("tensors", nt), zap.Int("jobs", nj))
		}
	}
}
