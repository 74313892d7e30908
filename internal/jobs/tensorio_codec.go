package jobs

import (
	"context"
	"encoding/binary"
	"io"
	"strings"
	"unsafe"

	"github.com/lowrank/lowrank"
	"github.com/lowrank/lowrank/internal/tensorio"
)

// TensorioCodec is the Codec over internal/tensorio. Limits bound what its
// readers accept (zero fields take tensorio's defaults).
type TensorioCodec struct {
	Limits tensorio.Limits
}

var _ Codec = TensorioCodec{}

// The API names dtypes as NumPy does; tensorio as safetensors does.
var (
	apiDType = map[tensorio.DType]string{
		tensorio.F16: "float16", tensorio.BF16: "bfloat16", tensorio.F32: "float32", tensorio.F64: "float64",
		"BOOL": "bool", "U8": "uint8", "I8": "int8", "I16": "int16", "U16": "uint16",
		"I32": "int32", "U32": "uint32", "I64": "int64", "U64": "uint64",
		"F8_E5M2": "float8_e5m2", "F8_E4M3": "float8_e4m3",
	}
	fileDType = map[string]tensorio.DType{
		"float16": tensorio.F16, "bfloat16": tensorio.BF16, "float32": tensorio.F32, "float64": tensorio.F64,
	}
)

func toAPIDType(d tensorio.DType) string {
	if s, ok := apiDType[d]; ok {
		return s
	}
	return strings.ToLower(string(d))
}

func toFileDType(d string) (tensorio.DType, error) {
	if d == "" {
		return "", nil
	}
	fd, ok := fileDType[d]
	if !ok {
		return "", lowrank.Errorf(lowrank.EUNSUPPORTED, "dtype", "dtype %q cannot be written", d)
	}
	return fd, nil
}

func (c TensorioCodec) Spool(ctx context.Context, r io.Reader, dir string) (*Spooled, error) {
	sp, err := tensorio.Spool(ctx, r, dir, c.Limits)
	if err != nil {
		return nil, err
	}
	return &Spooled{Path: sp.Path, Size: sp.Size, SHA256: sp.SHA256, Format: string(sp.Format), Tensors: fileTensors(sp.Tensors)}, nil
}

func fileTensors(infos []tensorio.Info) []FileTensor {
	out := make([]FileTensor, len(infos))
	for i, in := range infos {
		out[i] = FileTensor{Name: in.Name, DType: toAPIDType(in.DType), Shape: in.Shape, Offset: in.Offset, Length: in.Length}
	}
	return out
}

func (c TensorioCodec) Inspect(r io.ReaderAt, size int64) (string, []FileTensor, error) {
	f, infos, err := c.Limits.Inspect(r, size)
	if err != nil {
		return string(f), nil, err
	}
	return string(f), fileTensors(infos), nil
}

func (c TensorioCodec) ReadTensor(r io.ReaderAt, size int64, name string) (*Tensor, error) {
	if t := c.readRaw(r, size, name); t != nil {
		return t, nil
	}
	t, err := c.Limits.ReadTensor(r, size, name)
	if err != nil {
		return nil, err
	}
	return &Tensor{Name: t.Name, DType: toAPIDType(t.DType), Shape: t.Shape, F32: t.F32, F64: t.F64}, nil
}

func toFile(ts []*Tensor) ([]*tensorio.Tensor, error) {
	out := make([]*tensorio.Tensor, len(ts))
	for i, t := range ts {
		dt, err := toFileDType(t.DType)
		if err != nil {
			return nil, err
		}
		out[i] = &tensorio.Tensor{Name: t.Name, DType: dt, Shape: t.Shape, F32: t.F32, F64: t.F64}
	}
	return out, nil
}

func (TensorioCodec) WriteSafetensors(w io.Writer, ts []*Tensor, metadata map[string]string) error {
	fts, err := toFile(ts)
	if err != nil {
		return err
	}
	return tensorio.WriteSafetensors(w, fts, metadata)
}

func (TensorioCodec) WriteNPZ(w io.Writer, ts []*Tensor) error {
	fts, err := toFile(ts)
	if err != nil {
		return err
	}
	return tensorio.WriteNPZ(w, fts, false)
}

func (TensorioCodec) WriteNPY(w io.Writer, t *Tensor) error {
	fts, err := toFile([]*Tensor{t})
	if err != nil {
		return err
	}
	return tensorio.WriteNPY(w, fts[0])
}

func (TensorioCodec) NPYHeader(dtype string, shape []int) ([]byte, error) {
	dt, err := toFileDType(dtype)
	if err != nil {
		return nil, err
	}
	return tensorio.NPYHeader(dt, shape)
}

// nativeLittleEndian is whether this machine stores numbers as .npy's "<"
// and safetensors do, so their bytes can be used in place.
var nativeLittleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// readRaw reads a float32 or float64 tensor that a file stores as is
// (little-endian, row-major, not compressed) with one ReadAt straight into
// the result's memory, instead of decoding it element by element: for a
// 64 MiB .npy that is a copy from the page cache rather than 90 ms of
// decoding. Anything else, or any error, returns nil, and tensorio's reader
// handles or reports it.
func (c TensorioCodec) readRaw(r io.ReaderAt, size int64, name string) *Tensor {
	if !nativeLittleEndian {
		return nil
	}
	_, infos, err := c.Limits.Inspect(r, size)
	if err != nil {
		return nil
	}
	var in *tensorio.Info
	for i := range infos {
		if infos[i].Name == name {
			in = &infos[i]
			break
		}
	}
	if in == nil || in.Offset < 0 || in.BigEndian || in.FortranOrder {
		return nil
	}
	n := in.Elements()
	t := &Tensor{Name: in.Name, DType: toAPIDType(in.DType), Shape: in.Shape}
	var buf []byte
	switch {
	case n == 0:
		return nil
	case in.DType == tensorio.F32 && in.Length == 4*n:
		t.F32 = make([]float32, n)
		buf = unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(t.F32))), 4*n)
	case in.DType == tensorio.F64 && in.Length == 8*n:
		t.F64 = make([]float64, n)
		buf = unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(t.F64))), 8*n)
	default:
		return nil
	}
	if _, err := r.ReadAt(buf, in.Offset); err != nil {
		return nil
	}
	return t
}
