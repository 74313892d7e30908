package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lowrank/lowrank/client"
	"github.com/lowrank/lowrank/internal/jobs"
	"github.com/lowrank/lowrank/internal/jobs/jobstest"
)

var ctx = context.Background()

// tolF32 is how closely a float32 job's reported rel_error matches the
// residual: rel_error is sqrt(‖A‖² − ΣS²)/‖A‖, whose cancellation limits
// it to about sqrt(u₃₂) ≈ 3.5e-4 absolute.
const tolF32 = 5e-4

// pollInterval is how often tests poll a job.
var pollInterval = 10 * time.Millisecond

func ptr[T any](v T) *T { return &v }

// upload posts raw bytes as a tensor file.
func upload(t *testing.T, c *client.ClientWithResponses, data []byte, params *client.CreateTensorParams) *client.CreateTensorResponse {
	t.Helper()
	if params == nil {
		params = &client.CreateTensorParams{}
	}
	resp, err := c.CreateTensorWithBodyWithResponse(ctx, params, "application/octet-stream", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func mustUpload(t *testing.T, c *client.ClientWithResponses, data []byte, params *client.CreateTensorParams) *client.Tensor {
	t.Helper()
	resp := upload(t, c, data, params)
	if resp.StatusCode() != http.StatusCreated || resp.JSON201 == nil {
		t.Fatalf("upload: %d %s", resp.StatusCode(), resp.Body)
	}
	if loc := resp.HTTPResponse.Header.Get("Location"); loc != "/v1/tensors/"+resp.JSON201.Id {
		t.Errorf("Location %q", loc)
	}
	return resp.JSON201
}

func submit(t *testing.T, c *client.ClientWithResponses, req client.JobRequest) *client.CreateJobResponse {
	t.Helper()
	resp, err := c.CreateJobWithResponse(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func mustSubmit(t *testing.T, c *client.ClientWithResponses, req client.JobRequest) *client.Job {
	t.Helper()
	resp := submit(t, c, req)
	if resp.StatusCode() != http.StatusAccepted || resp.JSON202 == nil {
		t.Fatalf("submit: %d %s", resp.StatusCode(), resp.Body)
	}
	return resp.JSON202
}

// poll waits for the job to reach a final status.
func poll(t *testing.T, c *client.ClientWithResponses, id string, timeout time.Duration) *client.Job {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		resp, err := c.GetJobWithResponse(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if resp.JSON200 == nil {
			t.Fatalf("get job: %d %s", resp.StatusCode(), resp.Body)
		}
		switch resp.JSON200.Status {
		case client.JobStatusSucceeded, client.JobStatusFailed, client.JobStatusCanceled:
			return resp.JSON200
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s still %s after %s", id, resp.JSON200.Status, timeout)
		}
		time.Sleep(pollInterval)
	}
}

// wantProblem checks a problem+json answer: its status, code and the field
// it names ("" for none).
func wantProblem(t *testing.T, what string, status int, header http.Header, body []byte, code, field string) {
	t.Helper()
	if ct := header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("%s: Content-Type %q, want application/problem+json (status %d, body %s)", what, ct, status, body)
		return
	}
	var p struct {
		Status int    `json:"status"`
		Code   string `json:"code"`
		Errors []struct {
			Field string `json:"field"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	if p.Code != code || p.Status != status {
		t.Errorf("%s: status %d code %q, want code %q (body %s)", what, p.Status, p.Code, code, body)
	}
	got := ""
	if len(p.Errors) > 0 {
		got = p.Errors[0].Field
	}
	if got != field {
		t.Errorf("%s: field %q, want %q (body %s)", what, got, field, body)
	}
}

func getFactor(t *testing.T, c *client.ClientWithResponses, jobID, name string) []byte {
	t.Helper()
	resp, err := c.GetFactorWithResponse(ctx, jobID, name, &client.GetFactorParams{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != http.StatusOK {
		t.Fatalf("factor %s: %d %s", name, resp.StatusCode(), resp.Body)
	}
	if cl := resp.HTTPResponse.Header.Get("Content-Length"); cl != fmt.Sprint(len(resp.Body)) {
		t.Errorf("factor %s: Content-Length %s for %d bytes", name, cl, len(resp.Body))
	}
	return resp.Body
}

// checkSVD downloads U, S, Vt of a succeeded svd job on input a (m×n) and
// checks ‖A − U·diag(S)·Vt‖_F / ‖A‖_F against the reported rel_error.
func checkSVD(t *testing.T, c *client.ClientWithResponses, j *client.Job, a []float64, m, n int, tol float64) {
	t.Helper()
	if j.Status != client.JobStatusSucceeded || j.Result == nil {
		t.Fatalf("job %s: %s %+v", j.Id, j.Status, j.Error)
	}
	r := j.Result.Ranks[0]
	u := f64s(decodeFile(t, getFactor(t, c, j.Id, "U"), ""))
	s := f64s(decodeFile(t, getFactor(t, c, j.Id, "S"), ""))
	vt := f64s(decodeFile(t, getFactor(t, c, j.Id, "Vt"), ""))
	if len(u) != m*r || len(s) != r || len(vt) != r*n {
		t.Fatalf("factor sizes %d %d %d for %dx%d rank %d", len(u), len(s), len(vt), m, n, r)
	}
	for i := 1; i < r; i++ {
		if s[i] > s[i-1] {
			t.Fatalf("S not decreasing: %v", s)
		}
	}
	var res, norm float64
	for i := range m {
		for k := range n {
			var v float64
			for l := range r {
				v += u[i*r+l] * s[l] * vt[l*n+k]
			}
			d := a[i*n+k] - v
			res += d * d
			norm += a[i*n+k] * a[i*n+k]
		}
	}
	got := math.Sqrt(res / norm)
	if math.Abs(got-j.Result.RelError) > tol {
		t.Errorf("job %s rank %d: residual %.6g, reported rel_error %.6g (tol %g)", j.Id, r, got, j.Result.RelError, tol)
	}
}

func TestEndToEndSVD(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	c := s.client("")
	const m, n = 48, 32
	a := randTensor("", []int{m, n}, 1, false)
	tn := mustUpload(t, c, npyBytes(t, a), &client.CreateTensorParams{Name: ptr("layer0.weight")})
	if tn.Format != client.TensorFormatNpy || len(tn.Tensors) != 1 || tn.Tensors[0].Name != "layer0.weight" ||
		tn.Tensors[0].Dtype != "float32" || fmt.Sprint(tn.Tensors[0].Shape) != "[48 32]" || len(tn.Sha256) != 64 {
		t.Fatalf("tensor %+v", tn)
	}
	const tol = tolF32
	for _, tc := range []struct {
		params map[string]any
		check  func(r client.Result) string
	}{
		{map[string]any{"rank": 5}, func(r client.Result) string {
			if r.Ranks[0] != 5 {
				return "rank"
			}
			return ""
		}},
		{map[string]any{"energy": 0.8}, func(r client.Result) string {
			if e := (*r.Extras)["retained_energy"].(float64); e < 0.8-1e-6 {
				return fmt.Sprintf("retained %g < 0.8", e)
			}
			return ""
		}},
		{map[string]any{"rel_error": 0.5}, func(r client.Result) string {
			if r.RelError > 0.5+1e-6 {
				return fmt.Sprintf("rel_error %g > 0.5", r.RelError)
			}
			return ""
		}},
		{map[string]any{"compression": 0.5}, func(r client.Result) string {
			if float64(r.ParamsFactors) > 0.5*float64(r.ParamsOriginal) || r.ParamsFactors != int64(r.Ranks[0]*(m+n+1)) {
				return fmt.Sprintf("params %d of %d", r.ParamsFactors, r.ParamsOriginal)
			}
			return ""
		}},
		{map[string]any{"rank": 5, "rank_multiple": 8}, func(r client.Result) string {
			if r.Ranks[0] != 8 {
				return "rank_multiple"
			}
			return ""
		}},
	} {
		params := tc.params
		j := mustSubmit(t, c, client.JobRequest{Method: client.MethodSvd, TensorId: &tn.Id, Params: &params})
		if j.Status != client.JobStatusQueued || j.Params["precision"] != "float32" || j.Params["algorithm"] != "auto" {
			t.Errorf("submitted job %+v", j)
		}
		done := poll(t, c, j.Id, 30*time.Second)
		if done.Status != client.JobStatusSucceeded {
			t.Fatalf("%v: %s %+v", tc.params, done.Status, done.Error)
		}
		if msg := tc.check(*done.Result); msg != "" {
			t.Errorf("%v: %s (result %+v)", tc.params, msg, *done.Result)
		}
		if done.StartedAt == nil || done.FinishedAt == nil || done.Progress.Fraction != 1 || done.Timings["compute"] < 0 {
			t.Errorf("%v: timestamps/progress %+v", tc.params, done)
		}
		checkSVD(t, c, done, f64s(a), m, n, tol)
	}

	// float64 inline input, computed in float64: tight residual.
	b := randTensor("", []int{7, 5}, 2, true)
	j := mustSubmit(t, c, client.JobRequest{Method: client.MethodSvd, Tensor: &client.InlineTensor{Shape: b.Shape, Data: b.F64},
		Params: &map[string]any{"rank": 3}})
	done := poll(t, c, j.Id, 30*time.Second)
	checkSVD(t, c, done, b.F64, 7, 5, 1e-12)
	if done.Result.Factors[0].Dtype != "float64" || !strings.HasSuffix(done.Result.Factors[0].Url, "/factors/U") {
		t.Errorf("factors %+v", done.Result.Factors)
	}

	// The bundle: all factors and metadata, with Range and ETag.
	br, err := c.GetFactorsWithResponse(ctx, done.Id, &client.GetFactorsParams{})
	if err != nil || br.StatusCode() != http.StatusOK {
		t.Fatalf("bundle: %v %d", err, br.StatusCode())
	}
	bundle := br.Body
	for _, name := range []string{"U", "S", "Vt"} {
		decodeFile(t, bundle, name)
	}
	if !bytes.Contains(bundle, []byte(`"method":"svd"`)) || !bytes.Contains(bundle, []byte("lowrank_version")) {
		t.Errorf("bundle metadata missing: %.400q", bundle)
	}
	etag := br.HTTPResponse.Header.Get("ETag")
	req, _ := http.NewRequest(http.MethodGet, s.url+"/v1/jobs/"+done.Id+"/factors", nil)
	req.Header.Set("Range", "bytes=8-15")
	resp, err := s.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(part, bundle[8:16]) {
		t.Errorf("range: %d %q, want 206 %q", resp.StatusCode, part, bundle[8:16])
	}
	req.Header.Del("Range")
	req.Header.Set("If-None-Match", etag)
	resp, err = s.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: %d, want 304", resp.StatusCode)
	}
	// A small factor as JSON.
	fr, err := c.GetFactorWithResponse(ctx, done.Id, "S", &client.GetFactorParams{Format: ptr(client.GetFactorParamsFormatJson)})
	if err != nil || fr.JSON200 == nil || len(fr.JSON200.Data) != 3 {
		t.Fatalf("S as JSON: %v %d %s", err, fr.StatusCode(), fr.Body)
	}

	// Listing, filters and paging.
	lr, err := c.ListJobsWithResponse(ctx, &client.ListJobsParams{Method: ptr(client.MethodSvd), Status: ptr(client.JobStatusSucceeded), Limit: ptr(4)})
	if err != nil || lr.JSON200 == nil || len(lr.JSON200.Items) != 4 || lr.JSON200.NextCursor == nil {
		t.Fatalf("list page 1: %v %s", err, lr.Body)
	}
	lr2, err := c.ListJobsWithResponse(ctx, &client.ListJobsParams{Cursor: lr.JSON200.NextCursor, Limit: ptr(4)})
	if err != nil || lr2.JSON200 == nil || len(lr2.JSON200.Items) != 2 || lr2.JSON200.NextCursor != nil {
		t.Fatalf("list page 2: %v %s", err, lr2.Body)
	}
	if lr2.JSON200.Items[0].Id >= lr.JSON200.Items[3].Id {
		t.Errorf("pages overlap or are out of order")
	}

	// Deleting a finished job removes it and its factors.
	dr, err := c.DeleteJobWithResponse(ctx, done.Id)
	if err != nil || dr.StatusCode() != http.StatusNoContent {
		t.Fatalf("delete finished: %v %d", err, dr.StatusCode())
	}
	if gr, _ := c.GetJobWithResponse(ctx, done.Id); gr.StatusCode() != http.StatusNotFound {
		t.Errorf("deleted job: %d", gr.StatusCode())
	}
	// Deleting a tensor.
	if r, _ := c.DeleteTensorWithResponse(ctx, tn.Id); r.StatusCode() != http.StatusNoContent {
		t.Errorf("delete tensor: %d", r.StatusCode())
	}
	if r, _ := c.GetTensorWithResponse(ctx, tn.Id); r.StatusCode() != http.StatusNotFound {
		t.Errorf("deleted tensor: %d", r.StatusCode())
	}
}

func multipartBody(t *testing.T, field, filename string, data []byte) (string, []byte) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	_ = mw.WriteField("note", "ignored")
	fw, err := mw.CreateFormFile(field, filename)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(data)
	mw.Close()
	return mw.FormDataContentType(), b.Bytes()
}

func TestUploadFormats(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	c := s.client("")
	w := randTensor("model.layers.0.weight", []int{6, 4}, 3, false)
	bias := randTensor("model.layers.0.bias", []int{6}, 4, false)
	st := safetensorsBytes(t, w, bias)
	ct, body := multipartBody(t, "file", "model.safetensors", st)
	resp, err := c.CreateTensorWithBodyWithResponse(ctx, &client.CreateTensorParams{}, ct, bytes.NewReader(body))
	if err != nil || resp.JSON201 == nil {
		t.Fatalf("multipart safetensors: %v %d %s", err, resp.StatusCode(), resp.Body)
	}
	tn := resp.JSON201
	if tn.Format != client.TensorFormatSafetensors || len(tn.Tensors) != 2 || tn.Bytes != int64(len(st)) {
		t.Fatalf("safetensors upload %+v", tn)
	}
	// Several tensors: the job must name one.
	jr := submit(t, c, client.JobRequest{Method: client.MethodSvd, TensorId: &tn.Id, Params: &map[string]any{"rank": 2}})
	wantProblem(t, "no tensor_name", jr.StatusCode(), jr.HTTPResponse.Header, jr.Body, "invalid", "tensor_name")
	jr = submit(t, c, client.JobRequest{Method: client.MethodSvd, TensorId: &tn.Id, TensorName: ptr("nope"), Params: &map[string]any{"rank": 2}})
	wantProblem(t, "unknown tensor_name", jr.StatusCode(), jr.HTTPResponse.Header, jr.Body, "not_found", "tensor_name")
	j := mustSubmit(t, c, client.JobRequest{Method: client.MethodSvd, TensorId: &tn.Id, TensorName: &w.Name, Params: &map[string]any{"rank": 4}})
	done := poll(t, c, j.Id, 30*time.Second)
	checkSVD(t, c, done, f64s(w), 6, 4, tolF32)
	// A 1-D tensor cannot be an SVD input.
	jr = submit(t, c, client.JobRequest{Method: client.MethodSvd, TensorId: &tn.Id, TensorName: &bias.Name, Params: &map[string]any{"rank": 1}})
	wantProblem(t, "1-D svd", jr.StatusCode(), jr.HTTPResponse.Header, jr.Body, "invalid", "tensor")

	// .npy named after the multipart file.
	ct, body = multipartBody(t, "file", "proj.npy", npyBytes(t, randTensor("", []int{3, 3}, 5, true)))
	resp, err = c.CreateTensorWithBodyWithResponse(ctx, &client.CreateTensorParams{Format: ptr(client.CreateTensorParamsFormatNpy)}, ct, bytes.NewReader(body))
	if err != nil || resp.JSON201 == nil || resp.JSON201.Tensors[0].Name != "proj" || resp.JSON201.Tensors[0].Dtype != "float64" {
		t.Fatalf("multipart npy: %v %s", err, resp.Body)
	}
	// A format that does not match the content.
	r := upload(t, c, st, &client.CreateTensorParams{Format: ptr(client.CreateTensorParamsFormatNpy)})
	wantProblem(t, "format mismatch", r.StatusCode(), r.HTTPResponse.Header, r.Body, "invalid", "format")

	// .npz with two arrays.
	var npz bytes.Buffer
	if err := testCodec.WriteNPZ(&npz, []*jobs.Tensor{w, bias}); err != nil {
		t.Fatal(err)
	}
	z := mustUpload(t, c, npz.Bytes(), &client.CreateTensorParams{Format: ptr(client.CreateTensorParamsFormatNpz)})
	if z.Format != client.TensorFormatNpz || len(z.Tensors) != 2 {
		t.Fatalf("npz upload %+v", z)
	}
	j = mustSubmit(t, c, client.JobRequest{Method: client.MethodSvd, TensorId: &z.Id, TensorName: &w.Name, Params: &map[string]any{"rank": 2}})
	checkSVD(t, c, poll(t, c, j.Id, 30*time.Second), f64s(w), 6, 4, tolF32)

	// Listing.
	lr, err := c.ListTensorsWithResponse(ctx, &client.ListTensorsParams{Limit: ptr(1)})
	if err != nil || lr.JSON200 == nil || len(lr.JSON200.Items) != 1 || lr.JSON200.NextCursor == nil {
		t.Fatalf("list tensors: %v %s", err, lr.Body)
	}
	lr, err = c.ListTensorsWithResponse(ctx, &client.ListTensorsParams{PageToken: lr.JSON200.NextCursor, Limit: ptr(10)})
	if err != nil || lr.JSON200 == nil || len(lr.JSON200.Items) != 2 || lr.JSON200.Items[1].Id != tn.Id {
		t.Fatalf("list tensors page 2: %v %s", err, lr.Body)
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	c := s.client("")
	good := npyBytes(t, randTensor("", []int{4, 3}, 6, false))
	for _, tc := range []struct {
		name  string
		data  []byte
		code  string
		field string
	}{
		{"empty", nil, "invalid", "file"},
		{"garbage", []byte("this is not a tensor file at all"), "unsupported", "file"},
		{"truncated npy", good[:len(good)-5], "invalid", "file"},
		{"pickle", []byte("\x80\x04\x95 pickled torch"), "unsupported", "file"},
	} {
		r := upload(t, c, tc.data, nil)
		wantProblem(t, tc.name, r.StatusCode(), r.HTTPResponse.Header, r.Body, tc.code, tc.field)
	}
	tn := mustUpload(t, c, good, nil)
	for _, tc := range []struct {
		name   string
		body   string
		status int
		code   string
		field  string
	}{
		{"rank too big", `{"tensor_id":"` + tn.Id + `","method":"svd","params":{"rank":4}}`, 422, "invalid", "params.rank"},
		{"rank negative", `{"tensor_id":"` + tn.Id + `","method":"svd","params":{"rank":-2}}`, 422, "invalid", "params.rank"},
		{"two rules", `{"tensor_id":"` + tn.Id + `","method":"svd","params":{"rank":1,"energy":0.9}}`, 422, "invalid", "params.rank"},
		{"rank not int", `{"tensor_id":"` + tn.Id + `","method":"svd","params":{"rank":"x"}}`, 422, "invalid", "params.rank"},
		{"unknown param", `{"tensor_id":"` + tn.Id + `","method":"svd","params":{"rank":1,"foo":1}}`, 422, "invalid", "params.foo"},
		{"bad algorithm", `{"tensor_id":"` + tn.Id + `","method":"svd","params":{"rank":1,"algorithm":"x"}}`, 422, "invalid", "params.algorithm"},
		{"bad energy", `{"tensor_id":"` + tn.Id + `","method":"svd","params":{"energy":2}}`, 422, "invalid", "params.energy"},
		{"cp max_iter", `{"tensor_id":"` + tn.Id + `","method":"cp","params":{"rank":2,"max_iter":100000}}`, 413, "too_large", "params.max_iter"},
		{"unknown method", `{"tensor_id":"` + tn.Id + `","method":"nmf"}`, 422, "invalid", "method"},
		{"no method", `{"tensor_id":"` + tn.Id + `"}`, 422, "invalid", "method"},
		{"no tensor", `{"method":"svd","params":{"rank":1}}`, 422, "invalid", "tensor_id"},
		{"missing tensor", `{"tensor_id":"nope","method":"svd","params":{"rank":1}}`, 404, "not_found", "tensor_id"},
		{"inline mismatch", `{"method":"svd","params":{"rank":1},"tensor":{"shape":[2,2],"data":[1,2,3]}}`, 422, "invalid", "tensor.data"},
		{"not json", `{"method":`, 400, "invalid", "body"},
		{"unknown field", `{"method":"svd","bogus":1}`, 400, "invalid", "bogus"},
		{"params not object", `{"tensor_id":"` + tn.Id + `","method":"svd","params":[1]}`, 422, "invalid", "params"},
	} {
		resp, err := c.CreateJobWithBodyWithResponse(ctx, "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode() != tc.status {
			t.Errorf("%s: status %d, want %d (%s)", tc.name, resp.StatusCode(), tc.status, resp.Body)
		}
		wantProblem(t, tc.name, resp.StatusCode(), resp.HTTPResponse.Header, resp.Body, tc.code, tc.field)
	}
	// Query parameters.
	lr, _ := c.ListJobsWithResponse(ctx, &client.ListJobsParams{Limit: ptr(0)})
	wantProblem(t, "limit 0", lr.StatusCode(), lr.HTTPResponse.Header, lr.Body, "invalid", "limit")
	resp, err := s.http.Get(s.url + "/v1/jobs?limit=abc")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("limit=abc: %d", resp.StatusCode)
	}
	wantProblem(t, "limit=abc", resp.StatusCode, resp.Header, body, "invalid", "limit")
	// Unknown ids and routes.
	gr, _ := c.GetJobWithResponse(ctx, "nope")
	wantProblem(t, "unknown job", gr.StatusCode(), gr.HTTPResponse.Header, gr.Body, "not_found", "")
	fr, _ := c.GetFactorWithResponse(ctx, "nope", "U", nil)
	wantProblem(t, "unknown job factor", fr.StatusCode(), fr.HTTPResponse.Header, fr.Body, "not_found", "")
	resp, err = s.http.Get(s.url + "/v2/nothing")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	wantProblem(t, "unknown route", resp.StatusCode, resp.Header, body, "not_found", "")
}

// startWithSleep runs the server with the test-only "sleep" method.
func startWithSleep(t *testing.T, dataDir string, args ...string) *testServer {
	return startServerHooks(t, dataDir, hooks{registry: func(r jobs.Registry) { r["sleep"] = jobstest.SleepMethod() }}, args...)
}

var tiny = &client.InlineTensor{Shape: []int{2, 2}, Data: []float64{1, 2, 3, 4}}

func sleepJob(seconds float64) client.JobRequest {
	return client.JobRequest{Method: "sleep", Tensor: tiny, Params: &map[string]any{"seconds": seconds}}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	s := startWithSleep(t, "", "--workers", "1")
	c := s.client("")
	running := mustSubmit(t, c, sleepJob(60))
	queued := mustSubmit(t, c, sleepJob(60))

	dr, err := c.DeleteJobWithResponse(ctx, queued.Id)
	if err != nil || dr.JSON200 == nil || dr.JSON200.Status != client.JobStatusCanceled {
		t.Fatalf("cancel queued: %v %d %s", err, dr.StatusCode(), dr.Body)
	}
	// Wait until the first runs and reports progress, then cancel it.
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, _ := c.GetJobWithResponse(ctx, running.Id)
		if r.JSON200.Status == client.JobStatusRunning && r.JSON200.Progress.Iteration > 0 {
			if r.JSON200.Progress.MaxIterations != 1000 || r.JSON200.StartedAt == nil {
				t.Errorf("running job %+v", r.JSON200)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s, progress %+v", r.JSON200.Status, r.JSON200.Progress)
		}
		time.Sleep(20 * time.Millisecond)
	}
	start := time.Now()
	dr, err = c.DeleteJobWithResponse(ctx, running.Id)
	if err != nil || dr.JSON200 == nil || dr.JSON200.Status != client.JobStatusCanceled || dr.JSON200.FinishedAt == nil {
		t.Fatalf("cancel running: %v %d %s", err, dr.StatusCode(), dr.Body)
	}
	// Canceling is two metadata writes and a River call: well under 5 s even
	// with -race on a loaded machine, unlike waiting for the 60 s job.
	if time.Since(start) > 5*time.Second {
		t.Errorf("cancel took %s", time.Since(start))
	}
	fr, _ := c.GetFactorsWithResponse(ctx, running.Id, nil)
	wantProblem(t, "factors of canceled", fr.StatusCode(), fr.HTTPResponse.Header, fr.Body, "conflict", "")
	// The worker is free again at once.
	small := mustSubmit(t, c, client.JobRequest{Method: client.MethodSvd, Tensor: tiny, Params: &map[string]any{"rank": 1}})
	if d := poll(t, c, small.Id, 30*time.Second); d.Status != client.JobStatusSucceeded {
		t.Fatalf("after cancel: %s", d.Status)
	}
	for _, id := range []string{queued.Id, running.Id} {
		if r, _ := c.GetJobWithResponse(ctx, id); r.JSON200.Status != client.JobStatusCanceled || r.JSON200.Error == nil {
			t.Errorf("job %s ended %+v, want canceled", id, r.JSON200)
		}
	}
	// Canceled jobs can then be deleted.
	if r, _ := c.DeleteJobWithResponse(ctx, queued.Id); r.StatusCode() != http.StatusNoContent {
		t.Errorf("delete canceled: %d", r.StatusCode())
	}
}

func TestRestartKeepsQueuedJobs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startWithSleep(t, dir, "--workers", "1", "--shutdown-grace", "50ms")
	c := s.client("")
	a := randTensor("", []int{9, 7}, 8, true)
	tn := mustUpload(t, c, npyBytes(t, a), nil)
	// One job running (and cut short by the shutdown), three queued.
	ids := []string{mustSubmit(t, c, sleepJob(1)).Id}
	for k := 1; k <= 3; k++ {
		ids = append(ids, mustSubmit(t, c, client.JobRequest{Method: client.MethodSvd, TensorId: &tn.Id, Params: &map[string]any{"rank": k}}).Id)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, _ := c.GetJobWithResponse(ctx, ids[0])
		if r.JSON200.Status == client.JobStatusRunning || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.stop()

	s2 := startWithSleep(t, dir, "--workers", "2")
	c2 := s2.client("")
	for i, id := range ids {
		d := poll(t, c2, id, 60*time.Second)
		if d.Status != client.JobStatusSucceeded {
			t.Errorf("job %s after restart: %s %+v", id, d.Status, d.Error)
			continue
		}
		if i > 0 {
			checkSVD(t, c2, d, a.F64, 9, 7, 1e-10)
		}
	}
}

func TestAuthIsolation(t *testing.T) {
	t.Parallel()
	s := startServer(t, "", "--api-keys", "alpha-key, beta-key")
	anon, alice, bob := s.client(""), s.client("alpha-key"), s.client("beta-key")
	ir, _ := anon.GetInfoWithResponse(ctx)
	wantProblem(t, "no key", ir.StatusCode(), ir.HTTPResponse.Header, ir.Body, "unauthorized", "")
	if ir.HTTPResponse.Header.Get("WWW-Authenticate") == "" {
		t.Error("401 without WWW-Authenticate")
	}
	ir, _ = s.client("wrong").GetInfoWithResponse(ctx)
	wantProblem(t, "wrong key", ir.StatusCode(), ir.HTTPResponse.Header, ir.Body, "unauthorized", "")
	if hr, _ := anon.GetHealthWithResponse(ctx); hr.StatusCode() != http.StatusOK {
		t.Errorf("healthz with auth on: %d", hr.StatusCode())
	}
	if mr, _ := anon.GetMetricsWithResponse(ctx); mr.StatusCode() != http.StatusOK {
		t.Errorf("metrics with auth on: %d", mr.StatusCode())
	}
	if ir, _ := alice.GetInfoWithResponse(ctx); ir.JSON200 == nil || !ir.JSON200.Auth {
		t.Errorf("info with key: %s", ir.Body)
	}
	tn := mustUpload(t, alice, npyBytes(t, randTensor("", []int{3, 2}, 9, true)), nil)
	j := mustSubmit(t, alice, client.JobRequest{Method: client.MethodSvd, TensorId: &tn.Id, Params: &map[string]any{"rank": 1}})
	poll(t, alice, j.Id, 30*time.Second)

	if r, _ := bob.GetTensorWithResponse(ctx, tn.Id); r.StatusCode() != http.StatusNotFound {
		t.Errorf("bob sees alice's tensor: %d", r.StatusCode())
	}
	if r, _ := bob.GetJobWithResponse(ctx, j.Id); r.StatusCode() != http.StatusNotFound {
		t.Errorf("bob sees alice's job: %d", r.StatusCode())
	}
	if r, _ := bob.GetFactorWithResponse(ctx, j.Id, "U", nil); r.StatusCode() != http.StatusNotFound {
		t.Errorf("bob downloads alice's factor: %d", r.StatusCode())
	}
	if r, _ := bob.DeleteJobWithResponse(ctx, j.Id); r.StatusCode() != http.StatusNotFound {
		t.Errorf("bob deletes alice's job: %d", r.StatusCode())
	}
	jr := submit(t, bob, client.JobRequest{Method: client.MethodSvd, TensorId: &tn.Id, Params: &map[string]any{"rank": 1}})
	wantProblem(t, "bob uses alice's tensor", jr.StatusCode(), jr.HTTPResponse.Header, jr.Body, "not_found", "tensor_id")
	if r, _ := bob.ListJobsWithResponse(ctx, nil); r.JSON200 == nil || len(r.JSON200.Items) != 0 {
		t.Errorf("bob's job list: %s", r.Body)
	}
	if r, _ := alice.ListJobsWithResponse(ctx, nil); r.JSON200 == nil || len(r.JSON200.Items) != 1 {
		t.Errorf("alice's job list: %s", r.Body)
	}
	if r, _ := alice.GetFactorWithResponse(ctx, j.Id, "U", nil); r.StatusCode() != http.StatusOK {
		t.Errorf("alice's factor: %d", r.StatusCode())
	}
}

func TestLimits(t *testing.T) {
	t.Parallel()
	s := startWithSleep(t, "", "--max-upload-bytes", "2000", "--queue-capacity", "1", "--workers", "1", "--max-rank", "3")
	c := s.client("")
	big := npyBytes(t, randTensor("", []int{30, 30}, 10, false))
	r := upload(t, c, big, nil)
	wantProblem(t, "upload over limit", r.StatusCode(), r.HTTPResponse.Header, r.Body, "too_large", "file")
	// The same without a Content-Length: cut off while streaming.
	req, _ := http.NewRequest(http.MethodPost, s.url+"/v1/tensors", io.MultiReader(bytes.NewReader(big)))
	req.ContentLength = -1
	resp, err := s.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantProblem(t, "chunked upload over limit", resp.StatusCode, resp.Header, body, "too_large", "file")
	ct, mp := multipartBody(t, "file", "x.npy", big)
	mr, err := c.CreateTensorWithBodyWithResponse(ctx, &client.CreateTensorParams{}, ct, bytes.NewReader(mp))
	if err != nil {
		t.Fatal(err)
	}
	wantProblem(t, "multipart over limit", mr.StatusCode(), mr.HTTPResponse.Header, mr.Body, "too_large", "file")
	// Cut off inside a field before the file.
	var pre bytes.Buffer
	mw := multipart.NewWriter(&pre)
	_ = mw.WriteField("note", strings.Repeat("x", 5000))
	fw, _ := mw.CreateFormFile("file", "x.npy")
	fw.Write(big[:100])
	mw.Close()
	mr, err = c.CreateTensorWithBodyWithResponse(ctx, &client.CreateTensorParams{}, mw.FormDataContentType(), io.MultiReader(&pre))
	if err != nil {
		t.Fatal(err)
	}
	wantProblem(t, "multipart preamble over limit", mr.StatusCode(), mr.HTTPResponse.Header, mr.Body, "too_large", "file")

	inline := &client.InlineTensor{Shape: []int{5, 5}, Data: make([]float64, 25)}
	jr := submit(t, c, client.JobRequest{Method: client.MethodSvd, Tensor: inline, Params: &map[string]any{"rank": 4}})
	wantProblem(t, "rank over max-rank", jr.StatusCode(), jr.HTTPResponse.Header, jr.Body, "too_large", "params.rank")
	first := mustSubmit(t, c, sleepJob(2)) // long enough to be active at the next submit, even on a loaded machine
	jr = submit(t, c, client.JobRequest{Method: client.MethodSvd, Tensor: inline, Params: &map[string]any{"rank": 2}})
	wantProblem(t, "queue full", jr.StatusCode(), jr.HTTPResponse.Header, jr.Body, "overloaded", "")
	if ra := jr.HTTPResponse.Header.Get("Retry-After"); ra == "" {
		t.Error("429 without Retry-After")
	}
	if d := poll(t, c, first.Id, 60*time.Second); d.Status != client.JobStatusSucceeded {
		t.Fatalf("first job: %s", d.Status)
	}
	// Room again once it is done.
	mustSubmit(t, c, client.JobRequest{Method: client.MethodSvd, Tensor: inline, Params: &map[string]any{"rank": 2}})
}

func TestConcurrentClients(t *testing.T) {
	t.Parallel()
	s := startServer(t, "", "--workers", "2")
	c := s.client("")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := randTensor("", []int{12 + i, 9}, uint64(100+i), true)
			tn := mustUpload(t, c, npyBytes(t, a), nil)
			for k := 1; k <= 3; k++ {
				j := mustSubmit(t, c, client.JobRequest{Method: client.MethodSvd, TensorId: &tn.Id, Params: &map[string]any{"rank": k}})
				d := poll(t, c, j.Id, 60*time.Second)
				checkSVD(t, c, d, a.F64, 12+i, 9, 1e-10)
			}
		}()
	}
	wg.Wait()
}

func TestSystemEndpoints(t *testing.T) {
	t.Parallel()
	s := startServer(t, "", "--workers", "2")
	c := s.client("")
	ir, err := c.GetInfoWithResponse(ctx)
	if err != nil || ir.JSON200 == nil {
		t.Fatal(err)
	}
	info := ir.JSON200
	if info.Workers != 2 || info.Threads < 1 || info.Backend == "" || info.BackendDescription == nil || fmt.Sprint(info.Methods) != "[cp pca svd tucker]" || info.Auth {
		t.Errorf("info %+v", info)
	}
	if rr, _ := c.GetReadyWithResponse(ctx); rr.JSON200 == nil || rr.JSON200.Status != "ok" {
		t.Errorf("readyz: %s", rr.Body)
	}
	if sr, _ := c.GetSpecWithResponse(ctx); sr.StatusCode() != http.StatusOK || !bytes.HasPrefix(sr.Body, []byte("openapi: 3.0.3")) {
		t.Errorf("openapi.yaml: %d", sr.StatusCode())
	}
	// Run one job so every job metric has a sample.
	j := mustSubmit(t, c, client.JobRequest{Method: client.MethodSvd, Tensor: &client.InlineTensor{Shape: []int{2, 2}, Data: []float64{1, 0, 0, 1}}, Params: &map[string]any{"rank": 1}})
	poll(t, c, j.Id, 30*time.Second)
	mustUpload(t, c, npyBytes(t, randTensor("", []int{2, 2}, 1, true)), nil)
	// The worker counts a job just after its record says succeeded, so the
	// metrics are polled rather than read once.
	waitMetrics(t, c, 10*time.Second,
		`lowrank_http_request_duration_seconds_bucket{code="202",method="POST",route="/v1/jobs",`,
		`lowrank_jobs_total{method="svd",outcome="succeeded"} 1`,
		`lowrank_job_duration_seconds_count{method="svd"} 1`,
		`lowrank_job_queue_wait_seconds_count{method="svd"} 1`,
		"lowrank_jobs_queued 0", "lowrank_jobs_running 0",
		"lowrank_upload_bytes_total ",
		`lowrank_build_info{backend="`,
	)
}

// waitMetrics polls /metrics until it holds every want substring, and fails
// the test with the lowrank_ lines if the timeout passes first.
func waitMetrics(t *testing.T, c *client.ClientWithResponses, timeout time.Duration, want ...string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		mr, err := c.GetMetricsWithResponse(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var missing []string
		for _, w := range want {
			if !strings.Contains(string(mr.Body), w) {
				missing = append(missing, w)
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics lack %q in:\n%s", missing, grepLines(string(mr.Body), "lowrank_"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestHelpAndConfig(t *testing.T) {
	var out bytes.Buffer
	if err := run(ctx, []string{"--help"}, func(string) string { return "" }, &out, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--addr", "LOWRANK_ADDR", "LOWRANK_DATA_DIR", "LOWRANK_WORKERS", "LOWRANK_QUEUE_CAPACITY",
		"LOWRANK_MAX_UPLOAD_BYTES", "LOWRANK_MAX_ELEMENTS", "LOWRANK_MAX_RANK", "LOWRANK_MAX_ITERATIONS", "LOWRANK_JOB_TIMEOUT",
		"LOWRANK_API_KEYS", "LOWRANK_API_KEYS_FILE", "LOWRANK_LOG_FORMAT", "LOWRANK_SHUTDOWN_GRACE"} {
		if !strings.Contains(strings.ReplaceAll(out.String(), "  -", "  --"), want) {
			t.Errorf("--help lacks %s", want)
		}
	}
	env := map[string]string{"LOWRANK_WORKERS": "3", "LOWRANK_MAX_RANK": "17", "LOWRANK_API_KEYS": "a,b"}
	cfg, err := parseConfig([]string{"--max-rank", "9"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Workers != 3 || cfg.MaxRank != 9 || len(cfg.APIKeys) != 2 {
		t.Errorf("env/flag precedence: %+v", cfg)
	}
	keys := filepath.Join(t.TempDir(), "keys")
	os.WriteFile(keys, []byte("# team keys\nk1\n\n  k2  \n"), 0o600)
	cfg, err = parseConfig([]string{"--api-keys-file", keys, "--api-keys", "k0"}, func(string) string { return "" }, io.Discard)
	if err != nil || fmt.Sprint(cfg.APIKeys) != "[k0 k1 k2]" {
		t.Errorf("keys file: %v %v", cfg, err)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, []byte("# none\n"), 0o600)
	if _, err := parseConfig([]string{"--api-keys-file", empty}, func(string) string { return "" }, io.Discard); err == nil {
		t.Error("empty keys file accepted")
	}
	if _, err := parseConfig(nil, func(k string) string { return map[string]string{"LOWRANK_WORKERS": "x"}[k] }, io.Discard); err == nil {
		t.Error("bad env value accepted")
	}
	if _, err := parseConfig([]string{"--workers", "0"}, func(string) string { return "" }, io.Discard); err == nil {
		t.Error("--workers 0 accepted")
	}
	if _, err := parseConfig([]string{"--log-format", "xml"}, func(string) string { return "" }, io.Discard); err == nil {
		t.Error("--log-format xml accepted")
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestOtherMethods(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	c := s.client("")
	conv := randTensor("conv.weight", []int{6, 4, 3, 3}, 20, false)
	tn := mustUpload(t, c, safetensorsBytes(t, conv), nil)
	for _, tc := range []struct {
		method  client.Method
		params  map[string]any
		factors []string
	}{
		{client.MethodCp, map[string]any{"rank": 3, "max_iter": 20}, []string{"weights", "factor_0", "factor_1", "factor_2", "factor_3"}},
		{client.MethodTucker, map[string]any{"ranks": []int{3, 2}, "modes": []int{0, 1}}, []string{"core", "factor_0", "factor_1"}},
		{client.MethodTucker, map[string]any{"rel_error": 0.5}, nil},
		{client.MethodSvd, map[string]any{"energy": 0.9, "algorithm": "full"}, []string{"U", "S", "Vt"}},
	} {
		params := tc.params
		j := mustSubmit(t, c, client.JobRequest{Method: tc.method, TensorId: &tn.Id, Params: &params})
		d := poll(t, c, j.Id, 60*time.Second)
		if d.Status != client.JobStatusSucceeded {
			t.Fatalf("%s %v: %s %+v", tc.method, tc.params, d.Status, d.Error)
		}
		if !(d.Result.RelError >= 0 && d.Result.RelError < 1) || d.Result.ParamsOriginal != 6*4*3*3 {
			t.Errorf("%s: result %+v", tc.method, d.Result)
		}
		for i, name := range tc.factors {
			if d.Result.Factors[i].Name != name {
				t.Errorf("%s: factor %d is %s, want %s", tc.method, i, d.Result.Factors[i].Name, name)
			}
		}
		if d.Method == "tucker" && tc.factors != nil {
			if got := fmt.Sprint(d.Result.Factors[0].Shape); got != "[3 2 3 3]" {
				t.Errorf("partial tucker core shape %s", got)
			}
		}
		getFactor(t, c, d.Id, d.Result.Factors[0].Name)
	}
	pca := randTensor("", []int{30, 5}, 21, true)
	j := mustSubmit(t, c, client.JobRequest{Method: client.MethodPca, Tensor: &client.InlineTensor{Shape: pca.Shape, Data: pca.F64},
		Params: &map[string]any{"n_components": 2, "whiten": true}})
	if d := poll(t, c, j.Id, 60*time.Second); d.Status != client.JobStatusSucceeded || d.Result.Ranks[0] != 2 {
		t.Fatalf("pca: %s %+v", d.Status, d.Error)
	}
	// Kernel-level validation surfaces as a named param too.
	jr := submit(t, c, client.JobRequest{Method: client.MethodTucker, TensorId: &tn.Id, Params: &map[string]any{"ranks": []int{3, 9}, "modes": []int{0, 1}}})
	wantProblem(t, "tucker rank over mode size", jr.StatusCode(), jr.HTTPResponse.Header, jr.Body, "invalid", "params.ranks[1]")
	jr = submit(t, c, client.JobRequest{Method: client.MethodPca, TensorId: &tn.Id, Params: &map[string]any{"n_components": 2}})
	wantProblem(t, "pca on 4-D", jr.StatusCode(), jr.HTTPResponse.Header, jr.Body, "invalid", "tensor")
}

func TestJobTimeout(t *testing.T) {
	t.Parallel()
	s := startWithSleep(t, "", "--job-timeout", "300ms")
	c := s.client("")
	j := mustSubmit(t, c, sleepJob(30))
	d := poll(t, c, j.Id, 30*time.Second)
	if d.Status != client.JobStatusFailed || d.Error == nil || d.Error.Code != "canceled" || !strings.Contains(d.Error.Message, "300ms") {
		t.Fatalf("timed-out job: %s %+v", d.Status, d.Error)
	}
}

// A tensor that a queued or running job reads cannot be deleted from under
// it: 409 naming the job, the tensor stays; once the jobs end it goes.
func TestDeleteTensorInUse(t *testing.T) {
	t.Parallel()
	s := startWithSleep(t, "", "--workers", "1")
	c := s.client("")
	tn := mustUpload(t, c, npyBytes(t, randTensor("", []int{2, 2}, 1, false)), nil)
	sleepOn := func(seconds float64) client.JobRequest {
		return client.JobRequest{Method: "sleep", TensorId: &tn.Id, Params: &map[string]any{"seconds": seconds}}
	}
	running := mustSubmit(t, c, sleepOn(60))
	queued := mustSubmit(t, c, sleepOn(60))
	for _, j := range []*client.Job{queued, running} {
		r, err := c.DeleteTensorWithResponse(ctx, tn.Id)
		if err != nil {
			t.Fatal(err)
		}
		wantProblem(t, "delete a tensor in use", r.StatusCode(), r.HTTPResponse.Header, r.Body, "conflict", "")
		if r.StatusCode() != http.StatusConflict || !strings.Contains(string(r.Body), queued.Id) && !strings.Contains(string(r.Body), running.Id) {
			t.Fatalf("delete a tensor in use: %d %s", r.StatusCode(), r.Body)
		}
		if g, _ := c.GetTensorWithResponse(ctx, tn.Id); g.StatusCode() != http.StatusOK {
			t.Fatalf("the refused delete lost the tensor: %d", g.StatusCode())
		}
		if dr, err := c.DeleteJobWithResponse(ctx, j.Id); err != nil || dr.StatusCode() != http.StatusOK {
			t.Fatalf("cancel %s: %v %d", j.Id, err, dr.StatusCode())
		}
	}
	if r, err := c.DeleteTensorWithResponse(ctx, tn.Id); err != nil || r.StatusCode() != http.StatusNoContent {
		t.Fatalf("delete once the jobs ended: %v %d %s", err, r.StatusCode(), r.Body)
	}
	r, _ := c.CreateJobWithResponse(ctx, sleepOn(1))
	wantProblem(t, "job on a deleted tensor", r.StatusCode(), r.HTTPResponse.Header, r.Body, "not_found", "tensor_id")
}

// An upload whose body ends before its Content-Length (the client died
// mid-upload) is a 400 that says so, and stores nothing.
func TestUploadCutShort(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	data := npyBytes(t, randTensor("", []int{300, 200}, 3, false))
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/tensors HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", len(data))
	if _, err := conn.Write(data[:len(data)/2]); err != nil {
		t.Fatal(err)
	}
	_ = conn.(*net.TCPConn).CloseWrite()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantProblem(t, "cut-short upload", resp.StatusCode, resp.Header, body, "invalid", "file")
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "Content-Length") {
		t.Errorf("cut-short upload: %d %s", resp.StatusCode, body)
	}
	lr, err := s.client("").ListTensorsWithResponse(ctx, nil)
	if err != nil || lr.JSON200 == nil || len(lr.JSON200.Items) != 0 {
		t.Errorf("tensors after a cut-short upload: %v %s", err, lr.Body)
	}
}
