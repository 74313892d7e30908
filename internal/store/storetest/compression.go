package storetest

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lowrank/lowrank"
	"github.com/lowrank/lowrank/internal/store"
)

// Compressions is a MetaStore with its CompressionStore, sharing one
// database.
type Compressions interface {
	store.MetaStore
	Compressions() store.CompressionStore
}

// CompressionStore runs the compression conformance suite on stores made by
// newStore (a fresh, empty store per call).
func CompressionStore(t *testing.T, newStore func(t *testing.T) Compressions) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	running := []store.JobStatus{store.JobRunning}
	// setup returns a store with tensor "t1" of owner "a" and compression
	// "c1" on it, running in phase "plan".
	setup := func(t *testing.T) (Compressions, store.CompressionStore) {
		s := newStore(t)
		if err := s.CreateTensor(ctx, &store.Tensor{ID: "t1", Owner: "a", Format: "safetensors", CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
		cs := s.Compressions()
		c := &store.Compression{ID: "c1", Owner: "a", TensorID: "t1", Policy: json.RawMessage(`{"budget":0.4}`), Phase: "plan", CreatedAt: t0}
		if err := cs.CreateCompression(ctx, c, 0, nil); err != nil {
			t.Fatal(err)
		}
		started := t0.Add(time.Second)
		if ok, err := cs.TransitionCompression(ctx, "c1", []store.JobStatus{store.JobQueued}, store.CompressionUpdate{Status: store.JobRunning, StartedAt: &started}); !ok || err != nil {
			t.Fatalf("start: %v %v", ok, err)
		}
		return s, cs
	}
	layers := func(n int) []store.CompressionLayer {
		ls := make([]store.CompressionLayer, n)
		for i := range ls {
			ls[i] = store.CompressionLayer{Index: i, Name: fmt.Sprintf("l%d.weight", i)}
		}
		return ls
	}

	t.Run("CreateGetList", func(t *testing.T) {
		s := newStore(t)
		cs := s.Compressions()
		if err := s.CreateTensor(ctx, &store.Tensor{ID: "t1", Owner: "a", Format: "safetensors", CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
		err := cs.CreateCompression(ctx, &store.Compression{ID: "cx", Owner: "a", TensorID: "gone", CreatedAt: t0}, 0, nil)
		if e := new(lowrank.Error); !errors.As(err, &e) || e.Code != lowrank.ENOTFOUND || e.Field != "tensor_id" {
			t.Fatalf("missing tensor: %v, want ENOTFOUND on tensor_id", err)
		}
		if err := cs.CreateCompression(ctx, &store.Compression{ID: "cb", Owner: "b", TensorID: "t1", CreatedAt: t0}, 0, nil); lowrank.ErrorCode(err) != lowrank.ENOTFOUND {
			t.Fatalf("another owner's tensor: %v, want ENOTFOUND", err)
		}
		boom := errors.New("queue down")
		err = cs.CreateCompression(ctx, &store.Compression{ID: "cr", Owner: "a", TensorID: "t1", CreatedAt: t0}, 0,
			func(context.Context, *sql.Tx) error { return boom })
		if !errors.Is(err, boom) {
			t.Fatalf("enqueue error: %v", err)
		}
		if _, err := cs.GetCompressionByID(ctx, "cr"); lowrank.ErrorCode(err) != lowrank.ENOTFOUND {
			t.Fatalf("a compression whose enqueue failed was recorded: %v", err)
		}
		var enqueued int
		for i := range 5 {
			c := &store.Compression{ID: fmt.Sprintf("c%d", i), Owner: "a", TensorID: "t1", Policy: json.RawMessage(`{"budget":0.5}`),
				Phase: "plan", CreatedAt: t0.Add(time.Duration(i) * time.Second)}
			if err := cs.CreateCompression(ctx, c, 0, func(context.Context, *sql.Tx) error { enqueued++; return nil }); err != nil {
				t.Fatal(err)
			}
		}
		if enqueued != 5 {
			t.Fatalf("enqueue called %d times, want 5", enqueued)
		}
		got, err := cs.GetCompression(ctx, "a", "c3")
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != store.JobQueued || got.Phase != "plan" || got.TensorID != "t1" || string(got.Policy) != `{"budget":0.5}` ||
			!got.CreatedAt.Equal(t0.Add(3*time.Second)) || got.StartedAt != nil || got.FinishedAt != nil || got.Error != nil || len(got.Outputs) != 0 {
			t.Fatalf("GetCompression = %+v", got)
		}
		if _, err := cs.GetCompression(ctx, "b", "c3"); lowrank.ErrorCode(err) != lowrank.ENOTFOUND {
			t.Fatalf("other owner: %v, want ENOTFOUND", err)
		}
		var ids []string
		cursor := ""
		for {
			page, next, err := cs.ListCompressions(ctx, "a", store.Page{Limit: 2, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range page {
				ids = append(ids, c.ID)
			}
			if next == "" {
				break
			}
			cursor = next
		}
		if strings.Join(ids, ",") != "c4,c3,c2,c1,c0" {
			t.Fatalf("paged list = %v, want newest first", ids)
		}
		if page, _, err := cs.ListCompressions(ctx, "b", store.Page{}); err != nil || len(page) != 0 {
			t.Fatalf("other owner's list = %d items, %v", len(page), err)
		}
	})

	// Capped submissions, at once: exactly the capacity is admitted.
	t.Run("Admission", func(t *testing.T) {
		_, cs := setup(t) // c1 is running
		const capacity = 3
		var admitted, refused atomic.Int32
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				c := &store.Compression{ID: fmt.Sprintf("n%d", i), Owner: "a", TensorID: "t1", Phase: "plan", CreatedAt: t0}
				err := cs.CreateCompression(ctx, c, capacity, nil)
				switch lowrank.ErrorCode(err) {
				case "":
					admitted.Add(1)
				case lowrank.EOVERLOADED:
					refused.Add(1)
				default:
					t.Errorf("create %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		if admitted.Load() != capacity-1 || refused.Load() != 8-(capacity-1) {
			t.Fatalf("%d admitted, %d refused; want %d and %d", admitted.Load(), refused.Load(), capacity-1, 8-(capacity-1))
		}
		fin := t0.Add(time.Minute)
		if ok, err := cs.TransitionCompression(ctx, "c1", running, store.CompressionUpdate{Status: store.JobSucceeded, FinishedAt: &fin}); !ok || err != nil {
			t.Fatal(ok, err)
		}
		if err := cs.CreateCompression(ctx, &store.Compression{ID: "late", Owner: "a", TensorID: "t1", Phase: "plan", CreatedAt: t0}, capacity, nil); err != nil {
			t.Fatalf("a slot freed: %v", err)
		}
		if page, _, err := cs.ListCompressions(ctx, "a", store.Page{Limit: 100}); err != nil || len(page) != capacity+1 {
			t.Fatalf("%d compressions recorded (%v), want %d", len(page), err, capacity+1)
		}
	})

	t.Run("Phases", func(t *testing.T) {
		_, cs := setup(t)
		plan := json.RawMessage(`{"layers":[]}`)
		var enqueued atomic.Int32
		enq := func(context.Context, *sql.Tx) error { enqueued.Add(1); return nil }
		if ok, err := cs.Advance(ctx, "c1", store.Advance{From: "analyze", To: "allocate"}, enq); ok || err != nil {
			t.Fatalf("advance from the wrong phase: %v %v, want false", ok, err)
		}
		if ok, err := cs.Advance(ctx, "c1", store.Advance{From: "plan", To: "analyze", Plan: plan, Layers: layers(3)}, enq); !ok || err != nil {
			t.Fatalf("plan → analyze: %v %v", ok, err)
		}
		// A retried plan step finds the phase moved on.
		if ok, err := cs.Advance(ctx, "c1", store.Advance{From: "plan", To: "analyze", Plan: plan, Layers: layers(3)}, enq); ok || err != nil {
			t.Fatalf("plan step again: %v %v, want false", ok, err)
		}
		c, err := cs.GetCompressionByID(ctx, "c1")
		if err != nil {
			t.Fatal(err)
		}
		if c.Phase != "analyze" || c.LayersTotal != 3 || string(c.Plan) != string(plan) || c.StartedAt == nil || !c.StartedAt.Equal(t0.Add(time.Second)) {
			t.Fatalf("after plan: %+v", c)
		}
		ls, err := cs.CompressionLayers(ctx, "c1")
		if err != nil || len(ls) != 3 || ls[2].Name != "l2.weight" || ls[1].Status != store.LayerPending || ls[0].Index != 0 {
			t.Fatalf("layers = %+v, %v", ls, err)
		}
		// Analyses: each layer completes once; the last one moves on.
		for i := range 3 {
			u := store.LayerUpdate{Index: i, Status: store.LayerAnalyzed, Analysis: json.RawMessage(fmt.Sprintf(`{"norm_sq":%d}`, i+1))}
			for attempt := range 2 {
				done, last, err := cs.CompleteLayer(ctx, "c1", "analyze", store.LayerPending, u, "allocate", enq)
				if err != nil {
					t.Fatal(err)
				}
				if done != (attempt == 0) || last != (attempt == 0 && i == 2) {
					t.Fatalf("layer %d attempt %d: done %v last %v", i, attempt, done, last)
				}
			}
		}
		if n := enqueued.Load(); n != 2 {
			t.Fatalf("enqueue called %d times, want 2 (plan, allocate)", n)
		}
		ls, _ = cs.CompressionLayers(ctx, "c1")
		if ls[1].Status != store.LayerAnalyzed || string(ls[1].Analysis) != `{"norm_sq":2}` {
			t.Fatalf("layer 1 = %+v", ls[1])
		}
		// Allocation keeps layer 0 and sends the others to be factored.
		ok, err := cs.Advance(ctx, "c1", store.Advance{From: "allocate", To: "factor", Updates: []store.LayerUpdate{
			{Index: 0, Status: store.LayerKept, Allocation: json.RawMessage(`{"by":"budget"}`)},
			{Index: 1, Status: store.LayerAllocated, Allocation: json.RawMessage(`{"ranks":[2]}`)},
			{Index: 2, Status: store.LayerAllocated, Allocation: json.RawMessage(`{"ranks":[3]}`)},
		}}, enq)
		if !ok || err != nil {
			t.Fatalf("allocate → factor: %v %v", ok, err)
		}
		// The two factor steps finish at once: exactly one is last.
		var lasts atomic.Int32
		var wg sync.WaitGroup
		for i := 1; i <= 2; i++ {
			wg.Go(func() {
				u := store.LayerUpdate{Index: i, Status: store.LayerFactored, Result: json.RawMessage(`{"rel_error":0.1}`), FactorsKey: fmt.Sprintf("c1.l%d", i)}
				done, last, err := cs.CompleteLayer(ctx, "c1", "factor", store.LayerAllocated, u, "assemble", enq)
				if err != nil || !done {
					t.Errorf("factor %d: %v %v", i, done, err)
				}
				if last {
					lasts.Add(1)
				}
			})
		}
		wg.Wait()
		if lasts.Load() != 1 || enqueued.Load() != 4 {
			t.Fatalf("%d last factor steps, %d enqueues; want 1 and 4", lasts.Load(), enqueued.Load())
		}
		ls, _ = cs.CompressionLayers(ctx, "c1")
		if ls[0].Status != store.LayerKept || string(ls[0].Allocation) != `{"by":"budget"}` || ls[2].FactorsKey != "c1.l2" ||
			ls[2].Status != store.LayerFactored || string(ls[2].Result) != `{"rel_error":0.1}` || string(ls[2].Analysis) != `{"norm_sq":3}` {
			t.Fatalf("layers after factoring = %+v", ls)
		}
		fin := t0.Add(time.Minute)
		outs := map[string]string{"checkpoint": "c1.safetensors", "manifest": "c1.manifest.json"}
		ok, err = cs.TransitionCompression(ctx, "c1", running, store.CompressionUpdate{Status: store.JobSucceeded, FinishedAt: &fin,
			Totals: json.RawMessage(`{"layers_factored":2}`), Outputs: outs})
		if !ok || err != nil {
			t.Fatalf("succeed: %v %v", ok, err)
		}
		c, _ = cs.GetCompressionByID(ctx, "c1")
		if c.Status != store.JobSucceeded || c.Phase != "assemble" || !c.FinishedAt.Equal(fin) || c.Outputs["manifest"] != "c1.manifest.json" ||
			string(c.Totals) != `{"layers_factored":2}` {
			t.Fatalf("succeeded = %+v", c)
		}
		if ok, _ := cs.TransitionCompression(ctx, "c1", []store.JobStatus{store.JobQueued, store.JobRunning}, store.CompressionUpdate{Status: store.JobCanceled}); ok {
			t.Fatal("canceled a succeeded compression")
		}
	})

	t.Run("CanceledStopsSteps", func(t *testing.T) {
		_, cs := setup(t)
		if ok, err := cs.Advance(ctx, "c1", store.Advance{From: "plan", To: "analyze", Plan: json.RawMessage(`{}`), Layers: layers(2)}, nil); !ok || err != nil {
			t.Fatal(ok, err)
		}
		fin := t0.Add(time.Minute)
		if ok, err := cs.TransitionCompression(ctx, "c1", []store.JobStatus{store.JobQueued, store.JobRunning},
			store.CompressionUpdate{Status: store.JobCanceled, FinishedAt: &fin, Error: &store.JobError{Code: lowrank.ECANCELED, Message: "canceled by request"}}); !ok || err != nil {
			t.Fatal(ok, err)
		}
		called := false
		done, last, err := cs.CompleteLayer(ctx, "c1", "analyze", store.LayerPending, store.LayerUpdate{Index: 0, Status: store.LayerAnalyzed}, "allocate",
			func(context.Context, *sql.Tx) error { called = true; return nil })
		if done || last || called || err != nil {
			t.Fatalf("a step of a canceled compression: done %v last %v enqueue %v err %v", done, last, called, err)
		}
		ls, _ := cs.CompressionLayers(ctx, "c1")
		if ls[0].Status != store.LayerPending {
			t.Fatalf("layer of a canceled compression changed: %+v", ls[0])
		}
		if err := cs.SetLayer(ctx, "c1", store.LayerUpdate{Index: 1, Status: store.LayerFailed, Error: &store.JobError{Code: lowrank.EINVALID, Message: "NaN"}}); err != nil {
			t.Fatal(err)
		}
		ls, _ = cs.CompressionLayers(ctx, "c1")
		if ls[1].Status != store.LayerFailed || ls[1].Error == nil || ls[1].Error.Message != "NaN" {
			t.Fatalf("failed layer = %+v", ls[1])
		}
		c, _ := cs.GetCompressionByID(ctx, "c1")
		if c.Status != store.JobCanceled || c.Error == nil || c.Error.Code != lowrank.ECANCELED {
			t.Fatalf("canceled = %+v", c)
		}
	})

	t.Run("EnqueueErrorRollsBack", func(t *testing.T) {
		_, cs := setup(t)
		if ok, err := cs.Advance(ctx, "c1", store.Advance{From: "plan", To: "analyze", Plan: json.RawMessage(`{}`), Layers: layers(1)}, nil); !ok || err != nil {
			t.Fatal(ok, err)
		}
		boom := errors.New("queue down")
		_, _, err := cs.CompleteLayer(ctx, "c1", "analyze", store.LayerPending, store.LayerUpdate{Index: 0, Status: store.LayerAnalyzed}, "allocate",
			func(context.Context, *sql.Tx) error { return boom })
		if !errors.Is(err, boom) {
			t.Fatalf("CompleteLayer with a failing enqueue: %v", err)
		}
		ls, _ := cs.CompressionLayers(ctx, "c1")
		c, _ := cs.GetCompressionByID(ctx, "c1")
		if ls[0].Status != store.LayerPending || c.Phase != "analyze" {
			t.Fatalf("not rolled back: layer %s, phase %s", ls[0].Status, c.Phase)
		}
	})

	t.Run("TensorInUse", func(t *testing.T) {
		s, cs := setup(t)
		err := s.DeleteTensor(ctx, "a", "t1")
		if lowrank.ErrorCode(err) != lowrank.ECONFLICT || !strings.Contains(err.Error(), "c1") {
			t.Fatalf("delete the input of a running compression: %v, want ECONFLICT naming c1", err)
		}
		if ts, err := s.ExpiredTensors(ctx, t0.Add(time.Hour), 10); err != nil || len(ts) != 0 {
			t.Fatalf("ExpiredTensors offers the input of a running compression: %d, %v", len(ts), err)
		}
		fin := t0.Add(time.Minute)
		if ok, err := cs.TransitionCompression(ctx, "c1", running, store.CompressionUpdate{Status: store.JobFailed, FinishedAt: &fin}); !ok || err != nil {
			t.Fatal(ok, err)
		}
		if ts, err := s.ExpiredTensors(ctx, t0.Add(time.Hour), 10); err != nil || len(ts) != 1 {
			t.Fatalf("ExpiredTensors once the compression failed: %d, %v", len(ts), err)
		}
		if err := s.DeleteTensor(ctx, "a", "t1"); err != nil {
			t.Fatalf("delete once the compression ended: %v", err)
		}
	})

	t.Run("ExpireAndDelete", func(t *testing.T) {
		_, cs := setup(t)
		if ok, err := cs.Advance(ctx, "c1", store.Advance{From: "plan", To: "analyze", Plan: json.RawMessage(`{}`), Layers: layers(2)}, nil); !ok || err != nil {
			t.Fatal(ok, err)
		}
		if cs, err := cs.ExpiredCompressions(ctx, t0.Add(time.Hour), 10); err != nil || len(cs) != 0 {
			t.Fatalf("a running compression expired: %d %v", len(cs), err)
		}
		fin := t0.Add(time.Minute)
		if ok, err := cs.TransitionCompression(ctx, "c1", running, store.CompressionUpdate{Status: store.JobSucceeded, FinishedAt: &fin}); !ok || err != nil {
			t.Fatal(ok, err)
		}
		if cs, err := cs.ExpiredCompressions(ctx, fin, 10); err != nil || len(cs) != 0 {
			t.Fatalf("expired at its finish time: %d %v", len(cs), err)
		}
		exp, err := cs.ExpiredCompressions(ctx, fin.Add(time.Nanosecond), 10)
		if err != nil || len(exp) != 1 || exp[0].ID != "c1" || exp[0].Owner != "a" {
			t.Fatalf("ExpiredCompressions = %v, %v", exp, err)
		}
		if err := cs.DeleteCompression(ctx, "b", "c1"); lowrank.ErrorCode(err) != lowrank.ENOTFOUND {
			t.Fatalf("another owner's delete: %v", err)
		}
		if err := cs.DeleteCompression(ctx, "a", "c1"); err != nil {
			t.Fatal(err)
		}
		if _, err := cs.GetCompressionByID(ctx, "c1"); lowrank.ErrorCode(err) != lowrank.ENOTFOUND {
			t.Fatalf("after delete: %v", err)
		}
		if ls, err := cs.CompressionLayers(ctx, "c1"); err != nil || len(ls) != 0 {
			t.Fatalf("layers after delete: %d %v", len(ls), err)
		}
	})
}
