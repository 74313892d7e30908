// Package storetest is the conformance suite every BlobStore and MetaStore
// implementation must pass: each test takes a constructor, so the local-file
// and SQLite stores run exactly the tests a later S3 or Postgres store will.
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lowrank/lowrank"
	"github.com/lowrank/lowrank/internal/store"
)

// BlobStore runs the blob conformance suite on stores made by newStore
// (a fresh, empty store per call).
func BlobStore(t *testing.T, newStore func(t *testing.T) store.BlobStore) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))

	t.Run("PutOpenRoundTrip", func(t *testing.T) {
		s := newStore(t)
		// Sizes around the copy buffer (32 KiB) so chunk edges show.
		for _, n := range []int{0, 1, 2, 1000, 32<<10 - 1, 32 << 10, 32<<10 + 1, 300_000} {
			data := make([]byte, n)
			for i := range data {
				data[i] = byte(rng.IntN(256))
			}
			key := fmt.Sprintf("blob-%d", n)
			info, err := s.Put(ctx, key, bytes.NewReader(data))
			if err != nil {
				t.Fatalf("Put %d bytes: %v", n, err)
			}
			sum := sha256.Sum256(data)
			if info.Size != int64(n) || info.SHA256 != hex.EncodeToString(sum[:]) {
				t.Fatalf("Put %d bytes: info %+v, want size %d sha %x", n, info, n, sum)
			}
			b, err := s.Open(ctx, key)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if b.Size() != int64(n) {
				t.Errorf("Size %d, want %d", b.Size(), n)
			}
			got, err := io.ReadAll(b)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("ReadAll %d bytes: err %v, equal %v", n, err, bytes.Equal(got, data))
			}
			if n > 10 {
				buf := make([]byte, 7)
				if _, err := b.ReadAt(buf, int64(n-7)); err != nil || !bytes.Equal(buf, data[n-7:]) {
					t.Errorf("ReadAt tail: err %v got %x want %x", err, buf, data[n-7:])
				}
			}
			b.Close()
		}
	})

	t.Run("OpenMissing", func(t *testing.T) {
		s := newStore(t)
		_, err := s.Open(ctx, "nope")
		if lowrank.ErrorCode(err) != lowrank.ENOTFOUND {
			t.Fatalf("Open missing: %v, want ENOTFOUND", err)
		}
	})

	t.Run("FailedPutLeavesNothing", func(t *testing.T) {
		s := newStore(t)
		boom := errors.New("boom")
		_, err := s.Put(ctx, "half", io.MultiReader(bytes.NewReader(make([]byte, 100_000)), errReader{boom}))
		if !errors.Is(err, boom) {
			t.Fatalf("Put with failing reader: %v, want the reader's error in the chain", err)
		}
		if _, err := s.Open(ctx, "half"); lowrank.ErrorCode(err) != lowrank.ENOTFOUND {
			t.Fatalf("Open after failed Put: %v, want ENOTFOUND", err)
		}
		// A failed replacement keeps the old blob.
		if _, err := s.Put(ctx, "keep", bytes.NewReader([]byte("old"))); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Put(ctx, "keep", io.MultiReader(bytes.NewReader([]byte("newer")), errReader{boom})); err == nil {
			t.Fatal("Put with failing reader succeeded")
		}
		b, err := s.Open(ctx, "keep")
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(b)
		b.Close()
		if string(got) != "old" {
			t.Fatalf("after failed replace got %q, want old", got)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.Put(ctx, "d", bytes.NewReader([]byte("x"))); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, "d"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Open(ctx, "d"); lowrank.ErrorCode(err) != lowrank.ENOTFOUND {
			t.Fatalf("Open after Delete: %v", err)
		}
		if err := s.Delete(ctx, "d"); err != nil {
			t.Fatalf("Delete missing: %v, want nil", err)
		}
	})

	t.Run("BadKeys", func(t *testing.T) {
		s := newStore(t)
		for _, k := range []string{"", "../x", "a/b", ".hidden", "sp ace"} {
			if _, err := s.Put(ctx, k, bytes.NewReader(nil)); lowrank.ErrorCode(err) != lowrank.EINVALID {
				t.Errorf("Put %q: %v, want EINVALID", k, err)
			}
		}
	})

	t.Run("Adopt", func(t *testing.T) {
		s := newStore(t)
		a, ok := s.(store.Adopter)
		if !ok {
			t.Skip("not an Adopter")
		}
		f, err := os.CreateTemp(a.SpoolDir(), ".spool-*")
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString("adopted bytes")
		f.Close()
		if err := a.Adopt(ctx, "adopted", f.Name()); err != nil {
			t.Fatal(err)
		}
		b, err := s.Open(ctx, "adopted")
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(b)
		b.Close()
		if string(got) != "adopted bytes" {
			t.Fatalf("adopted blob %q", got)
		}
		if _, err := os.Stat(f.Name()); !os.IsNotExist(err) {
			t.Errorf("spooled file still there: %v", err)
		}
		// Only temporary files of the spool dir can be adopted.
		other := filepath.Join(t.TempDir(), ".x")
		os.WriteFile(other, []byte("x"), 0o600)
		if err := a.Adopt(ctx, "stolen", other); err == nil {
			t.Error("adopted a file outside the spool dir")
		}
	})

	t.Run("Ping", func(t *testing.T) {
		if err := newStore(t).Ping(ctx); err != nil {
			t.Fatal(err)
		}
	})

	// The blobs below span several parts of a store that uploads in parts
	// of S3's smallest size (5 MiB), as the S3 store's tests configure it:
	// exactly two full parts, and two full parts and a short one.
	const partSize = 5 << 20
	large := make([]byte, 2*partSize+partSize/3+7)
	for i := range large {
		large[i] = byte(rng.IntN(256))
	}

	t.Run("LargeRoundTrip", func(t *testing.T) {
		s := newStore(t)
		for _, n := range []int{2 * partSize, len(large)} {
			data := large[:n]
			key := fmt.Sprintf("large-%d", n)
			info, err := s.Put(ctx, key, onlyReader{bytes.NewReader(data)})
			if err != nil {
				t.Fatalf("Put %d bytes: %v", n, err)
			}
			sum := sha256.Sum256(data)
			if info.Size != int64(n) || info.SHA256 != hex.EncodeToString(sum[:]) {
				t.Fatalf("Put %d bytes: info %+v, want size %d sha %x", n, info, n, sum)
			}
			b, err := s.Open(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(b)
			b.Close()
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("ReadAll %d bytes: err %v, %d bytes, equal %v", n, err, len(got), bytes.Equal(got, data))
			}
		}
	})

	t.Run("RandomAccess", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.Put(ctx, "ra", bytes.NewReader(large)); err != nil {
			t.Fatal(err)
		}
		b, err := s.Open(ctx, "ra")
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		size := int64(len(large))
		if b.Size() != size {
			t.Fatalf("Size %d, want %d", b.Size(), size)
		}
		// Reads inside the blob, across part boundaries and at odd
		// offsets, fill the buffer and report no error.
		offs := []int64{0, 1, partSize - 3, partSize, 2*partSize - 1, size - 1000}
		for range 6 {
			offs = append(offs, rng.Int64N(size-1000))
		}
		for _, off := range offs {
			buf := make([]byte, 1000)
			if n, err := b.ReadAt(buf, off); n != len(buf) || err != nil || !bytes.Equal(buf, large[off:off+1000]) {
				t.Fatalf("ReadAt(1000 bytes, %d) = %d, %v; equal %v", off, n, err, bytes.Equal(buf, large[off:off+1000]))
			}
		}
		// A read past the end returns what there is and io.EOF.
		buf := make([]byte, 100)
		if n, err := b.ReadAt(buf, size-10); n != 10 || err != io.EOF || !bytes.Equal(buf[:10], large[size-10:]) {
			t.Fatalf("ReadAt across the end = %d, %v; want 10, EOF", n, err)
		}
		if n, err := b.ReadAt(buf, size); n != 0 || err != io.EOF {
			t.Fatalf("ReadAt at the end = %d, %v; want 0, EOF", n, err)
		}
		// ReadAt does not move the offset of Read; Seek does.
		head := make([]byte, 10)
		if _, err := io.ReadFull(b, head); err != nil || !bytes.Equal(head, large[:10]) {
			t.Fatalf("Read after ReadAt: %v, got %x want %x", err, head, large[:10])
		}
		if pos, err := b.Seek(partSize-5, io.SeekStart); err != nil || pos != partSize-5 {
			t.Fatalf("Seek = %d, %v", pos, err)
		}
		if _, err := io.ReadFull(b, head); err != nil || !bytes.Equal(head, large[partSize-5:partSize+5]) {
			t.Fatalf("Read after Seek: %v", err)
		}
		if pos, err := b.Seek(-7, io.SeekEnd); err != nil || pos != size-7 {
			t.Fatalf("Seek from end = %d, %v", pos, err)
		}
		if tail, err := io.ReadAll(b); err != nil || !bytes.Equal(tail, large[size-7:]) {
			t.Fatalf("ReadAll after Seek from end: %v, %x", err, tail)
		}
	})

	t.Run("FailedLargePutLeavesNothing", func(t *testing.T) {
		s := newStore(t)
		boom := errors.New("boom")
		// The reader fails after the first part has gone up.
		_, err := s.Put(ctx, "half", io.MultiReader(bytes.NewReader(large[:partSize+partSize/2]), errReader{boom}))
		if !errors.Is(err, boom) {
			t.Fatalf("Put with reader failing after one part: %v, want the reader's error in the chain", err)
		}
		if _, err := s.Open(ctx, "half"); lowrank.ErrorCode(err) != lowrank.ENOTFOUND {
			t.Fatalf("Open after failed Put: %v, want ENOTFOUND", err)
		}
		// A failed large replacement keeps the old blob.
		if _, err := s.Put(ctx, "keep", bytes.NewReader([]byte("old"))); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Put(ctx, "keep", io.MultiReader(bytes.NewReader(large), errReader{boom})); !errors.Is(err, boom) {
			t.Fatalf("large replacement with failing reader: %v", err)
		}
		b, err := s.Open(ctx, "keep")
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(b)
		b.Close()
		if string(got) != "old" {
			t.Fatalf("after failed replace got %d bytes, want old", len(got))
		}
	})

	t.Run("UploadLimitDetectable", func(t *testing.T) {
		s := newStore(t)
		// What the upload handler relies on to answer 413: the
		// *http.MaxBytesError stays in the chain, whether the limit is hit
		// in the first part or a later one.
		for _, limit := range []int64{1000, partSize + 1} {
			r := http.MaxBytesReader(nil, io.NopCloser(bytes.NewReader(large)), limit)
			_, err := s.Put(ctx, "limited", r)
			var mbe *http.MaxBytesError
			if !errors.As(err, &mbe) || mbe.Limit != limit {
				t.Fatalf("Put over a %d-byte limit: %v, want *http.MaxBytesError", limit, err)
			}
			if _, err := s.Open(ctx, "limited"); lowrank.ErrorCode(err) != lowrank.ENOTFOUND {
				t.Fatalf("Open after Put over the limit: %v, want ENOTFOUND", err)
			}
		}
	})

	t.Run("CanceledPut", func(t *testing.T) {
		s := newStore(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := s.Put(cctx, "canceled", bytes.NewReader(large)); !errors.Is(err, context.Canceled) {
			t.Fatalf("Put with a canceled context: %v, want context.Canceled", err)
		}
		if _, err := s.Open(ctx, "canceled"); lowrank.ErrorCode(err) != lowrank.ENOTFOUND {
			t.Fatalf("Open after canceled Put: %v, want ENOTFOUND", err)
		}
	})

	t.Run("Replace", func(t *testing.T) {
		s := newStore(t)
		// Small by large, large by small and small by small: the last Put
		// wins whole, whichever way each was uploaded.
		for i, data := range [][]byte{[]byte("first"), large, []byte("third"), []byte("4")} {
			info, err := s.Put(ctx, "r", bytes.NewReader(data))
			if err != nil || info.Size != int64(len(data)) {
				t.Fatalf("Put %d: %+v, %v", i, info, err)
			}
			b, err := s.Open(ctx, "r")
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(b)
			if err != nil || !bytes.Equal(got, data) || b.Size() != int64(len(data)) {
				t.Fatalf("after Put %d: %v, %d bytes (Size %d), want %d", i, err, len(got), b.Size(), len(data))
			}
			b.Close()
		}
	})

	t.Run("ConcurrentPutOneKey", func(t *testing.T) {
		s := newStore(t)
		// Racing Puts of one key, some in one piece and some in parts:
		// one of them wins whole (for a store that records a hash, with
		// the winner's hash, so a verified read succeeds).
		candidates := [][]byte{[]byte("small one"), large[:partSize+1], []byte("small two"), large[1 : 2*partSize+2]}
		var wg sync.WaitGroup
		for _, data := range candidates {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.Put(ctx, "contended", bytes.NewReader(data)); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		b, err := s.Open(ctx, "contended")
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		got, err := io.ReadAll(b)
		if err != nil {
			t.Fatalf("ReadAll: %v", err)
		}
		for _, c := range candidates {
			if bytes.Equal(got, c) && b.Size() == int64(len(c)) {
				return
			}
		}
		t.Fatalf("got %d bytes (Size %d), none of the blobs put", len(got), b.Size())
	})

	t.Run("ConcurrentOpen", func(t *testing.T) {
		s := newStore(t)
		data := large[:partSize+12345]
		if _, err := s.Put(ctx, "shared", bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for i := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b, err := s.Open(ctx, "shared")
				if err != nil {
					t.Error(err)
					return
				}
				defer b.Close()
				if i%2 == 0 {
					got, err := io.ReadAll(b)
					if err != nil || !bytes.Equal(got, data) {
						t.Errorf("reader %d: %v, equal %v", i, err, bytes.Equal(got, data))
					}
					return
				}
				off := int64(i * 100_000)
				buf := make([]byte, 50_000)
				if _, err := b.ReadAt(buf, off); err != nil || !bytes.Equal(buf, data[off:off+50_000]) {
					t.Errorf("reader %d ReadAt: %v", i, err)
				}
			}()
		}
		wg.Wait()
	})

	t.Run("Concurrent", func(t *testing.T) {
		s := newStore(t)
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				data := bytes.Repeat([]byte{byte(i)}, 50_000)
				key := fmt.Sprintf("c%d", i)
				if _, err := s.Put(ctx, key, bytes.NewReader(data)); err != nil {
					t.Error(err)
					return
				}
				b, err := s.Open(ctx, key)
				if err != nil {
					t.Error(err)
					return
				}
				defer b.Close()
				got, _ := io.ReadAll(b)
				if !bytes.Equal(got, data) {
					t.Errorf("blob %s corrupted", key)
				}
			}()
		}
		wg.Wait()
	})
}

type errReader struct{ err error }

// onlyReader hides every method but Read (bytes.Reader's WriteTo, Len, ...),
// as a network body would.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// MetaStore runs the metadata conformance suite on stores made by newStore
// (a fresh, empty store per call).
func MetaStore(t *testing.T, newStore func(t *testing.T) store.MetaStore) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)

	t.Run("Tensors", func(t *testing.T) {
		s := newStore(t)
		in := &store.Tensor{ID: "t1", Owner: "alice", Format: "npy", Bytes: 128, SHA256: "ab",
			Tensors: []store.TensorInfo{{Name: "w", DType: "float32", Shape: []int{4, 3}}}, CreatedAt: t0}
		if err := s.CreateTensor(ctx, in); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetTensor(ctx, "alice", "t1")
		if err != nil {
			t.Fatal(err)
		}
		if got.Format != "npy" || got.Bytes != 128 || got.SHA256 != "ab" || !got.CreatedAt.Equal(t0) ||
			len(got.Tensors) != 1 || got.Tensors[0].Shape[1] != 3 || got.Tensors[0].DType != "float32" {
			t.Fatalf("GetTensor = %+v", got)
		}
		if _, err := s.GetTensor(ctx, "bob", "t1"); lowrank.ErrorCode(err) != lowrank.ENOTFOUND {
			t.Fatalf("other owner: %v, want ENOTFOUND", err)
		}
		if err := s.DeleteTensor(ctx, "bob", "t1"); lowrank.ErrorCode(err) != lowrank.ENOTFOUND {
			t.Fatalf("other owner delete: %v, want ENOTFOUND", err)
		}
		if err := s.DeleteTensor(ctx, "alice", "t1"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetTensor(ctx, "alice", "t1"); lowrank.ErrorCode(err) != lowrank.ENOTFOUND {
			t.Fatalf("after delete: %v", err)
		}
	})

	t.Run("TensorPaging", func(t *testing.T) {
		s := newStore(t)
		for i := range 7 {
			if err := s.CreateTensor(ctx, &store.Tensor{ID: fmt.Sprintf("t%02d", i), Owner: "a", Format: "npy", CreatedAt: t0}); err != nil {
				t.Fatal(err)
			}
		}
		_ = s.CreateTensor(ctx, &store.Tensor{ID: "t99", Owner: "b", Format: "npy", CreatedAt: t0})
		var ids []string
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > 5 {
				t.Fatal("paging does not end")
			}
			ts, next, err := s.ListTensors(ctx, "a", store.Page{Limit: 3, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range ts {
				ids = append(ids, x.ID)
			}
			if next == "" {
				break
			}
			cursor = next
		}
		want := "[t06 t05 t04 t03 t02 t01 t00]"
		if fmt.Sprint(ids) != want {
			t.Fatalf("pages gave %v, want %s", ids, want)
		}
	})

	t.Run("Expired", func(t *testing.T) {
		s := newStore(t)
		hour := time.Hour
		for i, owner := range []string{"a", "b", "a"} {
			tt := &store.Tensor{ID: fmt.Sprintf("t%d", i), Owner: owner, Format: "npy", CreatedAt: t0.Add(time.Duration(i) * hour)}
			if err := s.CreateTensor(ctx, tt); err != nil {
				t.Fatal(err)
			}
		}
		// j0 reads t0 and is still queued, so t0 must not expire; j1 and
		// j2 finished at t0+1h and t0+3h; j3 is running.
		for i, st := range []store.JobStatus{store.JobQueued, store.JobSucceeded, store.JobFailed, store.JobRunning} {
			j := &store.Job{ID: fmt.Sprintf("j%d", i), Owner: "a", TensorID: "t0", InputKey: "t0", Method: "svd", CreatedAt: t0}
			if i > 0 {
				j.InputKey = "other"
			}
			if err := s.CreateJob(ctx, j, 0, nil); err != nil {
				t.Fatal(err)
			}
			if st == store.JobQueued {
				continue
			}
			fin := t0.Add(time.Duration(2*i-1) * hour)
			u := store.JobUpdate{Status: st}
			if st.Finished() {
				u.FinishedAt = &fin
			}
			if ok, err := s.TransitionJob(ctx, j.ID, []store.JobStatus{store.JobQueued}, u); err != nil || !ok {
				t.Fatalf("transition %s: %v %v", j.ID, ok, err)
			}
		}
		ids := func(ts []*store.Tensor, js []*store.Job) string {
			var out []string
			for _, t := range ts {
				out = append(out, t.ID)
			}
			for _, j := range js {
				out = append(out, j.ID)
			}
			return strings.Join(out, ",")
		}
		cutoff := t0.Add(90 * time.Minute)
		ts, err := s.ExpiredTensors(ctx, cutoff, 10)
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(ts, nil); got != "t1" {
			t.Fatalf("ExpiredTensors(t0+90m) = %q, want t1 (t0 is read by a queued job, t2 is newer)", got)
		}
		js, err := s.ExpiredJobs(ctx, cutoff, 10)
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(nil, js); got != "j1" {
			t.Fatalf("ExpiredJobs(t0+90m) = %q, want j1", got)
		}
		js, _ = s.ExpiredJobs(ctx, t0.Add(100*hour), 10)
		if got := ids(nil, js); got != "j1,j2" {
			t.Fatalf("ExpiredJobs(t0+100h) = %q, want j1,j2 (j0 queued and j3 running never expire)", got)
		}
		js, _ = s.ExpiredJobs(ctx, t0.Add(100*hour), 1)
		if len(js) != 1 {
			t.Fatalf("limit 1 gave %d jobs", len(js))
		}
		// Once the queued job ends, its tensor may go too.
		now := t0.Add(4 * hour)
		if ok, _ := s.TransitionJob(ctx, "j0", []store.JobStatus{store.JobQueued}, store.JobUpdate{Status: store.JobCanceled, FinishedAt: &now}); !ok {
			t.Fatal("cancel j0")
		}
		ts, _ = s.ExpiredTensors(ctx, cutoff, 10)
		if got := ids(ts, nil); got != "t0,t1" {
			t.Fatalf("ExpiredTensors after j0 ended = %q, want t0,t1", got)
		}
	})

	t.Run("TensorInUse", func(t *testing.T) {
		s := newStore(t)
		if err := s.CreateTensor(ctx, &store.Tensor{ID: "t1", Owner: "a", Format: "npy", CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
		err := s.CreateJob(ctx, &store.Job{ID: "jx", Owner: "a", TensorID: "gone", InputKey: "gone", Method: "svd", CreatedAt: t0}, 0, nil)
		if lowrank.ErrorCode(err) != lowrank.ENOTFOUND {
			t.Fatalf("job of a missing tensor: %v, want ENOTFOUND", err)
		}
		err = s.CreateJob(ctx, &store.Job{ID: "jb", Owner: "b", TensorID: "t1", InputKey: "t1", Method: "svd", CreatedAt: t0}, 0, nil)
		if lowrank.ErrorCode(err) != lowrank.ENOTFOUND {
			t.Fatalf("job of another owner's tensor: %v, want ENOTFOUND", err)
		}
		if _, err := s.GetJobByID(ctx, "jx"); lowrank.ErrorCode(err) != lowrank.ENOTFOUND {
			t.Fatalf("a refused job was recorded: %v", err)
		}
		j := &store.Job{ID: "j1", Owner: "a", TensorID: "t1", InputKey: "t1", Method: "svd", CreatedAt: t0}
		if err := s.CreateJob(ctx, j, 0, nil); err != nil {
			t.Fatal(err)
		}
		now := t0.Add(time.Minute)
		for _, step := range []store.JobUpdate{{Status: store.JobQueued}, {Status: store.JobRunning, StartedAt: &now}} {
			if step.Status == store.JobRunning {
				if ok, err := s.TransitionJob(ctx, "j1", []store.JobStatus{store.JobQueued}, step); !ok || err != nil {
					t.Fatalf("start j1: %v %v", ok, err)
				}
			}
			err := s.DeleteTensor(ctx, "a", "t1")
			if lowrank.ErrorCode(err) != lowrank.ECONFLICT || !strings.Contains(err.Error(), "j1") {
				t.Fatalf("delete a tensor a %s job reads: %v, want ECONFLICT naming j1", step.Status, err)
			}
			if _, err := s.GetTensor(ctx, "a", "t1"); err != nil {
				t.Fatalf("the refused delete removed the tensor: %v", err)
			}
		}
		if err := s.DeleteTensor(ctx, "b", "t1"); lowrank.ErrorCode(err) != lowrank.ENOTFOUND {
			t.Fatalf("another owner's delete: %v, want ENOTFOUND", err)
		}
		if ok, err := s.TransitionJob(ctx, "j1", []store.JobStatus{store.JobRunning}, store.JobUpdate{Status: store.JobSucceeded, FinishedAt: &now}); !ok || err != nil {
			t.Fatalf("finish j1: %v %v", ok, err)
		}
		if err := s.DeleteTensor(ctx, "a", "t1"); err != nil {
			t.Fatalf("delete once its job finished: %v", err)
		}
	})

	// Submissions racing deletions of their tensor: each pair ends with the
	// job refused or the deletion refused, never a queued job whose tensor
	// is gone.
	t.Run("TensorInUseRace", func(t *testing.T) {
		s := newStore(t)
		const n = 20
		for i := range n {
			id := fmt.Sprintf("t%d", i)
			if err := s.CreateTensor(ctx, &store.Tensor{ID: id, Owner: "a", Format: "npy", CreatedAt: t0}); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			var jobErr, delErr error
			wg.Add(2)
			go func() {
				defer wg.Done()
				jobErr = s.CreateJob(ctx, &store.Job{ID: "j" + id, Owner: "a", TensorID: id, InputKey: id, Method: "svd", CreatedAt: t0}, 0, nil)
			}()
			go func() {
				defer wg.Done()
				delErr = s.DeleteTensor(ctx, "a", id)
			}()
			wg.Wait()
			switch {
			case jobErr == nil && lowrank.ErrorCode(delErr) == lowrank.ECONFLICT:
			case delErr == nil && lowrank.ErrorCode(jobErr) == lowrank.ENOTFOUND:
			default:
				t.Fatalf("pair %d: job %v, delete %v; want exactly one refused", i, jobErr, delErr)
			}
		}
	})

	t.Run("JobLifecycle", func(t *testing.T) {
		s := newStore(t)
		if err := s.CreateTensor(ctx, &store.Tensor{ID: "t1", Owner: "a", Format: "npy", CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
		j := &store.Job{ID: "j1", Owner: "a", TensorID: "t1", TensorName: "w", InputKey: "t1", Method: "svd",
			Params: json.RawMessage(`{"rank":2}`), CreatedAt: t0}
		err := s.CreateJob(ctx, j, 0, func(ctx context.Context, tx *sql.Tx) (int64, error) { return 42, nil })
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.GetJob(ctx, "a", "j1")
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != store.JobQueued || got.RiverID != 42 || string(got.Params) != `{"rank":2}` || got.StartedAt != nil {
			t.Fatalf("GetJob = %+v", got)
		}
		if _, err := s.GetJob(ctx, "b", "j1"); lowrank.ErrorCode(err) != lowrank.ENOTFOUND {
			t.Fatalf("other owner: %v", err)
		}
		if n, _ := s.CountJobs(ctx, store.JobQueued, store.JobRunning); n != 1 {
			t.Fatalf("CountJobs = %d, want 1", n)
		}
		t1 := t0.Add(time.Second)
		ok, err := s.TransitionJob(ctx, "j1", []store.JobStatus{store.JobQueued}, store.JobUpdate{Status: store.JobRunning, StartedAt: &t1})
		if err != nil || !ok {
			t.Fatalf("queued→running: %v %v", ok, err)
		}
		ok, _ = s.TransitionJob(ctx, "j1", []store.JobStatus{store.JobQueued}, store.JobUpdate{Status: store.JobRunning})
		if ok {
			t.Fatal("second queued→running succeeded")
		}
		rel := 0.25
		if err := s.SetProgress(ctx, "j1", store.Progress{Iteration: 3, MaxIterations: 10, RelError: &rel, Fraction: 0.3}); err != nil {
			t.Fatal(err)
		}
		got, _ = s.GetJobByID(ctx, "j1")
		if got.Progress.Iteration != 3 || got.Progress.RelError == nil || *got.Progress.RelError != 0.25 || !got.StartedAt.Equal(t1) {
			t.Fatalf("progress/started = %+v %v", got.Progress, got.StartedAt)
		}
		t2 := t1.Add(time.Second)
		ok, err = s.TransitionJob(ctx, "j1", []store.JobStatus{store.JobRunning}, store.JobUpdate{
			Status: store.JobSucceeded, FinishedAt: &t2, Result: json.RawMessage(`{"ranks":[2]}`),
			Timings: map[string]float64{"compute": 0.5}, BundleKey: "j1.safetensors"})
		if err != nil || !ok {
			t.Fatalf("running→succeeded: %v %v", ok, err)
		}
		// A late cancel must not overwrite the outcome.
		ok, _ = s.TransitionJob(ctx, "j1", []store.JobStatus{store.JobQueued, store.JobRunning}, store.JobUpdate{Status: store.JobCanceled})
		if ok {
			t.Fatal("cancel after success applied")
		}
		got, _ = s.GetJob(ctx, "a", "j1")
		if got.Status != store.JobSucceeded || string(got.Result) != `{"ranks":[2]}` || got.Timings["compute"] != 0.5 ||
			got.BundleKey != "j1.safetensors" || !got.FinishedAt.Equal(t2) || got.Error != nil {
			t.Fatalf("finished job = %+v", got)
		}
		if n, _ := s.CountJobs(ctx, store.JobQueued, store.JobRunning); n != 0 {
			t.Fatalf("CountJobs = %d, want 0", n)
		}
		if err := s.DeleteJob(ctx, "b", "j1"); lowrank.ErrorCode(err) != lowrank.ENOTFOUND {
			t.Fatalf("other owner delete: %v", err)
		}
		if err := s.DeleteJob(ctx, "a", "j1"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetJobByID(ctx, "j1"); lowrank.ErrorCode(err) != lowrank.ENOTFOUND {
			t.Fatalf("after delete: %v", err)
		}
	})

	t.Run("RequeueRunning", func(t *testing.T) {
		s := newStore(t)
		for _, id := range []string{"r1", "r2", "q"} {
			if err := s.CreateJob(ctx, &store.Job{ID: id, Method: "svd", CreatedAt: t0}, 0, nil); err != nil {
				t.Fatal(err)
			}
		}
		for _, id := range []string{"r1", "r2"} {
			_, _ = s.TransitionJob(ctx, id, []store.JobStatus{store.JobQueued}, store.JobUpdate{Status: store.JobRunning})
		}
		_ = s.SetProgress(ctx, "r1", store.Progress{Iteration: 5, Fraction: 0.5})
		n, err := s.RequeueRunning(ctx)
		if err != nil || n != 2 {
			t.Fatalf("RequeueRunning = %d, %v; want 2", n, err)
		}
		j, _ := s.GetJobByID(ctx, "r1")
		if j.Status != store.JobQueued || j.Progress.Iteration != 0 {
			t.Fatalf("requeued job %+v", j)
		}
	})

	t.Run("JobFailureRecorded", func(t *testing.T) {
		s := newStore(t)
		if err := s.CreateJob(ctx, &store.Job{ID: "j", Method: "cp", CreatedAt: t0}, 0, nil); err != nil {
			t.Fatal(err)
		}
		ok, err := s.TransitionJob(ctx, "j", []store.JobStatus{store.JobQueued}, store.JobUpdate{
			Status: store.JobFailed, Error: &store.JobError{Code: lowrank.EINVALID, Field: "params.rank", Message: "too big"}})
		if err != nil || !ok {
			t.Fatal(ok, err)
		}
		got, _ := s.GetJob(ctx, "", "j")
		if got.Error == nil || got.Error.Field != "params.rank" || got.Status != store.JobFailed {
			t.Fatalf("failed job = %+v", got)
		}
	})

	t.Run("CreateJobRollsBack", func(t *testing.T) {
		s := newStore(t)
		boom := errors.New("queue down")
		err := s.CreateJob(ctx, &store.Job{ID: "j", Method: "svd", CreatedAt: t0}, 0,
			func(context.Context, *sql.Tx) (int64, error) { return 0, boom })
		if !errors.Is(err, boom) {
			t.Fatalf("CreateJob: %v, want the enqueue error", err)
		}
		if _, err := s.GetJobByID(ctx, "j"); lowrank.ErrorCode(err) != lowrank.ENOTFOUND {
			t.Fatalf("job recorded although enqueue failed: %v", err)
		}
	})

	t.Run("JobListFilters", func(t *testing.T) {
		s := newStore(t)
		for i, m := range []string{"svd", "pca", "svd", "cp", "svd"} {
			j := &store.Job{ID: fmt.Sprintf("j%d", i), Owner: "a", Method: m, CreatedAt: t0}
			if err := s.CreateJob(ctx, j, 0, nil); err != nil {
				t.Fatal(err)
			}
		}
		_, _ = s.TransitionJob(ctx, "j4", []store.JobStatus{store.JobQueued}, store.JobUpdate{Status: store.JobRunning})
		list := func(f store.JobFilter, limit int) string {
			var ids []string
			cursor := ""
			for {
				js, next, err := s.ListJobs(ctx, f, store.Page{Limit: limit, Cursor: cursor})
				if err != nil {
					t.Fatal(err)
				}
				for _, j := range js {
					ids = append(ids, j.ID)
				}
				if next == "" {
					return fmt.Sprint(ids)
				}
				cursor = next
			}
		}
		if got := list(store.JobFilter{Owner: "a", Method: "svd"}, 2); got != "[j4 j2 j0]" {
			t.Errorf("method=svd: %s", got)
		}
		if got := list(store.JobFilter{Owner: "a", Status: store.JobQueued, Method: "svd"}, 1); got != "[j2 j0]" {
			t.Errorf("status=queued method=svd: %s", got)
		}
		if got := list(store.JobFilter{Owner: "b"}, 10); got != "[]" {
			t.Errorf("other owner: %s", got)
		}
	})

	t.Run("Admission", func(t *testing.T) {
		s := newStore(t)
		var wg sync.WaitGroup
		var mu sync.Mutex
		codes := map[string]int{}
		var admitted []string
		for i := range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := fmt.Sprintf("a%d", i)
				err := s.CreateJob(ctx, &store.Job{ID: id, Method: "svd", CreatedAt: t0}, 3, nil)
				mu.Lock()
				codes[lowrank.ErrorCode(err)]++
				if err == nil {
					admitted = append(admitted, id)
				}
				mu.Unlock()
			}()
		}
		wg.Wait()
		if codes[""] != 3 || codes[lowrank.EOVERLOADED] != 7 {
			t.Fatalf("10 submissions against capacity 3: %v, want 3 admitted and 7 EOVERLOADED", codes)
		}
		// A finished job frees its slot.
		if ok, err := s.TransitionJob(ctx, admitted[0], []store.JobStatus{store.JobQueued}, store.JobUpdate{Status: store.JobCanceled}); !ok || err != nil {
			t.Fatal(ok, err)
		}
		if err := s.CreateJob(ctx, &store.Job{ID: "b", Method: "svd", CreatedAt: t0}, 3, nil); err != nil {
			t.Fatalf("after slots freed: %v", err)
		}
	})

	t.Run("ConcurrentTransitionsAgree", func(t *testing.T) {
		s := newStore(t)
		if err := s.CreateJob(ctx, &store.Job{ID: "race", Method: "svd", CreatedAt: t0}, 0, nil); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wins := make(chan store.JobStatus, 2)
		for _, to := range []store.JobStatus{store.JobRunning, store.JobCanceled} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, err := s.TransitionJob(ctx, "race", []store.JobStatus{store.JobQueued}, store.JobUpdate{Status: to})
				if err != nil {
					t.Error(err)
				}
				if ok {
					wins <- to
				}
			}()
		}
		wg.Wait()
		close(wins)
		if n := len(wins); n != 1 {
			t.Fatalf("%d transitions from queued won, want exactly 1", n)
		}
	})
}
