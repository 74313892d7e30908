package main

import (
	"bytes"
	"encoding/json"
	"image/png"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lowrank/lowrank/client"
	"github.com/lowrank/lowrank/internal/compress"
	"github.com/lowrank/lowrank/internal/jobs"
	"github.com/lowrank/lowrank/internal/tensorio"
)

// decayingWeight is a rows×cols float32 weight (stored with shape) whose
// singular values fall as 0.7^k, plus a little noise, so a budget has
// something to choose: W = Σ_k 0.7^k u_k v_kᵀ + 0.001·N.
func decayingWeight(name string, shape []int, rows, cols int, rng *rand.Rand) *jobs.Tensor {
	x := make([]float64, rows*cols)
	u, v := make([]float64, rows), make([]float64, cols)
	for k := range min(rows, cols) {
		s := math.Pow(0.7, float64(k))
		for i := range u {
			u[i] = rng.NormFloat64() / math.Sqrt(float64(rows))
		}
		for j := range v {
			v[j] = rng.NormFloat64() / math.Sqrt(float64(cols))
		}
		for i := range rows {
			for j := range cols {
				x[i*cols+j] += s * u[i] * v[j]
			}
		}
	}
	t := &jobs.Tensor{Name: name, DType: "float32", Shape: shape, F32: make([]float32, len(x))}
	for i := range x {
		t.F32[i] = float32(x[i] + 0.001*rng.NormFloat64())
	}
	return t
}

// smallModel is a checkpoint of two Linear layers with biases, a
// LayerNorm, a 3×3 conv with bias and a 1×1 conv.
func smallModel(t *testing.T) []byte {
	rng := rand.New(rand.NewPCG(5, 6))
	vec := func(name string, n int) *jobs.Tensor {
		return randTensor(name, []int{n}, uint64(n), false)
	}
	return safetensorsBytes(t,
		decayingWeight("fc1.weight", []int{96, 64}, 96, 64, rng), vec("fc1.bias", 96),
		vec("ln.weight", 96), vec("ln.bias", 96),
		decayingWeight("fc2.weight", []int{48, 96}, 48, 96, rng), vec("fc2.bias", 48),
		decayingWeight("conv.weight", []int{32, 16, 3, 3}, 32, 144, rng), vec("conv.bias", 32),
		decayingWeight("pw.weight", []int{32, 32, 1, 1}, 32, 32, rng),
	)
}

// pollCompression waits for the compression to reach a final status.
func pollCompression(t *testing.T, c *client.ClientWithResponses, id string, timeout time.Duration) *client.Compression {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		resp, err := c.GetCompressionWithResponse(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if resp.JSON200 == nil {
			t.Fatalf("get compression: %d %s", resp.StatusCode(), resp.Body)
		}
		switch resp.JSON200.Status {
		case client.JobStatusSucceeded, client.JobStatusFailed, client.JobStatusCanceled:
			return resp.JSON200
		}
		if time.Now().After(deadline) {
			t.Fatalf("compression %s still %s after %s", id, resp.JSON200.Status, timeout)
		}
		time.Sleep(pollInterval)
	}
}

func mustCompress(t *testing.T, c *client.ClientWithResponses, tensorID string, p client.CompressionPolicy) *client.Compression {
	t.Helper()
	resp, err := c.CreateCompressionWithResponse(ctx, client.CompressionRequest{TensorId: tensorID, Policy: p})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != http.StatusAccepted || resp.JSON202 == nil {
		t.Fatalf("create compression: %d %s", resp.StatusCode(), resp.Body)
	}
	if loc := resp.HTTPResponse.Header.Get("Location"); loc != "/v1/compressions/"+resp.JSON202.Id {
		t.Errorf("Location %q", loc)
	}
	return resp.JSON202
}

func TestCompressionEndToEnd(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	c := s.client("")
	src := smallModel(t)
	tn := mustUpload(t, c, src, nil)
	const budget = 0.4
	cr := mustCompress(t, c, tn.Id, client.CompressionPolicy{Budget: ptr(budget), MinElements: ptr(int64(1))})
	if cr.Status != client.JobStatusQueued || cr.Progress.Phase != client.CompressionProgressPhasePlan || cr.TensorId != tn.Id {
		t.Errorf("created %+v", cr)
	}
	// The policy comes back validated, defaults filled in.
	if p := cr.Policy; p.Budget == nil || *p.Budget != budget || p.MinElements == nil || *p.MinElements != 1 || p.Exclude == nil || len(*p.Exclude) == 0 ||
		p.ConvMethod == nil || *p.ConvMethod != client.CompressionPolicyConvMethodTucker2 || p.TuckerIterations == nil || *p.TuckerIterations != compress.DefaultTuckerIterations {
		t.Errorf("policy %+v", p)
	}
	done := pollCompression(t, c, cr.Id, 60*time.Second)
	if done.Status != client.JobStatusSucceeded {
		t.Fatalf("compression %s: %+v", done.Status, done.Error)
	}
	if done.Progress.LayersDone != 4 || done.Progress.LayersTotal != 4 || done.Progress.Fraction != 1 ||
		done.Layers == nil || len(*done.Layers) != 4 || done.Totals == nil || done.Outputs == nil || done.StartedAt == nil || done.FinishedAt == nil {
		t.Fatalf("succeeded compression %+v", done)
	}
	var names []string
	for _, l := range *done.Layers {
		names = append(names, l.Name)
		if l.ParamsAfter == nil || l.RelError == nil || (l.Status != client.CompressionLayerStatusFactored && l.Status != client.CompressionLayerStatusKept) {
			t.Errorf("layer %+v", l)
		}
	}
	if strings.Join(names, ",") != "fc1.weight,fc2.weight,conv.weight,pw.weight" {
		t.Errorf("layers %v", names)
	}
	if done.Outputs.Checkpoint != "/v1/compressions/"+cr.Id+"/checkpoint" {
		t.Errorf("outputs %+v", done.Outputs)
	}

	// The checkpoint, streamed with its length and an ETag, and by range.
	ck, err := c.GetCompressedCheckpointWithResponse(ctx, cr.Id)
	if err != nil || ck.StatusCode() != http.StatusOK {
		t.Fatalf("checkpoint: %v %d", err, ck.StatusCode())
	}
	out := ck.Body
	if cl := ck.HTTPResponse.Header.Get("Content-Length"); cl != strconv.Itoa(len(out)) || ck.HTTPResponse.Header.Get("ETag") == "" {
		t.Errorf("checkpoint headers %v (%d bytes)", ck.HTTPResponse.Header, len(out))
	}
	req, _ := http.NewRequest(http.MethodGet, s.url+done.Outputs.Checkpoint, nil)
	req.Header.Set("Range", "bytes=8-99")
	rr, err := s.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(rr.Body)
	rr.Body.Close()
	if rr.StatusCode != http.StatusPartialContent || !bytes.Equal(part, out[8:100]) {
		t.Errorf("range: %d, %d bytes", rr.StatusCode, len(part))
	}
	req.Header.Del("Range")
	req.Header.Set("If-None-Match", ck.HTTPResponse.Header.Get("ETag"))
	if rr, err := s.http.Do(req); err != nil || rr.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: %v %v", err, rr)
	} else {
		rr.Body.Close()
	}

	// The manifest names every factor in the checkpoint, with its shape.
	mr, err := c.GetCompressionManifestWithResponse(ctx, cr.Id)
	if err != nil || mr.StatusCode() != http.StatusOK {
		t.Fatalf("manifest: %v %d", err, mr.StatusCode())
	}
	var man compress.Manifest
	if err := json.Unmarshal(mr.Body, &man); err != nil {
		t.Fatal(err)
	}
	_, inInfos, err := tensorio.Inspect(bytes.NewReader(src), int64(len(src)))
	if err != nil {
		t.Fatal(err)
	}
	_, outInfos, err := tensorio.Inspect(bytes.NewReader(out), int64(len(out)))
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]tensorio.Info{}
	for _, in := range outInfos {
		byName[in.Name] = in
	}
	replaced := map[string]bool{}
	if man.Format != compress.ManifestFormat || len(man.Layers) == 0 {
		t.Fatalf("manifest %+v", man)
	}
	for _, l := range man.Layers {
		replaced[l.Name] = true
		for _, f := range l.Factors {
			in, ok := byName[f.Name]
			if !ok || !slices.Equal(in.Shape, f.Shape) || in.DType != f.DType {
				t.Errorf("factor %s %v %s: in the checkpoint as %+v (%v)", f.Name, f.Shape, f.DType, in, ok)
			}
		}
	}
	// Every tensor left alone is byte for byte the input's.
	for _, in := range inInfos {
		o, ok := byName[in.Name]
		if replaced[in.Name] {
			if ok {
				t.Errorf("replaced weight %s still in the checkpoint", in.Name)
			}
			continue
		}
		if !ok || !bytes.Equal(src[in.Offset:in.Offset+in.Length], out[o.Offset:o.Offset+o.Length]) {
			t.Errorf("tensor %s not copied unchanged", in.Name)
		}
	}

	// The report's totals meet the budget.
	rep, err := c.GetCompressionReportWithResponse(ctx, cr.Id)
	if err != nil || rep.JSON200 == nil {
		t.Fatalf("report: %v %d", err, rep.StatusCode())
	}
	tot := rep.JSON200.Totals
	if tot.ParamsSelectedAfter > int64(budget*float64(tot.ParamsSelectedBefore)) || tot.ParamsSelectedAfter <= 0 ||
		tot.LayersFactored+tot.LayersKept != 4 || tot != *done.Totals {
		t.Errorf("totals %+v (record's %+v) do not meet the budget %g", tot, *done.Totals, budget)
	}

	// Rebuild fc1 from its factors: Ŵ = L·R; its error is the reported one.
	if ml := manifestLayer(man, "fc1.weight"); ml == nil {
		t.Error("fc1.weight was not factored")
	} else {
		w := f64s(decodeFile(t, src, "fc1.weight"))
		r := f64s(decodeFile(t, out, ml.Factors[0].Name)) // (k, in)
		l := f64s(decodeFile(t, out, ml.Factors[1].Name)) // (out, k)
		k := ml.Ranks[0]
		var diff, norm float64
		for i := range 96 {
			for j := range 64 {
				var v float64
				for p := range k {
					v += l[i*k+p] * r[p*64+j]
				}
				d := w[i*64+j] - v
				diff += d * d
				norm += w[i*64+j] * w[i*64+j]
			}
		}
		// Both are computed in float64 from the same float32 factors.
		if got := math.Sqrt(diff / norm); math.Abs(got-ml.RelError) > 1e-9 || ml.RelError > 0.9 {
			t.Errorf("fc1: rebuilt error %g, reported %g", got, ml.RelError)
		}
	}

	// The page a person reads, with plots, and one layer's spectrum.
	hr, err := c.GetCompressionReportHTMLWithResponse(ctx, cr.Id)
	if err != nil || hr.StatusCode() != http.StatusOK || !strings.HasPrefix(hr.HTTPResponse.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(string(hr.Body), "<svg") || !strings.Contains(string(hr.Body), "conv.weight") {
		t.Errorf("report.html: %v %d %q", err, hr.StatusCode(), hr.HTTPResponse.Header.Get("Content-Type"))
	}
	// Layer names are the uploader's: the page and the figures must not be
	// able to run anything in the API's origin.
	if h := hr.HTTPResponse.Header; !strings.HasPrefix(h.Get("Content-Security-Policy"), "default-src 'none'") || h.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("report.html: Content-Security-Policy %q, X-Content-Type-Options %q", h.Get("Content-Security-Policy"), h.Get("X-Content-Type-Options"))
	}
	sp, err := c.GetCompressionLayerSpectrumWithResponse(ctx, cr.Id, "conv.weight", &client.GetCompressionLayerSpectrumParams{Mode: ptr(1)})
	if err != nil || sp.StatusCode() != http.StatusOK || sp.HTTPResponse.Header.Get("Content-Type") != "image/svg+xml" || !bytes.Contains(sp.Body, []byte("<svg")) {
		t.Errorf("spectrum: %v %d", err, sp.StatusCode())
	}
	if csp := sp.HTTPResponse.Header.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "default-src 'none'") {
		t.Errorf("layer spectrum.svg: Content-Security-Policy %q", csp)
	}
	pr, err := c.GetCompressionLayerSpectrumPNGWithResponse(ctx, cr.Id, "fc1.weight", &client.GetCompressionLayerSpectrumPNGParams{Width: ptr(320), Height: ptr(240)})
	if err != nil || pr.StatusCode() != http.StatusOK || pr.HTTPResponse.Header.Get("Content-Type") != "image/png" {
		t.Errorf("spectrum.png: %v %d", err, pr.StatusCode())
	} else if cfg, err := png.DecodeConfig(bytes.NewReader(pr.Body)); err != nil || cfg.Width != 320 || cfg.Height != 240 {
		t.Errorf("spectrum.png: %v, %dx%d, want 320x240", err, cfg.Width, cfg.Height)
	}
	sp, _ = c.GetCompressionLayerSpectrumWithResponse(ctx, cr.Id, "fc1.weight", &client.GetCompressionLayerSpectrumParams{Mode: ptr(1)})
	wantProblem(t, "spectrum mode 1 of a matrix", sp.StatusCode(), sp.HTTPResponse.Header, sp.Body, "invalid", "mode")
	sp, _ = c.GetCompressionLayerSpectrumWithResponse(ctx, cr.Id, "fc1.bias", nil)
	wantProblem(t, "spectrum of no layer", sp.StatusCode(), sp.HTTPResponse.Header, sp.Body, "not_found", "name")

	lr, err := c.ListCompressionsWithResponse(ctx, nil)
	if err != nil || lr.JSON200 == nil || len(lr.JSON200.Items) != 1 || lr.JSON200.Items[0].Id != cr.Id {
		t.Errorf("list: %v %s", err, lr.Body)
	}
	waitMetrics(t, c, 5*time.Second, `lowrank_compressions_total{outcome="succeeded"} 1`,
		`lowrank_jobs_total{method="compress_analyze",outcome="succeeded"} 4`, `lowrank_jobs_total{method="compress_assemble",outcome="succeeded"} 1`)

	// The input is free again; DELETE removes the compression and its outputs.
	dr, err := c.DeleteCompressionWithResponse(ctx, cr.Id)
	if err != nil || dr.StatusCode() != http.StatusNoContent {
		t.Fatalf("delete: %v %d %s", err, dr.StatusCode(), dr.Body)
	}
	gr, _ := c.GetCompressionWithResponse(ctx, cr.Id)
	wantProblem(t, "deleted compression", gr.StatusCode(), gr.HTTPResponse.Header, gr.Body, "not_found", "")
	ck, _ = c.GetCompressedCheckpointWithResponse(ctx, cr.Id)
	wantProblem(t, "deleted checkpoint", ck.StatusCode(), ck.HTTPResponse.Header, ck.Body, "not_found", "")
}

func manifestLayer(m compress.Manifest, name string) *compress.ManifestLayer {
	for i := range m.Layers {
		if m.Layers[i].Name == name {
			return &m.Layers[i]
		}
	}
	return nil
}

func TestCompressionBadRequests(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	c := s.client("")
	ck := mustUpload(t, c, smallModel(t), nil)
	one := mustUpload(t, c, npyBytes(t, randTensor("", []int{4, 4}, 1, false)), nil)
	for _, tc := range []struct {
		body        string
		status      int
		code, field string
	}{
		{`{"tensor_id": "` + ck.Id + `", "policy": {"budget": 1.5}}`, 422, "invalid", "policy.budget"},
		{`{"tensor_id": "` + ck.Id + `", "policy": {"budget": 0.5, "rule": {"rank": 4}}}`, 422, "invalid", "policy.budget"},
		{`{"tensor_id": "` + ck.Id + `", "policy": {"rule": {"energy": 1.5}}}`, 422, "invalid", "policy.rule.energy"},
		{`{"tensor_id": "` + ck.Id + `", "policy": {"budget": 0.5, "layers": [{"pattern": "fc*", "rank": -2}]}}`, 422, "invalid", "policy.layers[0].rank"},
		{`{"tensor_id": "` + ck.Id + `", "policy": {"budget": 0.5, "conv_method": "svd"}}`, 422, "invalid", "policy.conv_method"},
		{`{"tensor_id": "` + ck.Id + `", "policy": {"budget": 0.5, "colour": "red"}}`, 422, "invalid", "policy.colour"},
		{`{"tensor_id": "` + ck.Id + `", "policy": {"budget": "half"}}`, 422, "invalid", "policy.budget"},
		{`{"tensor_id": "` + ck.Id + `", "policy": {"budget": 0.5, "include": ["nothing.*"]}}`, 422, "invalid", "policy.include"},
		{`{"tensor_id": "` + ck.Id + `", "policy": {}}`, 422, "invalid", "policy.rule"},
		{`{"tensor_id": "` + ck.Id + `", "policy": [1]}`, 422, "invalid", "policy"},
		{`{"tensor_id": "` + ck.Id + `"}`, 422, "invalid", "policy"},
		{`{"policy": {"budget": 0.5}}`, 422, "invalid", "tensor_id"},
		{`{"tensor_id": "nope", "policy": {"budget": 0.5}}`, 404, "not_found", "tensor_id"},
		{`{"tensor_id": "` + one.Id + `", "policy": {"budget": 0.5}}`, 415, "unsupported", "tensor_id"},
		{`{"tensor_id": "` + ck.Id + `", "policy": {"budget": 0.5}, "extra": 1}`, 400, "invalid", "extra"},
	} {
		resp, err := c.CreateCompressionWithBodyWithResponse(ctx, "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode() != tc.status {
			t.Errorf("%s: status %d, want %d (%s)", tc.body, resp.StatusCode(), tc.status, resp.Body)
		}
		wantProblem(t, tc.body, resp.StatusCode(), resp.HTTPResponse.Header, resp.Body, tc.code, tc.field)
	}
	gr, _ := c.GetCompressionWithResponse(ctx, "nope")
	wantProblem(t, "unknown compression", gr.StatusCode(), gr.HTTPResponse.Header, gr.Body, "not_found", "")
	if lr, _ := c.ListCompressionsWithResponse(ctx, nil); lr.JSON200 == nil || len(lr.JSON200.Items) != 0 {
		t.Errorf("refused compressions listed: %s", lr.Body)
	}
}

// TestCompressionCancel cancels a compression whose layers are large
// enough to be caught mid-way: it stops, keeps no outputs, and its input
// can be deleted.
func TestCompressionCancel(t *testing.T) {
	t.Parallel()
	s := startServer(t, "", "--workers", "1")
	c := s.client("")
	var ts []*jobs.Tensor
	for i := range 16 {
		ts = append(ts, randTensor("", []int{384, 384}, uint64(i), false))
		ts[i].Name = "block" + strconv.Itoa(i) + ".weight"
	}
	tn := mustUpload(t, c, safetensorsBytes(t, ts...), nil)
	cr := mustCompress(t, c, tn.Id, client.CompressionPolicy{Budget: ptr(0.5)})
	// Wait for the first layer's analysis, then cancel.
	deadline := time.Now().Add(60 * time.Second)
	for {
		r, _ := c.GetCompressionWithResponse(ctx, cr.Id)
		if r.JSON200 == nil {
			t.Fatalf("get: %d %s", r.StatusCode(), r.Body)
		}
		if r.JSON200.Status != client.JobStatusQueued && r.JSON200.Status != client.JobStatusRunning {
			t.Fatalf("compression ended %s before it could be canceled", r.JSON200.Status)
		}
		if r.JSON200.Progress.Fraction > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no progress: %+v", r.JSON200.Progress)
		}
		time.Sleep(pollInterval)
	}
	td, _ := c.DeleteTensorWithResponse(ctx, tn.Id)
	wantProblem(t, "delete the input of a running compression", td.StatusCode(), td.HTTPResponse.Header, td.Body, "conflict", "")
	dr, err := c.DeleteCompressionWithResponse(ctx, cr.Id)
	if err != nil || dr.JSON200 == nil || dr.JSON200.Status != client.JobStatusCanceled || dr.JSON200.Error == nil || dr.JSON200.FinishedAt == nil {
		t.Fatalf("cancel: %v %d %s", err, dr.StatusCode(), dr.Body)
	}
	// Whatever step was running stops; nothing moves on.
	time.Sleep(2 * time.Second)
	gr, _ := c.GetCompressionWithResponse(ctx, cr.Id)
	if gr.JSON200 == nil || gr.JSON200.Status != client.JobStatusCanceled || gr.JSON200.Outputs != nil || gr.JSON200.Progress.LayersDone != 0 {
		t.Fatalf("after cancel: %s", gr.Body)
	}
	ck, _ := c.GetCompressedCheckpointWithResponse(ctx, cr.Id)
	wantProblem(t, "checkpoint of a canceled compression", ck.StatusCode(), ck.HTTPResponse.Header, ck.Body, "conflict", "")
	waitMetrics(t, c, 5*time.Second, `lowrank_compressions_total{outcome="canceled"} 1`)
	if td, _ := c.DeleteTensorWithResponse(ctx, tn.Id); td.StatusCode() != http.StatusNoContent {
		t.Errorf("delete the input once canceled: %d %s", td.StatusCode(), td.Body)
	}
	if dr, _ := c.DeleteCompressionWithResponse(ctx, cr.Id); dr.StatusCode() != http.StatusNoContent {
		t.Errorf("delete the canceled compression: %d", dr.StatusCode())
	}
}

// TestCompressionSurvivesRestart stops the server while a compression's
// layers are being analysed; the restarted server finishes it, and the
// result is the one an uninterrupted run gives.
func TestCompressionSurvivesRestart(t *testing.T) {
	t.Parallel()
	var ts []*jobs.Tensor
	for i := range 4 {
		ts = append(ts, randTensor("", []int{320, 320}, uint64(10+i), false))
		ts[i].Name = "block" + strconv.Itoa(i) + ".weight"
	}
	data := safetensorsBytes(t, ts...)
	policy := client.CompressionPolicy{Budget: ptr(0.3), MinElements: ptr(int64(1))}

	dir := t.TempDir()
	s := startServer(t, dir, "--workers", "1", "--shutdown-grace", "50ms")
	c := s.client("")
	tn := mustUpload(t, c, data, nil)
	cr := mustCompress(t, c, tn.Id, policy)
	deadline := time.Now().Add(60 * time.Second)
	for {
		r, _ := c.GetCompressionWithResponse(ctx, cr.Id)
		if r.JSON200 == nil || r.JSON200.Status != client.JobStatusQueued && r.JSON200.Status != client.JobStatusRunning {
			t.Fatalf("compression ended before the restart: %s", r.Body)
		}
		if r.JSON200.Progress.Phase == client.CompressionProgressPhaseAnalyze || time.Now().After(deadline) {
			break
		}
		time.Sleep(pollInterval)
	}
	s.stop()

	s2 := startServer(t, dir, "--workers", "2")
	c2 := s2.client("")
	done := pollCompression(t, c2, cr.Id, 120*time.Second)
	if done.Status != client.JobStatusSucceeded || done.Progress.LayersDone != 4 {
		t.Fatalf("after restart: %s %+v %+v", done.Status, done.Progress, done.Error)
	}
	// The same compression run without interruption gives the same layers:
	// the same tensors, names and shapes, and the same rebuilt weights. Not
	// the same bytes: a step's thread count depends on what else runs, and
	// a multithreaded BLAS sums in a different order with another count.
	again := pollCompression(t, c2, mustCompress(t, c2, tn.Id, policy).Id, 120*time.Second)
	a, _ := c2.GetCompressedCheckpointWithResponse(ctx, done.Id)
	b, _ := c2.GetCompressedCheckpointWithResponse(ctx, again.Id)
	if again.Status != client.JobStatusSucceeded || a.StatusCode() != http.StatusOK || b.StatusCode() != http.StatusOK || len(a.Body) != len(b.Body) {
		t.Fatalf("interrupted and uninterrupted runs differ (%s; %d and %d bytes)", again.Status, len(a.Body), len(b.Body))
	}
	for i := range ts {
		prefix := "block" + strconv.Itoa(i)
		wa, wb := rebuiltLinear(t, a.Body, prefix), rebuiltLinear(t, b.Body, prefix)
		// float32 factors of a 320×320 layer: rounding alone moves the
		// product by ~1e-6 of its norm; 1e-4 leaves room for a different
		// summation order, and far less than a different rank would give.
		if d := relDiff(wa, wb); d > 1e-4 {
			t.Errorf("%s: the interrupted run's rebuilt weight differs from the uninterrupted one's by %.2g of its norm", prefix, d)
		}
	}
}

// rebuiltLinear multiplies a compressed Linear layer's factors back:
// <prefix>.lowrank.1.weight (out×r) · <prefix>.lowrank.0.weight (r×in).
func rebuiltLinear(t *testing.T, checkpoint []byte, prefix string) []float64 {
	t.Helper()
	f0 := decodeFile(t, checkpoint, prefix+".lowrank.0.weight")
	f1 := decodeFile(t, checkpoint, prefix+".lowrank.1.weight")
	r, in, out := f0.Shape[0], f0.Shape[1], f1.Shape[0]
	if f1.Shape[1] != r {
		t.Fatalf("%s: factor shapes %v and %v do not chain", prefix, f1.Shape, f0.Shape)
	}
	w := make([]float64, out*in)
	for i := range out {
		for k := range r {
			x := float64(f1.F32[i*r+k])
			for j := range in {
				w[i*in+j] += x * float64(f0.F32[k*in+j])
			}
		}
	}
	return w
}

// relDiff is ‖a − b‖_F / ‖a‖_F.
func relDiff(a, b []float64) float64 {
	var d, n float64
	for i := range a {
		d += (a[i] - b[i]) * (a[i] - b[i])
		n += a[i] * a[i]
	}
	return math.Sqrt(d / n)
}

// TestCompressionAuthIsolation: with API keys, each key sees and controls
// only its own compressions, and compresses only its own checkpoints.
func TestCompressionAuthIsolation(t *testing.T) {
	t.Parallel()
	s := startServer(t, "", "--api-keys", "alpha-key, beta-key")
	alice, bob := s.client("alpha-key"), s.client("beta-key")
	tn := mustUpload(t, alice, smallModel(t), nil)
	cr := mustCompress(t, alice, tn.Id, client.CompressionPolicy{Budget: ptr(0.5), MinElements: ptr(int64(1))})
	if done := pollCompression(t, alice, cr.Id, 60*time.Second); done.Status != client.JobStatusSucceeded {
		t.Fatalf("alice's compression: %s %+v", done.Status, done.Error)
	}
	br, _ := bob.CreateCompressionWithResponse(ctx, client.CompressionRequest{TensorId: tn.Id, Policy: client.CompressionPolicy{Budget: ptr(0.5)}})
	wantProblem(t, "bob compresses alice's checkpoint", br.StatusCode(), br.HTTPResponse.Header, br.Body, "not_found", "tensor_id")
	if r, _ := bob.GetCompressionWithResponse(ctx, cr.Id); r.StatusCode() != http.StatusNotFound {
		t.Errorf("bob sees alice's compression: %d", r.StatusCode())
	}
	if r, _ := bob.GetCompressedCheckpointWithResponse(ctx, cr.Id); r.StatusCode() != http.StatusNotFound {
		t.Errorf("bob downloads alice's checkpoint: %d", r.StatusCode())
	}
	if r, _ := bob.GetCompressionLayerSpectrumWithResponse(ctx, cr.Id, "fc1.weight", nil); r.StatusCode() != http.StatusNotFound {
		t.Errorf("bob sees alice's spectrum: %d", r.StatusCode())
	}
	if r, _ := bob.DeleteCompressionWithResponse(ctx, cr.Id); r.StatusCode() != http.StatusNotFound {
		t.Errorf("bob deletes alice's compression: %d", r.StatusCode())
	}
	if r, _ := bob.ListCompressionsWithResponse(ctx, nil); r.JSON200 == nil || len(r.JSON200.Items) != 0 {
		t.Errorf("bob's list: %s", r.Body)
	}
	if r, _ := alice.GetCompressedCheckpointWithResponse(ctx, cr.Id); r.StatusCode() != http.StatusOK {
		t.Errorf("alice's checkpoint: %d", r.StatusCode())
	}
}
