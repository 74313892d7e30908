package jobs

import (
	"context"
	"io"
)

// Tensor is a dense row-major tensor in memory. Exactly one of F32 and F64
// holds the data. DType is its API name: "float16", "bfloat16", "float32"
// or "float64"; it is the dtype a writer stores it in.
type Tensor struct {
	Name  string
	DType string
	Shape []int
	F32   []float32
	F64   []float64
}

// Len is the number of elements of t's shape.
func (t *Tensor) Len() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// FileTensor describes one tensor of a stored file. Offset and Length give
// its raw little-endian, row-major data inside the file (Offset is -1 when
// the data is not stored as is).
type FileTensor struct {
	Name   string
	DType  string
	Shape  []int
	Offset int64
	Length int64
}

// Spooled is an upload copied to a local file and checked.
type Spooled struct {
	Path    string
	Size    int64
	SHA256  string
	Format  string
	Tensors []FileTensor
}

// Codec is what the service needs from the tensor file formats
// (internal/tensorio): inspecting an upload, decoding one tensor for a job,
// and writing results. Handlers use it too, for uploads and downloads.
type Codec interface {
	// Spool copies an upload to a new temporary file in dir while hashing
	// it, then checks it whole (structure, sizes, checksums, at least one
	// readable tensor). On success the caller owns the file; on error it is
	// gone.
	Spool(ctx context.Context, r io.Reader, dir string) (*Spooled, error)
	// Inspect sniffs a stored file and lists its tensors without decoding
	// their data; format is "npy", "npz" or "safetensors" (or "json").
	Inspect(r io.ReaderAt, size int64) (format string, tensors []FileTensor, err error)
	// ReadTensor decodes the tensor called name ("" for the only one).
	ReadTensor(r io.ReaderAt, size int64, name string) (*Tensor, error)
	// WriteSafetensors writes ts with metadata as __metadata__.
	WriteSafetensors(w io.Writer, ts []*Tensor, metadata map[string]string) error
	// WriteNPZ writes ts as an uncompressed .npz archive.
	WriteNPZ(w io.Writer, ts []*Tensor) error
	// WriteNPY writes t as a .npy file.
	WriteNPY(w io.Writer, t *Tensor) error
	// NPYHeader is the .npy header of little-endian, C-order data of dtype
	// and shape, for streaming raw bytes after it.
	NPYHeader(dtype string, shape []int) ([]byte, error)
}
