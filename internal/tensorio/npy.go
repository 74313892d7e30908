package tensorio

import (
	"encoding/binary"
	"errors"
	"io"
	"strconv"
	"strings"

	"github.com/lowrank/lowrank"
)

const (
	npyMagic = "\x93NUMPY"
	// npyMaxHeaderBytes is NumPy's own limit on the header dict it will
	// parse (numpy.lib.format's max_header_size default).
	npyMaxHeaderBytes = 10000
)

// npyHeader is a parsed .npy header.
type npyHeader struct {
	major     int
	dtype     DType
	bigEndian bool
	fortran   bool
	shape     []uint64
	n         int64 // elements
	dataStart int64 // bytes before the data: magic, version, length, dict
}

// readNPYHeader reads and checks the header of a .npy stream of size bytes
// and leaves r at the start of the data. The data must fill the rest of the
// stream exactly. f is the format the error messages name (npy, or npz for
// an entry, whose name is given).
func readNPYHeader(f Format, name string, r io.Reader, size int64, lim Limits) (*npyHeader, error) {
	invalid := func(format string, args ...any) error {
		return ferr(lowrank.EINVALID, f, name, format, args...)
	}
	var pre [12]byte
	if size < 10 {
		return nil, invalid("%d bytes is too short for a .npy header", size)
	}
	if _, err := io.ReadFull(r, pre[:10]); err != nil {
		return nil, npyReadErr(f, name, err)
	}
	if string(pre[:6]) != npyMagic {
		return nil, invalid("no .npy magic string at byte 0")
	}
	h := &npyHeader{major: int(pre[6])}
	if pre[6] < 1 || pre[6] > 3 || pre[7] != 0 {
		return nil, ferr(lowrank.EUNSUPPORTED, f, name, "format version %d.%d is not read (1.0, 2.0 and 3.0 are)", pre[6], pre[7])
	}
	var hlen int64
	if h.major == 1 {
		hlen = int64(binary.LittleEndian.Uint16(pre[8:10]))
		h.dataStart = 10
	} else {
		if size < 12 {
			return nil, invalid("%d bytes is too short for a version %d.0 header", size, h.major)
		}
		if _, err := io.ReadFull(r, pre[10:12]); err != nil {
			return nil, npyReadErr(f, name, err)
		}
		hlen = int64(binary.LittleEndian.Uint32(pre[8:12]))
		h.dataStart = 12
	}
	if hlen > npyMaxHeaderBytes {
		return nil, ferr(lowrank.ETOOLARGE, f, name, "header length %d at byte 8 exceeds NumPy's limit of %d", hlen, npyMaxHeaderBytes)
	}
	if hlen > size-h.dataStart {
		return nil, invalid("header length %d at byte 8 runs past the end of the %d-byte file", hlen, size)
	}
	dict := make([]byte, hlen)
	if _, err := io.ReadFull(r, dict); err != nil {
		return nil, npyReadErr(f, name, err)
	}
	h.dataStart += hlen
	if err := parseNPYDict(f, name, dict, h); err != nil {
		return nil, err
	}
	n, err := checkShape(f, name, h.shape, lim)
	if err != nil {
		return nil, err
	}
	h.n = n
	want := n * int64(h.dtype.Size()) // n ≤ MaxElements, so no overflow
	if have := size - h.dataStart; have != want {
		return nil, invalid("shape %s of %s needs %d data bytes after the %d-byte header, the file has %d",
			fmtShape(h.shape), h.dtype, want, h.dataStart, have)
	}
	return h, nil
}

func npyReadErr(f Format, name string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return ferr(lowrank.EINVALID, f, name, "header ends early")
	}
	return readErr(f, name, err)
}

// parseNPYDict parses the header dict, a Python literal such as
//
//	{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
//
// strictly: exactly the three keys, string keys, a string descr, True or
// False, a tuple of non-negative integers, and nothing after the closing
// brace but whitespace. Nothing is evaluated.
func parseNPYDict(f Format, name string, b []byte, h *npyHeader) error {
	p := &pyParser{b: b}
	fail := func(what string) error {
		return ferr(lowrank.EINVALID, f, name, "header dict: %s at byte %d of %q", what, p.pos, clip(b))
	}
	if !p.eat('{') {
		return fail("expected '{'")
	}
	seen := map[string]bool{}
	for {
		if p.eat('}') {
			break
		}
		key, ok := p.str()
		if !ok {
			return fail("expected a quoted key")
		}
		if seen[key] {
			return fail("duplicate key " + strconv.Quote(key))
		}
		seen[key] = true
		if !p.eat(':') {
			return fail("expected ':'")
		}
		switch key {
		case "descr":
			p.space()
			if p.pos < len(b) && b[p.pos] == '[' {
				return ferr(lowrank.EUNSUPPORTED, f, name, "structured dtypes are not read")
			}
			s, ok := p.str()
			if !ok {
				return fail("expected a quoted descr")
			}
			if err := parseDescr(f, name, s, h); err != nil {
				return err
			}
		case "fortran_order":
			switch {
			case p.word("True"):
				h.fortran = true
			case p.word("False"):
				h.fortran = false
			default:
				return fail("expected True or False")
			}
		case "shape":
			if !p.eat('(') {
				return fail("expected '(' starting the shape")
			}
			h.shape = []uint64{}
			for !p.eat(')') {
				v, ok := p.uint()
				if !ok {
					return fail("expected a non-negative integer in the shape")
				}
				h.shape = append(h.shape, v)
				if len(h.shape) > 64 {
					// NumPy's own maximum; stops a header made of dims
					// from growing the slice further.
					return fail("more than 64 dimensions")
				}
				if !p.eat(',') {
					if !p.eat(')') {
						return fail("expected ',' or ')' in the shape")
					}
					if len(h.shape) == 1 {
						// (3) is the integer 3 in Python, not a tuple.
						return fail("a one-dimensional shape needs a trailing comma")
					}
					break
				}
			}
		default:
			return fail("unexpected key " + strconv.Quote(key))
		}
		if !p.eat(',') {
			if !p.eat('}') {
				return fail("expected ',' or '}'")
			}
			break
		}
	}
	p.space()
	if p.pos != len(b) {
		return fail("unexpected bytes after the dict")
	}
	for _, k := range []string{"descr", "fortran_order", "shape"} {
		if !seen[k] {
			return fail("missing key " + strconv.Quote(k))
		}
	}
	return nil
}

// parseDescr maps a NumPy type string such as '<f4' to a DType.
func parseDescr(f Format, name, s string, h *npyHeader) error {
	if s == "O" || s == "|O" {
		return ferr(lowrank.EUNSUPPORTED, f, name, "object arrays are pickles; "+pickleHint)
	}
	var dt DType
	if len(s) == 3 {
		switch s[1:] {
		case "f2":
			dt = F16
		case "f4":
			dt = F32
		case "f8":
			dt = F64
		case "i1":
			dt = "I8"
		case "u1":
			dt = "U8"
		case "b1":
			dt = "BOOL"
		case "i2":
			dt = "I16"
		case "u2":
			dt = "U16"
		case "i4":
			dt = "I32"
		case "u4":
			dt = "U32"
		case "i8":
			dt = "I64"
		case "u8":
			dt = "U64"
		}
	}
	ok := dt != ""
	if ok {
		switch s[0] {
		case '<':
		case '>':
			h.bigEndian = true
		case '|':
			ok = dt.Size() == 1
		default:
			ok = false
		}
	}
	if !ok {
		return ferr(lowrank.EUNSUPPORTED, f, name, "dtype %q is not read (<f2, <f4, <f8 and their big-endian forms are)", s)
	}
	h.dtype = dt
	return nil
}

// clip shortens a header for an error message.
func clip(b []byte) string {
	if len(b) > 120 {
		return string(b[:120]) + "..."
	}
	return string(b)
}

// pyParser scans the small Python-literal subset of a .npy header.
type pyParser struct {
	b   []byte
	pos int
}

func (p *pyParser) space() {
	for p.pos < len(p.b) {
		switch p.b[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

// eat skips whitespace and consumes c if it comes next.
func (p *pyParser) eat(c byte) bool {
	p.space()
	if p.pos < len(p.b) && p.b[p.pos] == c {
		p.pos++
		return true
	}
	return false
}

// word consumes an identifier such as True.
func (p *pyParser) word(w string) bool {
	p.space()
	if !strings.HasPrefix(string(p.b[p.pos:]), w) {
		return false
	}
	end := p.pos + len(w)
	if end < len(p.b) && isIdent(p.b[end]) {
		return false
	}
	p.pos = end
	return true
}

func isIdent(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// str consumes a single- or double-quoted string of printable ASCII without
// escapes (all that a valid header needs).
func (p *pyParser) str() (string, bool) {
	p.space()
	if p.pos >= len(p.b) {
		return "", false
	}
	q := p.b[p.pos]
	if q != '\'' && q != '"' {
		return "", false
	}
	for i := p.pos + 1; i < len(p.b); i++ {
		c := p.b[i]
		if c == q {
			s := string(p.b[p.pos+1 : i])
			p.pos = i + 1
			return s, true
		}
		if c < 0x20 || c > 0x7e || c == '\\' {
			return "", false
		}
	}
	return "", false
}

// uint consumes a decimal integer without sign or leading zeros (as Python
// writes it) that fits in 63 bits.
func (p *pyParser) uint() (uint64, bool) {
	p.space()
	start := p.pos
	for p.pos < len(p.b) && p.b[p.pos] >= '0' && p.b[p.pos] <= '9' {
		p.pos++
	}
	digits := string(p.b[start:p.pos])
	if digits == "" || len(digits) > 1 && digits[0] == '0' {
		return 0, false
	}
	if p.pos < len(p.b) && isIdent(p.b[p.pos]) {
		return 0, false // 3L, 1_000, 0x10
	}
	v, err := strconv.ParseUint(digits, 10, 63)
	return v, err == nil
}

// readNPY decodes a whole .npy stream of size bytes.
func readNPY(f Format, name string, r io.Reader, size int64, lim Limits) (*Tensor, error) {
	h, err := readNPYHeader(f, name, r, size, lim)
	if err != nil {
		return nil, err
	}
	t, err := decodeData(f, name, r, h.dtype, h.bigEndian, h.n)
	if err != nil {
		return nil, err
	}
	t.Shape = toInts(h.shape)
	if h.fortran {
		if t.F64 != nil {
			t.F64 = fortranToC(t.F64, t.Shape)
		} else {
			t.F32 = fortranToC(t.F32, t.Shape)
		}
	}
	return t, nil
}

func (h *npyHeader) info(name string, offset int64) Info {
	return Info{
		Name: name, DType: h.dtype, Shape: toInts(h.shape),
		Offset: offset, Length: h.n * int64(h.dtype.Size()),
		BigEndian: h.bigEndian, FortranOrder: h.fortran,
	}
}

// NPYHeader returns the .npy header (magic, version, length and dict) of a
// C-order, little-endian array of dtype dt and the given shape, so that a
// caller can stream raw little-endian data after it, e.g. one tensor copied
// out of a safetensors bundle. The total length is a multiple of 64, as
// NumPy writes it, so the data is aligned. Version 1.0 is used when the
// header fits its 16-bit length field, 2.0 otherwise.
func NPYHeader(dt DType, shape []int) ([]byte, error) {
	var descr string
	switch dt {
	case F16:
		descr = "<f2"
	case F32:
		descr = "<f4"
	case F64:
		descr = "<f8"
	default:
		return nil, ferr(lowrank.EUNSUPPORTED, FormatNPY, "", "dtype %s cannot be written to .npy (F16, F32 and F64 can; NumPy has no bfloat16)", dt)
	}
	var d strings.Builder
	d.WriteString("{'descr': '" + descr + "', 'fortran_order': False, 'shape': (")
	for i, n := range shape {
		if n < 0 {
			return nil, ferr(lowrank.EINVALID, FormatNPY, "", "negative dimension in shape %v", shape)
		}
		if i > 0 {
			d.WriteString(", ")
		}
		d.WriteString(strconv.Itoa(n))
	}
	if len(shape) == 1 {
		d.WriteString(",")
	}
	d.WriteString("), }")
	dict := d.String()
	for _, pre := range []int{10, 12} {
		// Pad with spaces and end with a newline so that the whole header
		// is a multiple of 64 bytes.
		total := (pre + len(dict) + 1 + 63) / 64 * 64
		hlen := total - pre
		if pre == 10 && hlen > 0xffff {
			continue
		}
		out := make([]byte, total)
		copy(out, npyMagic)
		if pre == 10 {
			out[6] = 1
			binary.LittleEndian.PutUint16(out[8:], uint16(hlen))
		} else {
			out[6] = 2
			binary.LittleEndian.PutUint32(out[8:], uint32(hlen))
		}
		copy(out[pre:], dict)
		for i := pre + len(dict); i < total-1; i++ {
			out[i] = ' '
		}
		out[total-1] = '\n'
		return out, nil
	}
	panic("unreachable")
}

// WriteNPY writes t as a C-order .npy file in t's dtype (F16, F32 or F64).
func WriteNPY(w io.Writer, t *Tensor) error {
	_, dt, err := checkTensor(FormatNPY, t)
	if err != nil {
		return err
	}
	hdr, err := NPYHeader(dt, t.Shape)
	if err != nil {
		return err
	}
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	return encodeData(w, t, dt)
}
