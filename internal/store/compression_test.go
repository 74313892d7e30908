package store_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/lowrank/lowrank/internal/store"
	"github.com/lowrank/lowrank/internal/store/storetest"
)

func TestSQLiteCompressions(t *testing.T) {
	storetest.CompressionStore(t, func(t *testing.T) storetest.Compressions {
		path := filepath.Join(t.TempDir(), "lowrank.db")
		db, err := store.OpenSQLite(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		if _, err := store.NewSQLiteMeta(context.Background(), db); err != nil {
			t.Fatal(err)
		}
		// Lookups on the reader pool, as the server runs it.
		reads, err := store.OpenSQLiteReader(path, 4)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { reads.Close() })
		s, err := store.NewSQLiteMetaReads(context.Background(), db, reads)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestPostgresCompressions(t *testing.T) {
	storetest.CompressionStore(t, func(t *testing.T) storetest.Compressions {
		return openPostgres(t, pg.NewDatabase(t))
	})
}
