package handlers

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5/middleware"
	"go.uber.org/zap"

	"github.com/lowrank/lowrank"
	"github.com/lowrank/lowrank/internal/store"
)

// The one table from error code to HTTP status. EINVALID is 422 (the
// request was understood but a value is wrong); a request that cannot be
// parsed at all is marked malformed and answered 400.
var statusOf = map[string]int{
	lowrank.EINVALID:      http.StatusUnprocessableEntity,
	lowrank.ENOTFOUND:     http.StatusNotFound,
	lowrank.ECONFLICT:     http.StatusConflict,
	lowrank.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	lowrank.EUNSUPPORTED:  http.StatusUnsupportedMediaType,
	lowrank.EUNAUTHORIZED: http.StatusUnauthorized,
	lowrank.EOVERLOADED:   http.StatusTooManyRequests,
	lowrank.ECANCELED:     http.StatusConflict,
	lowrank.EUNAVAILABLE:  http.StatusServiceUnavailable,
	lowrank.EINTERNAL:     http.StatusInternalServerError,
}

var titleOf = map[string]string{
	lowrank.EINVALID:      "Invalid request",
	lowrank.ENOTFOUND:     "Not found",
	lowrank.ECONFLICT:     "Conflict",
	lowrank.ETOOLARGE:     "Too large",
	lowrank.EUNSUPPORTED:  "Unsupported",
	lowrank.EUNAUTHORIZED: "Unauthorized",
	lowrank.EOVERLOADED:   "Overloaded",
	lowrank.ECANCELED:     "Canceled",
	lowrank.EUNAVAILABLE:  "Service unavailable",
	lowrank.EINTERNAL:     "Internal error",
}

// malformed marks an EINVALID error about the request's syntax (a body that
// is not JSON, a query value that is not a number): 400 instead of 422.
type malformed struct{ err *lowrank.Error }

func (m malformed) Error() string { return m.err.Error() }
func (m malformed) Unwrap() error { return m.err }

// notAllowed marks a request for a method a route does not have: 405.
type notAllowed struct{ err *lowrank.Error }

func (m notAllowed) Error() string { return m.err.Error() }
func (m notAllowed) Unwrap() error { return m.err }

func badRequest(field, format string, args ...any) error {
	return malformed{lowrank.Errorf(lowrank.EINVALID, field, format, args...)}
}

// Problem is an RFC 9457 problem detail, with Lowrank's extensions: the
// error code, the request id and, for validation errors, the fields at
// fault.
type Problem struct {
	Type      string       `json:"type"`
	Title     string       `json:"title"`
	Status    int          `json:"status"`
	Detail    string       `json:"detail,omitempty"`
	Instance  string       `json:"instance,omitempty"`
	Code      string       `json:"code"`
	RequestID string       `json:"request_id,omitempty"`
	Errors    []FieldError `json:"errors,omitempty"`
}

// FieldError names one invalid input.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// problem renders err as problem+json. It is the only place errors become
// responses: internal errors are logged in full and shown as a plain
// "internal error".
func (s *server) problem(w http.ResponseWriter, r *http.Request, err error) {
	code := lowrank.ErrorCode(err)
	if code == lowrank.EINTERNAL && store.Unreachable(err) {
		// The database or blob store is down or restarting: a client
		// should retry, and a load balancer may try another replica.
		s.log.Warn("store unreachable", zap.String("path", r.URL.Path), zap.Error(err))
		code, err = lowrank.EUNAVAILABLE, &lowrank.Error{Code: lowrank.EUNAVAILABLE, Message: "a database or blob store cannot be reached; try again later", Err: err}
	}
	status := statusOf[code]
	var mal malformed
	var na notAllowed
	switch {
	case errors.As(err, &mal):
		status = http.StatusBadRequest
	case errors.As(err, &na):
		status = http.StatusMethodNotAllowed
	}
	p := Problem{
		Type:      "urn:lowrank:problem:" + code,
		Title:     titleOf[code],
		Status:    status,
		Instance:  r.URL.Path,
		Code:      code,
		RequestID: middleware.GetReqID(r.Context()),
	}
	var e *lowrank.Error
	switch {
	case code == lowrank.EINTERNAL:
		p.Detail = "internal error"
		s.log.Error("internal error", zap.String("request_id", p.RequestID), zap.String("path", r.URL.Path), zap.Error(err))
	case errors.As(err, &e):
		p.Detail = e.Error()
		if e.Field != "" {
			p.Errors = []FieldError{{Field: e.Field, Message: e.Message}}
		}
	default:
		p.Detail = err.Error()
	}
	switch code {
	case lowrank.EOVERLOADED, lowrank.EUNAVAILABLE:
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(s.retryAfter.Seconds()))))
	case lowrank.EUNAUTHORIZED:
		w.Header().Set("WWW-Authenticate", `Bearer realm="lowrank"`)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Del("Content-Length")
	w.Header().Del("ETag")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(p)
}

// writeJSON writes v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
