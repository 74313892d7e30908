package jobs_test

import (
	"errors"
	"os"
	"testing"

	"github.com/lowrank/lowrank/internal/store/pgtest"
)

// pg is this package's Postgres server, started by the first test that
// needs one; without Postgres those tests skip.
var pg pgtest.Server

func TestMain(m *testing.M) {
	code := m.Run()
	pg.Stop()
	os.Exit(code)
}

func asError[T error](err error, target *T) bool { return errors.As(err, target) }
