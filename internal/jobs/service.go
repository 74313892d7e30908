package jobs

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"go.uber.org/zap"
	"go.uber.org/zap/exp/zapslog"

	"github.com/lowrank/lowrank"
	"github.com/lowrank/lowrank/internal/linalg"
	"github.com/lowrank/lowrank/internal/store"
)

// River's fetch settings for SQLite (see sqliteQueue.fetchDefaults).
const (
	DefaultFetchCooldown     = 2 * time.Millisecond
	DefaultFetchPollInterval = 5 * time.Millisecond
)

// Config is everything a Service needs.
type Config struct {
	// Queue is River's database: SQLiteQueue on the meta store's SQLite
	// database, or PostgresQueue on the Postgres store's pool.
	Queue    Queue
	Meta     store.MetaStore
	Blobs    store.BlobStore
	Codec    Codec
	Registry Registry
	// Backend is the numeric backend; each job runs it with its share of
	// Threads (see threadBudget).
	Backend linalg.Backend
	// Threads is the kernel threads shared by all running jobs (default
	// Backend.Threads() × Workers).
	Threads int
	// Workers is the number of jobs run at once.
	Workers int
	// QueueCapacity bounds queued + running jobs; 0 means unbounded.
	QueueCapacity int
	Limits        Limits
	// JobTimeout bounds one job's run; 0 means none.
	JobTimeout time.Duration
	Logger     *zap.Logger
	Metrics    prometheus.Registerer
	Version    string
	// ProgressInterval is the least time between progress writes (default 250 ms).
	ProgressInterval time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// FetchCooldown and FetchPollInterval tune River's fetching (defaults
	// by database: DefaultFetchCooldown and DefaultFetchPollInterval on
	// SQLite, PostgresFetchCooldown and PostgresFetchPollInterval on
	// Postgres).
	FetchCooldown, FetchPollInterval time.Duration
	// SingleProcess says no other process uses the queue (the embedded
	// SQLite deployment): at start, jobs left running by a crash, or by a
	// shutdown whose kernels would not stop in time, are queued again at
	// once. It must be false when replicas share the queue: the jobs
	// another replica is running would run twice; there, replicas
	// heartbeat and take over the jobs of those that stop (RescueAfter).
	SingleProcess bool
	// RescueAfter is, when replicas share a Postgres queue (SingleProcess
	// false), how long after a replica stops heartbeating its running
	// jobs go back to the queue for another replica (see liveness.go);
	// default DefaultRescueAfter. Replicas heartbeat and sweep every
	// fifth of it (at least 200 ms, at most 10 s). It does not depend on
	// the jobs' length: a live replica keeps its jobs however long they
	// run. Shorter means a dead replica's jobs resume sooner, but a
	// replica cut off from the database for longer has its jobs run
	// twice (safely: the first result wins).
	RescueAfter time.Duration
	// Retention is how long tensors and finished jobs are kept; 0 keeps
	// them forever. CleanInterval is how often expired ones are removed
	// (default: a tenth of Retention, between a second and an hour).
	Retention, CleanInterval time.Duration
	// Compressions keeps whole-checkpoint compressions (in the database of
	// Meta and Queue); nil turns them off (see compress.go).
	Compressions store.CompressionStore
}

// Service owns the job lifecycle: submission, the River workers,
// cancellation and deletion.
type Service struct {
	cfg        Config
	river      riverClient
	metrics    *metrics
	log        *zap.Logger
	threads    *threadBudget
	jobTimeout time.Duration
	// live is the replica's heartbeat and sweep; nil unless replicas
	// share a Postgres queue.
	live *liveness

	stopping       atomic.Bool
	stopBackground context.CancelFunc // the cleaner and the reconciler
	background     sync.WaitGroup
	mu             sync.Mutex
	running        map[string]*runningJob // by job id
	// working and ended are, among replicas, the River jobs (of every
	// kind, by River id) this replica works, and when it let go of those
	// it worked lately: River records a job's end a moment after, and
	// until then the sweep must not take the job for one whose end was
	// lost (workTracker).
	working map[int64]struct{}
	ended   map[int64]time.Time

	compressions *compressions // nil when Config.Compressions is

	reconcileMu     sync.Mutex
	reconciledSince time.Time // where the next ReconcileDiscarded stops
}

type runningJob struct {
	cancel   context.CancelFunc
	canceled atomic.Bool // by a user, as opposed to a shutdown
}

// jobArgs is the River payload: just the id; everything else is in metadata.
type jobArgs struct {
	JobID string `json:"job_id"`
}

func (jobArgs) Kind() string { return "lowrank_decompose" }

// New runs River's migrations on cfg.Queue and builds the River client; Start
// starts working.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ProgressInterval <= 0 {
		cfg.ProgressInterval = 250 * time.Millisecond
	}
	if cfg.Workers < 1 {
		cfg.Workers = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Queue == nil {
		return nil, errors.New("jobs: Config.Queue is required")
	}
	if cfg.RescueAfter < 0 || cfg.JobTimeout < 0 {
		return nil, fmt.Errorf("jobs: negative RescueAfter %s or JobTimeout %s", cfg.RescueAfter, cfg.JobTimeout)
	}
	slogger := slog.New(zapslog.NewHandler(cfg.Logger.WithOptions(zap.IncreaseLevel(zap.WarnLevel)).Core(), zapslog.WithName("river")))
	if err := cfg.Queue.migrate(ctx, slogger); err != nil {
		return nil, err
	}
	if cfg.SingleProcess {
		if err := requeueOrphans(ctx, cfg.Queue, cfg.Meta, cfg.Logger); err != nil {
			return nil, err
		}
	}
	if cfg.Threads < 1 {
		cfg.Threads = cfg.Backend.Threads() * cfg.Workers
	}
	s := &Service{cfg: cfg, log: cfg.Logger, running: map[string]*runningJob{}, working: map[int64]struct{}{}, ended: map[int64]time.Time{}, threads: newThreadBudget(cfg.Threads, cfg.Workers)}
	var err error
	if s.metrics, err = newMetrics(cfg.Metrics, cfg.Meta); err != nil {
		return nil, err
	}
	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, &worker{s: s}); err != nil {
		return nil, err
	}
	if err := river.AddWorkerSafely(workers, &compressWorker{s: s}); err != nil {
		return nil, err
	}
	if cfg.Compressions != nil {
		if s.compressions, err = newCompressions(cfg, cfg.Metrics); err != nil {
			return nil, err
		}
	}
	s.jobTimeout = cfg.JobTimeout
	riverTimeout, backstop := s.jobTimeout, time.Duration(0) // 0: River's default
	if riverTimeout <= 0 {
		riverTimeout = -1 // River: no timeout; its rescuer then leaves the job alone
	} else {
		backstop = riverTimeout + time.Minute
	}
	var replicaID string
	if lq, ok := cfg.Queue.(livenessQueue); ok && !cfg.SingleProcess {
		stale := cmp.Or(cfg.RescueAfter, DefaultRescueAfter)
		replicaID = newReplicaID()
		s.live = &liveness{q: lq, id: replicaID, stale: stale, period: livenessPeriod(stale)}
	}
	cooldown, poll := cfg.Queue.fetchDefaults()
	rc := &river.Config{
		// River records it in river_job.attempted_by, where the sweep
		// looks for the replica that runs a job ("": River's default).
		ID:                replicaID,
		Logger:            slogger,
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: cfg.Workers}},
		Workers:           workers,
		FetchCooldown:     cmp.Or(cfg.FetchCooldown, cooldown),
		FetchPollInterval: cmp.Or(cfg.FetchPollInterval, poll),
		JobTimeout:        riverTimeout,
		// A job cut short by a shutdown or a dead replica is retried; a
		// job that fails on its own is not (the worker cancels it).
		MaxAttempts: maxAttempts,
		RetryPolicy: retryPolicy{},
		// Replicas take over each other's jobs by heartbeat (liveness.go);
		// River's rescuer only backs that up, for a job whose end was
		// lost: it must not take a live job, so it waits past the timeout.
		RescueStuckJobsAfter: backstop,
		Middleware:           []rivertype.Middleware{&workTracker{s: s}},
	}
	s.river, err = cfg.Queue.client(rc)
	if err != nil {
		return nil, fmt.Errorf("jobs: river client: %w", err)
	}
	return s, nil
}

// maxAttempts is how many times River runs a job that keeps being cut
// short (by shutdowns, or by replicas that die running it, as one whose
// kernel runs the process out of memory would); then it gives up, and the
// job is recorded failed (see the worker and ReconcileDiscarded).
const maxAttempts = 10

// requeueOrphans makes every running job available again, in River's table
// and in metadata. Only valid when this process is the queue's only user.
func requeueOrphans(ctx context.Context, q Queue, meta store.MetaStore, log *zap.Logger) error {
	n, err := q.requeueRunning(ctx)
	if err != nil {
		return fmt.Errorf("jobs: requeue orphans: %w", err)
	}
	m, err := meta.RequeueRunning(ctx)
	if err != nil {
		return err
	}
	if n > 0 || m > 0 {
		log.Warn("requeued jobs left running by the previous process", zap.Int64("queue_rows", n), zap.Int("jobs", m))
	}
	return nil
}

// Start starts the workers, and among replicas the heartbeat and the
// sweep for dead replicas' jobs.
func (s *Service) Start(ctx context.Context) error {
	if s.live != nil {
		// The row exists before River takes a job, or the sweep would
		// take the job for a dead replica's.
		if err := s.live.q.heartbeat(ctx, s.live.id); err != nil {
			return fmt.Errorf("jobs: start: %w", err)
		}
		s.live.healthySince.Store(time.Now().UnixNano())
		bctx, stop := context.WithCancel(context.WithoutCancel(ctx))
		s.live.stopBeat, s.live.beatDone = stop, make(chan struct{})
		go s.beat(bctx)
		s.log.Info("replica registered", zap.String("replica_id", s.live.id),
			zap.Duration("rescue_after", s.live.stale), zap.Duration("heartbeat_every", s.live.period))
	}
	if err := s.river.Start(ctx); err != nil {
		s.stopHeartbeat(ctx)
		return fmt.Errorf("jobs: start: %w", err)
	}
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.stopBackground = cancel
	s.background.Go(func() { s.reconcile(cctx, reconcileInterval) })
	if s.live != nil {
		s.background.Go(func() { s.sweepLoop(cctx) })
	}
	if s.cfg.Retention > 0 {
		interval := s.cfg.CleanInterval
		if interval <= 0 {
			interval = cleanInterval(s.cfg.Retention)
		}
		s.background.Go(func() { s.clean(cctx, interval) })
	}
	return nil
}

// Stop lets running jobs finish until ctx ends, then cancels them; a job cut
// short goes back to queued and runs again: on another replica, or here
// after a restart. The heartbeat goes on while jobs finish; then the
// replica's row is deleted.
func (s *Service) Stop(ctx context.Context) error {
	s.stopping.Store(true)
	if s.stopBackground != nil {
		s.stopBackground()
		s.background.Wait()
	}
	defer s.stopHeartbeat(ctx)
	err := s.river.Stop(ctx)
	if err == nil {
		return nil
	}
	hard, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.river.StopAndCancel(hard); err != nil {
		return fmt.Errorf("jobs: stop: %w", err)
	}
	return nil
}

// stopHeartbeat ends the heartbeat and deletes the replica's row: a job
// still running here (one whose kernel would not stop) is then another
// replica's at its next sweep, which is safe (the first result wins).
func (s *Service) stopHeartbeat(ctx context.Context) {
	if s.live == nil || s.live.stopBeat == nil {
		return
	}
	s.live.stopBeat()
	<-s.live.beatDone
	s.live.stopBeat = nil
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.live.q.leave(lctx, s.live.id); err != nil {
		s.log.Warn("replica row not deleted; other replicas forget it later", zap.Error(err))
	}
}

// Ping reports whether the queue's database is usable.
func (s *Service) Ping(ctx context.Context) error { return s.cfg.Queue.Ping(ctx) }

// Registry returns the method registry.
func (s *Service) Registry() Registry { return s.cfg.Registry }

// Limits returns the job limits.
func (s *Service) Limits() Limits { return s.cfg.Limits }

// SubmitRequest is a new job. Exactly one of TensorID and Inline is set.
type SubmitRequest struct {
	Owner      string
	TensorID   string
	TensorName string
	Inline     *Tensor
	Method     string
	Params     []byte
}

// Submit validates req through the method registry, records the job and
// queues it.
func (s *Service) Submit(ctx context.Context, req SubmitRequest) (*store.Job, error) {
	m, err := s.cfg.Registry.Lookup(req.Method)
	if err != nil {
		return nil, err
	}
	var info InputInfo
	var tensorName string
	switch {
	case req.Inline != nil && req.TensorID != "":
		return nil, lowrank.Errorf(lowrank.EINVALID, "tensor", "give either tensor_id or an inline tensor, not both")
	case req.Inline != nil:
		t := req.Inline
		if err := checkInline(t, s.cfg.Limits); err != nil {
			return nil, err
		}
		info = InputInfo{Shape: t.Shape, DType: "float64"}
	case req.TensorID != "":
		t, err := s.cfg.Meta.GetTensor(ctx, req.Owner, req.TensorID)
		if err != nil {
			if lowrank.ErrorCode(err) == lowrank.ENOTFOUND {
				return nil, lowrank.Errorf(lowrank.ENOTFOUND, "tensor_id", "tensor %s not found", req.TensorID)
			}
			return nil, err
		}
		ti, err := pickTensor(t, req.TensorName)
		if err != nil {
			return nil, err
		}
		switch ti.DType {
		case "float16", "bfloat16", "float32", "float64":
		default:
			return nil, lowrank.Errorf(lowrank.EUNSUPPORTED, "tensor_name", "tensor %q has dtype %s; float16, bfloat16, float32 and float64 are decomposed", ti.Name, ti.DType)
		}
		tensorName = ti.Name
		info = InputInfo{Shape: ti.Shape, DType: ti.DType}
		if n := elements(ti.Shape); n > s.cfg.Limits.MaxElements {
			return nil, lowrank.Errorf(lowrank.ETOOLARGE, "tensor_name", "tensor %q has %d elements, more than the limit %d", ti.Name, n, s.cfg.Limits.MaxElements)
		}
	default:
		return nil, lowrank.Errorf(lowrank.EINVALID, "tensor_id", "is required (or give an inline tensor)")
	}
	params, err := m.Validate(req.Params, info, s.cfg.Limits)
	if err != nil {
		return nil, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now().UTC()
	j := &store.Job{
		ID: id.String(), Owner: req.Owner, TensorID: req.TensorID, TensorName: tensorName, InputKey: req.TensorID,
		Method: m.Name, Params: params, Status: store.JobQueued, CreatedAt: now,
	}
	if req.Inline != nil {
		j.InputKey = j.ID + ".input.npy"
		if _, err := s.putStreamed(ctx, j.InputKey, func(w io.Writer) error { return s.cfg.Codec.WriteNPY(w, req.Inline) }); err != nil {
			return nil, err
		}
	}
	err = s.cfg.Meta.CreateJob(ctx, j, s.cfg.QueueCapacity, func(ctx context.Context, tx *sql.Tx) (int64, error) {
		id, err := s.river.insertTx(ctx, tx, jobArgs{JobID: j.ID})
		if err != nil {
			return 0, fmt.Errorf("jobs: enqueue: %w", err)
		}
		return id, nil
	})
	if err != nil {
		if req.Inline != nil {
			_ = s.cfg.Blobs.Delete(context.WithoutCancel(ctx), j.InputKey)
		}
		return nil, err
	}
	return j, nil
}

func checkInline(t *Tensor, lim Limits) error {
	if len(t.Shape) == 0 {
		return lowrank.Errorf(lowrank.EINVALID, "tensor.shape", "is required")
	}
	n := int64(1)
	for i, d := range t.Shape {
		if d < 0 {
			return lowrank.Errorf(lowrank.EINVALID, fmt.Sprintf("tensor.shape[%d]", i), "must be ≥ 0, got %d", d)
		}
		n *= int64(d)
		if n > lim.MaxElements {
			return lowrank.Errorf(lowrank.ETOOLARGE, "tensor.shape", "more than the limit of %d elements", lim.MaxElements)
		}
		if lim.MaxInlineElements > 0 && n > lim.MaxInlineElements {
			return lowrank.Errorf(lowrank.ETOOLARGE, "tensor",
				"an inline tensor may have at most %d elements; upload larger ones with POST /v1/tensors", lim.MaxInlineElements)
		}
	}
	if int64(len(t.F64)) != n {
		return lowrank.Errorf(lowrank.EINVALID, "tensor.data", "has %d values, shape %v needs %d", len(t.F64), t.Shape, n)
	}
	return nil
}

func pickTensor(t *store.Tensor, name string) (store.TensorInfo, error) {
	if name == "" {
		if len(t.Tensors) == 1 {
			return t.Tensors[0], nil
		}
		return store.TensorInfo{}, lowrank.Errorf(lowrank.EINVALID, "tensor_name", "is required: the file holds %d tensors", len(t.Tensors))
	}
	for _, ti := range t.Tensors {
		if ti.Name == name {
			return ti, nil
		}
	}
	return store.TensorInfo{}, lowrank.Errorf(lowrank.ENOTFOUND, "tensor_name", "the file has no tensor %q", name)
}

// putStreamed stores what write produces under key without buffering it.
func (s *Service) putStreamed(ctx context.Context, key string, write func(io.Writer) error) (store.BlobInfo, error) {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(write(pw)) }()
	info, err := s.cfg.Blobs.Put(ctx, key, pr)
	pr.CloseWithError(errors.New("jobs: put ended"))
	return info, err
}

// Delete cancels an active job, returning it with status canceled, or
// deletes a finished one with its factors, returning nil.
func (s *Service) Delete(ctx context.Context, owner, id string) (*store.Job, error) {
	j, err := s.cfg.Meta.GetJob(ctx, owner, id)
	if err != nil {
		return nil, err
	}
	if !j.Status.Finished() {
		now := s.cfg.Now().UTC()
		ok, err := s.cfg.Meta.TransitionJob(ctx, id, []store.JobStatus{store.JobQueued, store.JobRunning},
			store.JobUpdate{Status: store.JobCanceled, FinishedAt: &now,
				Error: &store.JobError{Code: lowrank.ECANCELED, Message: "canceled by request"}})
		if err != nil {
			return nil, err
		}
		if ok {
			s.mu.Lock()
			if r := s.running[id]; r != nil {
				r.canceled.Store(true)
				r.cancel()
			}
			s.mu.Unlock()
			if _, err := s.river.JobCancel(ctx, j.RiverID); err != nil && !errors.Is(err, rivertype.ErrNotFound) {
				s.log.Warn("river job cancel", zap.String("job_id", id), zap.Error(err))
			}
			s.metrics.finished(j.Method, "canceled")
			return s.cfg.Meta.GetJob(ctx, owner, id)
		}
		// It finished meanwhile: delete it like any finished job.
		if j, err = s.cfg.Meta.GetJob(ctx, owner, id); err != nil {
			return nil, err
		}
	}
	return nil, s.deleteFinished(ctx, j)
}
