// Package lowrank holds the few types every layer of the service shares:
// the error type and its codes. The HTTP layer maps codes to statuses in one
// table (internal/handlers); kernels and stores only pick a code.
package lowrank

import (
	"context"
	"errors"
	"fmt"
)

// Error codes. They say what kind of failure happened, not how a transport
// reports it.
const (
	EINVALID      = "invalid"      // bad input: a parameter, a shape, a malformed file
	ENOTFOUND     = "not_found"    // no such tensor, job or factor (or not the caller's)
	ECONFLICT     = "conflict"     // the resource is in the wrong state for the request
	ETOOLARGE     = "too_large"    // a configured limit was exceeded
	EUNSUPPORTED  = "unsupported"  // a format or dtype Lowrank does not read
	EUNAUTHORIZED = "unauthorized" // missing or unknown API key
	EOVERLOADED   = "overloaded"   // the queue is full; try again later
	ECANCELED     = "canceled"     // the work was canceled
	EUNAVAILABLE  = "unavailable"  // a database or blob store cannot be reached now; try again later
	EINTERNAL     = "internal"     // a bug or an unexpected failure of a dependency
)

// Error is Lowrank's one error type. Field names the parameter or input part
// at fault (e.g. "params.rank", "tensor"), when there is one.
type Error struct {
	Code    string
	Field   string
	Message string
	Err     error // the cause, if any; never shown to clients for EINTERNAL
}

func (e *Error) Error() string {
	msg := e.Message
	if e.Field != "" {
		msg = e.Field + ": " + msg
	}
	if e.Err != nil && e.Message == "" {
		return e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with code and field and a formatted message.
func Errorf(code, field, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, ECANCELED
// for context cancellation, and EINTERNAL for anything else (nil gives "").
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return ECANCELED
	}
	return EINTERNAL
}
