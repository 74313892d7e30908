// Package tensorio reads and writes the files ML engineers exchange weights
// in: NumPy .npy and .npz, safetensors, and a small JSON form. It is the one
// place where untrusted bytes become tensors, so every reader checks each size
// a header declares against Limits and against the real size of the input
// before it allocates or reads, and every malformed input gives a
// *lowrank.Error (never a panic) that names the format, the tensor and the
// fault.
//
// Errors about the data have Field "file" and a message that starts with the
// format, then the tensor, then the fault and its place, e.g.
//
//	safetensors: tensor "fc.weight": data_offsets [0,100) but F32 [5,6] needs 120 bytes
//
// with code EINVALID (malformed), EUNSUPPORTED (a dtype, version or format
// not read, pickle included) or ETOOLARGE (a Limits bound). A tensor name
// not in the file is ENOTFOUND with Field "tensor". Failures of the
// underlying reader are EINTERNAL and wrap the cause.
//
// Pickle is never read: PyTorch .pt/.pth files are rejected with a hint to
// convert them to safetensors.
//
// Data is decoded to row-major float32 (F16, BF16 and F32 files) or float64
// (F64 files), ready to hand to linalg. Writers round to the requested dtype
// to nearest, ties to even.
//
// References:
//   - NumPy Enhancement Proposal 1, "A simple file format for NumPy arrays"
//     (the .npy format, versions 1.0 to 3.0), and numpy.lib.format.
//   - The safetensors format description (huggingface/safetensors README).
//   - PKWARE APPNOTE.TXT, the .ZIP file format specification.
//   - IEEE 754-2008 binary16; Google's bfloat16.
package tensorio

import (
	"fmt"
	"strconv"

	"github.com/lowrank/lowrank"
)

// Format is a file format this package recognises.
type Format string

// The formats. FormatUnknown is returned with an error by Sniff.
const (
	FormatUnknown     Format = ""
	FormatNPY         Format = "npy"
	FormatNPZ         Format = "npz"
	FormatSafetensors Format = "safetensors"
	FormatJSON        Format = "json"
)

// Tensor is a dense tensor held in memory, row-major (C order).
//
// Exactly one of F32 and F64 holds the data: F64 when DType is F64, F32
// otherwise (F16 and BF16 decode to float32 exactly). DType is the dtype the
// tensor was stored in, and the dtype the writers store it in; an empty DType
// means F64 if F64 is set and F32 otherwise.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	F32   []float32
	F64   []float64
}

// Len is the number of elements the shape describes (1 for a scalar).
func (t *Tensor) Len() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// dtype is the dtype the writers use for t.
func (t *Tensor) dtype() DType {
	if t.DType != "" {
		return t.DType
	}
	if t.F64 != nil {
		return F64
	}
	return F32
}

// Info describes one tensor of a file without its data.
type Info struct {
	Name  string
	DType DType
	Shape []int
	// Offset and Length give the byte range of the raw data in the file, so
	// a caller can copy one tensor out of a safetensors bundle without
	// decoding it. Offset is -1 when the data is not stored as is (a
	// deflated .npz entry, JSON).
	Offset int64
	Length int64
	// BigEndian and FortranOrder describe .npy data; safetensors data is
	// always little-endian and row-major.
	BigEndian    bool
	FortranOrder bool
}

// Elements is the number of elements of the tensor (1 for a scalar).
func (i *Info) Elements() int64 {
	n := int64(1)
	for _, d := range i.Shape {
		n *= int64(d)
	}
	return n
}

// Limits bounds what a reader accepts. A zero field takes its default from
// DefaultLimits. Every size a header declares is checked against these and
// against the size of the input before anything is allocated.
type Limits struct {
	MaxFileBytes   int64 // Spool: bytes accepted from an upload
	MaxHeaderBytes int64 // safetensors: the JSON header's length (at most the format's 100 MB)
	MaxJSONBytes   int64 // a JSON tensor file's length
	MaxEntries     int   // npz entries, or safetensors tensors, in one file
	MaxTotalBytes  int64 // npz: sum of the entries' uncompressed sizes
	MaxElements    int64 // elements of one tensor
	MaxDims        int   // dimensions of one tensor
}

// DefaultLimits are the limits used where none are given: room for a large
// model layer, not for a whole multi-gigabyte model in one tensor.
func DefaultLimits() Limits {
	return Limits{
		MaxFileBytes:   8 << 30,
		MaxHeaderBytes: 16 << 20, // real headers are kilobytes; the format allows 100 MB
		MaxJSONBytes:   64 << 20,
		MaxEntries:     16384,
		MaxTotalBytes:  8 << 30,
		MaxElements:    1 << 30,
		MaxDims:        32,
	}
}

// withDefaults fills zero fields from DefaultLimits.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxFileBytes <= 0 {
		l.MaxFileBytes = d.MaxFileBytes
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = d.MaxHeaderBytes
	}
	if l.MaxJSONBytes <= 0 {
		l.MaxJSONBytes = d.MaxJSONBytes
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = d.MaxEntries
	}
	if l.MaxTotalBytes <= 0 {
		l.MaxTotalBytes = d.MaxTotalBytes
	}
	if l.MaxElements <= 0 {
		l.MaxElements = d.MaxElements
	}
	if l.MaxDims <= 0 {
		l.MaxDims = d.MaxDims
	}
	return l
}

// fileField is the Field of every error about input data: the uploaded or
// stored file is the input part at fault; the message names the tensor.
const fileField = "file"

// ferr builds the package's errors: code, then a message prefixed with the
// format and, when there is one, the tensor.
func ferr(code string, f Format, tensor string, format string, args ...any) *lowrank.Error {
	msg := fmt.Sprintf(format, args...)
	if tensor != "" {
		msg = fmt.Sprintf("tensor %q: %s", tensor, msg)
	}
	if f != FormatUnknown {
		msg = string(f) + ": " + msg
	}
	return &lowrank.Error{Code: code, Field: fileField, Message: msg}
}

// pickleHint is the advice given whenever a pickle is found.
const pickleHint = "pickle files (PyTorch .pt/.pth) are not read because loading them can run code; " +
	"convert them to safetensors, e.g. safetensors.torch.save_file(model.state_dict(), \"model.safetensors\")"

// checkShape checks dims against the limits and returns the element count.
// Each dimension is checked before the product grows, so the product never
// overflows.
func checkShape(f Format, name string, shape []uint64, lim Limits) (int64, error) {
	if len(shape) > lim.MaxDims {
		return 0, ferr(lowrank.ETOOLARGE, f, name, "%d dimensions, more than the limit %d", len(shape), lim.MaxDims)
	}
	n := int64(1)
	for i, d := range shape {
		if d > uint64(lim.MaxElements) {
			return 0, ferr(lowrank.ETOOLARGE, f, name, "dimension %d is %d, more than the limit of %d elements", i, d, lim.MaxElements)
		}
		if d == 0 {
			n = 0
			continue
		}
		if n > lim.MaxElements/int64(d) {
			return 0, ferr(lowrank.ETOOLARGE, f, name, "shape %s has more than the limit of %d elements", fmtShape(shape), lim.MaxElements)
		}
		n *= int64(d)
	}
	return n, nil
}

func toInts(s []uint64) []int {
	r := make([]int, len(s))
	for i, d := range s {
		r[i] = int(d)
	}
	return r
}

// fmtShape prints a shape as [5,6], the way the formats write it.
func fmtShape[T int | uint64](s []T) string {
	b := []byte{'['}
	for i, d := range s {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, uint64(d), 10)
	}
	return string(append(b, ']'))
}
