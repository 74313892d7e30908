package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// repoRoot is the main module's directory, relative to this package.
const repoRoot = ".."

// binDir holds binaries built once for the whole test run.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lowrank-deploy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var builds sync.Map // tags → *buildResult

type buildResult struct {
	once sync.Once
	path string
	err  error
}

// serverBinary builds ../cmd/server with the given build tags (once per
// run): the server cannot be imported, since its entry point is in package
// main, so the tests run it as a process, as a container would.
func serverBinary(t *testing.T, tags string) string {
	t.Helper()
	v, _ := builds.LoadOrStore(tags, &buildResult{})
	b := v.(*buildResult)
	b.once.Do(func() {
		name := "lowrank"
		if tags != "" {
			name += "-" + strings.ReplaceAll(tags, ",", "-")
		}
		b.path = filepath.Join(binDir, name)
		cmd := exec.Command("go", "build", "-buildvcs=false", "-tags", tags, "-o", b.path, "./cmd/server")
		cmd.Dir = repoRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build -tags %q ./cmd/server: %v\n%s", tags, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// serverEnv is what the server's --help says it reads: each LOWRANK_*
// variable with the default of its flag ("" when it has none).
func serverEnv(t *testing.T) map[string]string {
	t.Helper()
	helpOnce.Do(func() {
		out, err := exec.Command(serverBinary(t, ""), "--help").CombinedOutput()
		if err != nil {
			t.Fatalf("lowrank --help: %v\n%s", err, out)
		}
		helpEnv = parseHelp(t, string(out))
	})
	if helpEnv == nil {
		t.Fatal("lowrank --help failed in an earlier test")
	}
	return helpEnv
}

var (
	helpOnce sync.Once
	helpEnv  map[string]string
)

var (
	envRe     = regexp.MustCompile(`\(env (LOWRANK_[A-Z0-9_]+)[,)]`)
	defaultRe = regexp.MustCompile(`\(default "?([^")]*)"?\)\s*$`)
)

// parseHelp reads Go's flag.PrintDefaults layout: each usage line names its
// variable as "(env LOWRANK_X)" and ends with its default, if any.
func parseHelp(t *testing.T, help string) map[string]string {
	t.Helper()
	env := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(help))
	for sc.Scan() {
		m := envRe.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		def := ""
		if d := defaultRe.FindStringSubmatch(sc.Text()); d != nil {
			def = d[1]
		}
		env[m[1]] = def
	}
	if len(env) < 5 {
		t.Fatalf("lowrank --help names only %d LOWRANK_* variables; has its layout changed?\n%s", len(env), help)
	}
	return env
}

// testServer is a running server process on a loopback port.
type testServer struct {
	URL    string
	APIKey string
	stderr *lockedWriter
}

// startServer runs the server with env (on top of a clean environment) and
// a temporary data directory, on 127.0.0.1 with a port of its choosing,
// and waits until it says where it listens. It is stopped with SIGTERM
// when the test ends.
func startServer(t *testing.T, env map[string]string) *testServer {
	t.Helper()
	return startBinary(t, serverBinary(t, ""), env)
}

// startBinary is startServer for a given server binary.
func startBinary(t *testing.T, bin string, env map[string]string) *testServer {
	t.Helper()
	dir := t.TempDir()
	key := "deploy-test-key"
	keys := filepath.Join(dir, "api-keys")
	if err := os.WriteFile(keys, []byte("# test key\n"+key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LOWRANK_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	// Whatever the manifests say, the test process owns where the server
	// listens and writes.
	cmd.Env = append(cmd.Env,
		"LOWRANK_ADDR=127.0.0.1:0",
		"LOWRANK_DATA_DIR="+filepath.Join(dir, "data"),
		"LOWRANK_API_KEYS_FILE="+keys,
		"LOWRANK_LOG_LEVEL=warn",
	)
	ts := &testServer{APIKey: key, stderr: &lockedWriter{}}
	cmd.Stderr = ts.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("server did not stop within 20s of SIGTERM")
		}
	})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "lowrank listening on "); ok {
				addr <- a
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case ts.URL = <-addr:
	case err := <-done:
		t.Fatalf("server exited before listening: %v\n%s", err, ts.stderr)
	case <-time.After(60 * time.Second):
		t.Fatalf("server did not listen within 60s\n%s", ts.stderr)
	}
	return ts
}

// lockedWriter collects the server's log while it runs.
type lockedWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// do sends a request with the test's API key and returns the status and body.
func (ts *testServer) do(t *testing.T, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, ts.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+ts.APIKey)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp.StatusCode, b
}

// runJob submits a small inline SVD and waits for it to succeed, so the
// job metrics have series.
func (ts *testServer) runJob(t *testing.T) {
	t.Helper()
	req := map[string]any{
		"method": "svd",
		"tensor": map[string]any{"shape": []int{4, 3}, "data": []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13}},
		"params": map[string]any{"rank": 1},
	}
	code, body := ts.do(t, http.MethodPost, "/v1/jobs", req)
	if code != http.StatusAccepted {
		t.Fatalf("POST /v1/jobs: %d %s", code, body)
	}
	var job struct{ ID, Status string }
	if err := json.Unmarshal(body, &job); err != nil || job.ID == "" {
		t.Fatalf("POST /v1/jobs: no job id in %s (%v)", body, err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for job.Status != "succeeded" {
		switch job.Status {
		case "failed", "canceled":
			t.Fatalf("job %s ended %s: %s", job.ID, job.Status, body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s still %s after 60s", job.ID, job.Status)
		}
		time.Sleep(50 * time.Millisecond)
		code, body = ts.do(t, http.MethodGet, "/v1/jobs/"+job.ID, nil)
		if code != http.StatusOK {
			t.Fatalf("GET /v1/jobs/%s: %d %s", job.ID, code, body)
		}
		if err := json.Unmarshal(body, &job); err != nil {
			t.Fatal(err)
		}
	}
}

// scrapeMetrics fetches /metrics and returns, for every sample name in it
// (so a histogram gives its _bucket, _sum and _count series), the label
// names its samples carry.
func (ts *testServer) scrapeMetrics(t *testing.T) map[string]map[string]bool {
	t.Helper()
	code, body := ts.do(t, http.MethodGet, "/metrics", nil)
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics: %v", err)
	}
	out := map[string]map[string]bool{}
	add := func(name string, m *dto.Metric, extra ...string) {
		if out[name] == nil {
			out[name] = map[string]bool{}
		}
		for _, l := range m.GetLabel() {
			out[name][l.GetName()] = true
		}
		for _, l := range extra {
			out[name][l] = true
		}
	}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			switch f.GetType() {
			case dto.MetricType_HISTOGRAM:
				add(name+"_bucket", m, "le")
				add(name+"_sum", m)
				add(name+"_count", m)
			case dto.MetricType_SUMMARY:
				add(name, m, "quantile")
				add(name+"_sum", m)
				add(name+"_count", m)
			default:
				add(name, m)
			}
		}
	}
	return out
}
