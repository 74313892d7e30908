package tensorio

import (
	"encoding/binary"
	"errors"
	"io"
	"math"
	"slices"
	"unsafe"

	"github.com/lowrank/lowrank"
)

// chunkBytes is the size of the buffer data passes through on its way
// between a file and a tensor; a multiple of every element size.
const chunkBytes = 64 << 10

// decodeData reads n elements of dtype dt from r and decodes them. The
// caller has checked n × size against the input's real size, so the one
// allocation sized from the header is bounded by the data actually present.
func decodeData(f Format, name string, r io.Reader, dt DType, bigEndian bool, n int64) (*Tensor, error) {
	size := dt.Size()
	if !dt.Readable() {
		return nil, ferr(lowrank.EUNSUPPORTED, f, name, "dtype %s is not read (F16, BF16, F32 and F64 are)", dt)
	}
	t := &Tensor{Name: name, DType: dt}
	if dt == F64 {
		t.F64 = make([]float64, n)
	} else {
		t.F32 = make([]float32, n)
	}
	total := n * int64(size)
	if raw := rawBytes(t); raw != nil && !bigEndian {
		// Little-endian float32/float64 on a little-endian host: the file's
		// bytes are the values, so they are read straight into place,
		// saving a copy and a decode pass over the whole tensor.
		if _, err := io.ReadFull(r, raw); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, ferr(lowrank.EINVALID, f, name, "data ends before its declared %d bytes", total)
			}
			return nil, readErr(f, name, err)
		}
		return t, nil
	}
	buf := make([]byte, min(int64(chunkBytes), n*int64(size)))
	le := binary.LittleEndian
	var done int64 // elements decoded
	for done < n {
		k := min(int64(len(buf)/size), n-done)
		b := buf[:k*int64(size)]
		if _, err := io.ReadFull(r, b); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, ferr(lowrank.EINVALID, f, name, "data ends before its declared %d bytes", total)
			}
			return nil, readErr(f, name, err)
		}
		if bigEndian {
			// Swap in place so that one little-endian loop per dtype
			// serves both byte orders.
			for i := 0; i < len(b); i += size {
				slices.Reverse(b[i : i+size])
			}
		}
		switch dt {
		case F16:
			out := t.F32[done : done+k]
			for i := range out {
				out[i] = F16ToF32(le.Uint16(b[2*i:]))
			}
		case BF16:
			out := t.F32[done : done+k]
			for i := range out {
				out[i] = BF16ToF32(le.Uint16(b[2*i:]))
			}
		case F32:
			out := t.F32[done : done+k]
			for i := range out {
				out[i] = math.Float32frombits(le.Uint32(b[4*i:]))
			}
		case F64:
			out := t.F64[done : done+k]
			for i := range out {
				out[i] = math.Float64frombits(le.Uint64(b[8*i:]))
			}
		}
		done += k
	}
	return t, nil
}

// readErr wraps an I/O error of the underlying reader; it is not the data's
// fault, so it is EINTERNAL unless it already carries a code.
func readErr(f Format, name string, err error) error {
	var le *lowrank.Error
	if errors.As(err, &le) {
		return err
	}
	e := ferr(lowrank.EINTERNAL, f, name, "read: %v", err)
	e.Err = err
	return e
}

// fortranToC reorders data stored in Fortran (column-major) order into C
// (row-major) order for the given shape.
func fortranToC[T any](src []T, shape []int) []T {
	if len(shape) < 2 || len(src) == 0 {
		return src
	}
	dst := make([]T, len(src))
	// Walk src in its own order, the first index fastest, keeping the
	// row-major offset of the current multi-index up to date.
	nd := len(shape)
	strides := make([]int, nd) // row-major strides
	strides[nd-1] = 1
	for i := nd - 2; i >= 0; i-- {
		strides[i] = strides[i+1] * shape[i+1]
	}
	idx := make([]int, nd)
	off := 0
	for _, v := range src {
		dst[off] = v
		for k := 0; k < nd; k++ {
			idx[k]++
			off += strides[k]
			if idx[k] < shape[k] {
				break
			}
			off -= idx[k] * strides[k]
			idx[k] = 0
		}
	}
	return dst
}

// checkTensor checks a tensor handed to a writer and returns its element
// count and output dtype.
func checkTensor(f Format, t *Tensor) (int, DType, error) {
	dt := t.dtype()
	if !dt.Readable() {
		return 0, "", ferr(lowrank.EUNSUPPORTED, f, t.Name, "dtype %q is not written (F16, BF16, F32 and F64 are)", dt)
	}
	if (t.F32 == nil) == (t.F64 == nil) && t.Len() != 0 {
		return 0, "", ferr(lowrank.EINVALID, f, t.Name, "exactly one of F32 and F64 must hold the data")
	}
	n := 1
	for _, d := range t.Shape {
		if d < 0 {
			return 0, "", ferr(lowrank.EINVALID, f, t.Name, "negative dimension in shape %v", t.Shape)
		}
		n *= d
	}
	have := len(t.F32) + len(t.F64)
	if have != n {
		return 0, "", ferr(lowrank.EINVALID, f, t.Name, "shape %v needs %d elements, have %d", t.Shape, n, have)
	}
	return n, dt, nil
}

// encodeData writes t's data as little-endian dt in row-major order.
func encodeData(w io.Writer, t *Tensor, dt DType) error {
	size := dt.Size()
	buf := make([]byte, chunkBytes)
	n := len(t.F32) + len(t.F64)
	for done := 0; done < n; {
		k := min(len(buf)/size, n-done)
		b := buf[:k*size]
		for i := 0; i < k; i++ {
			var v64 float64
			var v32 float32
			if t.F64 != nil {
				v64 = t.F64[done+i]
				v32 = float32(v64)
			} else {
				v32 = t.F32[done+i]
				v64 = float64(v32)
			}
			switch dt {
			case F16:
				binary.LittleEndian.PutUint16(b[2*i:], F64ToF16(v64))
			case BF16:
				binary.LittleEndian.PutUint16(b[2*i:], F64ToBF16(v64))
			case F32:
				binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v32))
			case F64:
				binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(v64))
			}
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
		done += k
	}
	return nil
}

// readFullAt fills p from r at off. io.ReaderAt may report io.EOF along
// with a full read at the end of the input, which is success; a short read
// means the input is shorter than the size the caller gave.
func readFullAt(f Format, r io.ReaderAt, p []byte, off int64) error {
	if len(p) == 0 {
		return nil
	}
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == io.EOF || err == nil {
		return ferr(lowrank.EINVALID, f, "", "the file ends at byte %d, before the %d bytes at offset %d", off+int64(n), len(p), off)
	}
	return readErr(f, "", err)
}

// hostLittleEndian is whether this machine stores numbers little-endian, as
// every tensor format here does by default.
var hostLittleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// rawBytes returns the memory of t's float32 or float64 data as bytes when
// the host is little-endian (so those bytes are the file's encoding), and
// nil otherwise or for an empty tensor.
func rawBytes(t *Tensor) []byte {
	if !hostLittleEndian {
		return nil
	}
	switch {
	case t.DType == F32 && len(t.F32) > 0:
		return unsafe.Slice((*byte)(unsafe.Pointer(&t.F32[0])), 4*len(t.F32))
	case t.DType == F64 && len(t.F64) > 0:
		return unsafe.Slice((*byte)(unsafe.Pointer(&t.F64[0])), 8*len(t.F64))
	}
	return nil
}
