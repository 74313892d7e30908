package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/lowrank/lowrank"
	"github.com/lowrank/lowrank/internal/store"
	"github.com/lowrank/lowrank/internal/store/s3test"
	"github.com/lowrank/lowrank/internal/store/storetest"
)

// s3srv is this package's S3 server, started by the first test that needs
// it (TestMain stops it).
var s3srv s3test.Server

// newS3 opens a store on a fresh bucket, under a prefix so that the
// prefix's handling is always exercised, with the smallest part size so
// that a blob of a few MiB goes up in several parts.
func newS3(t *testing.T) (*store.S3Blobs, store.S3Config) {
	t.Helper()
	cfg := s3srv.NewBucket(t)
	cfg.Prefix = "lowrank/blobs"
	cfg.PartSize = store.MinS3PartSize
	s, err := store.NewS3Blobs(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, cfg
}

func TestS3Blobs(t *testing.T) {
	storetest.BlobStore(t, func(t *testing.T) store.BlobStore {
		s, _ := newS3(t)
		return s
	})
}

// TestS3Layout checks where a blob lands and what it carries: under the
// prefix, with its SHA-256 as metadata whether it went up in one PUT or in
// parts, and no multipart upload left behind by a failed Put.
func TestS3Layout(t *testing.T) {
	ctx := context.Background()
	s, cfg := newS3(t)
	c := s3srv.Client()
	small := []byte("small blob")
	large := bytes.Repeat([]byte("0123456789abcdef"), (store.MinS3PartSize+1000)/16)
	for key, data := range map[string][]byte{"small": small, "large": large} {
		info, err := s.Put(ctx, key, bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		st, err := c.StatObject(ctx, cfg.Bucket, "lowrank/blobs/"+key, minio.StatObjectOptions{})
		if err != nil {
			t.Fatalf("%s not under the prefix: %v", key, err)
		}
		if got := st.UserMetadata["Lowrank-Sha256"]; got != info.SHA256 || st.Size != int64(len(data)) {
			t.Errorf("%s: metadata sha256 %q size %d, want %q %d", key, got, st.Size, info.SHA256, len(data))
		}
	}

	boom := errors.New("boom")
	for _, r := range []io.Reader{
		io.MultiReader(bytes.NewReader(large), errReader{boom}),
		http.MaxBytesReader(nil, io.NopCloser(bytes.NewReader(large)), store.MinS3PartSize+10),
	} {
		if _, err := s.Put(ctx, "failed", r); err == nil {
			t.Fatal("Put with a failing reader succeeded")
		}
	}
	for u := range c.ListIncompleteUploads(ctx, cfg.Bucket, "", true) {
		t.Errorf("multipart upload left behind: %+v", u)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// TestS3ServerVerifiesChecksums checks what S3Blobs relies on: the server
// refuses a PUT whose x-amz-checksum-sha256 and a part whose
// x-amz-checksum-crc32c do not match the body.
func TestS3ServerVerifiesChecksums(t *testing.T) {
	ctx := context.Background()
	_, cfg := newS3(t)
	core := minio.Core{Client: s3srv.Client()}
	wrong := sha256.Sum256([]byte("something else"))
	body := []byte("the body")
	_, err := core.PutObject(ctx, cfg.Bucket, "bad-sha", bytes.NewReader(body), int64(len(body)), "", "", minio.PutObjectOptions{
		UserMetadata: map[string]string{"x-amz-checksum-sha256": base64.StdEncoding.EncodeToString(wrong[:])}})
	if code := minio.ToErrorResponse(err).Code; code != "BadDigest" {
		t.Errorf("PUT with a wrong sha256 checksum: %v (code %q), want BadDigest", err, code)
	}

	id, err := core.NewMultipartUpload(ctx, cfg.Bucket, "bad-crc", minio.PutObjectOptions{
		UserMetadata: map[string]string{"x-amz-checksum-algorithm": "CRC32C"}})
	if err != nil {
		t.Fatal(err)
	}
	defer core.AbortMultipartUpload(ctx, cfg.Bucket, "bad-crc", id)
	_, err = core.PutObjectPart(ctx, cfg.Bucket, "bad-crc", id, 1, bytes.NewReader(body), int64(len(body)),
		minio.PutObjectPartOptions{CustomHeader: http.Header{"X-Amz-Checksum-Crc32c": {"AAAAAA=="}}})
	if code := minio.ToErrorResponse(err).Code; code != "BadDigest" {
		t.Errorf("part with a wrong crc32c checksum: %v (code %q), want BadDigest", err, code)
	}
}

// TestS3OpenVerifies replaces a blob's bytes behind the store's back,
// keeping its recorded SHA-256, and checks that a full sequential read
// notices while random access still works.
func TestS3OpenVerifies(t *testing.T) {
	ctx := context.Background()
	s, cfg := newS3(t)
	info, err := s.Put(ctx, "b", strings.NewReader("the original bytes"))
	if err != nil {
		t.Fatal(err)
	}
	readAll := func() ([]byte, error) {
		b, err := s.Open(ctx, "b")
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		// A partial read and a seek back to the start still verify.
		if _, err := io.ReadFull(b, make([]byte, 3)); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Seek(0, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		return io.ReadAll(b)
	}
	if got, err := readAll(); err != nil || string(got) != "the original bytes" {
		t.Fatalf("intact blob: %q, %v", got, err)
	}

	forged := []byte("THE ORIGINAL BYTES")
	_, err = s3srv.Client().PutObject(ctx, cfg.Bucket, "lowrank/blobs/b", bytes.NewReader(forged), int64(len(forged)),
		minio.PutObjectOptions{UserMetadata: map[string]string{"Lowrank-Sha256": info.SHA256}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readAll(); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("full read of a changed blob: %v, want ErrCorrupt", err)
	}
	b, err := s.Open(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	buf := make([]byte, 3)
	if _, err := b.ReadAt(buf, 4); err != nil || string(buf) != "ORI" {
		t.Fatalf("ReadAt of a changed blob: %q, %v", buf, err)
	}
}

func TestNewS3BlobsConfig(t *testing.T) {
	ctx := context.Background()
	cfg := s3srv.NewBucket(t)
	for name, mod := range map[string]func(*store.S3Config){
		"scheme":    func(c *store.S3Config) { c.Endpoint = "http://" + c.Endpoint },
		"bucket":    func(c *store.S3Config) { c.Bucket = "Not_A_Bucket" },
		"part size": func(c *store.S3Config) { c.PartSize = store.MinS3PartSize - 1 },
	} {
		bad := cfg
		mod(&bad)
		if _, err := store.NewS3Blobs(ctx, bad); lowrank.ErrorCode(err) != lowrank.EINVALID {
			t.Errorf("%s: %v, want EINVALID", name, err)
		}
	}
	wrongKey := cfg
	wrongKey.SecretKey += "x"
	if _, err := store.NewS3Blobs(ctx, wrongKey); err == nil {
		t.Error("wrong secret key accepted")
	}

	missing := cfg
	missing.Bucket = cfg.Bucket + "-new"
	if _, err := store.NewS3Blobs(ctx, missing); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing bucket: %v, want an error saying so", err)
	}
	missing.CreateBucket = true
	s, err := store.NewS3Blobs(ctx, missing)
	if err != nil {
		t.Fatalf("CreateBucket: %v", err)
	}
	t.Cleanup(func() { s3srv.Client().RemoveBucket(ctx, missing.Bucket) })
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if err := s3srv.Client().RemoveBucket(ctx, missing.Bucket); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err == nil {
		t.Fatal("Ping succeeded on a removed bucket")
	}
}

func TestParseS3URL(t *testing.T) {
	for _, c := range []struct {
		raw, bucket, prefix string
	}{
		{"s3://bucket", "bucket", ""},
		{"s3://bucket/", "bucket", ""},
		{"s3://my-bucket.v2/some/prefix", "my-bucket.v2", "some/prefix"},
		{"s3://b12/a/b/c/", "b12", "a/b/c"},
	} {
		b, p, err := store.ParseS3URL(c.raw)
		if err != nil || b != c.bucket || p != c.prefix {
			t.Errorf("ParseS3URL(%q) = %q, %q, %v; want %q, %q", c.raw, b, p, err, c.bucket, c.prefix)
		}
	}
	for _, raw := range []string{
		"", "bucket/prefix", "http://bucket/x", "s3:bucket", "s3:///prefix", "s3://ab", "s3://Bucket",
		"s3://bucket-", "s3://-bucket", "s3://a..b", "s3://bucket_x", "s3://bucket:9000/x", "s3://u:p@bucket/x",
		"s3://bucket/x?region=eu", "s3://bucket/x#y", "s3://bucket/a//b", "s3://bucket/a/../b", "s3://bucket/./b",
		"s3://" + strings.Repeat("b", 64),
	} {
		if _, _, err := store.ParseS3URL(raw); lowrank.ErrorCode(err) != lowrank.EINVALID {
			t.Errorf("ParseS3URL(%q) = %v, want EINVALID", raw, err)
		}
	}
}
