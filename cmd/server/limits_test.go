package main

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lowrank/lowrank/client"
)

func TestInlineAndElementLimits(t *testing.T) {
	t.Parallel()
	s := startServer(t, "", "--max-inline-elements", "10", "--max-elements", "100")
	c := s.client("")
	ir, err := c.GetInfoWithResponse(ctx)
	if err != nil || ir.JSON200 == nil {
		t.Fatal(err)
	}
	if l := ir.JSON200.Limits; l.MaxInlineElements == nil || *l.MaxInlineElements != 10 || l.MaxElements != 100 {
		t.Errorf("info limits %+v", l)
	}
	inline := func(m, n int) *client.InlineTensor {
		return &client.InlineTensor{Shape: []int{m, n}, Data: make([]float64, m*n)}
	}
	j := mustSubmit(t, c, client.JobRequest{Method: client.MethodSvd, Tensor: inline(2, 5), Params: &map[string]any{"rank": 1}})
	poll(t, c, j.Id, 30*time.Second)
	jr := submit(t, c, client.JobRequest{Method: client.MethodSvd, Tensor: inline(3, 4), Params: &map[string]any{"rank": 1}})
	wantProblem(t, "inline over max-inline-elements", jr.StatusCode(), jr.HTTPResponse.Header, jr.Body, "too_large", "tensor")
	if jr.StatusCode() != http.StatusRequestEntityTooLarge {
		t.Errorf("inline over the limit: %d, want 413", jr.StatusCode())
	}
	// A body far beyond what 10 inline elements need is cut off unread.
	body := `{"method":"svd","tensor":{"shape":[1,1],"data":[` + strings.Repeat("0,", 200_000) + `0]}}`
	hr, err := c.CreateJobWithBodyWithResponse(ctx, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	wantProblem(t, "job body over its limit", hr.StatusCode(), hr.HTTPResponse.Header, hr.Body, "too_large", "body")
	// An uploaded tensor over max-elements is refused at upload.
	r := upload(t, c, npyBytes(t, randTensor("", []int{11, 10}, 1, false)), nil)
	wantProblem(t, "upload over max-elements", r.StatusCode(), r.HTTPResponse.Header, r.Body, "too_large", "file")
	mustUpload(t, c, npyBytes(t, randTensor("", []int{10, 10}, 1, false)), nil)
}

func TestConcurrentUploadLimit(t *testing.T) {
	t.Parallel()
	s := startServer(t, "", "--max-concurrent-uploads", "1")
	c := s.client("")
	data := npyBytes(t, randTensor("", []int{64, 64}, 3, false))
	small := npyBytes(t, randTensor("", []int{2, 2}, 4, false))
	type result struct {
		r   *client.CreateTensorResponse
		err error
	}
	// stall starts an upload that sends half of data and waits, meant to
	// hold the only slot.
	stall := func() (*io.PipeWriter, chan result) {
		pr, pw := io.Pipe()
		done := make(chan result, 1)
		go func() {
			r, err := c.CreateTensorWithBodyWithResponse(ctx, &client.CreateTensorParams{}, "application/octet-stream", pr)
			done <- result{r, err}
		}()
		if _, err := pw.Write(data[:len(data)/2]); err != nil {
			t.Fatal(err)
		}
		return pw, done
	}
	// The server has the stalled upload once the write above returned, but
	// its handler may not have taken the slot yet, so a small upload sent
	// at once may pass, or take the slot first and get the stalled one
	// refused (whose 429 then waits behind its unread body: net/http reads
	// what is left of a body before it replies). So each attempt waits a
	// little longer before the small upload, and a stall that did not hold
	// the slot is ended and started again.
	var (
		pw    *io.PipeWriter
		first chan result
	)
	for attempt := 1; ; attempt++ {
		pw, first = stall()
		time.Sleep(time.Duration(attempt) * 50 * time.Millisecond)
		r := upload(t, c, small, nil)
		if r.StatusCode() == http.StatusTooManyRequests {
			wantProblem(t, "upload beyond the limit", r.StatusCode(), r.HTTPResponse.Header, r.Body, "overloaded", "")
			if r.HTTPResponse.Header.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
			break
		}
		if r.StatusCode() != http.StatusCreated {
			t.Fatalf("small upload: %d %s", r.StatusCode(), r.Body)
		}
		pw.CloseWithError(io.ErrUnexpectedEOF)
		<-first
		if attempt == 10 {
			t.Fatal("a second upload was never refused")
		}
	}
	if _, err := pw.Write(data[len(data)/2:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if res := <-first; res.err != nil || res.r.StatusCode() != http.StatusCreated {
		t.Fatalf("stalled upload: %v %v", res.r, res.err)
	}
	// The slot is free again.
	mustUpload(t, c, small, nil)
}

func TestMetricsAddr(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s := startServer(t, "", "--metrics-addr", addr)
	get := func(url string) (int, string) {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get(s.url + "/metrics"); code != http.StatusNotFound {
		t.Errorf("main port /metrics: %d, want 404 when --metrics-addr is set", code)
	}
	code, body := get("http://" + addr + "/metrics")
	if code != http.StatusOK || !strings.Contains(body, "lowrank_jobs_queued 0") || !strings.Contains(body, "lowrank_build_info{") {
		t.Errorf("metrics port: %d\n%s", code, grepLines(body, "lowrank_"))
	}
	// The API is still on the main port.
	if r, err := s.client("").GetInfoWithResponse(ctx); err != nil || r.StatusCode() != http.StatusOK {
		t.Errorf("info: %v", err)
	}
}
