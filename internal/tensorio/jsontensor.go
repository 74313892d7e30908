package tensorio

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/lowrank/lowrank"
)

// The JSON form holds one small tensor, either as an object
//
//	{"name": "w", "dtype": "F32", "shape": [2, 3], "data": [1, 2, 3, 4, 5, 6]}
//
// where data is flat row-major (or nested, matching shape) and name, dtype
// and shape are optional, or as a bare nested array such as [[1, 2], [3, 4]].
// Numbers are decimal; NaN and infinities, which JSON lacks, are written as
// the strings "NaN", "Infinity" and "-Infinity". Without a dtype the values
// are kept as F64; with one they are rounded to it.

// jsonTensor collects a tensor while the JSON is parsed.
type jsonTensor struct {
	p     *jsonTokens
	lim   Limits
	data  []float64
	shape []int  // inferred from the nesting, -1 where not yet known
	kinds []byte // per depth: 'a' arrays, 'n' numbers, 0 not yet known
}

// readJSON decodes a JSON tensor of size bytes.
func readJSON(r io.Reader, size int64, lim Limits) (*Tensor, error) {
	const f = FormatJSON
	if size > lim.MaxJSONBytes {
		return nil, ferr(lowrank.ETOOLARGE, f, "", "%d bytes is more than the limit of %d for JSON; use safetensors or .npy for large tensors", size, lim.MaxJSONBytes)
	}
	dec := json.NewDecoder(bufio.NewReader(io.LimitReader(r, size)))
	dec.UseNumber()
	jt := &jsonTensor{p: &jsonTokens{dec: dec, f: f}, lim: lim, data: []float64{}}
	tok, err := jt.p.token("")
	if err != nil {
		return nil, err
	}
	t := &Tensor{DType: F64}
	switch tok {
	case json.Delim('['):
		if err := jt.array(0); err != nil {
			return nil, err
		}
		t.Shape = jt.finalShape()
		t.F64 = jt.data
	case json.Delim('{'):
		if err := jt.object(t); err != nil {
			return nil, err
		}
	default:
		return nil, jt.p.fail("", "expected an object or an array, found %s", tokenString(tok))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, jt.p.fail(t.Name, "unexpected data after the tensor")
	}
	if t.DType != F64 {
		t.F32 = make([]float32, len(t.F64))
		for i, v := range t.F64 {
			switch t.DType {
			case F16:
				t.F32[i] = F16ToF32(F64ToF16(v))
			case BF16:
				t.F32[i] = BF16ToF32(F64ToBF16(v))
			default:
				t.F32[i] = float32(v)
			}
		}
		t.F64 = nil
	}
	return t, nil
}

func (jt *jsonTensor) object(t *Tensor) error {
	p := jt.p
	var shape []uint64
	var haveShape, haveData, haveName, haveDType bool
	for p.dec.More() {
		k, err := p.key("")
		if err != nil {
			return err
		}
		switch k {
		case "name":
			if haveName {
				return p.fail("", "duplicate key %q", k)
			}
			haveName = true
			if t.Name, err = p.str("", "name"); err != nil {
				return err
			}
		case "dtype":
			if haveDType {
				return p.fail(t.Name, "duplicate key %q", k)
			}
			haveDType = true
			s, err := p.str(t.Name, "dtype")
			if err != nil {
				return err
			}
			t.DType = DType(strings.ToUpper(s))
			if !t.DType.Readable() {
				return ferr(lowrank.EUNSUPPORTED, FormatJSON, t.Name, "dtype %q is not read (F16, BF16, F32 and F64 are)", s)
			}
		case "shape":
			if haveShape {
				return p.fail(t.Name, "duplicate key %q", k)
			}
			haveShape = true
			if shape, err = p.uints(t.Name, "shape", jt.lim.MaxDims); err != nil {
				return err
			}
			if _, err := checkShape(FormatJSON, t.Name, shape, jt.lim); err != nil {
				return err
			}
		case "data":
			if haveData {
				return p.fail(t.Name, "duplicate key %q", k)
			}
			haveData = true
			tok, err := p.token(t.Name)
			if err != nil {
				return err
			}
			if tok == json.Delim('[') {
				if err := jt.array(0); err != nil {
					return err
				}
			} else {
				// A bare number is a scalar.
				v, err := jt.number(tok)
				if err != nil {
					return err
				}
				jt.data = append(jt.data, v)
			}
		default:
			return p.fail(t.Name, "unknown key %q (name, dtype, shape and data are known)", k)
		}
	}
	if err := p.delim('}', t.Name); err != nil {
		return err
	}
	if !haveData {
		return p.fail(t.Name, "missing \"data\"")
	}
	t.F64 = jt.data
	inferred := jt.finalShape()
	switch {
	case !haveShape:
		t.Shape = inferred
	case len(inferred) <= 1:
		// Flat data: the shape says how to read it.
		t.Shape = toInts(shape)
		if n := t.Len(); n != len(t.F64) {
			return ferr(lowrank.EINVALID, FormatJSON, t.Name, "shape %s needs %d values, data holds %d", fmtShape(shape), n, len(t.F64))
		}
	default:
		t.Shape = toInts(shape)
		if !equalInts(t.Shape, inferred) {
			return ferr(lowrank.EINVALID, FormatJSON, t.Name, "shape %s does not match the nested data's shape %s", fmtShape(shape), fmtShape(inferred))
		}
	}
	return nil
}

// array reads the elements of an array whose '[' has been read, at nesting
// depth d, checking that the nesting is rectangular.
func (jt *jsonTensor) array(d int) error {
	p := jt.p
	if d >= jt.lim.MaxDims {
		return ferr(lowrank.ETOOLARGE, FormatJSON, "", "arrays nested more than the limit of %d deep", jt.lim.MaxDims)
	}
	if len(jt.shape) <= d {
		jt.shape = append(jt.shape, -1)
		jt.kinds = append(jt.kinds, 0)
	}
	count := 0
	for p.dec.More() {
		tok, err := p.token("")
		if err != nil {
			return err
		}
		kind := byte('n')
		if tok == json.Delim('[') {
			kind = 'a'
		}
		if jt.kinds[d] == 0 {
			jt.kinds[d] = kind
		} else if jt.kinds[d] != kind {
			return p.fail("", "ragged nesting: arrays and numbers mixed at depth %d", d)
		}
		if kind == 'a' {
			if err := jt.array(d + 1); err != nil {
				return err
			}
		} else {
			v, err := jt.number(tok)
			if err != nil {
				return err
			}
			if int64(len(jt.data)) >= jt.lim.MaxElements {
				return ferr(lowrank.ETOOLARGE, FormatJSON, "", "more than the limit of %d elements", jt.lim.MaxElements)
			}
			jt.data = append(jt.data, v)
		}
		count++
	}
	if err := p.delim(']', ""); err != nil {
		return err
	}
	if jt.shape[d] == -1 {
		jt.shape[d] = count
	} else if jt.shape[d] != count {
		return p.fail("", "ragged nesting: arrays of %d and %d elements at depth %d", jt.shape[d], count, d)
	}
	return nil
}

// finalShape is the inferred shape: every depth reached holds a length.
// Arrays that are empty at some depth ([[], []]) end the shape there.
func (jt *jsonTensor) finalShape() []int {
	s := []int{}
	for _, n := range jt.shape {
		if n < 0 {
			break
		}
		s = append(s, n)
	}
	return s
}

func (jt *jsonTensor) number(tok any) (float64, error) {
	switch v := tok.(type) {
	case json.Number:
		x, err := strconv.ParseFloat(string(v), 64)
		if err != nil {
			return 0, jt.p.fail("", "number %s is out of the float64 range", clipString(string(v)))
		}
		return x, nil
	case string:
		switch v {
		case "NaN":
			return math.NaN(), nil
		case "Infinity", "Inf":
			return math.Inf(1), nil
		case "-Infinity", "-Inf":
			return math.Inf(-1), nil
		}
	}
	return 0, jt.p.fail("", "expected a number, found %s", tokenString(tok))
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// WriteJSON writes t in the JSON object form with flat row-major data,
// rounded to t's dtype and printed with the fewest digits that read back to
// the same value.
func WriteJSON(w io.Writer, t *Tensor) error {
	n, dt, err := checkTensor(FormatJSON, t)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	var b bytes.Buffer
	b.WriteByte('{')
	if t.Name != "" {
		b.WriteString(`"name":`)
		if err := writeJSONString(&b, t.Name); err != nil {
			return ferr(lowrank.EINVALID, FormatJSON, "", "name: %v", err)
		}
		b.WriteByte(',')
	}
	b.WriteString(`"dtype":"` + string(dt) + `","shape":[`)
	for i, d := range t.Shape {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(d))
	}
	b.WriteString(`],"data":[`)
	bw.Write(b.Bytes())
	var num []byte
	for i := 0; i < n; i++ {
		if i > 0 {
			bw.WriteByte(',')
		}
		var v float64
		bits := 32
		if t.F64 != nil {
			v = t.F64[i]
		} else {
			v = float64(t.F32[i])
		}
		switch dt {
		case F16:
			v = float64(F16ToF32(F64ToF16(v)))
		case BF16:
			v = float64(BF16ToF32(F64ToBF16(v)))
		case F32:
			v = float64(float32(v))
		case F64:
			bits = 64
		}
		switch {
		case math.IsNaN(v):
			bw.WriteString(`"NaN"`)
		case math.IsInf(v, 1):
			bw.WriteString(`"Infinity"`)
		case math.IsInf(v, -1):
			bw.WriteString(`"-Infinity"`)
		default:
			num = strconv.AppendFloat(num[:0], v, 'g', -1, bits)
			bw.Write(num)
		}
	}
	bw.WriteString("]}\n")
	return bw.Flush()
}
