package jobs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/lowrank/lowrank"
	"github.com/lowrank/lowrank/internal/compress"
	"github.com/lowrank/lowrank/internal/jobs"
	"github.com/lowrank/lowrank/internal/linalg"
	"github.com/lowrank/lowrank/internal/store"
	"github.com/lowrank/lowrank/internal/tensorio"
)

// withCompressions turns compressions on over the bundle's meta store.
func withCompressions(cfg *jobs.Config) {
	cfg.Compressions = cfg.Meta.(interface{ Compressions() store.CompressionStore }).Compressions()
}

// checkpoint is a small model: two Linear layers with biases, a LayerNorm,
// a 3×3 conv and a 1×1 conv, with decaying spectra so a budget has
// something to choose; seeded, so every run builds the same bytes.
func checkpoint(t testing.TB, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 11))
	lowRank := func(name string, shape []int, rows, cols int) *tensorio.Tensor {
		// W = Σ σ_k u_k v_kᵀ + noise, σ_k = 0.7^k.
		x := make([]float32, rows*cols)
		for k := range min(rows, cols) {
			s := math.Pow(0.7, float64(k))
			u, v := make([]float64, rows), make([]float64, cols)
			for i := range u {
				u[i] = rng.NormFloat64() / math.Sqrt(float64(rows))
			}
			for j := range v {
				v[j] = rng.NormFloat64() / math.Sqrt(float64(cols))
			}
			for i := range rows {
				for j := range cols {
					x[i*cols+j] += float32(s * u[i] * v[j])
				}
			}
		}
		return &tensorio.Tensor{Name: name, DType: tensorio.F32, Shape: shape, F32: x}
	}
	vec := func(name string, n int) *tensorio.Tensor {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		return &tensorio.Tensor{Name: name, DType: tensorio.F32, Shape: []int{n}, F32: x}
	}
	ts := []*tensorio.Tensor{
		lowRank("fc1.weight", []int{48, 32}, 48, 32), vec("fc1.bias", 48),
		lowRank("norm.weight", []int{48}, 1, 48), vec("norm.bias", 48),
		lowRank("fc2.weight", []int{24, 48}, 24, 48), vec("fc2.bias", 24),
		lowRank("conv.weight", []int{16, 8, 3, 3}, 16, 72), vec("conv.bias", 16),
		lowRank("pw.weight", []int{16, 16, 1, 1}, 16, 16),
	}
	var buf bytes.Buffer
	if err := tensorio.WriteSafetensors(&buf, ts, map[string]string{"origin": "synthetic"}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// upload stores data as tensor id, as the upload handler would.
func upload(t testing.TB, b *bundle, id, format string, data []byte) {
	t.Helper()
	ctx := context.Background()
	if _, err := b.blobs.Put(ctx, id, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if err := b.meta.CreateTensor(ctx, &store.Tensor{ID: id, Format: format, Bytes: int64(len(data)), CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
}

func waitCompression(t *testing.T, b *bundle, id string, want store.JobStatus) *jobs.CompressionInfo {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		c, err := b.svc.GetCompression(context.Background(), "", id)
		if err != nil {
			t.Fatal(err)
		}
		if c.Status == want {
			return c
		}
		if c.Status.Finished() {
			t.Fatalf("compression %s ended %s (error %+v), want %s", id, c.Status, c.Error, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("compression %s did not reach %s", id, want)
	return nil
}

func readBlob(t *testing.T, b *bundle, key string) []byte {
	t.Helper()
	r, err := b.blobs.Open(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestCompressionMatchesRun: the compression the service runs as sub-jobs
// gives the checkpoint and manifest compress.Run gives in one process.
func TestCompressionMatchesRun(t *testing.T) { eachDatabase(t, testCompressionMatchesRun) }

func testCompressionMatchesRun(t *testing.T, database string) {
	b := setupOn(t, database, withCompressions)
	ctx := context.Background()
	src := checkpoint(t, 1)
	upload(t, b, "ckpt", "safetensors", src)
	for _, policy := range []string{
		`{"budget": 0.4, "min_elements": 1}`,
		`{"rule": {"rank": 3}, "min_elements": 1, "conv_method": "cp", "layers": [{"pattern": "fc1.*", "compression": 0.5}]}`,
		// Full energy keeps every layer: the allocation goes straight to
		// the assembly.
		`{"rule": {"energy": 1}, "min_elements": 1}`,
	} {
		rec, err := b.svc.SubmitCompression(ctx, jobs.CompressionRequest{TensorID: "ckpt", Policy: json.RawMessage(policy)})
		if err != nil {
			t.Fatal(err)
		}
		if rec.Status != store.JobQueued || rec.Phase != jobs.PhasePlan {
			t.Fatalf("submitted: %+v", rec)
		}
		done := waitCompression(t, b, rec.ID, store.JobSucceeded)
		if done.Progress.LayersDone != 4 || done.Progress.LayersTotal != 4 || done.Progress.Fraction != 1 || len(done.Layers) != 4 {
			t.Fatalf("progress %+v, %d layers; want 4 of 4 layers done", done.Progress, len(done.Layers))
		}
		for _, l := range done.Layers {
			if !l.Status.Done() || l.ParamsAfter == nil || l.RelError == nil {
				t.Errorf("layer %+v not finished", l)
			}
		}

		p, err := compress.ParsePolicy([]byte(policy))
		if err != nil {
			t.Fatal(err)
		}
		var want bytes.Buffer
		out, err := compress.Run(ctx, linalg.Default(1), bytes.NewReader(src), int64(len(src)), p, &want, compress.Options{Workers: 1, Version: "test"})
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(policy, `"energy": 1}`) && out.Report.Totals.LayersKept != 4 {
			t.Errorf("policy %s kept %d layers, want all 4", policy, out.Report.Totals.LayersKept)
		}
		got := readBlob(t, b, done.Outputs[jobs.OutputCheckpoint])
		if !bytes.Equal(got, want.Bytes()) {
			t.Errorf("policy %s: the service's checkpoint (%d bytes) differs from compress.Run's (%d bytes)", policy, len(got), want.Len())
		}
		var man compress.Manifest
		if err := json.Unmarshal(readBlob(t, b, done.Outputs[jobs.OutputManifest]), &man); err != nil {
			t.Fatal(err)
		}
		wantMan, _ := json.Marshal(out.Manifest)
		gotMan, _ := json.Marshal(&man)
		if !bytes.Equal(gotMan, wantMan) {
			t.Errorf("manifest differs:\n got %s\nwant %s", gotMan, wantMan)
		}
		var rep compress.Report
		if err := json.Unmarshal(readBlob(t, b, done.Outputs[jobs.OutputReport]), &rep); err != nil {
			t.Fatal(err)
		}
		if rep.Totals != out.Report.Totals {
			t.Errorf("report totals %+v, want %+v", rep.Totals, out.Report.Totals)
		}
		var totals compress.Totals
		if err := json.Unmarshal(done.Totals, &totals); err != nil || totals != out.Report.Totals {
			t.Errorf("record's totals %s (%v), want %+v", done.Totals, err, out.Report.Totals)
		}
		page := string(readBlob(t, b, done.Outputs[jobs.OutputReportHTML]))
		if !strings.Contains(page, "<svg") || !strings.Contains(page, "fc1.weight") {
			t.Errorf("report page has no plots or no layer names (%d bytes)", len(page))
		}
		// Intermediate factor blobs go once the checkpoint holds them (just
		// after the compression is recorded succeeded).
		for i := range 4 {
			key := rec.ID + ".layer-" + string(rune('0'+i)) + ".safetensors"
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				_, err := b.blobs.Open(ctx, key)
				if lowrank.ErrorCode(err) == lowrank.ENOTFOUND {
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("layer %d's factor blob left behind: %v", i, err)
					break
				}
			}
		}
		sp, err := b.svc.CompressionSpectrum(ctx, "", rec.ID, "fc2.weight", 0)
		if err != nil || len(sp.Values) != 24 || !sp.Final || sp.Rank > 24 {
			t.Errorf("spectrum of fc2.weight: %+v, %v", sp, err)
		}
		// A finished compression's DELETE removes it with its outputs.
		if c, err := b.svc.DeleteCompression(ctx, "", rec.ID); c != nil || err != nil {
			t.Fatalf("delete: %v %v", c, err)
		}
		if _, err := b.svc.GetCompression(ctx, "", rec.ID); lowrank.ErrorCode(err) != lowrank.ENOTFOUND {
			t.Fatalf("after delete: %v", err)
		}
		for name, key := range done.Outputs {
			if _, err := b.blobs.Open(ctx, key); lowrank.ErrorCode(err) != lowrank.ENOTFOUND {
				t.Errorf("output %s left behind: %v", name, err)
			}
		}
	}
}

func TestCompressionBadRequests(t *testing.T) {
	b := setup(t, withCompressions)
	ctx := context.Background()
	upload(t, b, "ckpt", "safetensors", checkpoint(t, 2))
	var npy bytes.Buffer
	if err := tensorio.WriteNPY(&npy, &tensorio.Tensor{DType: tensorio.F32, Shape: []int{2, 2}, F32: []float32{1, 2, 3, 4}}); err != nil {
		t.Fatal(err)
	}
	upload(t, b, "one", "npy", npy.Bytes())
	for _, tc := range []struct {
		tensor, policy string
		code, field    string
	}{
		{"ckpt", `{"budget": 1.5}`, lowrank.EINVALID, "policy.budget"},
		{"ckpt", `{"budget": 0.5, "rule": {"rank": 2}}`, lowrank.EINVALID, "policy.budget"},
		{"ckpt", `{"rule": {"rank": -1}}`, lowrank.EINVALID, "policy.rule.rank"},
		{"ckpt", `{"budget": 0.5, "colour": "red"}`, lowrank.EINVALID, "policy.colour"},
		{"ckpt", `{}`, lowrank.EINVALID, "policy.rule"},
		{"ckpt", ``, lowrank.EINVALID, "policy"},
		{"ckpt", `{"budget": 0.5, "include": ["nothing.*"]}`, lowrank.EINVALID, "policy.include"},
		{"gone", `{"budget": 0.5}`, lowrank.ENOTFOUND, "tensor_id"},
		{"", `{"budget": 0.5}`, lowrank.EINVALID, "tensor_id"},
		{"one", `{"budget": 0.5}`, lowrank.EUNSUPPORTED, "tensor_id"},
	} {
		_, err := b.svc.SubmitCompression(ctx, jobs.CompressionRequest{TensorID: tc.tensor, Policy: json.RawMessage(tc.policy)})
		var e *lowrank.Error
		if !asError(err, &e) || e.Code != tc.code || e.Field != tc.field {
			t.Errorf("tensor %q policy %s: %v, want %s on %s", tc.tensor, tc.policy, err, tc.code, tc.field)
		}
	}
	if cs, _, err := b.svc.ListCompressions(ctx, "", store.Page{}); err != nil || len(cs) != 0 {
		t.Fatalf("refused requests recorded: %d, %v", len(cs), err)
	}
}

// TestCompressionCanceled: a canceled compression stops, keeps no outputs
// and frees its input.
func TestCompressionCanceled(t *testing.T) {
	b := setup(t, func(cfg *jobs.Config) {
		withCompressions(cfg)
		cfg.Workers = 1
	})
	ctx := context.Background()
	upload(t, b, "ckpt", "safetensors", checkpoint(t, 3))
	rec, err := b.svc.SubmitCompression(ctx, jobs.CompressionRequest{TensorID: "ckpt", Policy: json.RawMessage(`{"budget": 0.4, "min_elements": 1}`)})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.meta.DeleteTensor(ctx, "", "ckpt"); lowrank.ErrorCode(err) != lowrank.ECONFLICT {
		t.Fatalf("delete the input of an active compression: %v, want ECONFLICT", err)
	}
	c, err := b.svc.DeleteCompression(ctx, "", rec.ID)
	if err != nil || c == nil || c.Status != store.JobCanceled || c.Error == nil || c.Error.Code != lowrank.ECANCELED {
		t.Fatalf("cancel: %+v, %v", c, err)
	}
	// Its queued steps find it canceled and do nothing.
	time.Sleep(300 * time.Millisecond)
	c, err = b.svc.GetCompression(ctx, "", rec.ID)
	if err != nil || c.Status != store.JobCanceled || len(c.Outputs) != 0 {
		t.Fatalf("after cancel: %+v, %v", c, err)
	}
	if err := b.meta.DeleteTensor(ctx, "", "ckpt"); err != nil {
		t.Fatalf("delete the input once canceled: %v", err)
	}
	// DELETE again removes the record.
	if c, err := b.svc.DeleteCompression(ctx, "", rec.ID); c != nil || err != nil {
		t.Fatalf("second delete: %v %v", c, err)
	}
}

// TestCompressionLayerFailure: a layer whose weight holds NaN fails the
// compression with that layer's error.
func TestCompressionLayerFailure(t *testing.T) {
	b := setup(t, withCompressions)
	ctx := context.Background()
	var buf bytes.Buffer
	bad := make([]float32, 16*16)
	for i := range bad {
		bad[i] = float32(i % 7)
	}
	bad[17] = float32(math.NaN())
	good := make([]float32, 16*16)
	for i := range good {
		good[i] = float32(i%5) - 2
	}
	err := tensorio.WriteSafetensors(&buf, []*tensorio.Tensor{
		{Name: "a.weight", DType: tensorio.F32, Shape: []int{16, 16}, F32: good},
		{Name: "b.weight", DType: tensorio.F32, Shape: []int{16, 16}, F32: bad},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	upload(t, b, "ckpt", "safetensors", buf.Bytes())
	rec, err := b.svc.SubmitCompression(ctx, jobs.CompressionRequest{TensorID: "ckpt", Policy: json.RawMessage(`{"rule": {"rank": 2}, "min_elements": 1}`)})
	if err != nil {
		t.Fatal(err)
	}
	c := waitCompression(t, b, rec.ID, store.JobFailed)
	if c.Error == nil || c.Error.Code != lowrank.EINVALID || !strings.Contains(c.Error.Message, `layer "b.weight"`) {
		t.Fatalf("error %+v, want EINVALID naming b.weight", c.Error)
	}
	var failed *jobs.CompressionLayerInfo
	for i := range c.Layers {
		if c.Layers[i].Name == "b.weight" {
			failed = &c.Layers[i]
		}
	}
	if failed == nil || failed.Status != store.LayerFailed || failed.Error == nil {
		t.Fatalf("layer b.weight = %+v", failed)
	}
}

// manyLayers is a checkpoint of n square float32 weights of side k.
func manyLayers(t testing.TB, n, k int) []byte {
	rng := rand.New(rand.NewPCG(uint64(n), uint64(k)))
	var ts []*tensorio.Tensor
	for i := range n {
		x := make([]float32, k*k)
		for j := range x {
			x[j] = float32(rng.NormFloat64())
		}
		ts = append(ts, &tensorio.Tensor{Name: "block" + string(rune('a'+i)) + ".weight", DType: tensorio.F32, Shape: []int{k, k}, F32: x})
	}
	var buf bytes.Buffer
	if err := tensorio.WriteSafetensors(&buf, ts, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestCompressionAcrossReplicas: two replicas sharing a Postgres database
// both work on the layers of one compression, and a cancel made on one
// stops the steps the other is running.
func TestCompressionAcrossReplicas(t *testing.T) {
	at := newPlace(t, onPostgres)
	ctx := context.Background()
	one := func(c *jobs.Config) { withCompressions(c); c.Workers = 1 }
	a, b := setupAt(t, at, true, one), setupAt(t, at, true, one)
	upload(t, a, "ckpt", "safetensors", manyLayers(t, 8, 192))
	rec, err := a.svc.SubmitCompression(ctx, jobs.CompressionRequest{TensorID: "ckpt", Policy: json.RawMessage(`{"budget": 0.3, "min_elements": 1}`)})
	if err != nil {
		t.Fatal(err)
	}
	waitCompression(t, b, rec.ID, store.JobSucceeded)
	var workers int
	err = a.db.QueryRow(`SELECT COUNT(DISTINCT w) FROM river_job, unnest(attempted_by) AS w WHERE kind = 'lowrank_compress'`).Scan(&workers)
	if err != nil {
		t.Fatal(err)
	}
	if workers != 2 {
		t.Errorf("the compression's sub-jobs ran on %d replicas, want 2", workers)
	}

	// Cancel on b a compression whose steps run on both.
	upload(t, a, "big", "safetensors", manyLayers(t, 12, 384))
	rec, err = a.svc.SubmitCompression(ctx, jobs.CompressionRequest{TensorID: "big", Policy: json.RawMessage(`{"budget": 0.3, "min_elements": 1}`)})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := a.svc.GetCompression(ctx, "", rec.ID)
		if err != nil {
			t.Fatal(err)
		}
		if c.Progress.Phase == jobs.PhaseAnalyze {
			break
		}
		if time.Now().After(deadline) || c.Status.Finished() {
			t.Fatalf("compression %s in phase %s", c.Status, c.Progress.Phase)
		}
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	if c, err := b.svc.DeleteCompression(ctx, "", rec.ID); err != nil || c.Status != store.JobCanceled {
		t.Fatalf("cancel on the other replica: %+v %v", c, err)
	}
	// Both workers are free again soon: a small compression runs through.
	upload(t, a, "small", "safetensors", checkpoint(t, 4))
	next, err := a.svc.SubmitCompression(ctx, jobs.CompressionRequest{TensorID: "small", Policy: json.RawMessage(`{"budget": 0.5, "min_elements": 1}`)})
	if err != nil {
		t.Fatal(err)
	}
	waitCompression(t, a, next.ID, store.JobSucceeded)
	t.Logf("the next compression succeeded %s after the cancel", time.Since(start))
	c, err := a.svc.GetCompression(ctx, "", rec.ID)
	if err != nil || c.Status != store.JobCanceled || c.Progress.LayersDone != 0 {
		t.Fatalf("canceled compression: %+v, %v", c, err)
	}
}

// TestCompressionExpires: retention removes a finished compression with
// its outputs, and then its input.
func TestCompressionExpires(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	b := setup(t, func(c *jobs.Config) {
		withCompressions(c)
		c.Now, c.Retention, c.CleanInterval = clock.Now, time.Hour, time.Hour
	})
	ctx := context.Background()
	upload(t, b, "ckpt", "safetensors", checkpoint(t, 5))
	rec, err := b.svc.SubmitCompression(ctx, jobs.CompressionRequest{TensorID: "ckpt", Policy: json.RawMessage(`{"budget": 0.5, "min_elements": 1}`)})
	if err != nil {
		t.Fatal(err)
	}
	done := waitCompression(t, b, rec.ID, store.JobSucceeded)
	if _, _, err := b.svc.Expire(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.svc.GetCompression(ctx, "", rec.ID); err != nil {
		t.Fatalf("expired before its time: %v", err)
	}
	clock.Advance(2 * time.Hour)
	if _, _, err := b.svc.Expire(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.svc.GetCompression(ctx, "", rec.ID); lowrank.ErrorCode(err) != lowrank.ENOTFOUND {
		t.Fatalf("after retention: %v", err)
	}
	for name, key := range done.Outputs {
		if _, err := b.blobs.Open(ctx, key); lowrank.ErrorCode(err) != lowrank.ENOTFOUND {
			t.Errorf("output %s outlived its compression: %v", name, err)
		}
	}
	if _, err := b.meta.GetTensor(ctx, "", "ckpt"); lowrank.ErrorCode(err) != lowrank.ENOTFOUND {
		t.Errorf("input after retention: %v", err)
	}
}

// TestCompressionAdmission: compressions beyond the queue's capacity are
// refused with EOVERLOADED while the others are active.
func TestCompressionAdmission(t *testing.T) {
	// Not started, so the first compression stays queued.
	b := setupAt(t, newPlace(t, onSQLite), false, func(c *jobs.Config) {
		withCompressions(c)
		c.QueueCapacity = 1
	})
	ctx := context.Background()
	upload(t, b, "ckpt", "safetensors", checkpoint(t, 6))
	req := jobs.CompressionRequest{TensorID: "ckpt", Policy: json.RawMessage(`{"budget": 0.5, "min_elements": 1}`)}
	first, err := b.svc.SubmitCompression(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.svc.SubmitCompression(ctx, req); lowrank.ErrorCode(err) != lowrank.EOVERLOADED {
		t.Fatalf("a second compression at capacity 1: %v, want EOVERLOADED", err)
	}
	if _, err := b.svc.DeleteCompression(ctx, "", first.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.svc.SubmitCompression(ctx, req); err != nil {
		t.Fatalf("once the first was canceled: %v", err)
	}
}

// TestCompressionOfNPZ: an .npz checkpoint, its entries deflated, compresses
// to what compress.Run gives (the untouched entries decoded and rewritten).
func TestCompressionOfNPZ(t *testing.T) {
	b := setup(t, withCompressions)
	ctx := context.Background()
	st := checkpoint(t, 7)
	_, ts, err := tensorio.ReadAll(bytes.NewReader(st), int64(len(st)))
	if err != nil {
		t.Fatal(err)
	}
	var npz bytes.Buffer
	if err := tensorio.WriteNPZ(&npz, ts, true); err != nil {
		t.Fatal(err)
	}
	upload(t, b, "ckpt", "npz", npz.Bytes())
	const policy = `{"budget": 0.5, "min_elements": 1}`
	rec, err := b.svc.SubmitCompression(ctx, jobs.CompressionRequest{TensorID: "ckpt", Policy: json.RawMessage(policy)})
	if err != nil {
		t.Fatal(err)
	}
	done := waitCompression(t, b, rec.ID, store.JobSucceeded)
	p, _ := compress.ParsePolicy([]byte(policy))
	var want bytes.Buffer
	if _, err := compress.Run(ctx, linalg.Default(1), bytes.NewReader(npz.Bytes()), int64(npz.Len()), p, &want, compress.Options{Workers: 1, Version: "test"}); err != nil {
		t.Fatal(err)
	}
	if got := readBlob(t, b, done.Outputs[jobs.OutputCheckpoint]); !bytes.Equal(got, want.Bytes()) {
		t.Errorf("the service's checkpoint of an npz (%d bytes) differs from compress.Run's (%d bytes)", len(got), want.Len())
	}
}

// staleCompressions answers GetCompression with the record as it was
// before the plan step, as a read that lands between the plan step's
// commit and the layers' read does.
type staleCompressions struct {
	store.CompressionStore
	stale *store.Compression
}

func (s *staleCompressions) GetCompression(ctx context.Context, owner, id string) (*store.Compression, error) {
	if s.stale == nil {
		return s.CompressionStore.GetCompression(ctx, owner, id)
	}
	c := *s.stale
	return &c, nil
}

// TestCompressionReadBeforePlan: the record and its layers are two reads;
// layers the record's plan does not know yet are left out rather than
// reported without a kind, method or shape.
func TestCompressionReadBeforePlan(t *testing.T) {
	var st *staleCompressions
	b := setup(t, func(cfg *jobs.Config) {
		withCompressions(cfg)
		st = &staleCompressions{CompressionStore: cfg.Compressions}
		cfg.Compressions = st
	})
	ctx := context.Background()
	upload(t, b, "ckpt", "safetensors", checkpoint(t, 3))
	rec, err := b.svc.SubmitCompression(ctx, jobs.CompressionRequest{TensorID: "ckpt", Policy: json.RawMessage(`{"budget": 0.5, "min_elements": 1}`)})
	if err != nil {
		t.Fatal(err)
	}
	waitCompression(t, b, rec.ID, store.JobSucceeded)
	stale := *rec
	stale.Status, stale.Phase, stale.Plan, stale.LayersTotal = store.JobRunning, jobs.PhasePlan, nil, 0
	st.stale = &stale
	got, err := b.svc.GetCompression(ctx, "", rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Layers) != 0 || got.Progress.LayersDone != 0 || got.Progress.Fraction != 0 {
		t.Errorf("a record read before its plan: %d layers, %d done, fraction %g; want none", len(got.Layers), got.Progress.LayersDone, got.Progress.Fraction)
	}
	st.stale = nil
	if got, err = b.svc.GetCompression(ctx, "", rec.ID); err != nil || len(got.Layers) == 0 || got.Layers[0].Kind == "" {
		t.Fatalf("the current record: %+v, %v; want its layers with their kinds", got, err)
	}
}
