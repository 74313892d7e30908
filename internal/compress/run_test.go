package compress

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/lowrank/lowrank"
	"github.com/lowrank/lowrank/internal/linalg"
	"github.com/lowrank/lowrank/internal/tensorio"
)

// synthCheckpoint is a small model with every kind of tensor: Linear
// weights in F32 and F16 (with and without bias), a Hugging Face Conv1D in
// BF16, a 3×3 and a 1×1 conv, an embedding, a norm and an I64 buffer.
func synthCheckpoint(t *testing.T, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	entries := []tensorio.SafetensorsEntry{}
	add := func(name string, dt tensorio.DType, shape []int, x []float64) {
		entries = append(entries, tensorio.SafetensorsEntry{Tensor: tensor64(name, dt, shape, x)})
	}
	add("emb.embed.weight", tensorio.F32, []int{500, 64}, gaussian(rng, 500*64, 1))
	add("fc1.weight", tensorio.F32, []int{192, 320}, withSpectrum(rng, 192, 320, decaying(192, 3, 0.97)))
	add("fc1.bias", tensorio.F32, []int{192}, gaussian(rng, 192, 0.1))
	add("fc2.weight", tensorio.F16, []int{256, 256}, withSpectrum(rng, 256, 256, decaying(256, 2, 0.985)))
	add("h.0.c_fc.weight", tensorio.BF16, []int{128, 512}, withSpectrum(rng, 128, 512, decaying(128, 4, 0.95)))
	add("h.0.c_fc.bias", tensorio.BF16, []int{512}, gaussian(rng, 512, 0.1))
	conv := withSpectrum(rng, 48, 32*9, decaying(48, 1, 0.93))
	add("conv1.weight", tensorio.F32, []int{48, 32, 3, 3}, conv)
	add("conv1.bias", tensorio.F32, []int{48}, gaussian(rng, 48, 0.1))
	add("conv2.weight", tensorio.F32, []int{64, 48, 1, 1}, withSpectrum(rng, 64, 48, decaying(48, 1, 0.9)))
	add("norm.weight", tensorio.F32, []int{64}, gaussian(rng, 64, 1))
	pos := make([]byte, 16*8)
	for i := range 16 {
		binary.LittleEndian.PutUint64(pos[8*i:], uint64(i))
	}
	entries = append(entries, tensorio.SafetensorsEntry{Name: "pos_ids", DType: "I64", Shape: []int{1, 16}, Raw: bytes.NewReader(pos)})
	var buf bytes.Buffer
	if err := tensorio.WriteSafetensorsEntries(&buf, entries, map[string]string{"format": "pt", "origin": "synthetic"}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func synthPolicy() Policy {
	return Policy{
		Budget: 0.4, MinElements: 4096, InputSize: []int{12, 12}, Seed: 7,
		Layouts: []LayoutHint{
			{Pattern: "*.c_fc.weight", Layout: LayoutHFConv1D},
			{Pattern: "conv1.weight", Layout: LayoutConv2D, Stride: []int{2, 2}},
		},
	}
}

func runSynth(t *testing.T, b linalg.Backend, workers int, p Policy) ([]byte, []byte, *Output) {
	t.Helper()
	src := synthCheckpoint(t, 1)
	var out bytes.Buffer
	o, err := Run(context.Background(), b, bytes.NewReader(src), int64(len(src)), p, &out, Options{Workers: workers, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return src, out.Bytes(), o
}

func TestRunCheckpoint(t *testing.T) {
	b := linalg.Default(2)
	var progress []Progress
	src := synthCheckpoint(t, 1)
	var buf bytes.Buffer
	o, err := Run(context.Background(), b, bytes.NewReader(src), int64(len(src)), synthPolicy(), &buf,
		Options{Workers: 2, Version: "test", Progress: func(p Progress) { progress = append(progress, p) }})
	if err != nil {
		t.Fatal(err)
	}
	out := buf.Bytes()
	srcH, err := tensorio.ReadSafetensorsHeader(bytes.NewReader(src), int64(len(src)))
	if err != nil {
		t.Fatal(err)
	}
	outH, err := tensorio.ReadSafetensorsHeader(bytes.NewReader(out), int64(len(out)))
	if err != nil {
		t.Fatalf("the output is not a valid safetensors file: %v", err)
	}
	selected := []string{"fc1.weight", "fc2.weight", "h.0.c_fc.weight", "conv1.weight", "conv2.weight"}
	var names []string
	for _, l := range o.Plan.Layers {
		names = append(names, l.Name)
	}
	if !slices.Equal(names, selected) {
		t.Fatalf("selected %v, want %v", names, selected)
	}

	// Names in order: every source tensor at its place, a factored weight
	// replaced by its factors.
	factored := map[string]*ManifestLayer{}
	for i := range o.Manifest.Layers {
		factored[o.Manifest.Layers[i].Name] = &o.Manifest.Layers[i]
	}
	var want []string
	for _, in := range srcH.Tensors {
		if ml := factored[in.Name]; ml != nil {
			for _, f := range ml.Factors {
				want = append(want, f.Name)
			}
			continue
		}
		want = append(want, in.Name)
	}
	outInfo := map[string]tensorio.Info{}
	var got []string
	for _, in := range outH.Tensors {
		got = append(got, in.Name)
		outInfo[in.Name] = in
	}
	if !slices.Equal(got, want) {
		t.Fatalf("output tensors %v, want %v", got, want)
	}
	// Every tensor not factored is byte-identical, the I64 one included.
	for _, in := range srcH.Tensors {
		if factored[in.Name] != nil {
			continue
		}
		oi := outInfo[in.Name]
		if oi.DType != in.DType || !slices.Equal(oi.Shape, in.Shape) ||
			!bytes.Equal(src[in.Offset:in.Offset+in.Length], out[oi.Offset:oi.Offset+oi.Length]) {
			t.Errorf("%s changed on the way through", in.Name)
		}
	}
	// Metadata: the source's, the version, the policy as planned.
	md := outH.Metadata
	if md["origin"] != "synthetic" || md["format"] != "pt" || md[MetaVersion] != "test" || md[MetaFormat] != ManifestFormat {
		t.Errorf("metadata %v", md)
	}
	var pol Policy
	if err := json.Unmarshal([]byte(md[MetaPolicy]), &pol); err != nil || !reflect.DeepEqual(pol, o.Plan.Policy) {
		t.Errorf("metadata policy %s (%v), want %+v", md[MetaPolicy], err, o.Plan.Policy)
	}

	// Factor names, shapes and dtypes agree between the manifest, the
	// results and the file, and follow the documented scheme.
	var after int64
	for i, l := range o.Plan.Layers {
		r := o.Results[i]
		if r == nil {
			after += l.Params
			continue
		}
		ml := factored[l.Name]
		if ml == nil || !reflect.DeepEqual(ml.Factors, r.FactorInfos) || !slices.Equal(ml.Ranks, o.Allocations[i].Ranks) {
			t.Fatalf("%s: manifest %+v disagrees with the result %+v", l.Name, ml, r)
		}
		var elems int64
		for k, f := range r.FactorInfos {
			if wantName := l.Prefix + ".lowrank." + string(rune('0'+k)) + ".weight"; f.Name != wantName {
				t.Errorf("%s: factor %d called %s, want %s", l.Name, k, f.Name, wantName)
			}
			oi := outInfo[f.Name]
			if oi.DType != l.DType || !slices.Equal(oi.Shape, f.Shape) || f.DType != l.DType {
				t.Errorf("%s: factor %s is %s %v in the file, manifest says %s %v", l.Name, f.Name, oi.DType, oi.Shape, f.DType, f.Shape)
			}
			elems += oi.Elements()
		}
		if elems != r.ParamsAfter || r.ParamsAfter >= l.Params {
			t.Errorf("%s: factors hold %d elements, result says %d (of %d)", l.Name, elems, r.ParamsAfter, l.Params)
		}
		after += elems
		mods := ml.Modules
		if mods[0].In != inFeatures(&l) || mods[len(mods)-1].Out != l.Shape[outAxis(&l)] || mods[len(mods)-1].Bias != l.Bias {
			t.Errorf("%s: modules %+v do not map %d → %d with bias %q", l.Name, mods, inFeatures(&l), l.Shape[outAxis(&l)], l.Bias)
		}
		for k := 1; k < len(mods); k++ {
			if mods[k].In != mods[k-1].Out {
				t.Errorf("%s: module %d takes %d features, module %d gives %d", l.Name, k, mods[k].In, k-1, mods[k-1].Out)
			}
		}
	}
	tot := o.Report.Totals
	if tot.ParamsSelectedAfter != after || float64(after) > 0.4*float64(o.Plan.ParamsSelected) {
		t.Errorf("selected parameters after %d (report %d), budget 0.4 of %d", after, tot.ParamsSelectedAfter, o.Plan.ParamsSelected)
	}
	if tot.ParamsCheckpointBefore-tot.ParamsCheckpointAfter != tot.ParamsSelectedBefore-tot.ParamsSelectedAfter {
		t.Errorf("totals disagree: %+v", tot)
	}

	// Measured errors against the spectra's prediction: svd in F32 equal
	// up to the rounding of the factors to float32; in F16/BF16 within a
	// few units of the dtype's rounding; tucker2 below the HOSVD bound.
	for i, l := range o.Plan.Layers {
		r, al := o.Results[i], o.Allocations[i]
		if r == nil {
			continue
		}
		pred := *al.PredictedRelError
		u := map[tensorio.DType]float64{tensorio.F32: 1e-5, tensorio.F16: 4 * 0x1p-11, tensorio.BF16: 4 * 0x1p-8}[l.DType]
		switch l.Method {
		case MethodSVD:
			if r.RelError < pred*(1-1e-4)-1e-6 || r.RelError > pred+u {
				t.Errorf("%s (%s): measured error %g, predicted %g", l.Name, l.DType, r.RelError, pred)
			}
		case MethodTucker2:
			if r.RelError > pred+1e-5 {
				t.Errorf("%s: measured error %g above the HOSVD bound %g", l.Name, r.RelError, pred)
			}
		}
		if r.MACsBefore == 0 || r.MACsAfter >= r.MACsBefore {
			t.Errorf("%s: MACs %d → %d", l.Name, r.MACsBefore, r.MACsAfter)
		}
	}
	if l := o.Report.Layers[3]; l.MACsBefore != 48*32*9*6*6 {
		t.Errorf("conv1 MACs %d, want 48·32·9·6·6 (stride 2 on 12×12, padding 1)", l.MACsBefore)
	}

	// Progress: one call per layer of each per-layer phase, then assemble.
	var phases []string
	for _, p := range progress {
		phases = append(phases, p.Phase)
	}
	nf := tot.LayersFactored
	if len(progress) != 5+nf+1 || phases[len(phases)-1] != "assemble" || progress[4].Done != 5 || progress[4+nf].Done != nf {
		t.Errorf("progress %+v", progress)
	}

	// The report renders as HTML.
	var page bytes.Buffer
	stub := func(s []float64, total float64, rank int, title string) ([]byte, error) {
		return []byte(`<svg xmlns="http://www.w3.org/2000/svg" data-rank="` + string(rune('0'+rank%10)) + `"></svg>`), nil
	}
	if err := ReportHTML(&page, o.Report, o.Analyses, stub); err != nil {
		t.Fatal(err)
	}
	html := page.String()
	if !strings.Contains(html, "conv1.weight") || strings.Count(html, "<svg") != 4+2 || !strings.Contains(html, "</html>") {
		t.Errorf("HTML report lacks layers or plots:\n%s", html)
	}
}

// inFeatures and outAxis read a layer's input width and output axis.
func inFeatures(l *Layer) int {
	if l.Kind == KindHFConv {
		return l.Shape[0]
	}
	return l.Shape[1]
}

func outAxis(l *Layer) int {
	if l.Kind == KindHFConv {
		return 1
	}
	return 0
}

// TestRunParallelMatchesSerial: two layers at once with one thread each
// give the same bytes as one layer at a time on one thread.
func TestRunParallelMatchesSerial(t *testing.T) {
	_, serial, _ := runSynth(t, linalg.Default(1), 1, synthPolicy())
	_, parallel, _ := runSynth(t, linalg.Default(2), 2, synthPolicy())
	if !bytes.Equal(serial, parallel) {
		t.Errorf("parallel output differs from serial")
	}
}

func TestRunCanceled(t *testing.T) {
	src := synthCheckpoint(t, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Run(ctx, linalg.Default(2), bytes.NewReader(src), int64(len(src)), synthPolicy(), &bytes.Buffer{}, Options{Workers: 2})
	if lowrank.ErrorCode(err) != lowrank.ECANCELED {
		t.Fatalf("canceled run: %v, want ECANCELED", err)
	}
	// A bad policy fails before any work, naming the field.
	_, err = Run(context.Background(), linalg.Default(1), bytes.NewReader(src), int64(len(src)), Policy{Budget: 2}, &bytes.Buffer{}, Options{})
	wantCode(t, err, lowrank.EINVALID, "policy.budget")
}

// TestProofLinear applies each factored matrix layer, original and rebuilt
// (the manifest's modules, by matrix products), to random inputs: the
// relative output error matches the reported weight error. For x with
// i.i.d. N(0, 1) entries E‖(W − Ŵ)x‖² = ‖W − Ŵ‖_F² and E‖Wx‖² = ‖W‖_F², so
// over a batch of 512 inputs the ratio's square root concentrates within a
// few percent of the weight error (the spread of a mean of 512 χ²-like
// terms, each of relative spread at most sqrt(2)); 15 % allows for it.
func TestProofLinear(t *testing.T) {
	_, out, o := runSynth(t, linalg.Default(2), 2, synthPolicy())
	rd := bytes.NewReader(out)
	rng := rand.New(rand.NewPCG(5, 5))
	const batch = 512
	tested := 0
	src := synthCheckpoint(t, 1)
	for i, l := range o.Plan.Layers {
		r := o.Results[i]
		if r == nil || l.Kind == KindConv || l.Kind == KindConv1x1 {
			continue
		}
		wt, err := tensorio.ReadTensor(bytes.NewReader(src), int64(len(src)), l.Name)
		if err != nil {
			t.Fatal(err)
		}
		f0, err := tensorio.ReadTensor(rd, int64(len(out)), r.FactorInfos[0].Name)
		if err != nil {
			t.Fatal(err)
		}
		f1, err := tensorio.ReadTensor(rd, int64(len(out)), r.FactorInfos[1].Name)
		if err != nil {
			t.Fatal(err)
		}
		w, a0, a1 := toF64(wt), toF64(f0), toF64(f1)
		var y, yf []float64
		k := r.Ranks[0]
		if l.Kind == KindLinear { // y = W·x; rebuilt: F1·(F0·x)
			out, in := l.Shape[0], l.Shape[1]
			x := gaussian(rng, in*batch, 1)
			y = matmul(w, x, out, in, batch)
			yf = matmul(a1, matmul(a0, x, k, in, batch), out, k, batch)
		} else { // Conv1D: y = x·W; rebuilt: (x·F0)·F1
			in, out := l.Shape[0], l.Shape[1]
			x := gaussian(rng, batch*in, 1)
			y = matmul(x, w, batch, in, out)
			yf = matmul(matmul(x, a0, batch, in, k), a1, batch, k, out)
		}
		got := relDiff(yf, y)
		if math.Abs(got-r.RelError) > 0.15*r.RelError {
			t.Errorf("%s: output error %.4f, reported weight error %.4f", l.Name, got, r.RelError)
		}
		t.Logf("%s: output error %.4f, weight error %.4f", l.Name, got, r.RelError)
		tested++
	}
	if tested != 3 {
		t.Errorf("tested %d matrix layers, want 3", tested)
	}
}

// matmul returns the m×n product of the m×k a and k×n b.
func matmul(a, b []float64, m, k, n int) []float64 {
	c := make([]float64, m*n)
	for i := range m {
		for p := range k {
			v := a[i*k+p]
			for j := range n {
				c[i*n+j] += v * b[p*n+j]
			}
		}
	}
	return c
}

// TestPhasesRoundTripJSON: what passes between the phases survives JSON,
// so each per-layer step can run as a sub-job elsewhere.
func TestPhasesRoundTripJSON(t *testing.T) {
	_, _, o := runSynth(t, linalg.Default(1), 1, synthPolicy())
	roundTrip := func(name string, v any, fresh any) {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := json.Unmarshal(b, fresh); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := reflect.ValueOf(fresh).Elem().Interface(); !reflect.DeepEqual(got, v) {
			t.Errorf("%s changed through JSON:\n got %+v\nwant %+v", name, got, v)
		}
	}
	roundTrip("plan", *o.Plan, &Plan{})
	roundTrip("analyses", o.Analyses, &[]*Analysis{})
	roundTrip("allocations", o.Allocations, &[]Allocation{})
	roundTrip("manifest", *o.Manifest, &Manifest{})
	roundTrip("report", *o.Report, &Report{})
	results := make([]*LayerResult, len(o.Results))
	for i, r := range o.Results {
		if r != nil {
			c := *r
			c.Factors = nil // the data travels as a safetensors bundle, not JSON
			results[i] = &c
		}
	}
	roundTrip("results", results, &[]*LayerResult{})
	// A result's factors travel as a bundle, and the checkpoint assembled
	// from reloaded results is the same.
	src := synthCheckpoint(t, 1)
	_, infos, err := tensorio.Inspect(bytes.NewReader(src), int64(len(src)))
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range o.Results {
		if r == nil {
			continue
		}
		var bundle bytes.Buffer
		if err := r.WriteFactors(&bundle); err != nil {
			t.Fatal(err)
		}
		if err := results[i].ReadFactors(bytes.NewReader(bundle.Bytes()), int64(bundle.Len())); err != nil {
			t.Fatal(err)
		}
		bad := *results[i]
		bad.FactorInfos = slices.Clone(bad.FactorInfos)
		bad.FactorInfos[0].Shape = []int{1}
		if err := bad.ReadFactors(bytes.NewReader(bundle.Bytes()), int64(bundle.Len())); lowrank.ErrorCode(err) != lowrank.EINVALID {
			t.Errorf("a bundle that does not match the result: %v", err)
		}
	}
	var direct, reloaded bytes.Buffer
	meta := map[string]string{"k": "v"}
	if err := Assemble(&direct, bytes.NewReader(src), int64(len(src)), infos, o.Plan, o.Results, meta); err != nil {
		t.Fatal(err)
	}
	if err := Assemble(&reloaded, bytes.NewReader(src), int64(len(src)), infos, o.Plan, results, meta); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(direct.Bytes(), reloaded.Bytes()) {
		t.Errorf("the checkpoint from reloaded factors differs")
	}
	// The plan's allocation is the same when computed again from the
	// decoded analyses.
	b, _ := json.Marshal(o.Analyses)
	var as []*Analysis
	_ = json.Unmarshal(b, &as)
	again, err := Allocate(o.Plan, as)
	if err != nil || !reflect.DeepEqual(again, o.Allocations) {
		t.Errorf("allocation from decoded analyses differs (%v)", err)
	}
}

// TestRunCanceledMidway: canceling while layers are in flight stops the
// whole compression with ECANCELED and writes nothing.
func TestRunCanceledMidway(t *testing.T) {
	src := synthCheckpoint(t, 1)
	for _, phase := range []string{"analyze", "factor"} {
		ctx, cancel := context.WithCancel(context.Background())
		var out bytes.Buffer
		calls := 0
		_, err := Run(ctx, linalg.Default(2), bytes.NewReader(src), int64(len(src)), synthPolicy(), &out, Options{Workers: 2,
			Progress: func(p Progress) {
				if p.Phase == phase {
					calls++
					cancel()
				}
			}})
		cancel()
		if lowrank.ErrorCode(err) != lowrank.ECANCELED || out.Len() != 0 {
			t.Errorf("canceled in %s: %v, %d bytes written; want ECANCELED and nothing", phase, err, out.Len())
		}
		// At most the layers already in flight finish after the cancel.
		if calls > 2 {
			t.Errorf("canceled in %s: %d layers finished after the cancel", phase, calls-1)
		}
	}
}

// TestFactorTucker2FullMode: a Tucker-2 rank equal to its mode's size
// (nothing to compress there) drops that mode's factor, the core absorbing
// it, with and without HOOI sweeps; the rebuilt weight stays within the
// HOSVD bound and the modules chain.
func TestFactorTucker2FullMode(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 1))
	x := withSpectrum(rng, 8, 64*9, decaying(8, 1, 0.7))
	tt := tensor64("c.weight", tensorio.F32, []int{8, 64, 3, 3}, x)
	for _, tc := range []struct {
		ranks  []int
		shapes [][]int
		params int64
	}{
		{[]int{8, 12}, [][]int{{12, 64, 1, 1}, {8, 12, 3, 3}}, 12*64 + 8*12*9},
		{[]int{4, 64}, [][]int{{4, 64, 3, 3}, {8, 4, 1, 1}}, 4*64*9 + 8*4},
		{[]int{4, 12}, [][]int{{12, 64, 1, 1}, {4, 12, 3, 3}, {8, 4, 1, 1}}, 12*64 + 4*12*9 + 8*4},
	} {
		for _, sweeps := range []int{-1, 2} {
			p := Policy{Rule: &Rule{Rank: 1}, TuckerIterations: sweeps}
			plan, err := NewPlan([]tensorio.Info{{Name: "c.weight", DType: tensorio.F32, Shape: tt.Shape}}, p)
			if err != nil {
				t.Fatal(err)
			}
			l := &plan.Layers[0]
			a, err := Analyze(context.Background(), linalg.Default(1), l, tt)
			if err != nil {
				t.Fatal(err)
			}
			al := Allocation{Name: l.Name, Method: l.Method, Ranks: tc.ranks}
			r, err := Factor(context.Background(), linalg.Default(1), plan.Policy, l, &al, tt)
			if err != nil {
				t.Fatalf("ranks %v sweeps %d: %v", tc.ranks, sweeps, err)
			}
			bound, _ := predictedError(l, a, al.Ranks)
			if r.RelError > bound+1e-5 {
				t.Errorf("ranks %v sweeps %d: error %g above the HOSVD bound %g", tc.ranks, sweeps, r.RelError, bound)
			}
			if len(r.FactorInfos) != len(tc.shapes) || r.ParamsAfter != tc.params || factorParams(l, tc.ranks) != tc.params {
				t.Fatalf("ranks %v sweeps %d: factors %+v, %d parameters; want shapes %v, %d", tc.ranks, sweeps, r.FactorInfos, r.ParamsAfter, tc.shapes, tc.params)
			}
			var elems int64
			for k, f := range r.FactorInfos {
				if !slices.Equal(f.Shape, tc.shapes[k]) {
					t.Errorf("ranks %v sweeps %d: factor %d shape %v, want %v", tc.ranks, sweeps, k, f.Shape, tc.shapes[k])
				}
				elems += int64(len(r.Factors[k].F32))
			}
			ms := modules(l, r)
			if elems != tc.params || len(ms) != len(tc.shapes) || ms[0].In != 64 || ms[len(ms)-1].Out != 8 {
				t.Errorf("ranks %v: %d elements, modules %+v", tc.ranks, elems, ms)
			}
			for k := 1; k < len(ms); k++ {
				if ms[k].In != ms[k-1].Out {
					t.Errorf("ranks %v: module %d takes %d channels, module %d gives %d", tc.ranks, k, ms[k].In, k-1, ms[k-1].Out)
				}
			}
		}
	}
}
