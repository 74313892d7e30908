package store

import (
	"context"
	"path/filepath"
	"testing"
)

// TestStmtCacheNestedAndRepeated runs one query text again while its
// cached statement still has rows open (inside a transaction, on the same
// connection): the inner use must not reset the outer rows.
func TestStmtCacheNestedAndRepeated(t *testing.T) {
	db, err := OpenSQLite(filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `CREATE TABLE t (x INTEGER)`); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := db.ExecContext(ctx, `INSERT INTO t (x) VALUES (?)`, i); err != nil {
			t.Fatal(err)
		}
	}
	const q = `SELECT x FROM t WHERE x >= ? ORDER BY x`
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	outer, err := tx.QueryContext(ctx, q, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for outer.Next() {
		var x int
		if err := outer.Scan(&x); err != nil {
			t.Fatal(err)
		}
		var n, y int
		inner, err := tx.QueryContext(ctx, q, x)
		if err != nil {
			t.Fatal(err)
		}
		for inner.Next() {
			if err := inner.Scan(&y); err != nil {
				t.Fatal(err)
			}
			n++
		}
		inner.Close()
		if n != 5-x {
			t.Errorf("inner query from %d gave %d rows, want %d", x, n, 5-x)
		}
		got = append(got, x)
	}
	if err := outer.Err(); err != nil {
		t.Fatal(err)
	}
	outer.Close()
	if len(got) != 5 || got[4] != 4 {
		t.Fatalf("outer rows %v, want 0..4", got)
	}
	// The statement is reusable after its rows closed, with new arguments.
	for i := range 3 {
		var x int
		if err := tx.QueryRowContext(ctx, q, 4-i).Scan(&x); err != nil || x != 4-i {
			t.Fatalf("repeat %d: %d %v", i, x, err)
		}
	}
	// A bad statement reports its error through the uncached path.
	if _, err := tx.ExecContext(ctx, `INSERT INTO missing VALUES (1)`); err == nil {
		t.Error("insert into a missing table succeeded")
	}
}
