package handlers

import (
	"context"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/lowrank/lowrank"
	"github.com/lowrank/lowrank/internal/jobs"
	"github.com/lowrank/lowrank/internal/store"
)

type tensorResponse struct {
	ID        string             `json:"id"`
	Format    string             `json:"format"`
	Bytes     int64              `json:"bytes"`
	SHA256    string             `json:"sha256"`
	CreatedAt time.Time          `json:"created_at"`
	Tensors   []store.TensorInfo `json:"tensors"`
}

func tensorJSON(t *store.Tensor) tensorResponse {
	return tensorResponse{ID: t.ID, Format: t.Format, Bytes: t.Bytes, SHA256: t.SHA256, CreatedAt: t.CreatedAt, Tensors: t.Tensors}
}

var uploadFormats = map[string]bool{"npy": true, "npz": true, "safetensors": true}

// handleTensorCreate streams an upload (a raw body, or the multipart field
// "file") to disk, never holding it in memory, checks it and stores it as a
// blob. A file that is not a readable tensor file leaves nothing behind.
func (s *server) handleTensorCreate(w http.ResponseWriter, r *http.Request) error {
	// Each upload holds a spool file and a disk stream; past the bound a
	// client is told to come back rather than queued behind slow senders.
	if s.uploads != nil {
		select {
		case s.uploads <- struct{}{}:
			defer func() { <-s.uploads }()
		default:
			return lowrank.Errorf(lowrank.EOVERLOADED, "", "%d uploads are in progress, the most this server takes at once", cap(s.uploads))
		}
	}
	q := r.URL.Query()
	format := q.Get("format")
	if format != "" && !uploadFormats[format] {
		return badRequest("format", "must be npy, npz or safetensors, got %q", format)
	}
	name := q.Get("name")
	limit := s.Info.MaxUploadBytes
	if limit > 0 && r.ContentLength > limit {
		return tooLarge(limit)
	}
	body := io.Reader(r.Body)
	if limit > 0 {
		body = http.MaxBytesReader(w, r.Body, limit)
	}
	filename := ""
	if mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "multipart/form-data" {
		part, err := filePart(body, params["boundary"])
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			return tooLarge(limit)
		}
		if err != nil {
			return err
		}
		body, filename = part, part.FileName()
	}

	id, err := uuid.NewV7()
	if err != nil {
		return err
	}
	t, err := s.storeUpload(r.Context(), id.String(), body, format, name, filename)
	if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
		return tooLarge(limit)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return badRequest("file", "the request body ended before the %d bytes its Content-Length announced; nothing was stored", r.ContentLength)
	}
	if err != nil {
		return err
	}
	t.Owner = ownerOf(r.Context())
	if err := s.Meta.CreateTensor(r.Context(), t); err != nil {
		_ = s.Blobs.Delete(context.WithoutCancel(r.Context()), t.ID)
		return err
	}
	s.metrics.uploadBytes.Add(float64(t.Bytes))
	w.Header().Set("Location", "/v1/tensors/"+t.ID)
	writeJSON(w, http.StatusCreated, tensorJSON(t))
	return nil
}

// storeUpload spools the upload to a local file, where the codec checks it
// whole (structure, sizes, npz checksums, a readable dtype), then makes it
// the blob under key: renamed into place when the blob store is local,
// copied otherwise. Nothing is left behind on error.
func (s *server) storeUpload(ctx context.Context, key string, body io.Reader, format, name, filename string) (*store.Tensor, error) {
	dir := os.TempDir()
	adopter, canAdopt := s.Blobs.(store.Adopter)
	if canAdopt {
		dir = adopter.SpoolDir()
	}
	sp, err := s.Codec.Spool(ctx, body, dir)
	if err != nil {
		return nil, err
	}
	t, err := tensorRecord(key, sp, format, name, filename, s.Now().UTC())
	if err == nil && canAdopt {
		if err = adopter.Adopt(ctx, key, sp.Path); err == nil {
			return t, nil
		}
	}
	defer os.Remove(sp.Path)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(sp.Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	_, err = s.Blobs.Put(ctx, key, f)
	return t, err
}

func tooLarge(limit int64) error {
	return lowrank.Errorf(lowrank.ETOOLARGE, "file", "the upload is larger than the limit of %d bytes", limit)
}

// filePart finds the multipart part named "file", reading (and
// discarding) any parts before it.
func filePart(body io.Reader, boundary string) (*multipart.Part, error) {
	if boundary == "" {
		return nil, badRequest("file", "multipart body without a boundary")
	}
	// The parts are read as a stream, never parsed into memory or temp
	// files the way ParseMultipartForm would.
	mr := multipart.NewReader(body, boundary)
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return nil, lowrank.Errorf(lowrank.EINVALID, "file", "the multipart body has no part named \"file\"")
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, err
			}
			return nil, badRequest("file", "malformed multipart body: %v", err)
		}
		if p.FormName() == "file" {
			return p, nil
		}
		_, _ = io.Copy(io.Discard, p)
	}
}

// tensorRecord describes a spooled upload, checking the asserted format.
func tensorRecord(key string, sp *jobs.Spooled, format, name, filename string, now time.Time) (*store.Tensor, error) {
	if !uploadFormats[sp.Format] {
		return nil, lowrank.Errorf(lowrank.EUNSUPPORTED, "file", "%s files are not accepted as uploads (npy, npz, safetensors are)", sp.Format)
	}
	if format != "" && format != sp.Format {
		return nil, lowrank.Errorf(lowrank.EINVALID, "format", "the file is %s, not %s", sp.Format, format)
	}
	t := &store.Tensor{ID: key, Format: sp.Format, Bytes: sp.Size, SHA256: sp.SHA256, CreatedAt: now}
	for _, ft := range sp.Tensors {
		n := ft.Name
		if sp.Format == "npy" {
			// An .npy file holds one unnamed array: it is called by ?name=,
			// else by the uploaded file's name, else "tensor".
			n = name
			if n == "" && filename != "" {
				n = strings.TrimSuffix(path.Base(filename), path.Ext(filename))
			}
			if n == "" {
				n = "tensor"
			}
		}
		t.Tensors = append(t.Tensors, store.TensorInfo{Name: n, DType: ft.DType, Shape: ft.Shape})
	}
	return t, nil
}

// page reads ?limit and ?cursor (page_token is accepted as a synonym).
func page(r *http.Request) (store.Page, error) {
	q := r.URL.Query()
	p := store.Page{Limit: 50, Cursor: q.Get("cursor")}
	if p.Cursor == "" {
		p.Cursor = q.Get("page_token")
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return p, badRequest("limit", "must be an integer, got %q", v)
		}
		if n < 1 || n > 1000 {
			return p, lowrank.Errorf(lowrank.EINVALID, "limit", "must be in [1, 1000], got %d", n)
		}
		p.Limit = n
	}
	return p, nil
}

type listResponse[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

func (s *server) handleTensorList(w http.ResponseWriter, r *http.Request) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	ts, next, err := s.Meta.ListTensors(r.Context(), ownerOf(r.Context()), p)
	if err != nil {
		return err
	}
	out := listResponse[tensorResponse]{Items: []tensorResponse{}, NextCursor: next}
	for _, t := range ts {
		out.Items = append(out.Items, tensorJSON(t))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) handleTensorGet(w http.ResponseWriter, r *http.Request) error {
	t, err := s.Meta.GetTensor(r.Context(), ownerOf(r.Context()), chi.URLParam(r, "id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, tensorJSON(t))
	return nil
}

func (s *server) handleTensorDelete(w http.ResponseWriter, r *http.Request) error {
	id := chi.URLParam(r, "id")
	if err := s.Meta.DeleteTensor(r.Context(), ownerOf(r.Context()), id); err != nil {
		return err
	}
	if err := s.Blobs.Delete(r.Context(), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
