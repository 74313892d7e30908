package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"net"
	"strings"
)

// Unreachable reports whether err says that a store's server could not be
// reached or went away: a refused or broken connection, or PostgreSQL
// shutting down, starting up or in recovery. Such a failure passes once the
// server is back, so the HTTP layer answers it 503 rather than 500, and
// /readyz tells a load balancer to send requests elsewhere meanwhile.
// Context cancellation is never unreachable: it is the caller giving up.
func Unreachable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, driver.ErrBadConn) {
		return true
	}
	// Dial, read and write failures, from pgx and from the S3 client alike.
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	// pgx's *pgconn.PgError, matched by method so this file needs no driver.
	var se interface{ SQLState() string }
	if errors.As(err, &se) {
		state := se.SQLState()
		// Class 08 is "connection exception"; 57P01–57P03 are
		// admin_shutdown, crash_shutdown and cannot_connect_now.
		return strings.HasPrefix(state, "08") || state == "57P01" || state == "57P02" || state == "57P03"
	}
	return false
}
