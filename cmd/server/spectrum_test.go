package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"image/png"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lowrank/lowrank/client"
)

// TestSpectrum fetches the spectrum figures of svd and pca jobs, and the
// problems for jobs that have none: every response is checked against the
// spec by the test server's client.
func TestSpectrum(t *testing.T) {
	t.Parallel()
	s := startWithSleep(t, "", "--workers", "1")
	c := s.client("")
	a := randTensor("fc.weight", []int{40, 24}, 31, false)
	tn := mustUpload(t, c, safetensorsBytes(t, a), nil)

	svd := mustSubmit(t, c, client.JobRequest{Method: client.MethodSvd, TensorId: &tn.Id, Params: &map[string]any{"energy": 0.6, "algorithm": "full"}})
	d := poll(t, c, svd.Id, 60*time.Second)
	if d.Status != client.JobStatusSucceeded {
		t.Fatalf("svd: %s %+v", d.Status, d.Error)
	}
	rank := d.Result.Ranks[0]
	sr, err := c.GetSpectrumSVGWithResponse(ctx, svd.Id, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sr.StatusCode() != http.StatusOK || sr.HTTPResponse.Header.Get("Content-Type") != "image/svg+xml" {
		t.Fatalf("spectrum.svg: %d %s %.300s", sr.StatusCode(), sr.HTTPResponse.Header.Get("Content-Type"), sr.Body)
	}
	if csp := sr.HTTPResponse.Header.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "default-src 'none'") {
		t.Errorf("spectrum.svg: Content-Security-Policy %q", csp)
	}
	checkSVG(t, sr.Body, "svd of fc.weight", "rank "+strconv.Itoa(rank)+" of "+strconv.Itoa(rank))
	// The same request gives the same bytes, and its ETag a 304.
	again, err := c.GetSpectrumSVGWithResponse(ctx, svd.Id, nil)
	if err != nil || !bytes.Equal(again.Body, sr.Body) {
		t.Errorf("second rendering differs (%v)", err)
	}
	etag := sr.HTTPResponse.Header.Get("ETag")
	req, _ := http.NewRequest(http.MethodGet, s.url+"/v1/jobs/"+svd.Id+"/spectrum.svg", nil)
	req.Header.Set("If-None-Match", etag)
	if resp, err := s.http.Do(req); err != nil || resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match %s: %v %v", etag, resp.Status, err)
	} else {
		resp.Body.Close()
	}

	pr, err := c.GetSpectrumPNGWithResponse(ctx, svd.Id, &client.GetSpectrumPNGParams{Width: ptr(321), Height: ptr(203)})
	if err != nil {
		t.Fatal(err)
	}
	if pr.StatusCode() != http.StatusOK || pr.HTTPResponse.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("spectrum.png: %d %.300s", pr.StatusCode(), pr.Body)
	}
	if img, err := png.Decode(bytes.NewReader(pr.Body)); err != nil || img.Bounds().Dx() != 321 || img.Bounds().Dy() != 203 {
		t.Errorf("PNG: %v, err %v; want 321×203", img.Bounds(), err)
	}

	x := randTensor("", []int{30, 6}, 32, true)
	pca := mustSubmit(t, c, client.JobRequest{Method: client.MethodPca, Tensor: &client.InlineTensor{Shape: x.Shape, Data: x.F64},
		Params: &map[string]any{"n_components": 3}})
	if d := poll(t, c, pca.Id, 60*time.Second); d.Status != client.JobStatusSucceeded {
		t.Fatalf("pca: %s %+v", d.Status, d.Error)
	}
	if r, err := c.GetSpectrumSVGWithResponse(ctx, pca.Id, &client.GetSpectrumSVGParams{Width: ptr(640), Height: ptr(480)}); err != nil || r.StatusCode() != http.StatusOK {
		t.Fatalf("pca spectrum: %v %d %.300s", err, r.StatusCode(), r.Body)
	} else {
		checkSVG(t, r.Body, "pca of an inline tensor", "rank 3 of 3")
	}

	// A cp job has no spectrum, whatever its state: 404.
	cp := mustSubmit(t, c, client.JobRequest{Method: client.MethodCp, TensorId: &tn.Id, Params: &map[string]any{"rank": 2, "max_iter": 5}})
	if d := poll(t, c, cp.Id, 60*time.Second); d.Status != client.JobStatusSucceeded {
		t.Fatalf("cp: %s %+v", d.Status, d.Error)
	}
	r, _ := c.GetSpectrumSVGWithResponse(ctx, cp.Id, nil)
	wantProblem(t, "cp spectrum", r.StatusCode(), r.HTTPResponse.Header, r.Body, "not_found", "")
	r, _ = c.GetSpectrumSVGWithResponse(ctx, "no-such-job", nil)
	wantProblem(t, "missing job", r.StatusCode(), r.HTTPResponse.Header, r.Body, "not_found", "")

	// Bad sizes: not a number is 400, out of range 422, both naming it.
	r, _ = c.GetSpectrumSVGWithResponse(ctx, svd.Id, &client.GetSpectrumSVGParams{Width: ptr(10)})
	wantProblem(t, "width 10", r.StatusCode(), r.HTTPResponse.Header, r.Body, "invalid", "width")
	r, _ = c.GetSpectrumSVGWithResponse(ctx, svd.Id, &client.GetSpectrumSVGParams{Height: ptr(5000)})
	wantProblem(t, "height 5000", r.StatusCode(), r.HTTPResponse.Header, r.Body, "invalid", "height")
	resp, err := http.Get(s.url + "/v1/jobs/" + svd.Id + "/spectrum.png?width=wide")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantProblem(t, "width=wide", resp.StatusCode, resp.Header, body, "invalid", "width")
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("width=wide: %d, want 400", resp.StatusCode)
	}

	// An svd job that has not run yet (the one worker sleeps): 409, as
	// for its factors.
	sleeper := mustSubmit(t, c, sleepJob(60))
	queued := mustSubmit(t, c, client.JobRequest{Method: client.MethodSvd, TensorId: &tn.Id, Params: &map[string]any{"rank": 2}})
	qr, _ := c.GetSpectrumPNGWithResponse(ctx, queued.Id, nil)
	wantProblem(t, "queued svd spectrum", qr.StatusCode(), qr.HTTPResponse.Header, qr.Body, "conflict", "")
	for _, id := range []string{queued.Id, sleeper.Id} {
		if _, err := c.DeleteJobWithResponse(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
}

// checkSVG parses an SVG and looks for texts in it.
func checkSVG(t *testing.T, data []byte, texts ...string) {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(data))
	root := ""
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("SVG does not parse: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && root == "" {
			root = se.Name.Local
		}
	}
	if root != "svg" {
		t.Errorf("root element %q, want svg", root)
	}
	for _, want := range texts {
		if !strings.Contains(string(data), want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
}
