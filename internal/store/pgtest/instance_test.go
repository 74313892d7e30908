package pgtest

import (
	"context"
	"database/sql"
	"testing"
	"time"
)

func TestInstanceRestart(t *testing.T) {
	pg := Start(t)
	db, err := sql.Open("pgx", pg.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, `CREATE TABLE kept (v INT); INSERT INTO kept VALUES (42)`); err != nil {
		t.Fatal(err)
	}
	pg.Stop(t)
	pg.Stop(t) // a no-op
	var v int
	if err := db.QueryRowContext(ctx, `SELECT v FROM kept`).Scan(&v); err == nil {
		t.Fatal("query succeeded on a stopped server")
	} else {
		t.Logf("while stopped: %T %v", err, err)
	}
	pg.Start(t)
	pg.Start(t) // a no-op
	waitQuery(t, db, 42)
	// A crash loses nothing committed: the next start replays the log.
	if _, err := db.ExecContext(ctx, `UPDATE kept SET v = 43`); err != nil {
		t.Fatal(err)
	}
	pg.Crash(t)
	pg.Start(t)
	waitQuery(t, db, 43)
}

func waitQuery(t *testing.T, db *sql.DB, want int) {
	t.Helper()
	var v int
	// The pool's connections died with the server; database/sql retries a
	// bad connection on a new one, so the first query may already work.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := db.QueryRowContext(context.Background(), `SELECT v FROM kept`).Scan(&v)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if v != want {
		t.Fatalf("after restart the table holds %d, want %d", v, want)
	}
}
