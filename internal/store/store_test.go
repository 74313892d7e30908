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
