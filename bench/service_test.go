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
	"runtime"
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

// procCPUSeconds is a process's user + system CPU time from /proc/PID/stat.
func procCPUSeconds(pid int) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may hold spaces) start at the
	// state, field 3; utime and stime are fields 14 and 15, in clock ticks
	// (100 a second on Linux).
	_, rest, ok := strings.Cut(string(data), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected layout", pid)
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, f[11], f[12])
	}
	return (ut + st) / 100, nil
}

// BenchmarkServiceCompression is issue 8's performance case through the
// service on its embedded default (SQLite + local files, default workers):
// the 50-layer checkpoint of BenchmarkCompressCheckpoint (25 Linear
// 1024×4096, 25 Conv2d (256, 256, 3, 3), 459 MB of float32) compressed at a
// global budget of 40 % of the selected parameters, its layers as sub-jobs
// on the worker pool. It reports the time from submission to success (the
// upload apart), the server's peak RSS, its CPU utilisation (CPU time /
// (wall × cores)) and the total error.
//
//	go test -tags openblas -run '^$' -bench ServiceCompression -benchtime 1x -timeout 30m ./bench/
func BenchmarkServiceCompression(b *testing.B) {
	dir := b.TempDir()
	src := filepath.Join(dir, "model.safetensors")
	writeCheckpoint(b, src)
	s := startServerProcess(b)
	ctx := context.Background()
	f, err := os.Open(src)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	up, err := s.c.CreateTensorWithBodyWithResponse(ctx, nil, "application/octet-stream", f)
	f.Close()
	if err != nil || up.JSON201 == nil {
		b.Fatalf("upload: %v %s", err, up.Body)
	}
	upload := time.Since(start)
	cores := runtime.GOMAXPROCS(0)
	pid := s.cmd.Process.Pid
	budget := 0.4
	for range b.N {
		cpu0, err := procCPUSeconds(pid)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		cr, err := s.c.CreateCompressionWithResponse(ctx, client.CompressionRequest{TensorId: up.JSON201.Id,
			Policy: client.CompressionPolicy{Budget: &budget, InputSize: &[]int{32, 32}, Seed: ptrTo(int64(1))}})
		if err != nil || cr.JSON202 == nil {
			b.Fatalf("submit: %v %s", err, cr.Body)
		}
		var c *client.Compression
		for {
			r, err := s.c.GetCompressionWithResponse(ctx, cr.JSON202.Id)
			if err != nil || r.JSON200 == nil {
				b.Fatalf("get: %v", err)
			}
			if c = r.JSON200; c.Status != client.JobStatusQueued && c.Status != client.JobStatusRunning {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		wall := time.Since(start).Seconds()
		if c.Status != client.JobStatusSucceeded || c.Totals == nil {
			b.Fatalf("compression %s: %+v", c.Status, c.Error)
		}
		cpu1, err := procCPUSeconds(pid)
		if err != nil {
			b.Fatal(err)
		}
		hwm, err := procStatusKiB(pid, "VmHWM")
		if err != nil {
			b.Fatal(err)
		}
		t := c.Totals
		kept := float64(t.ParamsSelectedAfter) / float64(t.ParamsSelectedBefore)
		b.ReportMetric(wall, "s/run")
		b.ReportMetric(t.GlobalRelError, "global-rel-err")
		b.ReportMetric(kept, "params-kept")
		b.ReportMetric(float64(hwm)/1024, "serverPeakRSS-MiB")
		b.ReportMetric((cpu1-cpu0)/(wall*float64(cores)), "cpu-util")
		b.Logf("50 layers, budget 40%%: %.1f s (upload %.1f s before), params kept %.3f, global rel. error %.4f, server peak RSS %.0f MiB, CPU utilisation %.2f of %d cores",
			wall, upload.Seconds(), kept, t.GlobalRelError, float64(hwm)/1024, (cpu1-cpu0)/(wall*float64(cores)), cores)
		// Free the slot for the next round's outputs.
		if _, err := s.c.DeleteCompressionWithResponse(ctx, c.Id); err != nil {
			b.Fatal(err)
		}
	}
}

func ptrTo[T any](v T) *T { return &v }
