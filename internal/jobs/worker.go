package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"go.uber.org/zap"

	"github.com/lowrank/lowrank"
	"github.com/lowrank/lowrank/internal/store"
)

// Result is the summary a succeeded job stores; its factors are in the
// job's safetensors bundle.
type Result struct {
	Ranks            []int          `json:"ranks"`
	RelError         float64        `json:"rel_error"`
	CompressionRatio float64        `json:"compression_ratio"`
	ParamsOriginal   int64          `json:"params_original"`
	ParamsFactors    int64          `json:"params_factors"`
	Iterations       int            `json:"iterations"`
	Converged        bool           `json:"converged"`
	Extras           map[string]any `json:"extras,omitempty"`
	Factors          []FactorInfo   `json:"factors"`
}

// FactorInfo describes one factor in the bundle.
type FactorInfo struct {
	Name  string `json:"name"`
	Shape []int  `json:"shape"`
	DType string `json:"dtype"`
}

// BundleKey is the blob key of a job's factor bundle, written by its first
// attempt.
func BundleKey(jobID string) string { return jobID + ".safetensors" }

// attemptBundleKey is where attempt number attempt writes the bundle. A
// later attempt writes its own: another replica may start one while an
// earlier one still runs on a replica taken for dead (liveness.go), and the attempt
// that loses the race to record its result deletes its bundle, which must
// not be the winner's.
func attemptBundleKey(jobID string, attempt int) string {
	if attempt <= 1 {
		return BundleKey(jobID)
	}
	return fmt.Sprintf("%s.attempt%d.safetensors", jobID, attempt)
}

type worker struct {
	river.WorkerDefaults[jobArgs]
	s *Service
}

// Work runs one job. Failures of the job itself (bad input, a kernel error)
// are recorded and end the River job without retry; only a shutdown makes
// River retry it.
func (w *worker) Work(ctx context.Context, rj *river.Job[jobArgs]) error {
	s := w.s
	id := rj.Args.JobID
	j, err := s.cfg.Meta.GetJobByID(ctx, id)
	if lowrank.ErrorCode(err) == lowrank.ENOTFOUND {
		return river.JobCancel(err) // deleted while queued
	}
	if err != nil {
		return err
	}
	if j.Status.Finished() {
		return river.JobCancel(fmt.Errorf("job %s is already %s", id, j.Status))
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	run := &runningJob{cancel: cancel}
	s.mu.Lock()
	s.running[id] = run
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.running, id)
		s.mu.Unlock()
	}()

	started := s.cfg.Now().UTC()
	ok, err := s.cfg.Meta.TransitionJob(ctx, id, []store.JobStatus{store.JobQueued, store.JobRunning},
		store.JobUpdate{Status: store.JobRunning, StartedAt: &started, Progress: &store.Progress{}})
	if err != nil {
		return err
	}
	if !ok {
		return river.JobCancel(fmt.Errorf("job %s was canceled before it started", id))
	}
	s.metrics.queueWait.WithLabelValues(j.Method).Observe(started.Sub(j.CreatedAt).Seconds())
	log := s.log.With(zap.String("job_id", id), zap.String("method", j.Method))
	log.Debug("job started")

	res, bundle, timings, err := s.execute(ctx, j, attemptBundleKey(id, rj.Attempt), log)
	finished := s.cfg.Now().UTC()
	timings["total"] = finished.Sub(started).Seconds()
	timings["queue_wait"] = started.Sub(j.CreatedAt).Seconds()
	s.metrics.duration.WithLabelValues(j.Method).Observe(finished.Sub(started).Seconds())
	running := []store.JobStatus{store.JobRunning}

	if err == nil {
		ok, terr := s.cfg.Meta.TransitionJob(context.WithoutCancel(ctx), id, running, store.JobUpdate{
			Status: store.JobSucceeded, FinishedAt: &finished, Result: res, Timings: timings, BundleKey: bundle,
			Progress: &store.Progress{Iteration: 1, MaxIterations: 1, Fraction: 1}})
		if terr != nil {
			return terr
		}
		if !ok { // canceled at the last moment, or another attempt won: its factors are not wanted
			_ = s.cfg.Blobs.Delete(context.WithoutCancel(ctx), bundle)
			return river.JobCancel(errors.New("canceled"))
		}
		s.metrics.finished(j.Method, "succeeded")
		log.Info("job succeeded", zap.Float64("seconds", timings["total"]))
		return nil
	}

	je := jobError(err, s.jobTimeout)
	if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		switch {
		case run.canceled.Load():
			return river.JobCancel(err) // Delete recorded it
		case errors.Is(context.Cause(ctx), river.ErrJobCancelledRemotely):
			return river.JobCancel(err) // Delete recorded it, on another replica
		case s.stopping.Load() && rj.Attempt < rj.MaxAttempts:
			// A shutdown: back to queued; River retries it (retryPolicy),
			// on another replica or here after a restart.
			_, _ = s.cfg.Meta.TransitionJob(context.WithoutCancel(ctx), id, running,
				store.JobUpdate{Status: store.JobQueued, Progress: &store.Progress{}})
			log.Info("job interrupted by shutdown; requeued")
			return err
		case s.stopping.Load():
			// River would discard it rather than retry: record why.
			je = givenUp(rj.Attempt)
		}
	}
	if je.Code == lowrank.EINTERNAL {
		log.Error("job failed", zap.Error(err))
	} else {
		log.Info("job failed", zap.String("code", je.Code), zap.String("error", je.Message))
	}
	ok, terr := s.cfg.Meta.TransitionJob(context.WithoutCancel(ctx), id, running,
		store.JobUpdate{Status: store.JobFailed, FinishedAt: &finished, Error: je, Timings: timings})
	if terr != nil {
		return terr
	}
	if ok {
		s.metrics.finished(j.Method, "failed")
	}
	return river.JobCancel(err)
}

// retryPolicy schedules the retry of a job that was cut short. River's
// default backs off as attempt⁴ seconds, for failures that may need time to
// clear; a job here is retried only when its server stopped or died, which
// waiting does not mend, so it goes again soon: after one second per
// attempt, at most a minute (enough to keep a job that kills every server
// it runs on from doing so in a tight loop). The wall clock is River's, not
// the Service's Now, because River compares it with the database's.
type retryPolicy struct{}

func (retryPolicy) NextRetry(job *rivertype.JobRow) time.Time {
	return time.Now().Add(min(time.Duration(job.Attempt)*time.Second, time.Minute))
}

// givenUp is the error of a job River stops retrying after it was cut
// short attempts times.
func givenUp(attempts int) *store.JobError {
	return &store.JobError{Code: lowrank.EINTERNAL, Message: fmt.Sprintf(
		"the job was cut short %d times (its server stopped or died while running it) and is not retried", attempts)}
}

func jobError(err error, timeout time.Duration) *store.JobError {
	if errors.Is(err, context.DeadlineExceeded) {
		return &store.JobError{Code: lowrank.ECANCELED, Message: fmt.Sprintf("the job ran longer than the limit of %s", timeout)}
	}
	code := lowrank.ErrorCode(err)
	if code == lowrank.EINTERNAL {
		return &store.JobError{Code: code, Message: "internal error"}
	}
	je := &store.JobError{Code: code, Message: err.Error()}
	var e *lowrank.Error
	if errors.As(err, &e) {
		je.Field, je.Message = e.Field, e.Message
	}
	return je
}

// execute loads the input, runs the kernel and writes the bundle, returning
// the result summary as JSON, the bundle's key (key) and the phase
// timings.
func (s *Service) execute(ctx context.Context, j *store.Job, key string, log *zap.Logger) (json.RawMessage, string, map[string]float64, error) {
	timings := map[string]float64{}
	m, err := s.cfg.Registry.Lookup(j.Method)
	if err != nil {
		return nil, "", timings, err
	}
	t0 := s.cfg.Now()
	blob, err := s.cfg.Blobs.Open(ctx, j.InputKey)
	if err != nil {
		if lowrank.ErrorCode(err) == lowrank.ENOTFOUND {
			err = lowrank.Errorf(lowrank.ENOTFOUND, "tensor_id", "the input tensor was deleted")
		}
		return nil, "", timings, err
	}
	// An .npy file holds one unnamed array; its name is the upload's.
	name := j.TensorName
	if _, fts, err := s.cfg.Codec.Inspect(blob, blob.Size()); err == nil && len(fts) == 1 && fts[0].Name == "" {
		name = ""
	}
	in, err := s.cfg.Codec.ReadTensor(blob, blob.Size(), name)
	blob.Close()
	if err != nil {
		return nil, "", timings, err
	}
	if n := int64(in.Len()); n > s.cfg.Limits.MaxElements {
		return nil, "", timings, lowrank.Errorf(lowrank.ETOOLARGE, "tensor", "%d elements, more than the limit %d", n, s.cfg.Limits.MaxElements)
	}
	t1 := s.cfg.Now()
	timings["load"] = t1.Sub(t0).Seconds()

	threads := s.threads.take()
	env := Env{Backend: s.cfg.Backend.WithThreads(threads), Limits: s.cfg.Limits, Progress: s.progressWriter(ctx, j.ID)}
	out, err := runSafely(ctx, m, env, in, j.Params)
	s.threads.give(threads)
	if err != nil {
		return nil, "", timings, err
	}
	t2 := s.cfg.Now()
	timings["compute"] = t2.Sub(t1).Seconds()

	var common Common
	_ = json.Unmarshal(j.Params, &common)
	res := Result{
		Ranks: out.Ranks, RelError: out.RelError, ParamsOriginal: out.ParamsOriginal, ParamsFactors: out.ParamsFactors,
		Iterations: out.Iterations, Converged: out.Converged, Extras: out.Extras,
	}
	if out.ParamsFactors > 0 {
		res.CompressionRatio = float64(out.ParamsOriginal) / float64(out.ParamsFactors)
	}
	for _, f := range out.Factors {
		if common.OutputDType != "" {
			f.DType = common.OutputDType
		}
		res.Factors = append(res.Factors, FactorInfo{Name: f.Name, Shape: f.Shape, DType: f.DType})
	}
	meta := map[string]string{
		"format": "pt", "lowrank_version": s.cfg.Version, "method": j.Method, "params": string(j.Params),
		"job_id": j.ID, "tensor_id": j.TensorID, "tensor_name": j.TensorName, "ranks": fmt.Sprint(out.Ranks),
	}
	if _, err := s.putStreamed(ctx, key, func(w io.Writer) error {
		return s.cfg.Codec.WriteSafetensors(w, out.Factors, meta)
	}); err != nil {
		return nil, "", timings, err
	}
	timings["write"] = s.cfg.Now().Sub(t2).Seconds()
	b, err := json.Marshal(res)
	if err != nil {
		return nil, "", timings, err
	}
	return b, key, timings, nil
}

// runSafely turns a kernel panic into an EINTERNAL error, so one bad job
// cannot take the server down.
func runSafely(ctx context.Context, m Method, env Env, in *Tensor, params json.RawMessage) (out *Output, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &lowrank.Error{Code: lowrank.EINTERNAL, Message: "internal error",
				Err: fmt.Errorf("panic in %s: %v\n%s", m.Name, r, strings.TrimSpace(string(debug.Stack())))}
		}
	}()
	return m.Run(ctx, env, in, params)
}

// progressWriter records a kernel's progress at most every
// ProgressInterval, the first time one interval after the job started: a
// job shorter than that writes none (its final state carries its progress),
// so small jobs cost the shared database nothing here. Writes are
// synchronous but rare, so a kernel is not held up by the database.
func (s *Service) progressWriter(ctx context.Context, id string) func(Progress) {
	var mu sync.Mutex
	last := s.cfg.Now()
	return func(p Progress) {
		mu.Lock()
		defer mu.Unlock()
		now := s.cfg.Now()
		if now.Sub(last) < s.cfg.ProgressInterval {
			return
		}
		last = now
		sp := store.Progress{Iteration: p.Iteration, MaxIterations: p.MaxIterations, Fraction: p.Fraction}
		if !math.IsNaN(p.RelError) && !math.IsInf(p.RelError, 0) {
			v := p.RelError
			sp.RelError = &v
		}
		if err := s.cfg.Meta.SetProgress(ctx, id, sp); err != nil && ctx.Err() == nil {
			s.log.Warn("progress", zap.String("job_id", id), zap.Error(err))
		}
	}
}
