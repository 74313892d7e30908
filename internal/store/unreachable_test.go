package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lowrank/lowrank"
)

func TestUnreachable(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("syntax error"), false},
		{io.EOF, false},
		{context.Canceled, false},
		{fmt.Errorf("query: %w", context.DeadlineExceeded), false},
		{lowrank.Errorf(lowrank.ENOTFOUND, "", "no job"), false},
		{&pgconn.PgError{Code: "23505"}, false}, // unique_violation
		{&pgconn.PgError{Code: "40001"}, false}, // serialization_failure
		{refused, true},
		{fmt.Errorf("store: %w", refused), true},
		{driver.ErrBadConn, true},
		{fmt.Errorf("store: create job: %w", io.ErrUnexpectedEOF), true}, // the server died mid-reply
		{fmt.Errorf("store: get job: %w", pgconn.ErrConnClosed), true},
		{fmt.Errorf("jobs: enqueue: %w", &pgconn.PgError{Code: "57P01"}), true}, // admin_shutdown
		{&pgconn.PgError{Code: "57P03"}, true},                                  // cannot_connect_now
		{&pgconn.PgError{Code: "08006"}, true},                                  // connection_failure
	} {
		if got := Unreachable(tc.err); got != tc.want {
			t.Errorf("Unreachable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
