package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"github.com/lowrank/lowrank/internal/handlers"
	"github.com/lowrank/lowrank/internal/jobs"
	"github.com/lowrank/lowrank/internal/store"
)

// stores are where the server keeps its state: the embedded deployment's
// SQLite database and files under the data dir, or the scale-out one's
// Postgres database (and S3 bucket), shared by every replica.
type stores struct {
	meta store.MetaStore
	// compressions lives in meta's database.
	compressions store.CompressionStore
	blobs        store.BlobStore
	queue        jobs.Queue
	// singleProcess: no other process shares the queue (SQLite), so jobs
	// left running at start are orphans to requeue at once.
	singleProcess bool
	// kinds are the backends for /v1/info; database and blobStore
	// describe them for the logs; neither holds a secret.
	kinds               handlers.Storage
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
		s.meta, s.queue, s.compressions = pg, jobs.PostgresQueue(pg.Pool()), pg.Compressions()
		s.database = "postgres " + describeURL(cfg.DatabaseURL)
		s.kinds.Database = "postgres"
	}
	if cfg.BlobURL == "" {
		if s.blobs, err = store.NewLocalBlobs(filepath.Join(cfg.DataDir, "blobs")); err != nil {
			return nil, err
		}
		s.blobStore = "files in " + filepath.Join(cfg.DataDir, "blobs")
		s.kinds.Blobs = "files"
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
	sm, err := store.NewSQLiteMetaReads(ctx, db, reads)
	if err != nil {
		return err
	}
	s.meta, s.compressions = sm, sm.Compressions()
	s.queue, s.singleProcess = jobs.SQLiteQueue(db), true
	s.database = "sqlite " + path
	s.kinds.Database = "sqlite"
	return nil
}

// openS3 opens the bucket of cfg.BlobURL, which must exist: a typo in a
// bucket name should stop the server, not create a new bucket.
func (s *stores) openS3(ctx context.Context, cfg *config) error {
	bucket, prefix, err := store.ParseS3URL(cfg.BlobURL)
	if err != nil {
		return err
	}
	s.blobs, err = store.NewS3Blobs(ctx, store.S3Config{
		Endpoint: cfg.S3.Endpoint, Secure: !cfg.S3.Insecure, Region: cfg.S3.Region,
		AccessKey: cfg.S3.AccessKey, SecretKey: cfg.S3.SecretKey, Bucket: bucket, Prefix: prefix,
	})
	if err != nil {
		return err
	}
	s.blobStore = "s3 " + cfg.BlobURL + " at " + cfg.S3.Endpoint
	s.kinds.Blobs = "s3"
	return nil
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
