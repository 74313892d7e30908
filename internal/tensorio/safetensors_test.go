package tensorio

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/lowrank/lowrank"
)

// stFile lays out a safetensors file as the format describes it: the
// header length as a little-endian u64, the JSON header padded with spaces
// so that the data starts at a multiple of 8, then the data.
func stFile(header string, data []byte) []byte {
	for (8+len(header))%8 != 0 {
		header += " "
	}
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, data...)
}

func TestSafetensorsFixtureSingle(t *testing.T) {
	// Written out byte by byte: a 54-byte header padded to 56 (0x38), then
	// 1.0 and -2.0 as little-endian binary32.
	want := []byte("\x38\x00\x00\x00\x00\x00\x00\x00" +
		`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}` + "  " +
		"\x00\x00\x80\x3f\x00\x00\x00\xc0")
	if !bytes.Equal(stFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, []byte("\x00\x00\x80\x3f\x00\x00\x00\xc0")), want) {
		t.Fatal("stFile does not lay out the fixture as written by hand")
	}
	var buf bytes.Buffer
	if err := WriteSafetensors(&buf, []*Tensor{{Name: "a", Shape: []int{2}, F32: []float32{1, -2}}}, nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("WriteSafetensors:\n got %q\nwant %q", buf.Bytes(), want)
	}
}

// multiFixture is a file with __metadata__ and one tensor of each readable
// dtype, a scalar and an empty tensor, built from the specification.
func multiFixture() ([]byte, []*Tensor, map[string]string) {
	header := `{"__metadata__":{"method":"svd","rank":"8","note":"a \"quoted\"\nline"},` +
		`"U":{"dtype":"F16","shape":[2,2],"data_offsets":[0,8]},` +
		`"S":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]},` +
		`"V":{"dtype":"F64","shape":[1,2],"data_offsets":[12,28]},` +
		`"s":{"dtype":"F32","shape":[],"data_offsets":[28,32]},` +
		`"e":{"dtype":"F32","shape":[0],"data_offsets":[32,32]}}`
	// Our writer sorts metadata keys; the hand-built header lists them
	// in that order so the bytes can match.
	header = strings.Replace(header, `"method":"svd","rank":"8","note":"a \"quoted\"\nline"`,
		`"method":"svd","note":"a \"quoted\"\nline","rank":"8"`, 1)
	data := []byte{
		0x00, 0x3c, 0x00, 0x38, 0x00, 0xbc, 0x00, 0x40, // F16 1, 0.5, -1, 2
		0x40, 0x40, 0x80, 0x3e, // BF16 3, 0.25
		0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0, 0, 0, 0, 0, 0, 0xe0, 0xbf, // F64 1, -0.5
		0x00, 0x00, 0xe0, 0x40, // F32 7
	}
	tensors := []*Tensor{
		{Name: "U", DType: F16, Shape: []int{2, 2}, F32: []float32{1, 0.5, -1, 2}},
		{Name: "S", DType: BF16, Shape: []int{2}, F32: []float32{3, 0.25}},
		{Name: "V", DType: F64, Shape: []int{1, 2}, F64: []float64{1, -0.5}},
		{Name: "s", DType: F32, Shape: []int{}, F32: []float32{7}},
		{Name: "e", DType: F32, Shape: []int{0}, F32: []float32{}},
	}
	meta := map[string]string{"method": "svd", "rank": "8", "note": "a \"quoted\"\nline"}
	return stFile(header, data), tensors, meta
}

func TestSafetensorsFixtureMulti(t *testing.T) {
	file, tensors, meta := multiFixture()
	var buf bytes.Buffer
	if err := WriteSafetensors(&buf, tensors, meta); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), file) {
		t.Errorf("WriteSafetensors:\n got %q\nwant %q", buf.Bytes(), file)
	}
	h, err := ReadSafetensorsHeader(bytes.NewReader(file), int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Metadata) != 3 || h.Metadata["note"] != meta["note"] || h.Metadata["rank"] != "8" {
		t.Errorf("metadata %q", h.Metadata)
	}
	if h.DataStart%8 != 0 || h.DataStart+32 != int64(len(file)) {
		t.Errorf("DataStart %d in a %d-byte file", h.DataStart, len(file))
	}
	for i, want := range tensors {
		in := h.Tensors[i]
		if in.Name != want.Name || in.DType != want.DType || !equalInts(in.Shape, want.Shape) {
			t.Errorf("tensor %d: %+v", i, in)
		}
		// Only the header and this tensor's bytes may be read.
		rr := &rangeReader{b: file}
		got, err := ReadTensor(rr, int64(len(file)), want.Name)
		if err != nil {
			t.Fatalf("%s: %v", want.Name, err)
		}
		if err := sameTensor(got, want); err != nil {
			t.Error(err)
		}
		if g, bad := rr.outside([2]int64{0, h.DataStart}, [2]int64{in.Offset, in.Offset + in.Length}); bad {
			t.Errorf("%s: read bytes [%d,%d) outside the header and [%d,%d)", want.Name, g[0], g[1], in.Offset, in.Offset+in.Length)
		}
	}
	rr := &rangeReader{b: file}
	if _, infos, err := Inspect(rr, int64(len(file))); err != nil || len(infos) != 5 {
		t.Fatalf("Inspect: %v %v", infos, err)
	}
	if g, bad := rr.outside([2]int64{0, h.DataStart}); bad {
		t.Errorf("Inspect read bytes [%d,%d) past the header", g[0], g[1])
	}
	_, err = ReadTensor(bytes.NewReader(file), int64(len(file)), "nope")
	wantErr(t, "missing name", err, lowrank.ENOTFOUND, `"nope"`, `"U"`)
	_, err = ReadTensor(bytes.NewReader(file), int64(len(file)), "")
	wantErr(t, "no name", err, lowrank.ENOTFOUND, "no tensor name given")
}

func TestSafetensorsRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, dt := range []DType{F16, BF16, F32, F64} {
		var ts []*Tensor
		for i, shape := range testShapes {
			ts = append(ts, randTensor(rng, "layer."+string(rune('a'+i))+".weight", dt, shape))
		}
		var buf bytes.Buffer
		if err := WriteSafetensors(&buf, ts, map[string]string{"dtype": string(dt)}); err != nil {
			t.Fatal(err)
		}
		f, got, err := ReadAll(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		if err != nil || f != FormatSafetensors || len(got) != len(ts) {
			t.Fatalf("%s: ReadAll: %v %d", dt, err, len(got))
		}
		for i := range ts {
			if err := sameTensor(got[i], ts[i]); err != nil {
				t.Errorf("%s: %v", dt, err)
			}
		}
	}
	// F64 data written as F32, F16 and BF16 rounds to nearest even.
	src := &Tensor{Name: "x", Shape: []int{2}, F64: []float64{1 + 1.0/2048 + 1e-9, 1.0 + 1.0/256}}
	for _, c := range []struct {
		dt   DType
		want []float32
	}{
		{F16, []float32{F16ToF32(0x3c01), F16ToF32(0x3c04)}},
		{BF16, []float32{1, 1}}, // 1+2⁻⁸ is the tie between 1 and 1+2⁻⁷: even
		{F32, []float32{float32(1 + 1.0/2048 + 1e-9), 1.0 + 1.0/256}},
	} {
		src.DType = c.dt
		var buf bytes.Buffer
		if err := WriteSafetensors(&buf, []*Tensor{src}, nil); err != nil {
			t.Fatal(err)
		}
		got, err := ReadTensor(bytes.NewReader(buf.Bytes()), int64(buf.Len()), "x")
		if err != nil {
			t.Fatal(err)
		}
		if got.F32[0] != c.want[0] || got.F32[1] != c.want[1] {
			t.Errorf("%s: %v, want %v", c.dt, got.F32, c.want)
		}
	}
}

func TestSafetensorsBad(t *testing.T) {
	f32 := func(name, shape, offs string) string {
		return `"` + name + `":{"dtype":"F32","shape":` + shape + `,"data_offsets":` + offs + `}`
	}
	for _, c := range []struct {
		name   string
		file   []byte
		code   string
		frags  []string
		inspOK bool // Inspect accepts it; only reading the data fails
	}{
		{"too short", []byte{1, 0, 0}, lowrank.EINVALID, []string{"safetensors:", "too short"}, false},
		{"length past end", append(binary.LittleEndian.AppendUint64(nil, 100), "{}"...), lowrank.EINVALID, []string{"header length 100", "past the end"}, false},
		{"length over limit", append(binary.LittleEndian.AppendUint64(nil, 1<<40), "{}"...), lowrank.ETOOLARGE, []string{"exceeds the limit"}, false},
		{"length over 64 bits of sense", append(binary.LittleEndian.AppendUint64(nil, math.MaxUint64), "{}"...), lowrank.ETOOLARGE, []string{"exceeds the limit"}, false},
		{"not an object", stFile(`[]`, nil), lowrank.EINVALID, []string{"begin with '{'"}, false},
		{"bad json", stFile(`{"a":}`, nil), lowrank.EINVALID, []string{"malformed JSON"}, false},
		{"trailing", stFile(`{} {}`, nil), lowrank.EINVALID, []string{"after its closing"}, false},
		{"not utf8", stFile("{\"\xff\":1}", nil), lowrank.EINVALID, []string{"UTF-8"}, false},
		{"duplicate tensor", stFile(`{`+f32("a", "[1]", "[0,4]")+","+f32("a", "[1]", "[4,8]")+`}`, make([]byte, 8)), lowrank.EINVALID, []string{`tensor "a"`, "duplicate"}, false},
		{"duplicate metadata", stFile(`{"__metadata__":{},"__metadata__":{}}`, nil), lowrank.EINVALID, []string{"duplicate key"}, false},
		{"metadata not string", stFile(`{"__metadata__":{"a":1}}`, nil), lowrank.EINVALID, []string{"must be a string"}, false},
		{"metadata dup key", stFile(`{"__metadata__":{"a":"x","a":"y"}}`, nil), lowrank.EINVALID, []string{`duplicate key "a"`}, false},
		{"unknown field", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}`, make([]byte, 4)), lowrank.EINVALID, []string{`unknown key "x"`}, false},
		{"missing dtype", stFile(`{"a":{"shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), lowrank.EINVALID, []string{`missing "dtype"`}, false},
		{"missing shape", stFile(`{"a":{"dtype":"F32","data_offsets":[0,4]}}`, make([]byte, 4)), lowrank.EINVALID, []string{`missing "shape"`}, false},
		{"missing offsets", stFile(`{"a":{"dtype":"F32","shape":[1]}}`, make([]byte, 4)), lowrank.EINVALID, []string{`missing "data_offsets"`}, false},
		{"dtype not string", stFile(`{"a":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), lowrank.EINVALID, []string{"dtype must be a string"}, false},
		{"unknown dtype", stFile(`{"a":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}}`, make([]byte, 1)), lowrank.EUNSUPPORTED, []string{`"F4"`}, false},
		{"int dtype", stFile(`{"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}`, make([]byte, 8)), lowrank.EUNSUPPORTED, []string{"I64", "not read"}, true},
		{"length mismatch", stFile(`{`+f32("fc.weight", "[5,6]", "[0,100]")+`}`, make([]byte, 100)), lowrank.EINVALID,
			[]string{`safetensors: tensor "fc.weight": data_offsets [0,100) but F32 [5,6] needs 120 bytes`}, false},
		{"reversed", stFile(`{`+f32("a", "[0]", "[8,4]")+`}`, make([]byte, 8)), lowrank.EINVALID, []string{"end before they begin"}, false},
		{"hole", stFile(`{`+f32("a", "[1]", "[0,4]")+","+f32("b", "[1]", "[8,12]")+`}`, make([]byte, 12)), lowrank.EINVALID, []string{`tensor "b"`, "leaving bytes [4,8)"}, false},
		{"leading hole", stFile(`{`+f32("a", "[1]", "[4,8]")+`}`, make([]byte, 8)), lowrank.EINVALID, []string{"leaving bytes [0,4)"}, false},
		{"overlap", stFile(`{`+f32("a", "[2]", "[0,8]")+","+f32("b", "[2]", "[4,12]")+`}`, make([]byte, 12)), lowrank.EINVALID, []string{`inside tensor "a"`}, false},
		{"same range", stFile(`{`+f32("a", "[1]", "[0,4]")+","+f32("b", "[1]", "[0,4]")+`}`, make([]byte, 4)), lowrank.EINVALID, []string{"inside tensor"}, false},
		{"empty inside", stFile(`{`+f32("a", "[2]", "[0,8]")+","+f32("b", "[0]", "[4,4]")+`}`, make([]byte, 8)), lowrank.EINVALID, []string{"inside tensor"}, false},
		{"extra data", stFile(`{`+f32("a", "[1]", "[0,4]")+`}`, make([]byte, 8)), lowrank.EINVALID, []string{"cover 4 bytes", "holds 8"}, false},
		{"short data", stFile(`{`+f32("a", "[2]", "[0,8]")+`}`, make([]byte, 4)), lowrank.EINVALID, []string{"cover 8 bytes", "holds 4"}, false},
		{"offsets past 2^62", stFile(`{`+f32("a", "[0]", "[18446744073709551615,18446744073709551615]")+`}`, nil), lowrank.EINVALID, []string{"beyond any file"}, false},
		{"offsets not ints", stFile(`{`+f32("a", "[1]", "[0,4.0]")+`}`, make([]byte, 4)), lowrank.EINVALID, []string{"non-negative integers"}, false},
		{"offsets count", stFile(`{`+f32("a", "[1]", "[0,4,8]")+`}`, make([]byte, 4)), lowrank.ETOOLARGE, []string{"more than 2"}, false},
		{"one offset", stFile(`{`+f32("a", "[1]", "[0]")+`}`, make([]byte, 4)), lowrank.EINVALID, []string{"found 1"}, false},
		{"negative dim", stFile(`{`+f32("a", "[-1]", "[0,4]")+`}`, make([]byte, 4)), lowrank.EINVALID, []string{"non-negative"}, false},
		{"overflowing shape", stFile(`{`+f32("a", "[4294967296,4294967296]", "[0,4]")+`}`, make([]byte, 4)), lowrank.ETOOLARGE, []string{"limit"}, false},
		{"huge dim", stFile(`{`+f32("a", "[18446744073709551615]", "[0,4]")+`}`, make([]byte, 4)), lowrank.ETOOLARGE, []string{"limit"}, false},
		{"too many dims", stFile(`{`+f32("a", "["+strings.Repeat("1,", 40)+"1]", "[0,4]")+`}`, make([]byte, 4)), lowrank.ETOOLARGE, []string{"more than 32"}, false},
		{"tensor not object", stFile(`{"a":[1]}`, nil), lowrank.EINVALID, []string{"expected '{'"}, false},
	} {
		_, err := ReadSafetensorsHeader(bytes.NewReader(c.file), int64(len(c.file)))
		if c.inspOK {
			if err != nil {
				t.Errorf("%s: Inspect: %v", c.name, err)
			}
		} else {
			wantErr(t, c.name+" (Inspect)", err, c.code, c.frags...)
		}
		if f, _ := Sniff(c.file); f != FormatSafetensors {
			continue // too broken to be recognised; Sniff's own test covers these
		}
		_, err = ReadTensor(bytes.NewReader(c.file), int64(len(c.file)), "a")
		if c.name != "length mismatch" {
			wantErr(t, c.name+" (ReadTensor)", err, c.code, c.frags...)
		}
	}
	// The empty header is a valid file with no tensors.
	empty := stFile(`{}`, nil)
	if _, infos, err := Inspect(bytes.NewReader(empty), int64(len(empty))); err != nil || len(infos) != 0 {
		t.Errorf("empty file: %v %v", infos, err)
	}
}

func TestSafetensorsWriterErrors(t *testing.T) {
	var buf bytes.Buffer
	one := func(name string) *Tensor { return &Tensor{Name: name, Shape: []int{1}, F32: []float32{1}} }
	wantErr(t, "dup", WriteSafetensors(&buf, []*Tensor{one("a"), one("a")}, nil), lowrank.EINVALID, "unique")
	wantErr(t, "empty", WriteSafetensors(&buf, []*Tensor{one("")}, nil), lowrank.EINVALID, "non-empty")
	wantErr(t, "reserved", WriteSafetensors(&buf, []*Tensor{one("__metadata__")}, nil), lowrank.EINVALID, "__metadata__")
	wantErr(t, "utf8", WriteSafetensors(&buf, []*Tensor{one("\xff")}, nil), lowrank.EINVALID, "UTF-8")
	wantErr(t, "dtype", WriteSafetensors(&buf, []*Tensor{{Name: "a", DType: "I8", Shape: []int{1}, F32: []float32{1}}}, nil), lowrank.EUNSUPPORTED, "I8")
}
