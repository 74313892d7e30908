package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/gonum/blas"

	"github.com/lowrank/lowrank/internal/compress"
	"github.com/lowrank/lowrank/internal/linalg"
	"github.com/lowrank/lowrank/internal/tensorio"
)

// lazyTensor is a raw safetensors entry generated when the writer first
// reads it and dropped once read, so a checkpoint of hundreds of MB is
// written with one layer in memory.
type lazyTensor struct {
	gen func() []float32
	buf []byte
}

func (l *lazyTensor) Read(p []byte) (int, error) {
	if l.buf == nil {
		x := l.gen()
		l.buf = make([]byte, 4*len(x))
		for i, v := range x {
			binary.LittleEndian.PutUint32(l.buf[4*i:], math.Float32bits(v))
		}
	}
	if len(l.buf) == 0 {
		return 0, io.EOF
	}
	n := copy(p, l.buf)
	l.buf = l.buf[n:]
	if len(l.buf) == 0 {
		l.buf = []byte{}
	}
	return n, nil
}

// trainedLike returns an m×n float32 weight whose spectrum decays like a
// trained layer's: A·diag(0.98^i)·B over k = min(m, n)/2 components (A, B
// standard Gaussian; its entries have variance Σ 0.98^{2i} ≈ 25) plus unit
// Gaussian noise (a fifth as large), scaled by 1/(5·sqrt(n)) (n the fan-in).
func trainedLike(b linalg.Backend, rng *rand.Rand, m, n int) []float32 {
	k := min(m, n) / 2
	a, c := make([]float32, m*k), make([]float32, k*n)
	for i := range a {
		a[i] = float32(rng.NormFloat64() * math.Pow(0.98, float64(i%k)))
	}
	for i := range c {
		c[i] = float32(rng.NormFloat64())
	}
	w := make([]float32, m*n)
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	linalg.Gemm(b, blas.NoTrans, blas.NoTrans, m, n, k, 1, a, k, c, n, 1, w, n)
	s := float32(1 / (5 * math.Sqrt(float64(n))))
	for i := range w {
		w[i] *= s
	}
	return w
}

// trainedConv returns an (out, in, k) float32 conv filter with decaying
// spectra in both channel modes, as trained filters have: the Tucker-2
// tensor G ×₀ A ×₁ B with a standard Gaussian core G (out/2, in/2, k) and
// Gaussian factors whose columns decay as 0.98^i, plus Gaussian noise a
// fifth as large as its entries, scaled by 1/(5·sqrt(in·k)).
func trainedConv(b linalg.Backend, rng *rand.Rand, out, in, k int) []float32 {
	ro, ri := out/2, in/2
	gauss := func(rows, cols int, decay bool) []float32 {
		x := make([]float32, rows*cols)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
			if decay {
				x[i] *= float32(math.Pow(0.98, float64(i%cols)))
			}
		}
		return x
	}
	g, a, bf := gauss(ro, ri*k, false), gauss(out, ro, true), gauss(in, ri, true)
	// T[r, (i, h)] = Σ_c B[i, c]·G[r, (c, h)]: one (in × ri)·(ri × k) product per r.
	t := make([]float32, ro*in*k)
	for r := range ro {
		linalg.Gemm(b, blas.NoTrans, blas.NoTrans, in, k, ri, 1, bf, ri, g[r*ri*k:], k, 0, t[r*in*k:], k)
	}
	w := gauss(out, in*k, false)
	for i := range w {
		w[i] *= 5 // the Tucker part's entries have variance ≈ 25², so noise at a fifth
	}
	linalg.Gemm(b, blas.NoTrans, blas.NoTrans, out, in*k, ro, 1, a, ro, t, in*k, 1, w, in*k)
	s := float32(1 / (5 * math.Sqrt(float64(in*k))))
	for i := range w {
		w[i] *= s
	}
	return w
}

// writeCheckpoint writes 50 layers, Linear 1024×4096 and Conv2d
// (256, 256, 3, 3) in turn, each with a bias, to path.
func writeCheckpoint(tb testing.TB, path string) {
	b := linalg.Default(runtime.GOMAXPROCS(0))
	rng := rand.New(rand.NewPCG(2026, 8))
	var entries []tensorio.SafetensorsEntry
	for i := range 50 {
		shape := []int{1024, 4096}
		name := fmt.Sprintf("blocks.%d.fc", i)
		if i%2 == 1 {
			shape, name = []int{256, 256, 3, 3}, fmt.Sprintf("blocks.%d.conv", i)
		}
		gen := func() []float32 { return trainedLike(b, rng, 1024, 4096) }
		if len(shape) == 4 {
			gen = func() []float32 { return trainedConv(b, rng, 256, 256, 9) }
		}
		entries = append(entries,
			tensorio.SafetensorsEntry{Name: name + ".weight", DType: tensorio.F32, Shape: shape, Raw: &lazyTensor{gen: gen}},
			tensorio.SafetensorsEntry{Name: name + ".bias", DType: tensorio.F32, Shape: shape[:1],
				Raw: &lazyTensor{gen: func() []float32 { return make([]float32, shape[0]) }}})
	}
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if err := tensorio.WriteSafetensorsEntries(f, entries, nil); err != nil {
		tb.Fatal(err)
	}
}

// peakRSS returns the process's resident high-water mark in bytes
// (VmHWM), 0 where /proc is missing.
func peakRSS() int64 {
	st, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkCompressCheckpoint compresses a 50-layer float32 checkpoint
// (25 Linear 1024×4096, 25 Conv2d (256, 256, 3, 3), 459 MB) at a global
// budget of 40 % of the selected parameters (budget40), and for
// comparison with every layer at 40 % (uniform40), with compress.Run, on the
// default backend with GOMAXPROCS threads and as many layers at once, the
// source and output on disk. It reports the time of one run, the global
// and RMS relative weight errors, the peak RSS during the run (the
// high-water mark is reset first through /proc/self/clear_refs, so the
// checkpoint's generation does not count; where that fails, the process's
// whole peak), the CPU utilisation (user + system CPU time) / (wall ×
// cores), and when the analyze and factor phases ended (seconds into the
// run; assembling the output takes the rest). The machine's other load
// shows in the utilisation: on a shared machine it measures the share the
// run got, not only what it could use.
//
//	go test -tags openblas -run '^$' -bench CompressCheckpoint -benchtime 1x ./bench/
func BenchmarkCompressCheckpoint(b *testing.B) {
	dir := b.TempDir()
	src := filepath.Join(dir, "model.safetensors")
	writeCheckpoint(b, src)
	in, err := os.Open(src)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		b.Fatal(err)
	}
	cores := runtime.GOMAXPROCS(0)
	backend := linalg.Default(cores)
	for _, c := range []struct {
		name string
		p    compress.Policy
	}{
		{"budget40", compress.Policy{Budget: 0.4, InputSize: []int{32, 32}, Seed: 1}},
		{"uniform40", compress.Policy{Rule: &compress.Rule{Compression: 0.4}, InputSize: []int{32, 32}, Seed: 1}},
	} {
		b.Run(c.name, func(b *testing.B) { compressOnce(b, backend, in, st.Size(), dir, c.p) })
	}
}

// compressOnce is one case of BenchmarkCompressCheckpoint.
func compressOnce(b *testing.B, backend linalg.Backend, in *os.File, size int64, dir string, p compress.Policy) {
	cores := backend.Threads()
	for b.Loop() {
		runtime.GC()
		_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
		out, err := os.Create(filepath.Join(dir, "out.safetensors"))
		if err != nil {
			b.Fatal(err)
		}
		cpu0, t0 := cpuSeconds(), time.Now()
		// When each phase ended, from the progress calls (serialised).
		ended := map[string]float64{}
		progress := func(pr compress.Progress) { ended[pr.Phase] = time.Since(t0).Seconds() }
		o, err := compress.Run(context.Background(), backend, in, size, p, out, compress.Options{Workers: cores, Version: "bench", Progress: progress})
		wall := time.Since(t0).Seconds()
		cpu := cpuSeconds() - cpu0
		out.Close()
		if err != nil {
			b.Fatal(err)
		}
		tot := o.Report.Totals
		b.ReportMetric(wall, "s/run")
		b.ReportMetric(tot.GlobalRelError, "global-rel-err")
		b.ReportMetric(tot.RMSRelError, "rms-rel-err")
		b.ReportMetric(float64(tot.ParamsSelectedAfter)/float64(tot.ParamsSelectedBefore), "params-kept")
		b.ReportMetric(float64(peakRSS())/(1<<20), "peakRSS-MiB")
		b.ReportMetric(cpu/(wall*float64(cores)), "cpu-util")
		b.ReportMetric(ended["analyze"], "analyze-end-s")
		b.ReportMetric(ended["factor"], "factor-end-s")
		b.Logf("%s: %d layers factored, %d kept; params %d → %d; MACs %d → %d; global error %.4f, RMS %.4f; %.1f s, CPU %.1f s on %d cores",
			linalg.Describe(backend), tot.LayersFactored, tot.LayersKept, tot.ParamsSelectedBefore, tot.ParamsSelectedAfter,
			tot.MACsBefore, tot.MACsAfter, tot.GlobalRelError, tot.RMSRelError, wall, cpu, cores)
	}
}
