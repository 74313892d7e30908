package bench

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lowrank/lowrank/client"
	"github.com/lowrank/lowrank/internal/tensorio"
)

// The service benchmarks run the real server binary, built from ../cmd/server
// with this test binary's numeric backend, as a process of its own with a
// temporary data dir, and drive it over HTTP with the generated client: the
// figures include HTTP, JSON, the SQLite queue, fsyncs and the factor
// files, and the server's memory is measured apart from the client's.

// serverProcess is a running server.
type serverProcess struct {
	url string
	cmd *exec.Cmd
	c   *client.ClientWithResponses
}

func startServerProcess(b *testing.B, args ...string) *serverProcess {
	b.Helper()
	dir := b.TempDir()
	bin := filepath.Join(dir, "server")
	build := exec.Command("go", "build", "-tags", serverTags, "-o", bin, "../cmd/server")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build the server: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, append([]string{"--addr", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data"), "--log-level", "warn"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "lowrank listening on ")
	if err != nil || !ok {
		b.Fatalf("server did not start: %q %v", line, err)
	}
	go func() { _, _ = bufio.NewReader(stdout).WriteTo(discard{}) }()
	c, err := client.NewClientWithResponses(url, client.WithHTTPClient(&http.Client{Timeout: 10 * time.Minute}))
	if err != nil {
		b.Fatal(err)
	}
	return &serverProcess{url: url, cmd: cmd, c: c}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// procStatusKiB reads a "Vm…:  N kB" line of /proc/PID/status.
func procStatusKiB(pid int, field string) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// writeGaussianNPY writes a seeded standard Gaussian float32 matrix as .npy.
func writeGaussianNPY(b *testing.B, path string, m, n int, seed uint64) {
	b.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	t := &tensorio.Tensor{DType: tensorio.F32, Shape: []int{m, n}, F32: make([]float32, m*n)}
	for i := range t.F32 {
		t.F32[i] = float32(rng.NormFloat64())
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	if err := tensorio.WriteNPY(w, t); err != nil {
		b.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
}

// waitJob polls a job every interval until it ends.
func waitJob(ctx context.Context, c *client.ClientWithResponses, id string, interval time.Duration) (*client.Job, error) {
	for {
		r, err := c.GetJobWithResponse(ctx, id)
		if err != nil {
			return nil, err
		}
		if r.JSON200 == nil {
			return nil, fmt.Errorf("get job: %d %s", r.StatusCode(), r.Body)
		}
		switch r.JSON200.Status {
		case client.JobStatusSucceeded, client.JobStatusFailed, client.JobStatusCanceled:
			return r.JSON200, nil
		}
		time.Sleep(interval)
	}
}

// BenchmarkServiceOverhead is the service's cost around the kernel for a
// 4096×4096 float32 .npy (64 MiB): upload + submit + poll + download of the
// factor bundle, minus the job's compute time; and the server's peak RSS
// (VmHWM) over the whole run, against the target 4 × input + 100 MiB.
// Each iteration is one round trip; the median is reported.
//
//	go test -tags openblas -run '^$' -bench ServiceOverhead -benchtime 5x ./bench/
func BenchmarkServiceOverhead(b *testing.B) {
	const m, n, rank = 4096, 4096, 64
	s := startServerProcess(b)
	path := filepath.Join(b.TempDir(), "w.npy")
	writeGaussianNPY(b, path, m, n, 1)
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var overhead, upload, compute, load, write []float64
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		up, err := s.c.CreateTensorWithBodyWithResponse(ctx, nil, "application/octet-stream", f)
		f.Close()
		if err != nil || up.JSON201 == nil {
			b.Fatalf("upload: %v %s", err, up.Body)
		}
		tUp := time.Since(start)
		jr, err := s.c.CreateJobWithResponse(ctx, client.JobRequest{Method: client.MethodSvd, TensorId: &up.JSON201.Id,
			Params: &map[string]any{"rank": rank, "algorithm": "randomized"}})
		if err != nil || jr.JSON202 == nil {
			b.Fatalf("submit: %v %s", err, jr.Body)
		}
		j, err := waitJob(ctx, s.c, jr.JSON202.Id, 2*time.Millisecond)
		if err != nil || j.Status != client.JobStatusSucceeded {
			b.Fatalf("job: %v %+v", err, j)
		}
		fr, err := s.c.GetFactorsWithResponse(ctx, j.Id, nil)
		if err != nil || fr.StatusCode() != http.StatusOK || len(fr.Body) < (m+n)*rank*4 {
			b.Fatalf("download: %v %d, %d bytes", err, fr.StatusCode(), len(fr.Body))
		}
		total := time.Since(start).Seconds()
		overhead = append(overhead, total-j.Timings["compute"])
		upload = append(upload, tUp.Seconds())
		compute = append(compute, j.Timings["compute"])
		load = append(load, j.Timings["load"])
		write = append(write, j.Timings["write"])
	}
	b.StopTimer()
	hwm, err := procStatusKiB(s.cmd.Process.Pid, "VmHWM")
	if err != nil {
		b.Fatal(err)
	}
	input := float64(st.Size()) / (1 << 20)
	b.ReportMetric(median(overhead), "overhead-s")
	b.ReportMetric(median(upload), "upload-s")
	b.ReportMetric(median(load), "load-s")
	b.ReportMetric(median(compute), "compute-s")
	b.ReportMetric(median(write), "write-s")
	b.ReportMetric(float64(hwm)/1024, "peakRSS-MiB")
	b.ReportMetric(4*input+100, "rssBudget-MiB")
	b.Logf("%d×%d float32 (%.0f MiB), svd rank %d randomized, %d rounds: median overhead %.3f s (target ≤ 0.3 s), upload %.3f s, load %.3f s, compute %.3f s, write %.3f s; server peak RSS %.0f MiB (budget %.0f MiB)",
		m, n, input, rank, b.N, median(overhead), median(upload), median(load), median(compute), median(write), float64(hwm)/1024, 4*input+100)
}

// BenchmarkServiceSmallJobs is the end-to-end rate of small jobs: 8 clients,
// each submitting an svd (rank 8) of one uploaded 64×64 float32 tensor and
// polling it to completion, on the embedded default (SQLite + local files).
// Target ≥ 150 jobs/s.
//
//	go test -tags openblas -run '^$' -bench ServiceSmallJobs -benchtime 400x ./bench/
func BenchmarkServiceSmallJobs(b *testing.B) {
	const clients = 8
	s := startServerProcess(b, "--queue-capacity", "100000")
	path := filepath.Join(b.TempDir(), "small.npy")
	writeGaussianNPY(b, path, 64, 64, 2)
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	up, err := s.c.CreateTensorWithBodyWithResponse(ctx, nil, "application/octet-stream", f)
	f.Close()
	if err != nil || up.JSON201 == nil {
		b.Fatalf("upload: %v", err)
	}
	req := client.JobRequest{Method: client.MethodSvd, TensorId: &up.JSON201.Id, Params: &map[string]any{"rank": 8}}
	var next, failed int64
	var mu sync.Mutex
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if next >= int64(b.N) {
					mu.Unlock()
					return
				}
				next++
				mu.Unlock()
				jr, err := s.c.CreateJobWithResponse(ctx, req)
				ok := err == nil && jr.JSON202 != nil
				if ok {
					j, err := waitJob(ctx, s.c, jr.JSON202.Id, time.Millisecond)
					ok = err == nil && j.Status == client.JobStatusSucceeded
				}
				if !ok {
					mu.Lock()
					failed++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	if failed > 0 {
		b.Fatalf("%d of %d jobs did not succeed", failed, b.N)
	}
	b.ReportMetric(float64(b.N)/el.Seconds(), "jobs/s")
	b.Logf("%d svd jobs on 64×64 float32 from %d clients: %.0f jobs/s (target ≥ 150)", b.N, clients, float64(b.N)/el.Seconds())
}
