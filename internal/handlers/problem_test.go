package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"

	"go.uber.org/zap"

	"github.com/lowrank/lowrank"
)

func TestProblemTable(t *testing.T) {
	s := &server{log: zap.NewNop(), retryAfter: 3e9}
	for _, tc := range []struct {
		err    error
		status int
		code   string
		detail string
		field  string
	}{
		{lowrank.Errorf(lowrank.EINVALID, "params.rank", "too big"), 422, "invalid", "params.rank: too big", "params.rank"},
		{badRequest("limit", "not a number"), 400, "invalid", "limit: not a number", "limit"},
		{notAllowed{lowrank.Errorf(lowrank.EINVALID, "", "no PUT")}, 405, "invalid", "no PUT", ""},
		{lowrank.Errorf(lowrank.ENOTFOUND, "", "no job"), 404, "not_found", "no job", ""},
		{lowrank.Errorf(lowrank.ECONFLICT, "", "running"), 409, "conflict", "running", ""},
		{lowrank.Errorf(lowrank.ETOOLARGE, "file", "big"), 413, "too_large", "file: big", "file"},
		{lowrank.Errorf(lowrank.EUNSUPPORTED, "file", "pickle"), 415, "unsupported", "file: pickle", "file"},
		{lowrank.Errorf(lowrank.EUNAUTHORIZED, "", "key"), 401, "unauthorized", "key", ""},
		{lowrank.Errorf(lowrank.EOVERLOADED, "", "full"), 429, "overloaded", "full", ""},
		{lowrank.Errorf(lowrank.ECANCELED, "", "canceled"), 409, "canceled", "canceled", ""},
		{lowrank.Errorf(lowrank.EUNAVAILABLE, "", "not ready"), 503, "unavailable", "not ready", ""},
		// A store's server that cannot be reached is 503, without its address.
		{fmt.Errorf("store: %w", &net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{Port: 5432}, Err: syscall.ECONNREFUSED}), 503, "unavailable",
			"a database or blob store cannot be reached; try again later", ""},
		// Internal errors never show their cause.
		{errors.New("disk on fire at /secret/path"), 500, "internal", "internal error", ""},
		{&lowrank.Error{Code: lowrank.EINTERNAL, Message: "db: secret"}, 500, "internal", "internal error", ""},
	} {
		w := httptest.NewRecorder()
		s.problem(w, httptest.NewRequest(http.MethodGet, "/v1/x", nil), tc.err)
		var p Problem
		if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
		field := ""
		if len(p.Errors) > 0 {
			field = p.Errors[0].Field
		}
		if w.Code != tc.status || p.Status != tc.status || p.Code != tc.code || p.Detail != tc.detail || field != tc.field ||
			p.Type != "urn:lowrank:problem:"+tc.code || p.Title == "" || p.Instance != "/v1/x" {
			t.Errorf("%v: %d %+v", tc.err, w.Code, p)
		}
		if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("%v: Content-Type %s", tc.err, ct)
		}
		if ra := w.Header().Get("Retry-After"); (tc.status == 429 || tc.status == 503) != (ra == "3") {
			t.Errorf("%v: Retry-After %q", tc.err, ra)
		}
	}
	// Every code has a status and a title.
	for _, code := range []string{lowrank.EINVALID, lowrank.ENOTFOUND, lowrank.ECONFLICT, lowrank.ETOOLARGE, lowrank.EUNSUPPORTED,
		lowrank.EUNAUTHORIZED, lowrank.EOVERLOADED, lowrank.ECANCELED, lowrank.EUNAVAILABLE, lowrank.EINTERNAL} {
		if statusOf[code] == 0 || titleOf[code] == "" {
			t.Errorf("code %s unmapped", code)
		}
	}
}

func TestConcatReadSeeker(t *testing.T) {
	data := []byte("0123456789abcdef")
	head := []byte("HDR:")
	full := append(append([]byte(nil), head...), data[4:12]...)
	for _, tc := range []struct{ off, n int }{{0, 3}, {2, 5}, {4, 4}, {6, 6}, {0, len(full)}, {len(full), 0}} {
		c := newConcatReadSeeker(head, sectionOf(data, 4, 8))
		if _, err := c.Seek(int64(tc.off), 0); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, tc.n)
		got := 0
		for got < tc.n {
			k, err := c.Read(buf[got:])
			got += k
			if err != nil {
				break
			}
		}
		if string(buf[:got]) != string(full[tc.off:tc.off+tc.n]) {
			t.Errorf("at %d len %d: %q, want %q", tc.off, tc.n, buf[:got], full[tc.off:tc.off+tc.n])
		}
	}
	c := newConcatReadSeeker(head, sectionOf(data, 4, 8))
	if end, _ := c.Seek(0, 2); end != int64(len(full)) {
		t.Errorf("size %d, want %d", end, len(full))
	}
}

func sectionOf(b []byte, off, n int64) *io.SectionReader {
	return io.NewSectionReader(bytes.NewReader(b), off, n)
}
