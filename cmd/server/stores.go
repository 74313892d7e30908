package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"github.com/lowrank/lowrank/internal/jobs"
	"github.com/lowrank/lowrank/internal/store"
)

// stores are where the server keeps its state: the embedded deployment's
// SQLite database and files under the data dir, or the scale-out one's
// Postgres database (and S3 bucket), shared by every replica.
type stores struct {
	meta  store.MetaStore
	blobs store.BlobStore
	queue jobs.Queue
	// singleProcess: no other process shares the queue (SQLite), so jobs
	// left running at start are orphans to requeue at once.
	singleProcess bool
	// database and blobStore name the backends for the logs, no secrets.
	database, blobStore string
	closers             []func() error
}

// openStores opens the metadata store, the queue's database and the blob
// store that cfg names.
func openStores(ctx context.Context, cfg *config) (_ *stores, err error) {
	s := &stores{}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if cfg.DatabaseURL == "" || cfg.BlobURL == "" {
		if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
			return nil, fmt.Errorf("data dir: %w", err)
		}
	}
	if cfg.DatabaseURL == "" {
		if err := s.openSQLite(ctx, filepath.Join(cfg.DataDir, "lowrank.db")); err != nil {
			return nil, err
		}
	} else {
		pg, err := store.OpenPostgres(ctx, cfg.DatabaseURL)
		if err != nil {
			return nil, err
		}
		s.closers = append(s.closers, pg.Close)
		s.meta, s.queue = pg, jobs.PostgresQueue(pg.Pool())
		s.database = "postgres " + describeURL(cfg.DatabaseURL)
	}
	if cfg.BlobURL == "" {
		if s.blobs, err = store.NewLocalBlobs(filepath.Join(cfg.DataDir, "blobs")); err != nil {
			return nil, err
		}
		s.blobStore = "files in " + filepath.Join(cfg.DataDir, "blobs")
	} else if err := s.openS3(ctx, cfg); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *stores) openSQLite(ctx context.Context, path string) error {
	db, err := store.OpenSQLite(path)
	if err != nil {
		return err
	}
	s.closers = append(s.closers, db.Close)
	if _, err := store.NewSQLiteMeta(ctx, db); err != nil { // creates the schema for the readers
		return err
	}
	reads, err := store.OpenSQLiteReader(path, 4)
	if err != nil {
		return err
	}
	s.closers = append(s.closers, reads.Close)
	if s.meta, err = store.NewSQLiteMetaReads(ctx, db, reads); err != nil {
		return err
	}
	s.queue, s.singleProcess = jobs.SQLiteQueue(db), true
	s.database = "sqlite " + path
	return nil
}

func (s *stores) openS3(ctx context.Context, cfg *config) error {
	return errors.New("--blob-url: S3 blob storage is not built into this server yet")
}

// close closes what openStores opened, last first.
func (s *stores) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		_ = s.closers[i]()
	}
	s.closers = nil
}

// describeURL is a database URL's host and path, for the logs: never its
// user, password or parameters.
func describeURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Host + u.Path
}
