package handlers

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/lowrank/lowrank"
	"github.com/lowrank/lowrank/internal/jobs"
	"github.com/lowrank/lowrank/internal/store"
)

// maxJSONFactorElements bounds ?format=json downloads: JSON is for small
// factors (a spectrum, a core); anything larger is a binary download.
const maxJSONFactorElements = 1 << 20

// finishedBundle returns the succeeded job's bundle, open.
func (s *server) finishedBundle(r *http.Request) (*store.Job, store.Blob, error) {
	j, err := s.Meta.GetJob(r.Context(), ownerOf(r.Context()), chi.URLParam(r, "id"))
	if err != nil {
		return nil, nil, err
	}
	if j.Status != store.JobSucceeded {
		return nil, nil, lowrank.Errorf(lowrank.ECONFLICT, "", "job %s is %s; factors exist once it has succeeded", j.ID, j.Status)
	}
	b, err := s.Blobs.Open(r.Context(), j.BundleKey)
	if err != nil {
		return nil, nil, err
	}
	return j, b, nil
}

func modTime(j *store.Job) time.Time {
	if j.FinishedAt != nil {
		return *j.FinishedAt
	}
	return time.Time{}
}

// handleFactorsBundle serves all factors: the stored safetensors bundle as
// is (with Range and ETag), or converted to .npz.
func (s *server) handleFactorsBundle(w http.ResponseWriter, r *http.Request) error {
	format := r.URL.Query().Get("format")
	if format != "" && format != "safetensors" && format != "npz" {
		return badRequest("format", "must be safetensors or npz, got %q", format)
	}
	j, b, err := s.finishedBundle(r)
	if err != nil {
		return err
	}
	defer b.Close()
	if format == "npz" {
		_, fts, err := s.Codec.Inspect(b, b.Size())
		if err != nil {
			return err
		}
		var ts []*jobs.Tensor
		for _, ft := range fts {
			t, err := s.Codec.ReadTensor(b, b.Size(), ft.Name)
			if err != nil {
				return err
			}
			ts = append(ts, t)
		}
		var buf bytes.Buffer
		if err := s.Codec.WriteNPZ(&buf, ts); err != nil {
			return err
		}
		w.Header().Set("Content-Disposition", `attachment; filename="`+j.ID+`.npz"`)
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("ETag", `"`+j.ID+`-npz"`)
		http.ServeContent(w, r, "", modTime(j), bytes.NewReader(buf.Bytes()))
		return nil
	}
	// The bundle never changes once written, so the job id is its ETag.
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="`+j.ID+`.safetensors"`)
	w.Header().Set("ETag", `"`+j.ID+`"`)
	http.ServeContent(w, r, "", modTime(j), b)
	return nil
}

// handleFactor serves one factor as .npy (its header followed by the raw
// bytes read straight from the bundle's byte range) or as JSON.
func (s *server) handleFactor(w http.ResponseWriter, r *http.Request) error {
	format := r.URL.Query().Get("format")
	if format != "" && format != "npy" && format != "json" {
		return badRequest("format", "must be npy or json, got %q", format)
	}
	name := chi.URLParam(r, "name")
	j, b, err := s.finishedBundle(r)
	if err != nil {
		return err
	}
	defer b.Close()
	_, fts, err := s.Codec.Inspect(b, b.Size())
	if err != nil {
		return err
	}
	var ft *jobs.FileTensor
	for i := range fts {
		if fts[i].Name == name {
			ft = &fts[i]
		}
	}
	if ft == nil {
		return lowrank.Errorf(lowrank.ENOTFOUND, "name", "job %s has no factor %q", j.ID, name)
	}
	if format == "json" {
		n := int64(1)
		for _, d := range ft.Shape {
			n *= int64(d)
		}
		if n > maxJSONFactorElements {
			return lowrank.Errorf(lowrank.ETOOLARGE, "format", "factor %q has %d elements; JSON is served up to %d, use npy", name, n, maxJSONFactorElements)
		}
		t, err := s.Codec.ReadTensor(b, b.Size(), name)
		if err != nil {
			return err
		}
		var data any = t.F64
		if t.F32 != nil {
			data = t.F32 // encoded with float32's shortest digits
		}
		writeJSON(w, http.StatusOK, map[string]any{"name": name, "dtype": ft.DType, "shape": ft.Shape, "data": data})
		return nil
	}
	if ft.Offset < 0 {
		return errors.New("handlers: bundle factor without a byte range")
	}
	hdr, err := s.Codec.NPYHeader(ft.DType, ft.Shape)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.npy"`)
	w.Header().Set("ETag", `"`+j.ID+"-"+name+`-npy"`)
	http.ServeContent(w, r, "", modTime(j), newConcatReadSeeker(hdr, io.NewSectionReader(b, ft.Offset, ft.Length)))
	return nil
}

// concatReadSeeker reads a small in-memory prefix followed by a section of
// a file, as one seekable stream, so ServeContent can answer ranges of an
// .npy built on the fly without copying the data.
type concatReadSeeker struct {
	head []byte
	tail *io.SectionReader
	off  int64
}

func newConcatReadSeeker(head []byte, tail *io.SectionReader) *concatReadSeeker {
	return &concatReadSeeker{head: head, tail: tail}
}

func (c *concatReadSeeker) size() int64 { return int64(len(c.head)) + c.tail.Size() }

func (c *concatReadSeeker) Read(p []byte) (int, error) {
	if c.off >= c.size() {
		return 0, io.EOF
	}
	var n int
	if h := int64(len(c.head)); c.off < h {
		n = copy(p, c.head[c.off:])
	} else {
		var err error
		n, err = c.tail.ReadAt(p, c.off-h)
		if err == io.EOF && n > 0 {
			err = nil
		}
		if err != nil {
			c.off += int64(n)
			return n, err
		}
	}
	c.off += int64(n)
	return n, nil
}

func (c *concatReadSeeker) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += c.off
	case io.SeekEnd:
		offset += c.size()
	default:
		return 0, errors.New("handlers: bad whence")
	}
	if offset < 0 {
		return 0, errors.New("handlers: negative seek")
	}
	c.off = offset
	return offset, nil
}
