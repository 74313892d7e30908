package bench

// Tensor decomposition benchmarks on conv-weight shapes (CP-ALS, Tucker HOOI,
// Tucker-2), the MTTKRP rate beside a same-size GEMM, peak memory of each
// case in a child process, and a NumPy re-implementation of TensorLy 0.9's
// algorithms (peers/tensor_peer.py) run on the same data:
//
//	go test -tags openblas -run '^$' -bench 'Tensor' -benchtime 1x ./bench/
//
// Inputs are seeded standard Gaussian float32 tensors; every case runs a
// fixed number of iterations with no tolerance stop, as the peer does. CP's
// "random" init is a fixed set of uniform [0, 1) factors handed to both
// Lowrank (as InitGiven) and the peer, so both follow the same ALS path.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gonum.org/v1/gonum/blas"

	"github.com/lowrank/lowrank/internal/linalg"
	"github.com/lowrank/lowrank/internal/pyfind"
	"github.com/lowrank/lowrank/internal/tensorops"
)

type tensorCase struct {
	name   string
	method string // "cp", "tucker" (all modes) or "partial" (modes 0 and 1)
	shape  []int
	rank   int   // cp
	ranks  []int // tucker: one per mode; partial: for modes 0, 1
	iters  int
	init   string
}

var tensorCases = []tensorCase{
	{name: "cp_256x256x3x3_r64", method: "cp", shape: []int{256, 256, 3, 3}, rank: 64, iters: 50, init: "random"},
	{name: "cp_512x512x3x3_r128", method: "cp", shape: []int{512, 512, 3, 3}, rank: 128, iters: 50, init: "random"},
	{name: "hooi_256x256x3x3_to_64x64x3x3", method: "tucker", shape: []int{256, 256, 3, 3}, ranks: []int{64, 64, 3, 3}, iters: 10, init: "svd"},
	{name: "hooi_512x512x3x3_to_128x128x3x3", method: "tucker", shape: []int{512, 512, 3, 3}, ranks: []int{128, 128, 3, 3}, iters: 10, init: "svd"},
	{name: "tucker2_256x256x3x3_r64x64", method: "partial", shape: []int{256, 256, 3, 3}, ranks: []int{64, 64}, iters: 10, init: "svd"},
	// Memory-safety case: svd init with rank above the spatial mode sizes
	// (TensorLy 0.9 asks for hundreds of GiB here).
	{name: "cp_svdinit_512x512x3x3_r128", method: "cp", shape: []int{512, 512, 3, 3}, rank: 128, iters: 5, init: "svd"},
}

func gaussianTensor(shape []int, seed uint64) *tensorops.Dense[float32] {
	x := tensorops.NewDense[float32](shape...)
	rng := rand.New(rand.NewPCG(seed, 1))
	for i := range x.Data {
		x.Data[i] = float32(rng.NormFloat64())
	}
	return x
}

// cpInitFactors are the random-init CP factors of case c: uniform on
// [0, 1) from a fixed seed, float32-representable, one I_n × R matrix per
// mode. The peer reads the same numbers, so both runs start alike.
func cpInitFactors(c tensorCase) [][]float64 {
	rng := rand.New(rand.NewPCG(7, 3))
	out := make([][]float64, len(c.shape))
	for k, d := range c.shape {
		out[k] = make([]float64, d*c.rank)
		for i := range out[k] {
			out[k][i] = float64(float32(rng.Float64()))
		}
	}
	return out
}

// runTensorCase decomposes x as c says and returns the final relative error.
func runTensorCase(b linalg.Backend, c tensorCase, x *tensorops.Dense[float32]) (float64, error) {
	ctx := context.Background()
	switch c.method {
	case "cp":
		opts := tensorops.CPOptions{Rank: c.rank, MaxIter: c.iters, Init: c.init, Seed: 7}
		if c.init == "random" {
			opts.Init, opts.InitFactors = tensorops.InitGiven, cpInitFactors(c)
		}
		res, err := tensorops.CPALS(ctx, b, x, opts, nil)
		if err != nil {
			return 0, err
		}
		return res.RelError, nil
	default:
		opts := tensorops.TuckerOptions{Ranks: c.ranks, MaxIter: c.iters, Init: c.init, Seed: 7}
		if c.method == "partial" {
			opts.Modes = []int{0, 1}
		}
		res, err := tensorops.Tucker(ctx, b, x, opts, nil)
		if err != nil {
			return 0, err
		}
		return res.RelError, nil
	}
}

func BenchmarkTensor(b *testing.B) {
	be := linalg.Default(runtime.GOMAXPROCS(0))
	for _, c := range tensorCases {
		x := gaussianTensor(c.shape, 1)
		b.Run(be.Name()+"/"+c.name, func(b *testing.B) {
			var rel float64
			cpu0 := cpuSeconds()
			for b.Loop() {
				var err error
				if rel, err = runTensorCase(be, c, x); err != nil {
					b.Fatal(err)
				}
			}
			// CPU seconds (user+sys of the whole process) per op: on a
			// shared machine wall time varies with the load, CPU time less.
			b.ReportMetric((cpuSeconds()-cpu0)/float64(b.N), "cpu-s/op")
			b.ReportMetric(rel, "relerr")
			b.Logf("%s: final relative error %.7f", c.name, rel)
		})
	}
}

// BenchmarkTensorMTTKRP reports the rate of the mode-0 MTTKRP (2·|X|·R flops,
// the GEMM-bound half of a CP sweep) beside a plain SGEMM of the same m, n, k.
func BenchmarkTensorMTTKRP(b *testing.B) {
	be := linalg.Default(runtime.GOMAXPROCS(0))
	for _, c := range []struct {
		shape []int
		rank  int
	}{{[]int{256, 256, 3, 3}, 64}, {[]int{512, 512, 3, 3}, 128}} {
		x := gaussianTensor(c.shape, 1)
		rng := rand.New(rand.NewPCG(2, 2))
		factors := make([]*tensorops.Matrix[float32], len(c.shape))
		for k, d := range c.shape {
			factors[k] = tensorops.NewMatrix[float32](d, c.rank)
			for i := range factors[k].Data {
				factors[k].Data[i] = float32(rng.Float64())
			}
		}
		flops := 2 * float64(x.Len()) * float64(c.rank)
		name := fmt.Sprintf("%s/%dx%dx%dx%d_r%d", be.Name(), c.shape[0], c.shape[1], c.shape[2], c.shape[3], c.rank)
		b.Run("mttkrp0/"+name, func(b *testing.B) {
			for b.Loop() {
				if _, err := tensorops.MTTKRP(context.Background(), be, x, factors, 0); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
		m, k, n := c.shape[0], x.Len()/c.shape[0], c.rank
		a := make([]float32, m*k)
		bm := make([]float32, k*n)
		cm := make([]float32, m*n)
		b.Run("sgemm_same_mnk/"+name, func(b *testing.B) {
			for b.Loop() {
				linalg.Gemm(be, blas.NoTrans, blas.NoTrans, m, n, k, 1, a, k, bm, n, 0, cm, n)
			}
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
	const sq = 1024
	a := make([]float32, sq*sq)
	b.Run("sgemm_peak_1024/"+be.Name(), func(b *testing.B) {
		cm := make([]float32, sq*sq)
		for b.Loop() {
			linalg.Gemm(be, blas.NoTrans, blas.NoTrans, sq, sq, sq, 1, a, sq, a, sq, 0, cm, sq)
		}
		b.ReportMetric(2*sq*sq*sq*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	})
}

// The child process of BenchmarkTensorPeakRSS: it runs one case when
// LOWRANK_TENSOR_CHILD names it and does nothing otherwise.
func TestTensorChild(t *testing.T) {
	name := os.Getenv("LOWRANK_TENSOR_CHILD")
	if name == "" {
		t.Skip("run by BenchmarkTensorPeakRSS")
	}
	for _, c := range tensorCases {
		if c.name == name {
			if _, err := runTensorCase(linalg.Default(runtime.GOMAXPROCS(0)), c, gaussianTensor(c.shape, 1)); err != nil {
				t.Fatal(err)
			}
			// The child's own high-water mark. The rusage its parent gets
			// is no good here: Go starts children with vfork, so a child's
			// ru_maxrss starts at the parent's resident size.
			if st, err := os.ReadFile("/proc/self/status"); err == nil {
				for _, line := range strings.Split(string(st), "\n") {
					if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
						fmt.Printf("%s%s\n", peakRSSPrefix, strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
					}
				}
			}
			return
		}
	}
	t.Fatalf("no case %q", name)
}

// peakRSSPrefix starts the line on which a child reports its peak resident
// set size in KiB.
const peakRSSPrefix = "LOWRANK_PEAK_RSS_KB="

// BenchmarkTensorPeakRSS runs each case in a child process (this test binary,
// TestTensorChild) and reports its peak resident set size (the child's VmHWM
// from /proc where there is one, else getrusage's ru_maxrss: everything the
// process touched, Go runtime and the generated input included) beside the
// budget 4·(input + factors) + 64 MiB.
func BenchmarkTensorPeakRSS(b *testing.B) {
	for _, c := range tensorCases {
		b.Run(c.name, func(b *testing.B) {
			var rss int64
			for b.Loop() {
				cmd := exec.Command(os.Args[0], "-test.run=^TestTensorChild$", "-test.count=1")
				cmd.Env = append(os.Environ(), "LOWRANK_TENSOR_CHILD="+c.name)
				out, err := cmd.CombinedOutput()
				if err != nil {
					b.Fatalf("child: %v\n%s", err, out)
				}
				rss = cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss * 1024
				for _, line := range strings.Split(string(out), "\n") {
					if v, ok := strings.CutPrefix(line, peakRSSPrefix); ok {
						if kb, err := strconv.ParseInt(v, 10, 64); err == nil {
							rss = kb * 1024
						}
					}
				}
			}
			in := 4 * int64(sizeOfShape(c.shape))
			var fac int64
			for k, d := range c.shape {
				switch {
				case c.method == "cp":
					fac += int64(d * c.rank * 4)
				case c.method == "tucker" || k < 2:
					fac += int64(d * c.ranks[k] * 4)
				}
			}
			budget := 4*(in+fac) + 64<<20
			b.ReportMetric(float64(rss)/(1<<20), "peakRSS-MiB")
			b.ReportMetric(float64(budget)/(1<<20), "budget-MiB")
			if rss > budget {
				b.Errorf("peak RSS %d MiB exceeds the budget %d MiB", rss>>20, budget>>20)
			}
		})
	}
}

// cpuSeconds is the user+system CPU time of this process so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func sizeOfShape(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// BenchmarkTensorPeer runs peers/tensor_peer.py, a NumPy implementation of
// TensorLy 0.9's parafac / tucker / partial_tucker (unfolding + khatri_rao +
// solve per mode, SVD of each unfolding; NOT TensorLy itself, which cannot
// be installed here), on the same input and iteration counts, and reports
// its time and final error. It needs a Python with NumPy: $LOWRANK_PYTHON,
// python3 or /usr/bin/python3.
func BenchmarkTensorPeer(b *testing.B) {
	py, err := pyfind.Find("numpy")
	if err != nil {
		b.Skip(err)
	}
	dir := b.TempDir()
	for _, c := range tensorCases {
		if c.method == "cp" && c.init == "svd" {
			continue // the peer reproduces TensorLy's full SVD here and would exhaust memory
		}
		x := gaussianTensor(c.shape, 1)
		path := filepath.Join(dir, c.name+".f32")
		if err := writeFloat32(path, x.Data); err != nil {
			b.Fatal(err)
		}
		if c.method == "cp" {
			var init []float32
			for _, f := range cpInitFactors(c) {
				for _, v := range f {
					init = append(init, float32(v))
				}
			}
			if err := writeFloat32(path+".init", init); err != nil {
				b.Fatal(err)
			}
		}
		b.Run("numpy_tensorly_algorithms/"+c.name, func(b *testing.B) {
			var res peerResult
			for b.Loop() {
				var err error
				if res, err = runTensorPeer(py, path, c); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(res.Seconds, "peer-s")
			b.ReportMetric(res.CPUSeconds, "peer-cpu-s")
			b.ReportMetric(res.RelError, "relerr")
			b.Logf("%s: peer final relative error %.7f", c.name, res.RelError)
		})
	}
}

type peerResult struct {
	Seconds    float64 `json:"seconds"`
	RelError   float64 `json:"rel_error"`
	CPUSeconds float64 `json:"-"` // of the whole Python process
}

func runTensorPeer(py, path string, c tensorCase) (peerResult, error) {
	ints := func(v []int) string {
		s := make([]string, len(v))
		for i, d := range v {
			s[i] = strconv.Itoa(d)
		}
		return strings.Join(s, ",")
	}
	args := []string{filepath.Join("peers", "tensor_peer.py"), "--data", path, "--shape", ints(c.shape),
		"--method", c.method, "--iters", strconv.Itoa(c.iters), "--init", c.init}
	if c.method == "cp" {
		args = append(args, "--rank", strconv.Itoa(c.rank))
		if _, err := os.Stat(path + ".init"); err == nil {
			args = append(args, "--init-file", path+".init")
		}
	} else {
		args = append(args, "--ranks", ints(c.ranks))
	}
	cmd := exec.Command(py, args...)
	cmd.Env = peerEnv(runtime.GOMAXPROCS(0))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	if err != nil {
		return peerResult{}, fmt.Errorf("peer after %v: %v\n%s", time.Since(start), err, stderr.String())
	}
	var res peerResult
	if err := json.Unmarshal(out, &res); err != nil {
		return peerResult{}, fmt.Errorf("peer output %q: %v", out, err)
	}
	res.CPUSeconds = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	if math.IsNaN(res.RelError) {
		return peerResult{}, fmt.Errorf("peer returned NaN")
	}
	return res, nil
}

func writeFloat32(path string, data []float32) error {
	buf := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
	}
	return os.WriteFile(path, buf, 0o600)
}

// TestTensorPeerScript runs the NumPy peer on small inputs, so a broken
// script shows in the tests and not only when benchmarks are run.
func TestTensorPeerScript(t *testing.T) {
	py, err := pyfind.Find("numpy")
	if err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	shape := []int{8, 7, 3, 3}
	x := gaussianTensor(shape, 3)
	path := filepath.Join(dir, "x.f32")
	if err := writeFloat32(path, x.Data); err != nil {
		t.Fatal(err)
	}
	cp := tensorCase{method: "cp", shape: shape, rank: 4, iters: 3, init: "random"}
	var init []float32
	for _, f := range cpInitFactors(cp) {
		for _, v := range f {
			init = append(init, float32(v))
		}
	}
	if err := writeFloat32(path+".init", init); err != nil {
		t.Fatal(err)
	}
	for _, c := range []tensorCase{
		cp,
		{method: "tucker", shape: shape, ranks: []int{3, 3, 2, 3}, iters: 2, init: "svd"},
		{method: "partial", shape: shape, ranks: []int{3, 3}, iters: 2, init: "svd"},
	} {
		res, err := runTensorPeer(py, path, c)
		if err != nil {
			t.Fatal(err)
		}
		// Gaussian data at these ranks: the fit is poor but not absent.
		if !(res.RelError > 0.1 && res.RelError < 1) {
			t.Fatalf("%s: peer relative error %g", c.method, res.RelError)
		}
		// Same algorithm, same data and start: the fits must agree (to
		// float32 rounding, amplified a little by the iterations).
		got, err := runTensorCase(linalg.Default(1), c, x)
		if err != nil {
			t.Fatal(err)
		}
		if d := math.Abs(got - res.RelError); d > 1e-5 {
			t.Fatalf("%s: Lowrank %.7f, peer %.7f", c.method, got, res.RelError)
		}
	}
}
