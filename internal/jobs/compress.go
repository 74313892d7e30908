package jobs

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"go.uber.org/zap"

	"github.com/lowrank/lowrank"
	"github.com/lowrank/lowrank/internal/compress"
	"github.com/lowrank/lowrank/internal/report"
	"github.com/lowrank/lowrank/internal/store"
	"github.com/lowrank/lowrank/internal/tensorio"
)

// A compression runs internal/compress's phases as River jobs of kind
// "lowrank_compress", so every worker of every replica takes part and each
// step holds one slot of the pool and its share of the thread budget, like
// any decomposition job:
//
//	plan                     1 job     inspect the checkpoint, compress.NewPlan, record the layers
//	analyze <layer>          1 a layer compress.Analyze; the analysis goes into the layer's row
//	allocate                 1 job     compress.Allocate over all analyses; the ranks go into the rows
//	factor <layer>           1 a layer compress.Factor; the factors go to a blob of their own
//	assemble                 1 job     the checkpoint, manifest, report and report page
//
// Each step that ends a phase is decided in the store's transaction that
// records it (CompressionStore.CompleteLayer counts the layers left), and
// that same transaction queues the next phase, so exactly one sub-job moves
// the compression on whichever replica finishes last, and a crash between
// "recorded" and "queued" cannot happen. Every step is idempotent: a layer
// is completed only from its previous status, so a sub-job that River
// retries (after a shutdown, or rescued from a dead replica) changes
// nothing the first run recorded, and blob keys are fixed by compression
// and layer.
//
// A compression fails as a whole with the first layer error (the layer is
// marked failed with it); the layers are not kept uncompressed silently,
// because a budget was spread over them all. Cancellation (DELETE) marks the
// record canceled at once; queued sub-jobs then find it finished and do
// nothing, and running ones are stopped through their context: at once on
// this replica, and within compressionPoll on the others, whose sub-jobs
// watch the record (cheaper than keeping every sub-job's queue id for
// River's JobCancel). compress's kernels look at their context between
// stages, not inside a factorisation, so a canceled layer's worker is free
// once its current kernel call returns.
//
// Nothing of a layer's data stays in memory between steps: analyses,
// allocations and results are JSON in the layer's row, factors are a small
// safetensors blob per layer, and the assembly streams the source's
// untouched tensors and the layers' factors into the output.

// Compression phases, as recorded in store.Compression.Phase.
const (
	PhasePlan     = "plan"
	PhaseAnalyze  = "analyze"
	PhaseAllocate = "allocate"
	PhaseFactor   = "factor"
	PhaseAssemble = "assemble"
)

// Output names of a succeeded compression.
const (
	OutputCheckpoint = "checkpoint"
	OutputManifest   = "manifest"
	OutputReport     = "report"
	OutputReportHTML = "report.html"
)

// compressionPoll is how often a running sub-job checks that its
// compression is still running, for a cancel made on another replica.
const compressionPoll = 500 * time.Millisecond

type compressArgs struct {
	CompressionID string `json:"compression_id"`
	Step          string `json:"step"`
	Layer         int    `json:"layer,omitempty"`
}

func (compressArgs) Kind() string { return "lowrank_compress" }

// compressions is the Service's compression state on this replica.
type compressions struct {
	store   store.CompressionStore
	total   *prometheus.CounterVec
	limits  tensorio.Limits
	mu      sync.Mutex
	cancels map[string]map[*context.CancelFunc]struct{} // running sub-jobs by compression id
}

func newCompressions(cfg Config, reg prometheus.Registerer) (*compressions, error) {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	c := &compressions{store: cfg.Compressions, cancels: map[string]map[*context.CancelFunc]struct{}{},
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lowrank_compressions_total", Help: "Compressions finished, by outcome (succeeded, failed, canceled).",
		}, []string{"outcome"})}
	if tc, ok := cfg.Codec.(TensorioCodec); ok {
		c.limits = tc.Limits
	}
	// Every outcome is exported from the start, at 0, so a rate() over it
	// is defined before the first compression ends.
	for _, outcome := range []string{"succeeded", "failed", "canceled"} {
		c.total.WithLabelValues(outcome)
	}
	if err := reg.Register(c.total); err != nil {
		return nil, err
	}
	return c, nil
}

// track registers a running sub-job's cancel under its compression.
func (c *compressions) track(id string, cancel *context.CancelFunc) func() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancels[id] == nil {
		c.cancels[id] = map[*context.CancelFunc]struct{}{}
	}
	c.cancels[id][cancel] = struct{}{}
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.cancels[id], cancel)
		if len(c.cancels[id]) == 0 {
			delete(c.cancels, id)
		}
	}
}

// cancelLocal stops this replica's running sub-jobs of compression id.
func (c *compressions) cancelLocal(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for f := range c.cancels[id] {
		(*f)()
	}
}

func (s *Service) comp() (*compressions, error) {
	if s.compressions == nil {
		return nil, lowrank.Errorf(lowrank.EUNSUPPORTED, "", "compressions are not enabled on this server")
	}
	return s.compressions, nil
}

// CompressionRequest is a new compression.
type CompressionRequest struct {
	Owner    string
	TensorID string
	Policy   json.RawMessage
}

// SubmitCompression validates req (the policy, and that it selects layers
// of the checkpoint), records the compression and queues its plan step.
func (s *Service) SubmitCompression(ctx context.Context, req CompressionRequest) (*store.Compression, error) {
	c, err := s.comp()
	if err != nil {
		return nil, err
	}
	if req.TensorID == "" {
		return nil, lowrank.Errorf(lowrank.EINVALID, "tensor_id", "is required: the id of an uploaded safetensors or npz checkpoint")
	}
	if len(bytes.TrimSpace(req.Policy)) == 0 || string(bytes.TrimSpace(req.Policy)) == "null" {
		return nil, lowrank.Errorf(lowrank.EINVALID, "policy", `is required, e.g. {"budget": 0.5}`)
	}
	p, err := compress.ParsePolicy(req.Policy)
	if err != nil {
		return nil, err
	}
	t, err := s.cfg.Meta.GetTensor(ctx, req.Owner, req.TensorID)
	if err != nil {
		if lowrank.ErrorCode(err) == lowrank.ENOTFOUND {
			return nil, lowrank.Errorf(lowrank.ENOTFOUND, "tensor_id", "tensor %s not found", req.TensorID)
		}
		return nil, err
	}
	if t.Format != "safetensors" && t.Format != "npz" {
		return nil, lowrank.Errorf(lowrank.EUNSUPPORTED, "tensor_id",
			"tensor %s is a %s file; a compression reads a checkpoint of named tensors (safetensors or npz)", t.ID, t.Format)
	}
	// Plan now, so a policy that selects nothing is a 422 rather than a
	// failed compression; the plan step does it again from the blob. The
	// record keeps the plan's policy, defaults filled in, as a job keeps
	// its validated params.
	plan, err := s.planOf(ctx, c, t.ID, p)
	if err != nil {
		return nil, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, err
	}
	policy, err := json.Marshal(plan.Policy)
	if err != nil {
		return nil, err
	}
	rec := &store.Compression{ID: id.String(), Owner: req.Owner, TensorID: t.ID, Policy: policy,
		Status: store.JobQueued, Phase: PhasePlan, CreatedAt: s.cfg.Now().UTC()}
	// A compression takes a slot of the queue's capacity, counted among
	// compressions: its sub-jobs are many but run on the same workers.
	err = c.store.CreateCompression(ctx, rec, s.cfg.QueueCapacity, s.enqueue(compressArgs{CompressionID: rec.ID, Step: PhasePlan}))
	if err != nil {
		return nil, err
	}
	return rec, nil
}

// planOf inspects the checkpoint in blob key and plans it under p.
func (s *Service) planOf(ctx context.Context, c *compressions, key string, p compress.Policy) (*compress.Plan, error) {
	b, err := s.cfg.Blobs.Open(ctx, key)
	if err != nil {
		if lowrank.ErrorCode(err) == lowrank.ENOTFOUND {
			return nil, lowrank.Errorf(lowrank.ENOTFOUND, "tensor_id", "the checkpoint %s was deleted", key)
		}
		return nil, err
	}
	defer b.Close()
	_, infos, err := c.limits.Inspect(b, b.Size())
	if err != nil {
		return nil, err
	}
	return compress.NewPlan(infos, p)
}

// enqueue returns a store.Enqueue that queues the sub-jobs args.
func (s *Service) enqueue(args ...compressArgs) store.Enqueue {
	return func(ctx context.Context, tx *sql.Tx) error {
		for _, a := range args {
			if _, err := s.river.insertTx(ctx, tx, a); err != nil {
				return fmt.Errorf("jobs: enqueue %s: %w", a.Step, err)
			}
		}
		return nil
	}
}

// CompressionLayerInfo is one layer of a compression as the API shows it.
type CompressionLayerInfo struct {
	Name         string            `json:"name"`
	Status       store.LayerStatus `json:"status"`
	Kind         string            `json:"kind"`
	Method       string            `json:"method"`
	Shape        []int             `json:"shape"`
	Ranks        []int             `json:"ranks,omitempty"`
	RelError     *float64          `json:"rel_error,omitempty"`
	ParamsBefore int64             `json:"params_before"`
	ParamsAfter  *int64            `json:"params_after,omitempty"`
	Error        *store.JobError   `json:"error,omitempty"`
}

// CompressionProgress is how far a compression has come: LayersDone layers
// have reached their final state (factored, or kept by the allocation) of
// LayersTotal; Fraction also counts the analyses, as half of the work.
type CompressionProgress struct {
	Phase       string  `json:"phase"`
	LayersDone  int     `json:"layers_done"`
	LayersTotal int     `json:"layers_total"`
	Fraction    float64 `json:"fraction"`
}

// CompressionInfo is a compression with its layers and progress.
type CompressionInfo struct {
	*store.Compression
	Layers   []CompressionLayerInfo
	Progress CompressionProgress
}

// lookupCompression returns the compression store and the owner's
// compression id (ENOTFOUND when it is not theirs or does not exist).
func (s *Service) lookupCompression(ctx context.Context, owner, id string) (*compressions, *store.Compression, error) {
	c, err := s.comp()
	if err != nil {
		return nil, nil, err
	}
	rec, err := c.store.GetCompression(ctx, owner, id)
	if err != nil {
		return nil, nil, err
	}
	return c, rec, nil
}

// GetCompression returns the compression with its layers.
func (s *Service) GetCompression(ctx context.Context, owner, id string) (*CompressionInfo, error) {
	c, rec, err := s.lookupCompression(ctx, owner, id)
	if err != nil {
		return nil, err
	}
	return s.compressionInfo(ctx, c, rec, true)
}

// ListCompressions lists the owner's compressions, newest first, without
// their layers.
func (s *Service) ListCompressions(ctx context.Context, owner string, p store.Page) ([]*CompressionInfo, string, error) {
	c, err := s.comp()
	if err != nil {
		return nil, "", err
	}
	recs, next, err := c.store.ListCompressions(ctx, owner, p)
	if err != nil {
		return nil, "", err
	}
	out := make([]*CompressionInfo, len(recs))
	for i, r := range recs {
		if out[i], err = s.compressionInfo(ctx, c, r, false); err != nil {
			return nil, "", err
		}
	}
	return out, next, nil
}

func (s *Service) compressionInfo(ctx context.Context, c *compressions, rec *store.Compression, layers bool) (*CompressionInfo, error) {
	info := &CompressionInfo{Compression: rec, Progress: CompressionProgress{Phase: rec.Phase, LayersTotal: rec.LayersTotal}}
	if rec.Status == store.JobSucceeded {
		info.Progress.LayersDone, info.Progress.Fraction = rec.LayersTotal, 1
	}
	rows, err := c.store.CompressionLayers(ctx, rec.ID)
	if err != nil {
		return nil, err
	}
	var plan compress.Plan
	if len(rec.Plan) > 0 {
		if err := json.Unmarshal(rec.Plan, &plan); err != nil {
			return nil, fmt.Errorf("jobs: compression %s plan: %w", rec.ID, err)
		}
	}
	analyzed, done := 0, 0
	for _, row := range rows {
		if row.Index >= len(plan.Layers) {
			// The record was read before the plan step committed its
			// layers; report the record's state, without them.
			continue
		}
		if row.Status != store.LayerPending && row.Status != store.LayerFailed {
			analyzed++
		}
		if row.Status.Done() {
			done++
		}
		if !layers {
			continue
		}
		li := CompressionLayerInfo{Name: row.Name, Status: row.Status, Error: row.Error}
		l := &plan.Layers[row.Index]
		li.Kind, li.Method, li.Shape, li.ParamsBefore = l.Kind, l.Method, l.Shape, l.Params
		var al compress.Allocation
		if len(row.Allocation) > 0 && json.Unmarshal(row.Allocation, &al) == nil {
			li.Ranks = al.Ranks
			if row.Status == store.LayerKept {
				li.ParamsAfter = &li.ParamsBefore
			}
		}
		var res compress.LayerResult
		if len(row.Result) > 0 && json.Unmarshal(row.Result, &res) == nil {
			li.Ranks, li.RelError, li.ParamsAfter = res.Ranks, &res.RelError, &res.ParamsAfter
		}
		if row.Status == store.LayerKept {
			zero := 0.0
			li.RelError = &zero
		}
		info.Layers = append(info.Layers, li)
	}
	if rec.Status != store.JobSucceeded {
		info.Progress.LayersDone = done
		if n := rec.LayersTotal; n > 0 {
			// The assembly is the last sliver; a compression reaches 1
			// only when it has succeeded.
			info.Progress.Fraction = min(0.99, float64(analyzed+done)/float64(2*n))
		}
	}
	return info, nil
}

// DeleteCompression cancels an active compression, returning it with
// status canceled, or deletes a finished one with its outputs, returning
// nil.
func (s *Service) DeleteCompression(ctx context.Context, owner, id string) (*CompressionInfo, error) {
	c, rec, err := s.lookupCompression(ctx, owner, id)
	if err != nil {
		return nil, err
	}
	if !rec.Status.Finished() {
		now := s.cfg.Now().UTC()
		ok, err := c.store.TransitionCompression(ctx, id, []store.JobStatus{store.JobQueued, store.JobRunning}, store.CompressionUpdate{
			Status: store.JobCanceled, FinishedAt: &now, Error: &store.JobError{Code: lowrank.ECANCELED, Message: "canceled by request"}})
		if err != nil {
			return nil, err
		}
		if ok {
			c.cancelLocal(id)
			c.total.WithLabelValues("canceled").Inc()
			s.deleteLayerBlobs(context.WithoutCancel(ctx), rec)
			return s.GetCompression(ctx, owner, id)
		}
		if rec, err = c.store.GetCompression(ctx, owner, id); err != nil {
			return nil, err
		}
	}
	return nil, s.deleteCompressionFinished(ctx, c, rec)
}

// deleteCompressionFinished removes a finished compression's record, then
// its blobs (an orphan blob rather than a record without its outputs).
func (s *Service) deleteCompressionFinished(ctx context.Context, c *compressions, rec *store.Compression) error {
	if err := c.store.DeleteCompression(ctx, rec.Owner, rec.ID); err != nil {
		return err
	}
	for _, key := range rec.Outputs {
		if err := s.cfg.Blobs.Delete(ctx, key); err != nil {
			s.log.Warn("delete compression output", zap.String("compression_id", rec.ID), zap.Error(err))
		}
	}
	s.deleteLayerBlobs(ctx, rec)
	return nil
}

// deleteLayerBlobs removes the per-layer factor blobs of rec, which the
// assembled checkpoint holds once it exists.
func (s *Service) deleteLayerBlobs(ctx context.Context, rec *store.Compression) {
	for i := range rec.LayersTotal {
		if err := s.cfg.Blobs.Delete(ctx, layerKey(rec.ID, i)); err != nil {
			s.log.Warn("delete layer factors", zap.String("compression_id", rec.ID), zap.Error(err))
		}
	}
}

// expireCompressions removes finished compressions older than cutoff.
func (s *Service) expireCompressions(ctx context.Context, cutoff time.Time) (int, error) {
	if s.compressions == nil {
		return 0, nil
	}
	n := 0
	for {
		recs, err := s.compressions.store.ExpiredCompressions(ctx, cutoff, expireBatch)
		if err != nil {
			return n, err
		}
		for _, r := range recs {
			if err := s.deleteCompressionFinished(ctx, s.compressions, r); err != nil {
				return n, err
			}
			n++
			s.metrics.expired.WithLabelValues("compression").Inc()
		}
		if len(recs) < expireBatch {
			return n, nil
		}
	}
}

func layerKey(id string, i int) string { return fmt.Sprintf("%s.layer-%d.safetensors", id, i) }

func outputKey(id, name string) string {
	switch name {
	case OutputCheckpoint:
		return id + ".compressed.safetensors"
	case OutputReportHTML:
		return id + ".report.html"
	}
	return id + "." + name + ".json"
}

// OpenCompressionOutput opens output name (OutputCheckpoint, …) of a
// succeeded compression.
func (s *Service) OpenCompressionOutput(ctx context.Context, owner, id, name string) (*store.Compression, store.Blob, error) {
	_, rec, err := s.lookupCompression(ctx, owner, id)
	if err != nil {
		return nil, nil, err
	}
	if rec.Status != store.JobSucceeded {
		return nil, nil, lowrank.Errorf(lowrank.ECONFLICT, "", "compression %s is %s; its outputs exist once it has succeeded", id, rec.Status)
	}
	key, ok := rec.Outputs[name]
	if !ok {
		return nil, nil, lowrank.Errorf(lowrank.ENOTFOUND, "", "compression %s has no output %q", id, name)
	}
	b, err := s.cfg.Blobs.Open(ctx, key)
	if err != nil {
		return nil, nil, err
	}
	return rec, b, nil
}

// LayerSpectrum is one spectrum of a compression's layer.
type LayerSpectrum struct {
	Values []float64
	Total  float64 // ‖W‖_F²
	Rank   int     // the rank allocated, len(Values) when kept or not yet allocated
	Title  string
	// Final says the figure will not change (the layer is allocated).
	Final bool
}

// CompressionSpectrum returns spectrum mode (0: the matrix's, or a
// Tucker-2 conv's output channels; 1: a Tucker-2 conv's input channels) of
// layer name, once analyzed.
func (s *Service) CompressionSpectrum(ctx context.Context, owner, id, name string, mode int) (*LayerSpectrum, error) {
	c, rec, err := s.lookupCompression(ctx, owner, id)
	if err != nil {
		return nil, err
	}
	rows, err := c.store.CompressionLayers(ctx, id)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(rows, func(r store.CompressionLayer) bool { return r.Name == name })
	if i < 0 {
		return nil, lowrank.Errorf(lowrank.ENOTFOUND, "name", "compression %s has no layer %q", id, name)
	}
	row := rows[i]
	if len(row.Analysis) == 0 {
		return nil, lowrank.Errorf(lowrank.ECONFLICT, "", "layer %q of compression %s is not analyzed yet", name, id)
	}
	var a compress.Analysis
	if err := json.Unmarshal(row.Analysis, &a); err != nil {
		return nil, fmt.Errorf("jobs: compression %s layer %s analysis: %w", id, name, err)
	}
	if len(a.Spectra) == 0 {
		return nil, lowrank.Errorf(lowrank.ENOTFOUND, "name", "layer %q is factored by cp, which has no spectrum", name)
	}
	if mode < 0 || mode >= len(a.Spectra) {
		return nil, lowrank.Errorf(lowrank.EINVALID, "mode", "layer %q has %d spectra; mode must be in [0, %d]", name, len(a.Spectra), len(a.Spectra)-1)
	}
	sp := &LayerSpectrum{Values: a.Spectra[mode], Total: a.NormSq, Rank: len(a.Spectra[mode]),
		Title: fmt.Sprintf("%s (compression %s)", name, rec.ID)}
	if len(a.Spectra) == 2 {
		sp.Title = fmt.Sprintf("%s, mode %s (compression %s)", name, []string{"out", "in"}[mode], rec.ID)
	}
	var al compress.Allocation
	if len(row.Allocation) > 0 && json.Unmarshal(row.Allocation, &al) == nil {
		sp.Final = true
		if mode < len(al.Ranks) {
			sp.Rank = min(al.Ranks[mode], sp.Rank)
		}
	}
	return sp, nil
}

type compressWorker struct {
	river.WorkerDefaults[compressArgs]
	s *Service
}

// Work runs one step of a compression. A step of a compression that is no
// longer running does nothing; a failed step fails the compression; a step
// cut short by a shutdown is retried by River.
func (w *compressWorker) Work(ctx context.Context, rj *river.Job[compressArgs]) error {
	s := w.s
	c := s.compressions
	if c == nil {
		return river.JobCancel(errNoCompressions)
	}
	a := rj.Args
	rec, err := c.store.GetCompressionByID(ctx, a.CompressionID)
	if lowrank.ErrorCode(err) == lowrank.ENOTFOUND {
		return river.JobCancel(err)
	}
	if err != nil {
		return err
	}
	if rec.Status.Finished() {
		return nil // canceled or failed meanwhile: nothing to do
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer c.track(rec.ID, &cancel)()
	go s.watchCompression(ctx, cancel, rec.ID)

	method := "compress_" + a.Step
	started := s.cfg.Now()
	log := s.log.With(zap.String("compression_id", rec.ID), zap.String("step", a.Step))
	err = s.compressStep(ctx, rec, a, log)
	s.metrics.duration.WithLabelValues(method).Observe(s.cfg.Now().Sub(started).Seconds())
	if err == nil {
		s.metrics.finished(method, "succeeded")
		return nil
	}
	if ctx.Err() != nil {
		cur, gerr := c.store.GetCompressionByID(context.WithoutCancel(ctx), rec.ID)
		if gerr == nil && cur.Status.Finished() {
			s.metrics.finished(method, "canceled")
			return river.JobCancel(err) // canceled, or failed by another layer
		}
		if s.stopping.Load() && rj.Attempt < rj.MaxAttempts {
			log.Info("compression step interrupted by shutdown; requeued")
			return err
		}
	}
	s.metrics.finished(method, "failed")
	je := jobError(err, s.jobTimeout)
	layer := -1
	if a.Step == PhaseAnalyze || a.Step == PhaseFactor {
		layer = a.Layer
	}
	s.failCompression(context.WithoutCancel(ctx), rec, layer, je, log)
	return river.JobCancel(err)
}

// watchCompression cancels a running step when its compression stops
// running (a cancel or a failure on another replica).
func (s *Service) watchCompression(ctx context.Context, cancel context.CancelFunc, id string) {
	tick := time.NewTicker(compressionPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		rec, err := s.compressions.store.GetCompressionByID(ctx, id)
		if lowrank.ErrorCode(err) == lowrank.ENOTFOUND || err == nil && rec.Status.Finished() {
			cancel()
			return
		}
	}
}

// failCompression records je as the compression's error (and layer's,
// when layer ≥ 0) and stops its other steps here.
func (s *Service) failCompression(ctx context.Context, rec *store.Compression, layer int, je *store.JobError, log *zap.Logger) {
	c := s.compressions
	cerr := *je
	if layer >= 0 {
		rows, err := c.store.CompressionLayers(ctx, rec.ID)
		if err == nil && layer < len(rows) {
			cerr.Message = fmt.Sprintf("layer %q: %s", rows[layer].Name, je.Message)
			if err := c.store.SetLayer(ctx, rec.ID, store.LayerUpdate{Index: layer, Status: store.LayerFailed, Error: je}); err != nil {
				log.Warn("record layer failure", zap.Error(err))
			}
		}
	}
	now := s.cfg.Now().UTC()
	ok, err := c.store.TransitionCompression(ctx, rec.ID, []store.JobStatus{store.JobQueued, store.JobRunning},
		store.CompressionUpdate{Status: store.JobFailed, FinishedAt: &now, Error: &cerr})
	if err != nil {
		log.Error("record compression failure", zap.Error(err))
		return
	}
	if ok {
		c.total.WithLabelValues("failed").Inc()
		c.cancelLocal(rec.ID)
		s.deleteLayerBlobs(ctx, rec)
		if cerr.Code == lowrank.EINTERNAL {
			log.Error("compression failed", zap.String("error", cerr.Message))
		} else {
			log.Info("compression failed", zap.String("code", cerr.Code), zap.String("error", cerr.Message))
		}
	}
}

func (s *Service) compressStep(ctx context.Context, rec *store.Compression, a compressArgs, log *zap.Logger) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &lowrank.Error{Code: lowrank.EINTERNAL, Message: "internal error", Err: fmt.Errorf("panic in compression step %s: %v", a.Step, r)}
		}
	}()
	switch a.Step {
	case PhasePlan:
		return s.stepPlan(ctx, rec)
	case PhaseAnalyze:
		return s.stepAnalyze(ctx, rec, a.Layer)
	case PhaseAllocate:
		return s.stepAllocate(ctx, rec)
	case PhaseFactor:
		return s.stepFactor(ctx, rec, a.Layer)
	case PhaseAssemble:
		return s.stepAssemble(ctx, rec, log)
	}
	return fmt.Errorf("jobs: unknown compression step %q", a.Step)
}

func (s *Service) stepPlan(ctx context.Context, rec *store.Compression) error {
	c := s.compressions
	now := s.cfg.Now().UTC()
	if _, err := c.store.TransitionCompression(ctx, rec.ID, []store.JobStatus{store.JobQueued},
		store.CompressionUpdate{Status: store.JobRunning, StartedAt: &now}); err != nil {
		return err
	}
	p, err := compress.ParsePolicy(rec.Policy)
	if err != nil {
		return err
	}
	plan, err := s.planOf(ctx, c, rec.TensorID, p)
	if err != nil {
		return err
	}
	planJSON, err := json.Marshal(plan)
	if err != nil {
		return err
	}
	layers := make([]store.CompressionLayer, len(plan.Layers))
	for i, l := range plan.Layers {
		layers[i] = store.CompressionLayer{Index: i, Name: l.Name}
	}
	_, err = c.store.Advance(ctx, rec.ID, store.Advance{From: PhasePlan, To: PhaseAnalyze, Plan: planJSON, Layers: layers},
		s.enqueue(layerSteps(rec.ID, plan, PhaseAnalyze, nil)...))
	return err
}

// layerSteps are the sub-jobs of step for the layers of compression id's
// plan (all, or those with keep[i] false), largest first: River takes jobs of one
// priority in insertion order, so the long layers start early and the
// short ones fill the gaps at the end.
func layerSteps(id string, plan *compress.Plan, step string, keep []bool) []compressArgs {
	var order []int
	for i := range plan.Layers {
		if keep == nil || !keep[i] {
			order = append(order, i)
		}
	}
	slices.SortStableFunc(order, func(a, b int) int {
		pa, pb := plan.Layers[a].Params, plan.Layers[b].Params
		switch {
		case pa > pb:
			return -1
		case pa < pb:
			return 1
		}
		return 0
	})
	args := make([]compressArgs, len(order))
	for k, i := range order {
		args[k] = compressArgs{CompressionID: id, Step: step, Layer: i}
	}
	return args
}

// loadPlan decodes rec's plan and checks layer i is in it.
func loadPlan(rec *store.Compression, i int) (*compress.Plan, error) {
	var plan compress.Plan
	if err := json.Unmarshal(rec.Plan, &plan); err != nil {
		return nil, fmt.Errorf("jobs: compression %s plan: %w", rec.ID, err)
	}
	if i < 0 || i >= len(plan.Layers) {
		return nil, fmt.Errorf("jobs: compression %s has no layer %d", rec.ID, i)
	}
	return &plan, nil
}

// readLayer reads layer l's weight from the checkpoint.
func (s *Service) readLayer(ctx context.Context, rec *store.Compression, name string) (*tensorio.Tensor, error) {
	b, err := s.cfg.Blobs.Open(ctx, rec.TensorID)
	if err != nil {
		if lowrank.ErrorCode(err) == lowrank.ENOTFOUND {
			return nil, lowrank.Errorf(lowrank.ENOTFOUND, "tensor_id", "the checkpoint %s was deleted", rec.TensorID)
		}
		return nil, err
	}
	defer b.Close()
	return s.compressions.limits.ReadTensor(b, b.Size(), name)
}

func (s *Service) stepAnalyze(ctx context.Context, rec *store.Compression, i int) error {
	plan, err := loadPlan(rec, i)
	if err != nil {
		return err
	}
	l := &plan.Layers[i]
	t, err := s.readLayer(ctx, rec, l.Name)
	if err != nil {
		return err
	}
	threads := s.threads.take()
	an, err := compress.Analyze(ctx, s.cfg.Backend.WithThreads(threads), l, t)
	s.threads.give(threads)
	if err != nil {
		return err
	}
	b, err := json.Marshal(an)
	if err != nil {
		return err
	}
	_, _, err = s.compressions.store.CompleteLayer(ctx, rec.ID, PhaseAnalyze, store.LayerPending,
		store.LayerUpdate{Index: i, Status: store.LayerAnalyzed, Analysis: b}, PhaseAllocate,
		s.enqueue(compressArgs{CompressionID: rec.ID, Step: PhaseAllocate}))
	return err
}

func (s *Service) stepAllocate(ctx context.Context, rec *store.Compression) error {
	c := s.compressions
	plan, err := loadPlan(rec, 0)
	if err != nil {
		return err
	}
	rows, err := c.store.CompressionLayers(ctx, rec.ID)
	if err != nil {
		return err
	}
	analyses := make([]*compress.Analysis, len(plan.Layers))
	for _, row := range rows {
		a := new(compress.Analysis)
		if err := json.Unmarshal(row.Analysis, a); err != nil {
			return fmt.Errorf("jobs: compression %s layer %d analysis: %w", rec.ID, row.Index, err)
		}
		analyses[row.Index] = a
	}
	allocs, err := compress.Allocate(plan, analyses)
	if err != nil {
		return err
	}
	keep := make([]bool, len(allocs))
	updates := make([]store.LayerUpdate, len(allocs))
	for i := range allocs {
		b, err := json.Marshal(allocs[i])
		if err != nil {
			return err
		}
		keep[i] = allocs[i].Kept()
		st := store.LayerAllocated
		if keep[i] {
			st = store.LayerKept
		}
		updates[i] = store.LayerUpdate{Index: i, Status: st, Allocation: b}
	}
	next := layerSteps(rec.ID, plan, PhaseFactor, keep)
	to := PhaseFactor
	if len(next) == 0 {
		to, next = PhaseAssemble, []compressArgs{{CompressionID: rec.ID, Step: PhaseAssemble}}
	}
	_, err = c.store.Advance(ctx, rec.ID, store.Advance{From: PhaseAllocate, To: to, Updates: updates}, s.enqueue(next...))
	return err
}

func (s *Service) stepFactor(ctx context.Context, rec *store.Compression, i int) error {
	c := s.compressions
	plan, err := loadPlan(rec, i)
	if err != nil {
		return err
	}
	rows, err := c.store.CompressionLayers(ctx, rec.ID)
	if err != nil {
		return err
	}
	if i >= len(rows) || rows[i].Status != store.LayerAllocated {
		return nil // done by an earlier run of this step
	}
	var al compress.Allocation
	if err := json.Unmarshal(rows[i].Allocation, &al); err != nil {
		return fmt.Errorf("jobs: compression %s layer %d allocation: %w", rec.ID, i, err)
	}
	l := &plan.Layers[i]
	t, err := s.readLayer(ctx, rec, l.Name)
	if err != nil {
		return err
	}
	threads := s.threads.take()
	res, err := compress.Factor(ctx, s.cfg.Backend.WithThreads(threads), plan.Policy, l, &al, t)
	s.threads.give(threads)
	if err != nil {
		return err
	}
	key := layerKey(rec.ID, i)
	if _, err := s.putStreamed(ctx, key, func(w io.Writer) error { return res.WriteFactors(w) }); err != nil {
		return err
	}
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	_, _, err = c.store.CompleteLayer(ctx, rec.ID, PhaseFactor, store.LayerAllocated,
		store.LayerUpdate{Index: i, Status: store.LayerFactored, Result: b, FactorsKey: key}, PhaseAssemble,
		s.enqueue(compressArgs{CompressionID: rec.ID, Step: PhaseAssemble}))
	return err
}

// stepAssemble writes the outputs: the checkpoint streamed from the source
// and the layers' factor blobs (see assemble), then the manifest, the
// report and its page.
func (s *Service) stepAssemble(ctx context.Context, rec *store.Compression, log *zap.Logger) error {
	c := s.compressions
	plan, err := loadPlan(rec, 0)
	if err != nil {
		return err
	}
	rows, err := c.store.CompressionLayers(ctx, rec.ID)
	if err != nil {
		return err
	}
	n := len(plan.Layers)
	analyses, allocs, results := make([]*compress.Analysis, n), make([]compress.Allocation, n), make([]*compress.LayerResult, n)
	factorKeys := map[string]string{} // a factored layer's name → its factors' blob
	for _, row := range rows {
		i := row.Index
		analyses[i] = new(compress.Analysis)
		if err := json.Unmarshal(row.Analysis, analyses[i]); err != nil {
			return fmt.Errorf("jobs: compression %s layer %d analysis: %w", rec.ID, i, err)
		}
		if err := json.Unmarshal(row.Allocation, &allocs[i]); err != nil {
			return fmt.Errorf("jobs: compression %s layer %d allocation: %w", rec.ID, i, err)
		}
		if row.Status != store.LayerFactored {
			continue
		}
		r := new(compress.LayerResult)
		if err := json.Unmarshal(row.Result, r); err != nil {
			return fmt.Errorf("jobs: compression %s layer %d result: %w", rec.ID, i, err)
		}
		results[i], factorKeys[r.Name] = r, row.FactorsKey
	}
	src, err := s.cfg.Blobs.Open(ctx, rec.TensorID)
	if err != nil {
		return err
	}
	defer src.Close()
	lim := c.limits
	format, infos, err := lim.Inspect(src, src.Size())
	if err != nil {
		return err
	}
	var srcMeta map[string]string
	if format == tensorio.FormatSafetensors {
		h, err := lim.ReadSafetensorsHeader(src, src.Size())
		if err != nil {
			return err
		}
		srcMeta = h.Metadata
	}
	meta, err := compress.OutputMetadata(srcMeta, plan.Policy, s.cfg.Version)
	if err != nil {
		return err
	}
	outputs := map[string]string{}
	for _, name := range []string{OutputCheckpoint, OutputManifest, OutputReport, OutputReportHTML} {
		outputs[name] = outputKey(rec.ID, name)
	}
	cleanup := func() {
		for _, key := range outputs {
			_ = s.cfg.Blobs.Delete(context.WithoutCancel(ctx), key)
		}
	}
	if _, err := s.putStreamed(ctx, outputs[OutputCheckpoint], func(w io.Writer) error {
		return s.assemble(ctx, w, src, infos, results, factorKeys, meta)
	}); err != nil {
		cleanup()
		return err
	}
	rep := compress.NewReport(plan, analyses, allocs, results, s.cfg.Version)
	if rec.StartedAt != nil {
		rep.Seconds = s.cfg.Now().Sub(*rec.StartedAt).Seconds()
	}
	for name, write := range map[string]func(io.Writer) error{
		OutputManifest: func(w io.Writer) error { return writeIndented(w, compress.NewManifest(plan, results, s.cfg.Version)) },
		OutputReport:   func(w io.Writer) error { return writeIndented(w, rep) },
		OutputReportHTML: func(w io.Writer) error {
			return compress.ReportHTML(w, rep, analyses, spectrumSVG)
		},
	} {
		if _, err := s.putStreamed(ctx, outputs[name], write); err != nil {
			cleanup()
			return err
		}
	}
	totals, err := json.Marshal(rep.Totals)
	if err != nil {
		cleanup()
		return err
	}
	now := s.cfg.Now().UTC()
	ok, err := c.store.TransitionCompression(context.WithoutCancel(ctx), rec.ID, []store.JobStatus{store.JobRunning},
		store.CompressionUpdate{Status: store.JobSucceeded, FinishedAt: &now, Totals: totals, Outputs: outputs})
	if err != nil || !ok {
		cleanup() // canceled at the last moment (or not recorded): the outputs are not wanted
		return err
	}
	c.total.WithLabelValues("succeeded").Inc()
	s.deleteLayerBlobs(context.WithoutCancel(ctx), rec)
	log.Info("compression succeeded", zap.Int("layers", n), zap.Float64("global_rel_error", rep.Totals.GlobalRelError))
	return nil
}

// assemble writes the compressed checkpoint as compress.Assemble does
// (every tensor of the source in order, each factored weight replaced at
// its place by its factors, the rest copied byte for byte), but streams
// the factors from their layer blobs instead of holding them all in
// memory: each is a raw entry whose reader opens its blob when the writer
// reaches it. Memory is then a copy buffer, whatever the model's size.
func (s *Service) assemble(ctx context.Context, w io.Writer, src store.Blob, infos []tensorio.Info,
	results []*compress.LayerResult, factorKeys map[string]string, meta map[string]string) error {
	replaced := map[string]*compress.LayerResult{}
	for _, r := range results {
		if r != nil {
			replaced[r.Name] = r
		}
	}
	var opened []*lazyFactor
	defer func() {
		for _, f := range opened {
			f.close()
		}
	}()
	entries := make([]tensorio.SafetensorsEntry, 0, len(infos)+2*len(replaced))
	for _, in := range infos {
		if r := replaced[in.Name]; r != nil {
			for _, fi := range r.FactorInfos {
				f := &lazyFactor{s: s, ctx: ctx, key: factorKeys[r.Name], info: fi}
				opened = append(opened, f)
				entries = append(entries, tensorio.SafetensorsEntry{Name: fi.Name, DType: fi.DType, Shape: fi.Shape, Raw: f})
			}
			continue
		}
		if in.Offset >= 0 && !in.BigEndian && !in.FortranOrder {
			entries = append(entries, tensorio.SafetensorsEntry{Name: in.Name, DType: in.DType, Shape: in.Shape,
				Raw: io.NewSectionReader(src, in.Offset, in.Length)})
			continue
		}
		// An .npz entry stored deflated, big-endian or in Fortran order:
		// decoded, and written in its dtype.
		t, err := s.compressions.limits.ReadTensor(src, src.Size(), in.Name)
		if err != nil {
			return err
		}
		entries = append(entries, tensorio.SafetensorsEntry{Tensor: t})
	}
	return tensorio.WriteSafetensorsEntries(w, entries, meta)
}

// lazyFactor reads one factor's raw bytes from its layer's blob, opening
// the blob on the first Read and closing it at the end of the factor, so
// one blob at a time is open however many layers the model has.
type lazyFactor struct {
	s    *Service
	ctx  context.Context
	key  string
	info compress.FactorInfo
	blob store.Blob
	r    io.Reader
}

func (f *lazyFactor) Read(p []byte) (int, error) {
	if f.r == nil {
		if err := f.open(); err != nil {
			return 0, err
		}
	}
	n, err := f.r.Read(p)
	if err == io.EOF {
		f.close()
	}
	return n, err
}

func (f *lazyFactor) open() error {
	b, err := f.s.cfg.Blobs.Open(f.ctx, f.key)
	if err != nil {
		return err
	}
	_, infos, err := f.s.compressions.limits.Inspect(b, b.Size())
	if err != nil {
		b.Close()
		return err
	}
	for _, in := range infos {
		if in.Name == f.info.Name {
			if in.DType != f.info.DType || !slices.Equal(in.Shape, f.info.Shape) || in.Offset < 0 {
				b.Close()
				return fmt.Errorf("jobs: factor blob %s: %s is %s %v, the result says %s %v", f.key, in.Name, in.DType, in.Shape, f.info.DType, f.info.Shape)
			}
			f.blob, f.r = b, io.NewSectionReader(b, in.Offset, in.Length)
			return nil
		}
	}
	b.Close()
	return fmt.Errorf("jobs: factor blob %s has no %s", f.key, f.info.Name)
}

func (f *lazyFactor) close() {
	if f.blob != nil {
		f.blob.Close()
		f.blob = nil
	}
}

func writeIndented(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// spectrumSVG is the report page's plot hook: report's spectrum figure,
// at a size that fits a page beside its neighbours.
func spectrumSVG(s []float64, total float64, rank int, title string) ([]byte, error) {
	fig, err := report.Spectrum(s, total, rank, title)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := fig.Write(&buf, report.SVG, 480, 360); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// errNoCompressions is returned by the worker when compressions are off.
var errNoCompressions = errors.New("jobs: compressions are not enabled")
