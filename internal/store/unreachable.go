package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Unreachable reports whether err says that a store's server could not be
// reached or went away: a refused or broken connection, an answer cut short
// (a server that died mid-reply), or PostgreSQL shutting down, starting up
// or in recovery. Such a failure passes once the server is back, so the
// HTTP layer answers it 503 rather than 500, and /readyz tells a load
// balancer to send requests elsewhere meanwhile. Context cancellation is
// never unreachable: it is the caller giving up.
func Unreachable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	// pgx reports a connection lost mid-reply as a bare io.ErrUnexpectedEOF,
	// and its later use as ErrConnClosed. An upload cut short by its client
	// is the same error, but that client is gone and reads no answer.
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	// Dial, read and write failures, from pgx and from the S3 client alike.
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var se interface{ SQLState() string } // *pgconn.PgError
	if errors.As(err, &se) {
		state := se.SQLState()
		// Class 08 is "connection exception"; 57P01–57P03 are
		// admin_shutdown, crash_shutdown and cannot_connect_now.
		return strings.HasPrefix(state, "08") || state == "57P01" || state == "57P02" || state == "57P03"
	}
	return false
}
