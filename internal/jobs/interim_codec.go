package jobs

// This file is a stop-gap until internal/tensorio lands: just enough .npy
// and safetensors (float32/float64, little-endian, C order) to run the
// service end to end. It is replaced by an adapter over tensorio.

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/lowrank/lowrank"
)

// InterimCodec implements Codec for .npy and safetensors files of float32
// and float64 data.
type InterimCodec struct{}

var _ Codec = InterimCodec{}

var (
	descrRe = regexp.MustCompile(`'descr':\s*'([<>|=]?)(f4|f8)'`)
	fortRe  = regexp.MustCompile(`'fortran_order':\s*(True|False)`)
	shapeRe = regexp.MustCompile(`'shape':\s*\(([^)]*)\)`)
)

func dtypeSize(dt string) int {
	switch dt {
	case "float32":
		return 4
	case "float64":
		return 8
	}
	return 0
}

func (InterimCodec) Inspect(r io.ReaderAt, size int64) (string, []FileTensor, error) {
	head := make([]byte, min(size, 16))
	if _, err := r.ReadAt(head, 0); err != nil && err != io.EOF {
		return "", nil, err
	}
	switch {
	case len(head) == 0:
		return "", nil, lowrank.Errorf(lowrank.EINVALID, "file", "the file is empty")
	case bytes.HasPrefix(head, []byte("\x93NUMPY")):
		ft, err := npyInspect(r, size)
		if err != nil {
			return "npy", nil, err
		}
		return "npy", []FileTensor{ft}, nil
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		return "npz", nil, lowrank.Errorf(lowrank.EUNSUPPORTED, "file", "npz: not yet supported")
	case len(head) >= 9 && head[8] == '{':
		_, fts, err := stInspect(r, size)
		return "safetensors", fts, err
	}
	return "", nil, lowrank.Errorf(lowrank.EUNSUPPORTED, "file", "unrecognised format: expected .npy, .npz or safetensors")
}

func npyInspect(r io.ReaderAt, size int64) (FileTensor, error) {
	bad := func(format string, args ...any) (FileTensor, error) {
		return FileTensor{}, lowrank.Errorf(lowrank.EINVALID, "file", "npy: "+format, args...)
	}
	if size < 10 {
		return bad("too short")
	}
	pre := make([]byte, 12)
	n, _ := r.ReadAt(pre, 0)
	pre = pre[:n]
	var hlen, start int64
	switch pre[6] {
	case 1:
		hlen, start = int64(binary.LittleEndian.Uint16(pre[8:])), 10
	case 2, 3:
		if len(pre) < 12 {
			return bad("too short")
		}
		hlen, start = int64(binary.LittleEndian.Uint32(pre[8:])), 12
	default:
		return bad("unknown version %d", pre[6])
	}
	if start+hlen > size || hlen > 1<<20 {
		return bad("header length %d beyond the file", hlen)
	}
	h := make([]byte, hlen)
	if _, err := r.ReadAt(h, start); err != nil {
		return FileTensor{}, err
	}
	m := descrRe.FindSubmatch(h)
	if m == nil {
		return FileTensor{}, lowrank.Errorf(lowrank.EUNSUPPORTED, "file", "npy: only float32 and float64 are read yet")
	}
	if string(m[1]) == ">" {
		return FileTensor{}, lowrank.Errorf(lowrank.EUNSUPPORTED, "file", "npy: big-endian data is not read yet")
	}
	dt := map[string]string{"f4": "float32", "f8": "float64"}[string(m[2])]
	if f := fortRe.FindSubmatch(h); f == nil || string(f[1]) == "True" {
		return FileTensor{}, lowrank.Errorf(lowrank.EUNSUPPORTED, "file", "npy: Fortran order is not read yet")
	}
	s := shapeRe.FindSubmatch(h)
	if s == nil {
		return bad("no shape in header")
	}
	var shape []int
	elems := int64(1)
	for _, p := range strings.Split(string(s[1]), ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		d, err := strconv.Atoi(p)
		if err != nil || d < 0 || d > 1<<40 {
			return bad("bad dimension %q", p)
		}
		shape = append(shape, d)
		elems *= int64(d)
		if elems > 1<<40 {
			return bad("shape too large")
		}
	}
	length := elems * int64(dtypeSize(dt))
	if start+hlen+length != size {
		return bad("data is %d bytes, shape %v needs %d", size-start-hlen, shape, length)
	}
	return FileTensor{DType: dt, Shape: shape, Offset: start + hlen, Length: length}, nil
}

func stInspect(r io.ReaderAt, size int64) (map[string]string, []FileTensor, error) {
	bad := func(format string, args ...any) (map[string]string, []FileTensor, error) {
		return nil, nil, lowrank.Errorf(lowrank.EINVALID, "file", "safetensors: "+format, args...)
	}
	var pre [8]byte
	if _, err := r.ReadAt(pre[:], 0); err != nil {
		return bad("too short")
	}
	n := binary.LittleEndian.Uint64(pre[:])
	if n > 16<<20 || int64(n) > size-8 {
		return bad("header length %d beyond the file", n)
	}
	h := make([]byte, n)
	if _, err := r.ReadAt(h, 8); err != nil {
		return nil, nil, err
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(h, &raw); err != nil {
		return bad("header: %v", err)
	}
	var meta map[string]string
	var out []FileTensor
	for name, v := range raw {
		if name == "__metadata__" {
			_ = json.Unmarshal(v, &meta)
			continue
		}
		var e struct {
			DType   string  `json:"dtype"`
			Shape   []int   `json:"shape"`
			Offsets []int64 `json:"data_offsets"`
		}
		if err := json.Unmarshal(v, &e); err != nil || len(e.Offsets) != 2 {
			return bad("tensor %q: bad entry", name)
		}
		dt := map[string]string{"F32": "float32", "F64": "float64"}[e.DType]
		if dt == "" {
			return nil, nil, lowrank.Errorf(lowrank.EUNSUPPORTED, "file", "safetensors: tensor %q: dtype %s is not read yet", name, e.DType)
		}
		elems := int64(1)
		for _, d := range e.Shape {
			if d < 0 {
				return bad("tensor %q: negative dimension", name)
			}
			elems *= int64(d)
		}
		begin, end := e.Offsets[0], e.Offsets[1]
		if begin < 0 || end < begin || 8+int64(n)+end > size || end-begin != elems*int64(dtypeSize(dt)) {
			return bad("tensor %q: data offsets %v do not match shape %v", name, e.Offsets, e.Shape)
		}
		out = append(out, FileTensor{Name: name, DType: dt, Shape: e.Shape, Offset: 8 + int64(n) + begin, Length: end - begin})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Offset < out[j].Offset })
	return meta, out, nil
}

func (c InterimCodec) ReadTensor(r io.ReaderAt, size int64, name string) (*Tensor, error) {
	_, fts, err := c.Inspect(r, size)
	if err != nil {
		return nil, err
	}
	var ft *FileTensor
	for i := range fts {
		if fts[i].Name == name || (name == "" && len(fts) == 1) {
			ft = &fts[i]
		}
	}
	if ft == nil && len(fts) == 1 && fts[0].Name == "" {
		ft = &fts[0]
	}
	if ft == nil {
		return nil, lowrank.Errorf(lowrank.ENOTFOUND, "tensor_name", "no tensor %q in the file", name)
	}
	buf := make([]byte, ft.Length)
	if _, err := r.ReadAt(buf, ft.Offset); err != nil && !(err == io.EOF && ft.Length == 0) {
		return nil, err
	}
	t := &Tensor{Name: ft.Name, DType: ft.DType, Shape: ft.Shape}
	if ft.DType == "float64" {
		t.F64 = make([]float64, ft.Length/8)
		for i := range t.F64 {
			t.F64[i] = math.Float64frombits(binary.LittleEndian.Uint64(buf[8*i:]))
		}
	} else {
		t.F32 = make([]float32, ft.Length/4)
		for i := range t.F32 {
			t.F32[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:]))
		}
	}
	return t, nil
}

func rawBytes(t *Tensor) ([]byte, string, error) {
	switch {
	case t.DType == "float64" || (t.DType == "" && t.F64 != nil):
		b := make([]byte, 8*t.Len())
		for i := range t.Len() {
			v := 0.0
			if t.F64 != nil {
				v = t.F64[i]
			} else {
				v = float64(t.F32[i])
			}
			binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(v))
		}
		return b, "float64", nil
	case t.DType == "float32" || t.DType == "":
		b := make([]byte, 4*t.Len())
		for i := range t.Len() {
			var v float32
			if t.F32 != nil {
				v = t.F32[i]
			} else {
				v = float32(t.F64[i])
			}
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
		return b, "float32", nil
	}
	return nil, "", lowrank.Errorf(lowrank.EUNSUPPORTED, "output_dtype", "dtype %s is not written yet", t.DType)
}

func (InterimCodec) WriteSafetensors(w io.Writer, ts []*Tensor, metadata map[string]string) error {
	hdr := map[string]any{}
	if len(metadata) > 0 {
		hdr["__metadata__"] = metadata
	}
	var data []byte
	for _, t := range ts {
		b, dt, err := rawBytes(t)
		if err != nil {
			return err
		}
		hdr[t.Name] = map[string]any{"dtype": map[string]string{"float32": "F32", "float64": "F64"}[dt],
			"shape": t.Shape, "data_offsets": []int{len(data), len(data) + len(b)}}
		data = append(data, b...)
	}
	h, err := json.Marshal(hdr)
	if err != nil {
		return err
	}
	for len(h)%8 != 0 {
		h = append(h, ' ')
	}
	var pre [8]byte
	binary.LittleEndian.PutUint64(pre[:], uint64(len(h)))
	for _, b := range [][]byte{pre[:], h, data} {
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

func (InterimCodec) WriteNPZ(io.Writer, []*Tensor) error {
	return lowrank.Errorf(lowrank.EUNSUPPORTED, "format", "npz is not yet available")
}

func (c InterimCodec) NPYHeader(dtype string, shape []int) ([]byte, error) {
	descr := map[string]string{"float32": "<f4", "float64": "<f8"}[dtype]
	if descr == "" {
		return nil, lowrank.Errorf(lowrank.EUNSUPPORTED, "format", "dtype %s cannot be written to .npy yet", dtype)
	}
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = strconv.Itoa(d)
	}
	s := strings.Join(dims, ", ")
	if len(shape) == 1 {
		s += ","
	}
	dict := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, s)
	total := (10 + len(dict) + 1 + 63) / 64 * 64
	out := make([]byte, total)
	copy(out, "\x93NUMPY\x01\x00")
	binary.LittleEndian.PutUint16(out[8:], uint16(total-10))
	copy(out[10:], dict)
	for i := 10 + len(dict); i < total-1; i++ {
		out[i] = ' '
	}
	out[total-1] = '\n'
	return out, nil
}

func (c InterimCodec) WriteNPY(w io.Writer, t *Tensor) error {
	b, dt, err := rawBytes(t)
	if err != nil {
		return err
	}
	h, err := c.NPYHeader(dt, t.Shape)
	if err != nil {
		return err
	}
	if _, err := w.Write(h); err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

func (InterimCodec) WriteJSON(w io.Writer, t *Tensor) error {
	data := make([]float64, t.Len())
	for i := range data {
		if t.F64 != nil {
			data[i] = t.F64[i]
		} else {
			data[i] = float64(t.F32[i])
		}
	}
	return json.NewEncoder(w).Encode(map[string]any{"name": t.Name, "dtype": t.DType, "shape": t.Shape, "data": data})
}
