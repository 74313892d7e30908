package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/lowrank/lowrank/api"
	"github.com/lowrank/lowrank/client"
	"github.com/lowrank/lowrank/internal/jobs"
)

// testServer is the whole service started through run() on 127.0.0.1:0.
type testServer struct {
	t       *testing.T
	url     string
	dataDir string
	http    *http.Client // validates every response against the spec
	cancel  context.CancelFunc
	done    chan error
}

// specRouter is the OpenAPI document's router, loaded once per test binary.
var specRouter = sync.OnceValues(func() (routers.Router, error) {
	doc, err := openapi3.NewLoader().LoadFromData(api.Spec)
	if err != nil {
		return nil, err
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, err
	}
	return gorillamux.NewRouter(doc)
})

// startServer runs the server with a temp data dir (or dataDir, to
// restart on the same data) and waits until /healthz answers.
func startServer(t *testing.T, dataDir string, args ...string) *testServer {
	t.Helper()
	return startServerHooks(t, dataDir, hooks{}, args...)
}

func startServerHooks(t *testing.T, dataDir string, h hooks, args ...string) *testServer {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	s := &testServer{t: t, dataDir: dataDir, cancel: cancel, done: make(chan error, 1)}
	var logs syncBuffer
	all := append([]string{"--addr", "127.0.0.1:0", "--data-dir", dataDir, "--log-level", "warn", "--shutdown-grace", "2s"}, args...)
	go func() {
		err := runWith(ctx, all, func(string) string { return "" }, pw, &logs, h)
		pw.CloseWithError(fmt.Errorf("run returned: %v", err))
		s.done <- err
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		cancel()
		t.Fatalf("server did not start: %v\nlogs:\n%s", err, logs.String())
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "lowrank listening on ")
	if !ok {
		t.Fatalf("unexpected first line %q", line)
	}
	s.url = addr
	s.http = &http.Client{Transport: &validatingTransport{t: t, next: http.DefaultTransport}, Timeout: 60 * time.Second}
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("server logs:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := s.http.Get(s.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz not ready: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return s
}

// stop cancels run's context and waits for it to return.
func (s *testServer) stop() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	select {
	case err := <-s.done:
		if err != nil {
			s.t.Errorf("run: %v", err)
		}
	case <-time.After(30 * time.Second):
		s.t.Error("run did not return after cancel")
	}
}

// client returns the generated client, sending key as Bearer when given.
func (s *testServer) client(key string) *client.ClientWithResponses {
	s.t.Helper()
	opts := []client.ClientOption{client.WithHTTPClient(s.http)}
	if key != "" {
		opts = append(opts, client.WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
			r.Header.Set("Authorization", "Bearer "+key)
			return nil
		}))
	}
	c, err := client.NewClientWithResponses(s.url, opts...)
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

// validatingTransport checks every response against api/openapi.yaml.
type validatingTransport struct {
	t    *testing.T
	next http.RoundTripper
}

func (v *validatingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := v.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	router, err := specRouter()
	if err != nil {
		v.t.Errorf("spec: %v", err)
		return resp, nil
	}
	route, params, err := router.FindRoute(req)
	if err != nil {
		// Only routes outside the spec may miss it, and they must be 404s.
		if resp.StatusCode != http.StatusNotFound {
			v.t.Errorf("%s %s: not in the spec (%v) but answered %d", req.Method, req.URL.Path, err, resp.StatusCode)
		}
		return resp, nil
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
		},
		Status: resp.StatusCode,
		Header: resp.Header,
		Options: &openapi3filter.Options{
			IncludeResponseStatus: true,
			MultiError:            true,
		},
	}
	in.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(req.Context(), in); err != nil {
		v.t.Errorf("%s %s → %d does not match the spec: %v\nbody: %.500s", req.Method, req.URL, resp.StatusCode, err, body)
	}
	return resp, nil
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testCodec writes test inputs and reads downloaded factors.
var testCodec jobs.Codec = jobs.TensorioCodec{}

func randTensor(name string, shape []int, seed uint64, f64 bool) *jobs.Tensor {
	rng := rand.New(rand.NewPCG(seed, 99))
	t := &jobs.Tensor{Name: name, Shape: shape}
	n := t.Len()
	if f64 {
		t.DType, t.F64 = "float64", make([]float64, n)
		for i := range t.F64 {
			t.F64[i] = rng.NormFloat64()
		}
	} else {
		t.DType, t.F32 = "float32", make([]float32, n)
		for i := range t.F32 {
			t.F32[i] = float32(rng.NormFloat64())
		}
	}
	return t
}

func npyBytes(t *testing.T, x *jobs.Tensor) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := testCodec.WriteNPY(&b, x); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func safetensorsBytes(t *testing.T, xs ...*jobs.Tensor) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := testCodec.WriteSafetensors(&b, xs, map[string]string{"source": "test"}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func decodeFile(t *testing.T, data []byte, name string) *jobs.Tensor {
	t.Helper()
	x, err := testCodec.ReadTensor(bytes.NewReader(data), int64(len(data)), name)
	if err != nil {
		t.Fatalf("decode %s: %v", name, err)
	}
	return x
}

func f64s(x *jobs.Tensor) []float64 {
	if x.F64 != nil {
		return x.F64
	}
	out := make([]float64, len(x.F32))
	for i, v := range x.F32 {
		out[i] = float64(v)
	}
	return out
}
