package compress

import (
	"context"
	"errors"
	"io"
	"slices"
	"sync"

	"github.com/lowrank/lowrank"
	"github.com/lowrank/lowrank/internal/linalg"
	"github.com/lowrank/lowrank/internal/tensorio"
)

// Options configure Run.
type Options struct {
	// Workers is the number of layers worked on at once (< 1: the backend's
	// thread budget). Each layer's kernels get Threads()/Workers threads
	// (at least 1; Workers is capped at the phase's layer count), so the
	// budget is shared as internal/jobs shares it between full pools.
	Workers int
	// Version is Lowrank's version, recorded in the outputs.
	Version string
	// Limits bound what is read from the source (zero: the defaults).
	Limits tensorio.Limits
	// Verify applies each factored layer and its rebuild to random inputs
	// (VerifyOutput) and records the output error in the results and the
	// report.
	Verify bool
	// Progress, if not nil, is called after each layer of each phase, from
	// the goroutine that finished it (calls are serialised).
	Progress func(Progress)
}

// Progress says how far Run has come.
type Progress struct {
	Phase string `json:"phase"` // "analyze", "factor" or "assemble"
	Layer string `json:"layer,omitempty"`
	Done  int    `json:"done"`
	Total int    `json:"total"`
}

// Output is everything Run produced besides the checkpoint.
type Output struct {
	Plan        *Plan          `json:"plan"`
	Analyses    []*Analysis    `json:"analyses"`
	Allocations []Allocation   `json:"allocations"`
	Results     []*LayerResult `json:"results"`
	Manifest    *Manifest      `json:"manifest"`
	Report      *Report        `json:"report"`
}

// Run compresses the checkpoint in src (size bytes, any format tensorio
// reads) under policy p and writes the compressed safetensors checkpoint to
// w: NewPlan, then Analyze on every layer, Allocate, Factor on every layer
// kept factored, and Assemble. The per-layer phases run opts.Workers layers
// at once, largest first; each layer reads only its own tensor from src, so
// memory holds the layers in flight and the factors made so far, not the
// checkpoint. The first error cancels the other layers and is returned; a
// canceled ctx gives ECANCELED.
func Run(ctx context.Context, b linalg.Backend, src io.ReaderAt, size int64, p Policy, w io.Writer, opts Options) (*Output, error) {
	lim := opts.Limits
	format, infos, err := lim.Inspect(src, size)
	if err != nil {
		return nil, err
	}
	plan, err := NewPlan(infos, p)
	if err != nil {
		return nil, err
	}
	workers := opts.Workers
	if workers < 1 {
		workers = b.Threads()
	}
	workers = min(workers, len(plan.Layers))
	var mu sync.Mutex
	report := func(phase string, done, total int, layer string) {
		if opts.Progress != nil {
			mu.Lock()
			defer mu.Unlock()
			opts.Progress(Progress{Phase: phase, Layer: layer, Done: done, Total: total})
		}
	}
	order := make([]int, len(plan.Layers))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, c int) int {
		pa, pc := plan.Layers[a].Params, plan.Layers[c].Params
		switch {
		case pa > pc:
			return -1
		case pa < pc:
			return 1
		}
		return 0
	})

	out := &Output{Plan: plan, Analyses: make([]*Analysis, len(plan.Layers)), Results: make([]*LayerResult, len(plan.Layers))}
	err = forEach(ctx, workers, b.Threads(), order, func(ctx context.Context, i, threads int) error {
		l := &plan.Layers[i]
		t, err := lim.ReadTensor(src, size, l.Name)
		if err != nil {
			return err
		}
		a, err := Analyze(ctx, b.WithThreads(threads), l, t)
		if err != nil {
			return err
		}
		out.Analyses[i] = a
		return nil
	}, func(i, done int) { report("analyze", done, len(order), plan.Layers[i].Name) })
	if err != nil {
		return nil, err
	}
	if out.Allocations, err = Allocate(plan, out.Analyses); err != nil {
		return nil, err
	}
	var todo []int
	for _, i := range order {
		if !out.Allocations[i].Kept() {
			todo = append(todo, i)
		}
	}
	err = forEach(ctx, workers, b.Threads(), todo, func(ctx context.Context, i, threads int) error {
		l := &plan.Layers[i]
		t, err := lim.ReadTensor(src, size, l.Name)
		if err != nil {
			return err
		}
		kb := b.WithThreads(threads)
		r, err := Factor(ctx, kb, plan.Policy, l, &out.Allocations[i], t)
		if err != nil {
			return err
		}
		if opts.Verify {
			e, err := VerifyOutput(kb, l, t, r, plan.Policy.Seed+uint64(i))
			if err != nil {
				return err
			}
			r.OutputRelError = &e
		}
		out.Results[i] = r
		return nil
	}, func(i, done int) { report("factor", done, len(todo), plan.Layers[i].Name) })
	if err != nil {
		return nil, err
	}
	var srcMeta map[string]string
	if format == tensorio.FormatSafetensors {
		h, err := lim.ReadSafetensorsHeader(src, size)
		if err != nil {
			return nil, err
		}
		srcMeta = h.Metadata
	}
	meta, err := outputMetadata(srcMeta, plan.Policy, opts.Version)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, &lowrank.Error{Code: lowrank.ECANCELED, Message: "canceled", Err: err}
	}
	if err := Assemble(w, src, size, infos, plan, out.Results, meta); err != nil {
		return nil, err
	}
	report("assemble", 1, 1, "")
	out.Manifest = NewManifest(plan, out.Results, opts.Version)
	out.Report = NewReport(plan, out.Analyses, out.Allocations, out.Results, opts.Version)
	return out, nil
}

// forEach runs fn on every index of items with at most workers at once,
// each with total/workers kernel threads (workers capped at the number of
// items, so a phase with one layer gives it every thread). Threads are not
// handed over when a worker runs out of items: a layer's thread count then
// depends only on the phase, not on timing, and runs are reproducible.
// The first error cancels the context the others see and is returned (an
// error other than cancellation is preferred, so the cause is reported
// rather than its echo in the other layers). onDone is called after each
// item with the count finished so far.
func forEach(ctx context.Context, workers, total int, items []int, fn func(ctx context.Context, i, threads int) error, onDone func(i, done int)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	workers = max(1, min(workers, len(items)))
	threads := max(1, total/workers)
	var (
		mu       sync.Mutex
		next     int
		finished int
		first    error
		wg       sync.WaitGroup
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if next >= len(items) || first != nil {
					mu.Unlock()
					return
				}
				i := items[next]
				next++
				mu.Unlock()
				if err := ctx.Err(); err != nil {
					setFirst(&mu, &first, canceledErr(err))
					return
				}
				err := fn(ctx, i, threads)
				if err != nil {
					setFirst(&mu, &first, err)
					cancel()
					return
				}
				mu.Lock()
				finished++
				done := finished
				mu.Unlock()
				onDone(i, done)
			}
		}()
	}
	wg.Wait()
	return first
}

// setFirst records err unless an error is recorded already; a real error
// replaces a cancellation.
func setFirst(mu *sync.Mutex, first *error, err error) {
	mu.Lock()
	defer mu.Unlock()
	if *first == nil || lowrank.ErrorCode(*first) == lowrank.ECANCELED && lowrank.ErrorCode(err) != lowrank.ECANCELED {
		*first = err
	}
}

func canceledErr(err error) error {
	var e *lowrank.Error
	if errors.As(err, &e) {
		return err
	}
	return &lowrank.Error{Code: lowrank.ECANCELED, Message: "canceled", Err: err}
}
