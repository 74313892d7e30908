package bench

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"gonum.org/v1/gonum/blas"

	"github.com/lowrank/lowrank/internal/linalg"
	"github.com/lowrank/lowrank/internal/pyfind"
)

// GEMM throughput of each backend compiled in, and NumPy's matmul on the
// same sizes as the peer ("OpenBLAS's own peak"):
//
//	go test -tags openblas -run '^$' -bench GEMM -benchtime 3x ./bench
//
// GFLOP/s counts 2·n³ flops per product; best-GFLOP/s is the fastest
// product, the figure NumPy's peer script reports.

var gemmSizes = []int{1024, 2048}

func BenchmarkGEMM(b *testing.B) {
	for _, threads := range []int{1, 2} {
		for _, be := range linalg.Backends(threads) {
			for _, n := range gemmSizes {
				b.Run(fmt.Sprintf("%s/f32/n=%d/threads=%d", be.Name(), n, threads), func(b *testing.B) {
					benchGemm[float32](b, be, n)
				})
				b.Run(fmt.Sprintf("%s/f64/n=%d/threads=%d", be.Name(), n, threads), func(b *testing.B) {
					benchGemm[float64](b, be, n)
				})
			}
		}
	}
}

func benchGemm[T linalg.Float](b *testing.B, be linalg.Backend, n int) {
	rng := rand.New(rand.NewPCG(1, uint64(n)))
	x, y, c := make([]T, n*n), make([]T, n*n), make([]T, n*n)
	for i := range x {
		x[i] = T(2*rng.Float64() - 1)
		y[i] = T(2*rng.Float64() - 1)
	}
	b.Logf("backend: %s", linalg.Describe(be))
	linalg.Gemm(be, blas.NoTrans, blas.NoTrans, n, n, n, 1, x, n, y, n, 0, c, n) // warm-up
	var best time.Duration
	for b.Loop() {
		t := time.Now()
		linalg.Gemm(be, blas.NoTrans, blas.NoTrans, n, n, n, 1, x, n, y, n, 0, c, n)
		if d := time.Since(t); best == 0 || d < best {
			best = d
		}
	}
	flops := 2 * float64(n) * float64(n) * float64(n)
	b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	// The fastest product, comparable with the peer's figure and less
	// sensitive to other load on a shared machine.
	b.ReportMetric(flops/best.Seconds()/1e9, "best-GFLOP/s")
}

// BenchmarkGEMMNumPy runs peers/gemm.py: each iteration is one run of the
// script, which times its own products and reports the best.
func BenchmarkGEMMNumPy(b *testing.B) {
	python, err := pyfind.Find("numpy")
	if err != nil {
		b.Skip(err)
	}
	for _, threads := range []int{1, 2} {
		for _, dtype := range []string{"float32", "float64"} {
			for _, n := range gemmSizes {
				b.Run(fmt.Sprintf("numpy/%s/n=%d/threads=%d", dtype[:1]+dtype[5:], n, threads), func(b *testing.B) {
					var gflops float64
					for b.Loop() {
						gflops = runNumPyGemm(b, python, n, dtype, threads)
					}
					b.ReportMetric(gflops, "best-GFLOP/s")
				})
			}
		}
	}
}

func runNumPyGemm(b *testing.B, python string, n int, dtype string, threads int) float64 {
	cmd := exec.Command(python, filepath.Join("peers", "gemm.py"), strconv.Itoa(n), dtype, "3")
	cmd.Env = append(os.Environ(), "OPENBLAS_NUM_THREADS="+strconv.Itoa(threads), "OMP_NUM_THREADS="+strconv.Itoa(threads))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("%s peers/gemm.py: %v", python, err)
	}
	var res struct {
		GFLOPS float64 `json:"gflops"`
		BLAS   string  `json:"blas"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		b.Fatalf("peers/gemm.py printed %q: %v", out, err)
	}
	b.Logf("NumPy's BLAS: %s", res.BLAS)
	return res.GFLOPS
}

// TestGEMMPeerScript runs the NumPy peer once on a small size, so a broken
// script shows in the tests and not only when benchmarks are run.
func TestGEMMPeerScript(t *testing.T) {
	python, err := pyfind.Find("numpy")
	if err != nil {
		t.Skip(err)
	}
	out, err := exec.Command(python, filepath.Join("peers", "gemm.py"), "64", "float32", "1").Output()
	if err != nil {
		t.Fatalf("peers/gemm.py: %v", err)
	}
	var res struct {
		Seconds float64 `json:"seconds"`
		GFLOPS  float64 `json:"gflops"`
		BLAS    string  `json:"blas"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("peers/gemm.py printed %q: %v", out, err)
	}
	if !(res.Seconds > 0 && res.GFLOPS > 0 && res.BLAS != "") {
		t.Fatalf("peers/gemm.py reported %+v", res)
	}
}
