package store_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/lowrank/lowrank/internal/store"
	"github.com/lowrank/lowrank/internal/store/storetest"
)

func TestLocalBlobs(t *testing.T) {
	storetest.BlobStore(t, func(t *testing.T) store.BlobStore {
		s, err := store.NewLocalBlobs(filepath.Join(t.TempDir(), "blobs"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestSQLiteMeta(t *testing.T) {
	storetest.MetaStore(t, func(t *testing.T) store.MetaStore {
		db, err := store.OpenSQLite(filepath.Join(t.TempDir(), "lowrank.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		s, err := store.NewSQLiteMeta(context.Background(), db)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestSQLiteMetaReaderPool runs the suite with lookups on a separate
// read-only pool, which must see every write committed before them.
func TestSQLiteMetaReaderPool(t *testing.T) {
	storetest.MetaStore(t, func(t *testing.T) store.MetaStore {
		path := filepath.Join(t.TempDir(), "lowrank.db")
		db, err := store.OpenSQLite(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		if _, err := store.NewSQLiteMeta(context.Background(), db); err != nil { // creates the schema
			t.Fatal(err)
		}
		reads, err := store.OpenSQLiteReader(path, 4)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { reads.Close() })
		rs, err := store.NewSQLiteMetaReads(context.Background(), db, reads)
		if err != nil {
			t.Fatal(err)
		}
		// The pool refuses writes.
		if _, err := reads.Exec(`DELETE FROM lowrank_job`); err == nil {
			t.Fatal("the reader pool accepted a write")
		}
		return rs
	})
}
