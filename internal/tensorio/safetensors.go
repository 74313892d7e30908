package tensorio

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"unicode/utf8"

	"github.com/lowrank/lowrank"
)

// stMaxHeaderBytes is the format's own bound on the JSON header, enforced
// by the reference implementation; Limits.MaxHeaderBytes can only lower it.
const stMaxHeaderBytes = 100_000_000

// metadataKey is the header key that holds the free-form string map.
const metadataKey = "__metadata__"

// SafetensorsHeader is the parsed, validated header of a safetensors file.
type SafetensorsHeader struct {
	// Metadata is the __metadata__ string map (nil when absent).
	Metadata map[string]string
	// Tensors are in header order; Offset and Length are absolute byte
	// ranges in the file.
	Tensors []Info
	// DataStart is where the byte buffer begins: 8 + the header length.
	DataStart int64
}

// ReadSafetensorsHeader reads and validates the header of a safetensors file
// of size bytes without reading any tensor data: the tensors must tile the
// byte buffer exactly (ordered, contiguous, no overlap, no holes, ending at
// the end of the file), and each tensor's byte length must equal its element
// count times its dtype's size.
func ReadSafetensorsHeader(r io.ReaderAt, size int64) (*SafetensorsHeader, error) {
	return DefaultLimits().ReadSafetensorsHeader(r, size)
}

// ReadSafetensorsHeader is the package function with limits l.
func (l Limits) ReadSafetensorsHeader(r io.ReaderAt, size int64) (*SafetensorsHeader, error) {
	lim := l.withDefaults()
	const f = FormatSafetensors
	if size < 8 {
		return nil, ferr(lowrank.EINVALID, f, "", "%d bytes is too short for the 8-byte header length", size)
	}
	var pre [8]byte
	if err := readFullAt(f, r, pre[:], 0); err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint64(pre[:])
	maxHeader := uint64(min(lim.MaxHeaderBytes, stMaxHeaderBytes))
	if n > maxHeader {
		return nil, ferr(lowrank.ETOOLARGE, f, "", "header length %d at byte 0 exceeds the limit of %d bytes", n, maxHeader)
	}
	if n > uint64(size-8) {
		return nil, ferr(lowrank.EINVALID, f, "", "header length %d at byte 0 runs past the end of the %d-byte file", n, size)
	}
	buf := make([]byte, n)
	if err := readFullAt(f, r, buf, 8); err != nil {
		return nil, err
	}
	h, err := parseSafetensorsHeader(buf, lim)
	if err != nil {
		return nil, err
	}
	h.DataStart = 8 + int64(n)
	if err := h.validate(size - h.DataStart); err != nil {
		return nil, err
	}
	return h, nil
}

// stEntry is a tensor entry while the header is parsed: offsets are relative
// to the byte buffer until validate makes them absolute.
type stEntry struct {
	dtype      DType
	shape      []uint64
	begin, end uint64
	n          int64
}

// parseSafetensorsHeader parses the JSON header token by token, so that
// duplicate keys and unknown fields are caught (encoding/json's Unmarshal
// would silently keep the last duplicate).
func parseSafetensorsHeader(b []byte, lim Limits) (*SafetensorsHeader, error) {
	const f = FormatSafetensors
	if len(b) == 0 || b[0] != '{' {
		return nil, ferr(lowrank.EINVALID, f, "", "header at byte 8 does not begin with '{'")
	}
	if !utf8.Valid(b) {
		return nil, ferr(lowrank.EINVALID, f, "", "header is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	p := &jsonTokens{dec: dec, f: f}
	h := &SafetensorsHeader{}
	entries := map[string]*stEntry{}
	if err := p.delim('{', ""); err != nil {
		return nil, err
	}
	for dec.More() {
		key, err := p.key("")
		if err != nil {
			return nil, err
		}
		if key == metadataKey {
			if h.Metadata != nil {
				return nil, p.fail("", "duplicate key %q", key)
			}
			if h.Metadata, err = p.stringMap(key); err != nil {
				return nil, err
			}
			continue
		}
		if _, dup := entries[key]; dup {
			return nil, p.fail(key, "duplicate tensor name")
		}
		if len(entries) >= lim.MaxEntries {
			return nil, ferr(lowrank.ETOOLARGE, f, "", "more than the limit of %d tensors", lim.MaxEntries)
		}
		e, err := p.entry(key, lim)
		if err != nil {
			return nil, err
		}
		entries[key] = e
		h.Tensors = append(h.Tensors, Info{Name: key, DType: e.dtype, Shape: toInts(e.shape), Offset: int64(e.begin), Length: int64(e.end - e.begin)})
	}
	if err := p.delim('}', ""); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, ferr(lowrank.EINVALID, f, "", "header has bytes after its closing '}' other than space padding")
	}
	return h, nil
}

// validate checks the offsets against each other and against dataLen, the
// size of the byte buffer, and makes them absolute.
func (h *SafetensorsHeader) validate(dataLen int64) error {
	const f = FormatSafetensors
	order := make([]int, len(h.Tensors))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		ta, tb := &h.Tensors[order[a]], &h.Tensors[order[b]]
		if ta.Offset != tb.Offset {
			return ta.Offset < tb.Offset
		}
		return ta.Length < tb.Length
	})
	var next int64
	prev := ""
	for _, i := range order {
		t := &h.Tensors[i]
		switch {
		case t.Offset > next:
			return ferr(lowrank.EINVALID, f, t.Name, "data_offsets start at %d, leaving bytes [%d,%d) of the data unused", t.Offset, next, t.Offset)
		case t.Offset < next:
			return ferr(lowrank.EINVALID, f, t.Name, "data_offsets start at %d, inside tensor %q, which ends at %d", t.Offset, prev, next)
		}
		next = t.Offset + t.Length
		prev = t.Name
		t.Offset += h.DataStart
	}
	if next != dataLen {
		return ferr(lowrank.EINVALID, f, "", "tensors cover %d bytes of data but the file holds %d after the header", next, dataLen)
	}
	return nil
}

// jsonTokens reads a JSON document token by token with error messages that
// say where the fault is.
type jsonTokens struct {
	dec *json.Decoder
	f   Format
}

func (p *jsonTokens) fail(tensor, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	return ferr(lowrank.EINVALID, p.f, tensor, "%s (near byte %d of the JSON)", msg, p.dec.InputOffset())
}

func (p *jsonTokens) token(tensor string) (json.Token, error) {
	t, err := p.dec.Token()
	if err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, ferr(lowrank.EINVALID, p.f, tensor, "malformed JSON at byte %d: %v", se.Offset, err)
		}
		if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, p.fail(tensor, "JSON ends early")
		}
		return nil, p.fail(tensor, "malformed JSON: %v", err)
	}
	return t, nil
}

func (p *jsonTokens) delim(d json.Delim, tensor string) error {
	t, err := p.token(tensor)
	if err != nil {
		return err
	}
	if t != d {
		return p.fail(tensor, "expected '%c', found %s", d, tokenString(t))
	}
	return nil
}

func (p *jsonTokens) key(tensor string) (string, error) {
	t, err := p.token(tensor)
	if err != nil {
		return "", err
	}
	s, ok := t.(string)
	if !ok {
		return "", p.fail(tensor, "expected a key, found %s", tokenString(t))
	}
	return s, nil
}

func (p *jsonTokens) str(tensor, what string) (string, error) {
	t, err := p.token(tensor)
	if err != nil {
		return "", err
	}
	s, ok := t.(string)
	if !ok {
		return "", p.fail(tensor, "%s must be a string, found %s", what, tokenString(t))
	}
	return s, nil
}

// uints reads an array of non-negative integers, at most max of them.
func (p *jsonTokens) uints(tensor, what string, max int) ([]uint64, error) {
	if err := p.delim('[', tensor); err != nil {
		return nil, err
	}
	v := []uint64{}
	for p.dec.More() {
		t, err := p.token(tensor)
		if err != nil {
			return nil, err
		}
		num, ok := t.(json.Number)
		if !ok {
			return nil, p.fail(tensor, "%s must hold integers, found %s", what, tokenString(t))
		}
		u, err := strconv.ParseUint(string(num), 10, 64)
		if err != nil {
			return nil, p.fail(tensor, "%s must hold non-negative integers below 2^64, found %s", what, num)
		}
		if len(v) == max {
			return nil, ferr(lowrank.ETOOLARGE, p.f, tensor, "%s has more than %d entries", what, max)
		}
		v = append(v, u)
	}
	return v, p.delim(']', tensor)
}

func (p *jsonTokens) stringMap(what string) (map[string]string, error) {
	if err := p.delim('{', ""); err != nil {
		return nil, err
	}
	m := map[string]string{}
	for p.dec.More() {
		k, err := p.key("")
		if err != nil {
			return nil, err
		}
		if _, dup := m[k]; dup {
			return nil, p.fail("", "duplicate key %q in %s", k, what)
		}
		if m[k], err = p.str("", what+" values"); err != nil {
			return nil, err
		}
	}
	return m, p.delim('}', "")
}

// entry reads one tensor's {"dtype", "shape", "data_offsets"} object.
func (p *jsonTokens) entry(name string, lim Limits) (*stEntry, error) {
	if err := p.delim('{', name); err != nil {
		return nil, err
	}
	e := &stEntry{}
	var haveDType, haveShape, haveOffsets bool
	for p.dec.More() {
		k, err := p.key(name)
		if err != nil {
			return nil, err
		}
		switch k {
		case "dtype":
			if haveDType {
				return nil, p.fail(name, "duplicate key \"dtype\"")
			}
			haveDType = true
			s, err := p.str(name, "dtype")
			if err != nil {
				return nil, err
			}
			e.dtype = DType(s)
		case "shape":
			if haveShape {
				return nil, p.fail(name, "duplicate key \"shape\"")
			}
			haveShape = true
			if e.shape, err = p.uints(name, "shape", lim.MaxDims); err != nil {
				return nil, err
			}
		case "data_offsets":
			if haveOffsets {
				return nil, p.fail(name, "duplicate key \"data_offsets\"")
			}
			haveOffsets = true
			o, err := p.uints(name, "data_offsets", 2)
			if err != nil {
				return nil, err
			}
			if len(o) != 2 {
				return nil, p.fail(name, "data_offsets must hold 2 integers, found %d", len(o))
			}
			e.begin, e.end = o[0], o[1]
		default:
			return nil, p.fail(name, "unknown key %q", k)
		}
	}
	if err := p.delim('}', name); err != nil {
		return nil, err
	}
	switch {
	case !haveDType:
		return nil, p.fail(name, "missing \"dtype\"")
	case !haveShape:
		return nil, p.fail(name, "missing \"shape\"")
	case !haveOffsets:
		return nil, p.fail(name, "missing \"data_offsets\"")
	}
	size := e.dtype.Size()
	if size == 0 {
		return nil, ferr(lowrank.EUNSUPPORTED, FormatSafetensors, name, "dtype %q is not supported", string(e.dtype))
	}
	n, err := checkShape(FormatSafetensors, name, e.shape, lim)
	if err != nil {
		return nil, err
	}
	e.n = n
	// The dims each fit in MaxElements, so n × size cannot overflow; the
	// offsets come from the file and are compared, never multiplied.
	if e.end < e.begin {
		return nil, ferr(lowrank.EINVALID, FormatSafetensors, name, "data_offsets [%d,%d) end before they begin", e.begin, e.end)
	}
	if e.end > 1<<62 {
		return nil, ferr(lowrank.EINVALID, FormatSafetensors, name, "data_offsets [%d,%d) are beyond any file", e.begin, e.end)
	}
	if need := uint64(n) * uint64(size); e.end-e.begin != need {
		return nil, ferr(lowrank.EINVALID, FormatSafetensors, name, "data_offsets [%d,%d) but %s %s needs %d bytes",
			e.begin, e.end, e.dtype, fmtShape(e.shape), need)
	}
	return e, nil
}

func tokenString(t json.Token) string {
	switch v := t.(type) {
	case json.Delim:
		return "'" + v.String() + "'"
	case string:
		return "string " + strconv.Quote(clipString(v))
	case json.Number:
		return "number " + clipString(string(v))
	case bool:
		return "boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%v", t)
}

func clipString(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

// readSafetensorsTensor decodes one tensor; only its own bytes are read.
func readSafetensorsTensor(r io.ReaderAt, h *SafetensorsHeader, i int) (*Tensor, error) {
	info := &h.Tensors[i]
	t, err := decodeData(FormatSafetensors, info.Name, io.NewSectionReader(r, info.Offset, info.Length), info.DType, false, info.Elements())
	if err != nil {
		return nil, err
	}
	t.Shape = info.Shape
	return t, nil
}

// WriteSafetensors writes tensors, in the order given and each in its own
// dtype, with metadata as __metadata__ (omitted when empty). Keys of the
// metadata map are written sorted, so the output is deterministic. The
// header is padded with spaces so the data starts at a multiple of 8 bytes;
// a tensor's own data is aligned to its element size when the tensors before
// it keep it so (list wider dtypes first to be sure).
func WriteSafetensors(w io.Writer, tensors []*Tensor, metadata map[string]string) error {
	entries := make([]SafetensorsEntry, len(tensors))
	for i, t := range tensors {
		entries[i] = SafetensorsEntry{Tensor: t}
	}
	return WriteSafetensorsEntries(w, entries, metadata)
}

// SafetensorsEntry is one tensor for WriteSafetensorsEntries: decoded data,
// encoded in its own dtype, or raw bytes passed through unchanged.
type SafetensorsEntry struct {
	// Tensor, when not nil, is the tensor to write; the other fields are
	// then ignored.
	Tensor *Tensor
	// Name, DType and Shape describe a raw entry, whose data Raw supplies as
	// exactly (elements × DType.Size()) bytes, copied as they are. Any dtype
	// of known size is accepted (I64, U8, ...), so tensors this package does
	// not decode can still be carried from one file to another.
	Name  string
	DType DType
	Shape []int
	Raw   io.Reader
}

// WriteSafetensorsEntries is WriteSafetensors for a mix of decoded and raw
// tensors (see SafetensorsEntry). A raw entry whose reader ends early, or
// has bytes left after its length, gives an EINVALID error naming it.
func WriteSafetensorsEntries(w io.Writer, entries []SafetensorsEntry, metadata map[string]string) error {
	const f = FormatSafetensors
	var hdr bytes.Buffer
	hdr.WriteByte('{')
	if len(metadata) > 0 {
		keys := make([]string, 0, len(metadata))
		for k := range metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		hdr.WriteString(`"` + metadataKey + `":{`)
		for i, k := range keys {
			if i > 0 {
				hdr.WriteByte(',')
			}
			if err := writeJSONString(&hdr, k); err != nil {
				return ferr(lowrank.EINVALID, f, "", "metadata key: %v", err)
			}
			hdr.WriteByte(':')
			if err := writeJSONString(&hdr, metadata[k]); err != nil {
				return ferr(lowrank.EINVALID, f, "", "metadata %q: %v", k, err)
			}
		}
		hdr.WriteByte('}')
	}
	dtypes := make([]DType, len(entries))
	lengths := make([]int64, len(entries))
	seen := map[string]bool{}
	var off uint64
	for i, e := range entries {
		name, shape := e.Name, e.Shape
		var n int
		var dt DType
		if t := e.Tensor; t != nil {
			var err error
			if n, dt, err = checkTensor(f, t); err != nil {
				return err
			}
			name, shape = t.Name, t.Shape
		} else {
			dt = e.DType
			if dt.Size() == 0 {
				return ferr(lowrank.EUNSUPPORTED, f, name, "dtype %q has no known size", dt)
			}
			if e.Raw == nil {
				return ferr(lowrank.EINVALID, f, name, "a raw entry needs a reader")
			}
			n = 1
			for _, d := range shape {
				if d < 0 {
					return ferr(lowrank.EINVALID, f, name, "negative dimension in shape %v", shape)
				}
				n *= d
			}
		}
		if name == "" || name == metadataKey || seen[name] {
			return ferr(lowrank.EINVALID, f, name, "tensor names must be unique, non-empty and not %q", metadataKey)
		}
		seen[name] = true
		dtypes[i] = dt
		lengths[i] = int64(n) * int64(dt.Size())
		if i > 0 || len(metadata) > 0 {
			hdr.WriteByte(',')
		}
		if err := writeJSONString(&hdr, name); err != nil {
			return ferr(lowrank.EINVALID, f, name, "name: %v", err)
		}
		end := off + uint64(lengths[i])
		fmt.Fprintf(&hdr, `:{"dtype":"%s","shape":[`, dt)
		for j, d := range shape {
			if j > 0 {
				hdr.WriteByte(',')
			}
			hdr.WriteString(strconv.Itoa(d))
		}
		fmt.Fprintf(&hdr, `],"data_offsets":[%d,%d]}`, off, end)
		off = end
	}
	hdr.WriteByte('}')
	for (8+hdr.Len())%8 != 0 {
		hdr.WriteByte(' ')
	}
	var pre [8]byte
	binary.LittleEndian.PutUint64(pre[:], uint64(hdr.Len()))
	if _, err := w.Write(pre[:]); err != nil {
		return err
	}
	if _, err := w.Write(hdr.Bytes()); err != nil {
		return err
	}
	for i, e := range entries {
		if e.Tensor != nil {
			if err := encodeData(w, e.Tensor, dtypes[i]); err != nil {
				return err
			}
			continue
		}
		if err := copyRaw(w, e.Raw, e.Name, lengths[i]); err != nil {
			return err
		}
	}
	return nil
}

// copyRaw copies exactly n bytes of a raw entry from r to w.
func copyRaw(w io.Writer, r io.Reader, name string, n int64) error {
	const f = FormatSafetensors
	got, err := io.Copy(w, io.LimitReader(r, n))
	if err != nil {
		return err
	}
	if got != n {
		return ferr(lowrank.EINVALID, f, name, "raw data ends after %d of %d bytes", got, n)
	}
	var one [1]byte
	if k, _ := r.Read(one[:]); k > 0 {
		return ferr(lowrank.EINVALID, f, name, "raw data is longer than %d bytes", n)
	}
	return nil
}

// writeJSONString writes s as a JSON string. Only '"', '\\' and control
// characters are escaped, so non-ASCII names stay readable.
func writeJSONString(b *bytes.Buffer, s string) error {
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		case c < 0x20:
			fmt.Fprintf(b, `\u%04x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return nil
}
