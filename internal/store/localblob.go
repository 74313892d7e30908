package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/lowrank/lowrank"
)

// LocalBlobs stores blobs as files in one directory. Put writes to a
// temporary file in the same directory, syncs it, renames it over the final
// name and syncs the directory, so a blob appears whole or not at all, even
// across a crash.
type LocalBlobs struct {
	dir string
}

var _ BlobStore = (*LocalBlobs)(nil)

const tempPrefix = ".tmp-"

// NewLocalBlobs opens (creating it if needed) the blob directory dir and
// removes temporary files a crash may have left.
func NewLocalBlobs(dir string) (*LocalBlobs, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("store: blob dir: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("store: blob dir: %w", err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	return &LocalBlobs{dir: dir}, nil
}

func checkKey(key string) error {
	if key == "" || len(key) > 200 || strings.HasPrefix(key, ".") {
		return lowrank.Errorf(lowrank.EINVALID, "key", "bad blob key %q", key)
	}
	for _, c := range key {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return lowrank.Errorf(lowrank.EINVALID, "key", "bad blob key %q", key)
		}
	}
	return nil
}

func (s *LocalBlobs) Put(ctx context.Context, key string, r io.Reader) (BlobInfo, error) {
	if err := checkKey(key); err != nil {
		return BlobInfo{}, err
	}
	f, err := os.CreateTemp(s.dir, tempPrefix+"*")
	if err != nil {
		return BlobInfo{}, fmt.Errorf("store: put %s: %w", key, err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), ctxReader{ctx, r})
	if err != nil {
		// The reader's error (e.g. *http.MaxBytesError) is kept in the chain
		// so the caller can tell a too-large upload from a broken one.
		return BlobInfo{}, fmt.Errorf("store: put %s: %w", key, err)
	}
	if err := f.Sync(); err != nil {
		return BlobInfo{}, fmt.Errorf("store: put %s: %w", key, err)
	}
	if err := f.Close(); err != nil {
		return BlobInfo{}, fmt.Errorf("store: put %s: %w", key, err)
	}
	if err := os.Rename(f.Name(), filepath.Join(s.dir, key)); err != nil {
		return BlobInfo{}, fmt.Errorf("store: put %s: %w", key, err)
	}
	committed = true
	if err := syncDir(s.dir); err != nil {
		return BlobInfo{}, fmt.Errorf("store: put %s: %w", key, err)
	}
	return BlobInfo{Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ctxReader stops a long copy when its context ends (a client gone away).
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

type fileBlob struct {
	*os.File
	size int64
}

func (b fileBlob) Size() int64 { return b.size }

// SpoolDir is where uploads may be spooled so that Adopt can rename them
// into place (same file system). Names starting with "." there are
// temporary and removed at start.
func (s *LocalBlobs) SpoolDir() string { return s.dir }

// Adopt moves the complete, synced file at path (in SpoolDir) under key,
// without copying it.
func (s *LocalBlobs) Adopt(_ context.Context, key, path string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if filepath.Dir(path) != filepath.Clean(s.dir) || !strings.HasPrefix(filepath.Base(path), ".") {
		return fmt.Errorf("store: adopt %s: %s is not a temporary file of the blob dir", key, path)
	}
	if err := os.Rename(path, filepath.Join(s.dir, key)); err != nil {
		return fmt.Errorf("store: adopt %s: %w", key, err)
	}
	if err := syncDir(s.dir); err != nil {
		return fmt.Errorf("store: adopt %s: %w", key, err)
	}
	return nil
}

func (s *LocalBlobs) Open(_ context.Context, key string) (Blob, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(s.dir, key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, lowrank.Errorf(lowrank.ENOTFOUND, "", "blob %s not found", key)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", key, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("store: open %s: %w", key, err)
	}
	return fileBlob{f, st.Size()}, nil
}

func (s *LocalBlobs) Delete(_ context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	err := os.Remove(filepath.Join(s.dir, key))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("store: delete %s: %w", key, err)
	}
	return nil
}

// Ping checks that the directory is still writable.
func (s *LocalBlobs) Ping(_ context.Context) error {
	f, err := os.CreateTemp(s.dir, tempPrefix+"ping-*")
	if err != nil {
		return fmt.Errorf("store: blob dir not writable: %w", err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}
