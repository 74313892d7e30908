package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/lowrank/lowrank"
)

// S3Config says where an S3-compatible store is and how to reach it.
type S3Config struct {
	Endpoint             string // host[:port], no scheme
	Secure               bool   // https
	Region               string // may be empty
	AccessKey, SecretKey string
	Bucket, Prefix       string // from ParseS3URL; Prefix "" or ending without '/'
	PartSize             uint64 // multipart part size; 0 means DefaultS3PartSize
	CreateBucket         bool   // create the bucket when missing (tests, dev); otherwise a missing bucket is an error
}

// Part sizes. S3 wants every part but the last to be at least 5 MiB and at
// most 5 GiB, and an upload to have at most 10000 parts, so the default
// part size caps a blob at about 156 GiB.
const (
	DefaultS3PartSize = 16 << 20
	MinS3PartSize     = 5 << 20
	maxS3PartSize     = 5 << 30
	maxS3Parts        = 10000
)

// metaSHA256 is the user metadata (x-amz-meta-lowrank-sha256) holding a
// blob's SHA-256 in lowercase hex.
const metaSHA256 = "Lowrank-Sha256"

// ErrCorrupt is in the chain of the error a Blob's Read returns when a full
// sequential read does not hash to the SHA-256 recorded at Put.
var ErrCorrupt = errors.New("store: blob content does not match its recorded sha256")

// ParseS3URL splits "s3://bucket/some/prefix" into bucket and prefix (here
// "some/prefix", without leading or trailing '/'). The bucket must be a
// valid S3 bucket name; the URL may carry nothing else (no port, user,
// query or fragment) and the prefix no empty, "." or ".." segments.
func ParseS3URL(raw string) (bucket, prefix string, err error) {
	bad := func(why string) (string, string, error) {
		return "", "", lowrank.Errorf(lowrank.EINVALID, "blob_url", "blob URL %q: %s (want s3://bucket or s3://bucket/prefix)", raw, why)
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return bad("not a URL")
	case u.Scheme != "s3":
		return bad("scheme is not s3")
	case u.Opaque != "":
		return bad("no // after s3:")
	case u.User != nil || u.Port() != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return bad("only a bucket and a prefix are allowed")
	}
	bucket = u.Hostname()
	if !validBucketName(bucket) {
		return bad("bucket must be 3-63 lowercase letters, digits, '.' or '-', starting and ending with a letter or digit")
	}
	prefix = strings.Trim(u.Path, "/")
	if prefix != "" {
		for _, seg := range strings.Split(prefix, "/") {
			if seg == "" || seg == "." || seg == ".." {
				return bad("empty, '.' or '..' segment in the prefix")
			}
		}
	}
	return bucket, prefix, nil
}

// validBucketName is S3's rule for new bucket names, minus the rarer ones
// (IP-address look-alikes, reserved prefixes) that the server enforces.
func validBucketName(b string) bool {
	if len(b) < 3 || len(b) > 63 || strings.Contains(b, "..") {
		return false
	}
	for i, c := range b {
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && ((c != '.' && c != '-') || i == 0 || i == len(b)-1) {
			return false
		}
	}
	return true
}

// S3Blobs stores blobs as objects of one bucket, under an optional prefix,
// in any S3-compatible store (AWS S3, MinIO, versitygw, ...).
//
// Put streams: it holds one part (PartSize bytes) in memory, in a buffer
// that later Puts reuse. A blob that fits in one part goes up in a single
// PUT; a larger one in a multipart upload, which S3 makes visible only when
// it completes, so a reader never sees a partial blob. A failed Put aborts
// its multipart upload, leaving no parts behind.
//
// Integrity. The server verifies every request body against a checksum
// computed before sending, as S3's additional checksums define them (both
// AWS S3 and versitygw v1.8.0 check them and answer BadDigest): a single PUT
// carries x-amz-checksum-sha256 of the whole blob, which is the very SHA-256
// that Put returns, so the stored bytes are verified end to end; each part
// of a multipart upload carries x-amz-checksum-crc32c (cheaper than a second
// SHA-256 pass over the data) and the completed object keeps the composite
// CRC32C. Over plain http, minio-go also signs the payload chunk by chunk.
//
// The SHA-256 is stored as the object's user metadata Lowrank-Sha256. A
// multipart upload must name its metadata before its first part, when the
// hash is not known yet, so after completing it Put sets the metadata by
// copying the object onto itself with the metadata replaced: a server-side
// operation (on versitygw's posix backend only the metadata changes; on AWS
// S3 the data is copied inside S3, with a multipart copy above 5 GiB). An
// Open in between sees the complete blob without the metadata, and so does
// not verify it.
//
// Open verifies the SHA-256 when it needs no extra request: a blob read
// sequentially from its start to EOF (as the npy and safetensors readers
// do) is hashed on the way, and if the hash differs from the metadata the
// final Read returns an error wrapping ErrCorrupt instead of io.EOF. Random
// access (ReadAt, as the npz reader uses) cannot be verified without
// reading everything, so it is not; neither is a blob without the metadata.
type S3Blobs struct {
	core     minio.Core
	bucket   string
	prefix   string // "" or ending in '/'
	partSize int
	parts    sync.Pool // *[]byte of partSize, so Puts reuse part buffers
}

var _ BlobStore = (*S3Blobs)(nil)

// NewS3Blobs connects, checks (or creates) the bucket, and returns the store.
func NewS3Blobs(ctx context.Context, cfg S3Config) (*S3Blobs, error) {
	switch {
	case cfg.Endpoint == "" || strings.Contains(cfg.Endpoint, "/"):
		return nil, lowrank.Errorf(lowrank.EINVALID, "endpoint", "S3 endpoint %q must be host[:port], without a scheme or path", cfg.Endpoint)
	case !validBucketName(cfg.Bucket):
		return nil, lowrank.Errorf(lowrank.EINVALID, "bucket", "bad S3 bucket name %q", cfg.Bucket)
	case cfg.PartSize != 0 && (cfg.PartSize < MinS3PartSize || cfg.PartSize > maxS3PartSize):
		return nil, lowrank.Errorf(lowrank.EINVALID, "part_size", "S3 part size %d must be between 5 MiB and 5 GiB", cfg.PartSize)
	}
	partSize := DefaultS3PartSize
	if cfg.PartSize != 0 {
		partSize = int(cfg.PartSize)
	}
	prefix := strings.Trim(cfg.Prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure: cfg.Secure,
		Region: cfg.Region,
	})
	if err != nil {
		return nil, fmt.Errorf("store: s3 client: %w", err)
	}
	s := &S3Blobs{core: minio.Core{Client: client}, bucket: cfg.Bucket, prefix: prefix, partSize: partSize}
	s.parts.New = func() any { b := make([]byte, partSize); return &b }
	ok, err := client.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("store: s3 bucket %s at %s: %w", cfg.Bucket, cfg.Endpoint, err)
	}
	if !ok {
		if !cfg.CreateBucket {
			return nil, fmt.Errorf("store: s3 bucket %s does not exist at %s", cfg.Bucket, cfg.Endpoint)
		}
		if err := client.MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{Region: cfg.Region}); err != nil {
			// Another process of ours may have created it meanwhile; a
			// bucket of someone else's would fail BucketExists.
			if ok, _ := client.BucketExists(ctx, cfg.Bucket); !ok {
				return nil, fmt.Errorf("store: create s3 bucket %s: %w", cfg.Bucket, err)
			}
		}
	}
	return s, nil
}

func (s *S3Blobs) object(key string) string { return s.prefix + key }

// Put stores everything r yields under key; see S3Blobs for how.
func (s *S3Blobs) Put(ctx context.Context, key string, r io.Reader) (BlobInfo, error) {
	if err := checkKey(key); err != nil {
		return BlobInfo{}, err
	}
	h := sha256.New()
	src := io.TeeReader(ctxReader{ctx, r}, h)
	bp := s.parts.Get().(*[]byte)
	defer s.parts.Put(bp)
	buf := *bp
	n, err := io.ReadFull(src, buf)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return s.putSingle(ctx, key, buf[:n], h)
	}
	if err != nil {
		// The reader's error (e.g. *http.MaxBytesError) is kept in the chain
		// so the caller can tell a too-large upload from a broken one.
		return BlobInfo{}, fmt.Errorf("store: put %s: %w", key, err)
	}
	return s.putMultipart(ctx, key, src, buf, h)
}

// putSingle uploads a whole blob, data, with one PUT whose checksum is the
// blob's SHA-256.
func (s *S3Blobs) putSingle(ctx context.Context, key string, data []byte, h hash.Hash) (BlobInfo, error) {
	sum := h.Sum(nil)
	info := BlobInfo{Size: int64(len(data)), SHA256: hex.EncodeToString(sum)}
	opts := minio.PutObjectOptions{
		ContentType: "application/octet-stream",
		UserMetadata: map[string]string{
			metaSHA256:              info.SHA256,
			"x-amz-checksum-sha256": base64.StdEncoding.EncodeToString(sum),
		},
	}
	if _, err := s.core.PutObject(ctx, s.bucket, s.object(key), bytes.NewReader(data), info.Size, "", "", opts); err != nil {
		return BlobInfo{}, fmt.Errorf("store: put %s: %w", key, err)
	}
	return info, nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// putMultipart uploads buf (a full first part) and the rest of src as a
// multipart upload, one part at a time through buf, and then records the
// SHA-256 h has accumulated as the object's metadata.
func (s *S3Blobs) putMultipart(ctx context.Context, key string, src io.Reader, buf []byte, h hash.Hash) (_ BlobInfo, err error) {
	name := s.object(key)
	uploadID, err := s.core.NewMultipartUpload(ctx, s.bucket, name, minio.PutObjectOptions{
		ContentType:  "application/octet-stream",
		UserMetadata: map[string]string{"x-amz-checksum-algorithm": "CRC32C"},
	})
	if err != nil {
		return BlobInfo{}, fmt.Errorf("store: put %s: start multipart upload: %w", key, err)
	}
	completed := false
	defer func() {
		if !completed {
			// ctx may be why Put failed; the abort must still go out.
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if aerr := s.core.AbortMultipartUpload(actx, s.bucket, name, uploadID); aerr != nil {
				err = errors.Join(err, fmt.Errorf("store: put %s: abort multipart upload %s: %w", key, uploadID, aerr))
			}
		}
	}()

	var parts []minio.CompletePart
	var size int64
	n, last := len(buf), false
	for number := 1; ; number++ {
		if number > 1 {
			var rerr error
			n, rerr = io.ReadFull(src, buf)
			if rerr == io.EOF {
				break
			}
			if rerr != nil && rerr != io.ErrUnexpectedEOF {
				return BlobInfo{}, fmt.Errorf("store: put %s: %w", key, rerr)
			}
			last = rerr == io.ErrUnexpectedEOF
		}
		if number > maxS3Parts {
			return BlobInfo{}, lowrank.Errorf(lowrank.ETOOLARGE, "", "blob %s is larger than %d parts of %d bytes", key, maxS3Parts, len(buf))
		}
		var crc [4]byte
		binary.BigEndian.PutUint32(crc[:], crc32.Checksum(buf[:n], castagnoli))
		crcB64 := base64.StdEncoding.EncodeToString(crc[:])
		part, err := s.core.PutObjectPart(ctx, s.bucket, name, uploadID, number, bytes.NewReader(buf[:n]), int64(n),
			minio.PutObjectPartOptions{CustomHeader: http.Header{"X-Amz-Checksum-Crc32c": {crcB64}}})
		if err != nil {
			return BlobInfo{}, fmt.Errorf("store: put %s: part %d: %w", key, number, err)
		}
		parts = append(parts, minio.CompletePart{PartNumber: number, ETag: part.ETag, ChecksumCRC32C: crcB64})
		size += int64(n)
		if last {
			break
		}
	}
	done, err := s.core.CompleteMultipartUpload(ctx, s.bucket, name, uploadID, parts, minio.PutObjectOptions{})
	if err != nil {
		return BlobInfo{}, fmt.Errorf("store: put %s: complete multipart upload: %w", key, err)
	}
	completed = true
	info := BlobInfo{Size: size, SHA256: hex.EncodeToString(h.Sum(nil))}
	_, err = s.core.ComposeObject(ctx,
		minio.CopyDestOptions{Bucket: s.bucket, Object: name, ReplaceMetadata: true,
			ContentType: "application/octet-stream", UserMetadata: map[string]string{metaSHA256: info.SHA256}},
		// The ETag pins the object just completed: a concurrent Put of the
		// same key must not get this blob's hash.
		minio.CopySrcOptions{Bucket: s.bucket, Object: name, MatchETag: done.ETag})
	if minio.ToErrorResponse(err).StatusCode == http.StatusPreconditionFailed {
		// A later Put of the key has replaced this blob already: as if
		// this Put had finished first.
		return info, nil
	}
	if err != nil {
		// A blob Put reports as failed must not stay behind.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if rerr := s.core.RemoveObject(rctx, s.bucket, name, minio.RemoveObjectOptions{}); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return BlobInfo{}, fmt.Errorf("store: put %s: record sha256: %w", key, err)
	}
	return info, nil
}

// Open returns the blob under key, streaming from S3; see S3Blobs for when
// reads are verified.
func (s *S3Blobs) Open(ctx context.Context, key string) (Blob, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	obj, err := s.core.Client.GetObject(ctx, s.bucket, s.object(key), minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", key, err)
	}
	// Stat sends the first GET; later reads continue its body, or ask for
	// ranges pinned to its ETag, so a blob replaced meanwhile fails to read
	// rather than mixing two versions.
	st, err := obj.Stat()
	if err != nil {
		obj.Close()
		if minio.ToErrorResponse(err).Code == minio.NoSuchKey {
			return nil, lowrank.Errorf(lowrank.ENOTFOUND, "", "blob %s not found", key)
		}
		return nil, fmt.Errorf("store: open %s: %w", key, err)
	}
	b := &s3Blob{obj: obj, core: s.core, ctx: ctx, bucket: s.bucket, name: s.object(key), etag: st.ETag, key: key, size: st.Size}
	for k, v := range st.UserMetadata {
		if strings.EqualFold(k, metaSHA256) {
			b.want = v
			b.h = sha256.New()
		}
	}
	return b, nil
}

// s3Blob is an open object that hashes what is read sequentially from its
// start and checks the hash at EOF.
type s3Blob struct {
	obj *minio.Object // Read, Seek

	// for ReadAt; a Blob's methods take no context, so it keeps Open's, as
	// minio.Object does
	core               minio.Core
	ctx                context.Context
	bucket, name, etag string

	key  string
	size int64
	want string    // recorded SHA-256, or "" when there is none
	h    hash.Hash // nil when the reads so far cannot be verified
	pos  int64     // bytes hashed, equal to the read offset while h != nil
}

func (b *s3Blob) Size() int64 { return b.size }

func (b *s3Blob) Close() error { return b.obj.Close() }

func (b *s3Blob) Read(p []byte) (int, error) {
	n, err := b.obj.Read(p)
	if b.h == nil {
		return n, err
	}
	b.h.Write(p[:n])
	b.pos += int64(n)
	if err == io.EOF {
		got := hex.EncodeToString(b.h.Sum(nil))
		b.h = nil // verified once; reading on after EOF proves nothing new
		if b.pos == b.size && got != b.want {
			return n, fmt.Errorf("store: blob %s: read sha256 %s, recorded %s: %w", b.key, got, b.want, ErrCorrupt)
		}
	}
	return n, err
}

// Seek keeps verifying when it goes back to the start (hashing anew) or
// stays where the reads are; anywhere else stops verifying.
func (b *s3Blob) Seek(offset int64, whence int) (int64, error) {
	pos, err := b.obj.Seek(offset, whence)
	if err != nil || b.want == "" {
		return pos, err
	}
	switch {
	case pos == 0:
		b.h, b.pos = sha256.New(), 0
	case b.h != nil && pos != b.pos:
		b.h = nil
	}
	return pos, nil
}

// ReadAt reads at off with a range request of its own, pinned to the
// object's ETag: it leaves the stream of Read alone, and ReadAts on one
// blob run in parallel. (minio.Object's ReadAt shares Read's stream and
// state: one ending at EOF leaves the next Read at EOF too.)
func (b *s3Blob) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("store: blob %s: ReadAt at negative offset %d", b.key, off)
	}
	if off >= b.size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	end := min(off+int64(len(p)), b.size)
	opts := minio.GetObjectOptions{}
	if err := opts.SetRange(off, end-1); err != nil {
		return 0, fmt.Errorf("store: blob %s: %w", b.key, err)
	}
	if b.etag != "" {
		opts.SetMatchETag(b.etag)
	}
	body, _, _, err := b.core.GetObject(b.ctx, b.bucket, b.name, opts)
	if err != nil {
		return 0, fmt.Errorf("store: blob %s: read at %d: %w", b.key, off, err)
	}
	defer body.Close()
	n, err := io.ReadFull(body, p[:end-off])
	if err != nil {
		return n, fmt.Errorf("store: blob %s: read at %d: %w", b.key, off, err)
	}
	if end-off < int64(len(p)) {
		return n, io.EOF
	}
	return n, nil
}

// Delete removes the blob under key; S3 treats a missing key as deleted.
func (s *S3Blobs) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	err := s.core.RemoveObject(ctx, s.bucket, s.object(key), minio.RemoveObjectOptions{})
	if err != nil && minio.ToErrorResponse(err).Code != minio.NoSuchKey {
		return fmt.Errorf("store: delete %s: %w", key, err)
	}
	return nil
}

// Ping checks that the bucket is reachable with these credentials.
func (s *S3Blobs) Ping(ctx context.Context) error {
	ok, err := s.core.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("store: s3 bucket %s: %w", s.bucket, err)
	}
	if !ok {
		return fmt.Errorf("store: s3 bucket %s is gone", s.bucket)
	}
	return nil
}
