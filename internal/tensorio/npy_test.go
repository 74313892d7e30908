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

func TestNPYRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, dt := range []DType{F16, F32, F64} {
		for _, shape := range testShapes {
			want := randTensor(rng, "", dt, shape)
			var buf bytes.Buffer
			if err := WriteNPY(&buf, want); err != nil {
				t.Fatalf("%s %v: WriteNPY: %v", dt, shape, err)
			}
			b := buf.Bytes()
			if len(b) < 64 || (len(b)-want.Len()*dt.Size())%64 != 0 || b[6] != 1 {
				t.Errorf("%s %v: header is not a version 1.0 header padded to 64 bytes", dt, shape)
			}
			f, infos, err := Inspect(bytes.NewReader(b), int64(len(b)))
			if err != nil || f != FormatNPY || len(infos) != 1 {
				t.Fatalf("%s %v: Inspect = %v, %v, %v", dt, shape, f, infos, err)
			}
			if in := infos[0]; in.DType != dt || !equalInts(in.Shape, shape) || in.Offset+in.Length != int64(len(b)) || in.FortranOrder || in.BigEndian {
				t.Errorf("%s %v: Info %+v", dt, shape, in)
			}
			got, err := ReadTensor(bytes.NewReader(b), int64(len(b)), "")
			if err != nil {
				t.Fatalf("%s %v: ReadTensor: %v", dt, shape, err)
			}
			if err := sameTensor(got, want); err != nil {
				t.Errorf("%s %v: %v", dt, shape, err)
			}
		}
	}
}

// npyFile builds a .npy file by hand from a version, a header dict (padded
// as given) and raw data.
func npyFile(major byte, dict string, data []byte) []byte {
	var b bytes.Buffer
	b.WriteString(npyMagic)
	b.WriteByte(major)
	b.WriteByte(0)
	if major == 1 {
		binary.Write(&b, binary.LittleEndian, uint16(len(dict)))
	} else {
		binary.Write(&b, binary.LittleEndian, uint32(len(dict)))
	}
	b.WriteString(dict)
	b.Write(data)
	return b.Bytes()
}

func TestNPYHandBuilt(t *testing.T) {
	// 2×3 matrix [[1 2 3] [4 5 6]] in every layout.
	want := []float64{1, 2, 3, 4, 5, 6}
	c := []float64{1, 2, 3, 4, 5, 6}
	fortran := []float64{1, 4, 2, 5, 3, 6}
	enc := func(vals []float64, descr string) []byte {
		var b bytes.Buffer
		var order binary.ByteOrder = binary.LittleEndian
		if descr[0] == '>' {
			order = binary.BigEndian
		}
		for _, v := range vals {
			switch descr[1:] {
			case "f2":
				binary.Write(&b, order, F64ToF16(v))
			case "f4":
				binary.Write(&b, order, float32(v))
			case "f8":
				binary.Write(&b, order, v)
			}
		}
		return b.Bytes()
	}
	for _, major := range []byte{1, 2, 3} {
		for _, descr := range []string{"<f2", ">f2", "<f4", ">f4", "<f8", ">f8"} {
			for _, fo := range []bool{false, true} {
				vals, fs := c, "False"
				if fo {
					vals, fs = fortran, "True"
				}
				dict := "{'descr': '" + descr + "', 'fortran_order': " + fs + ", 'shape': (2, 3), }"
				dict += strings.Repeat(" ", 63-len(dict)) + "\n"
				file := npyFile(major, dict, enc(vals, descr))
				got, err := ReadTensor(bytes.NewReader(file), int64(len(file)), "")
				if err != nil {
					t.Fatalf("v%d %s fortran=%v: %v", major, descr, fo, err)
				}
				if !equalInts(got.Shape, []int{2, 3}) {
					t.Fatalf("v%d %s: shape %v", major, descr, got.Shape)
				}
				for i, w := range want {
					var g float64
					if got.F64 != nil {
						g = got.F64[i]
					} else {
						g = float64(got.F32[i])
					}
					if g != w {
						t.Fatalf("v%d %s fortran=%v: element %d = %v, want %v", major, descr, fo, i, g, w)
					}
				}
			}
		}
	}
	// Key order, quotes and spacing vary between writers; all are literals.
	for _, dict := range []string{
		`{"shape":(3,),"fortran_order":False,"descr":"<f4"}`,
		"{ 'fortran_order' : False , 'descr' : '<f4' , 'shape' : ( 3 , ) }   \n",
		"{'descr':'<f4','fortran_order':False,'shape':(3,),}\n",
	} {
		file := npyFile(1, dict, enc([]float64{1, 2, 3}, "<f4"))
		if got, err := ReadTensor(bytes.NewReader(file), int64(len(file)), ""); err != nil || got.F32[2] != 3 {
			t.Errorf("dict %q: %v", dict, err)
		}
	}
}

// TestFortranToC checks the reordering against index arithmetic on a 3-d
// array of distinct values.
func TestFortranToC(t *testing.T) {
	for _, shape := range [][]int{{2, 3, 4}, {1, 5}, {5, 1}, {3, 1, 2, 1}, {4, 4}} {
		n := 1
		for _, d := range shape {
			n *= d
		}
		src := make([]int, n)
		for i := range src {
			src[i] = i
		}
		dst := fortranToC(src, shape)
		// Element with multi-index idx sits at the Fortran offset
		// Σ idx[k]·Π_{j<k} shape[j] in src and the C offset in dst.
		idx := make([]int, len(shape))
		for c := 0; c < n; c++ {
			rem := c
			for k := len(shape) - 1; k >= 0; k-- {
				idx[k] = rem % shape[k]
				rem /= shape[k]
			}
			f, stride := 0, 1
			for k := range shape {
				f += idx[k] * stride
				stride *= shape[k]
			}
			if dst[c] != src[f] {
				t.Fatalf("shape %v: dst[%d] = %d, want %d", shape, c, dst[c], src[f])
			}
		}
	}
}

func TestNPYBad(t *testing.T) {
	good := func(dict string, data []byte) []byte { return npyFile(1, dict, data) }
	f32x3 := make([]byte, 12)
	hdr := "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }\n"
	for _, c := range []struct {
		name  string
		file  []byte
		code  string
		frags []string
	}{
		{"short", []byte("\x93NUMPY\x01"), lowrank.EINVALID, []string{"npy:", "too short"}},
		{"version", npyFile(4, hdr, f32x3), lowrank.EUNSUPPORTED, []string{"version 4.0"}},
		{"minor", append([]byte("\x93NUMPY\x01\x01\x00\x00"), 0), lowrank.EUNSUPPORTED, []string{"version 1.1"}},
		{"header past end", append([]byte("\x93NUMPY\x01\x00\xff\x00"), "{}"...), lowrank.EINVALID, []string{"header length 255", "past the end"}},
		{"header too long", npyFile(2, hdr+strings.Repeat(" ", 10000), f32x3), lowrank.ETOOLARGE, []string{"NumPy's limit"}},
		{"short data", good(hdr, f32x3[:11]), lowrank.EINVALID, []string{"needs 12 data bytes", "has 11"}},
		{"trailing data", good(hdr, append(f32x3, 0)), lowrank.EINVALID, []string{"needs 12 data bytes", "has 13"}},
		{"int dtype", good("{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }", f32x3), lowrank.EUNSUPPORTED, []string{"I32", "not read"}},
		{"unknown dtype", good("{'descr': '<c8', 'fortran_order': False, 'shape': (3,), }", f32x3), lowrank.EUNSUPPORTED, []string{`"<c8"`}},
		{"native order", good("{'descr': '=f4', 'fortran_order': False, 'shape': (3,), }", f32x3), lowrank.EUNSUPPORTED, []string{`"=f4"`}},
		{"object", good("{'descr': '|O', 'fortran_order': False, 'shape': (3,), }", f32x3), lowrank.EUNSUPPORTED, []string{"pickle", "safetensors"}},
		{"structured", good("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,), }", f32x3), lowrank.EUNSUPPORTED, []string{"structured"}},
		{"missing key", good("{'descr': '<f4', 'shape': (3,), }", f32x3), lowrank.EINVALID, []string{"missing key \"fortran_order\""}},
		{"extra key", good("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'x': 1}", f32x3), lowrank.EINVALID, []string{"unexpected key \"x\""}},
		{"duplicate key", good("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (3,)}", f32x3), lowrank.EINVALID, []string{"duplicate key"}},
		{"not a tuple", good("{'descr': '<f4', 'fortran_order': False, 'shape': (3), }", f32x3), lowrank.EINVALID, []string{"trailing comma"}},
		{"negative dim", good("{'descr': '<f4', 'fortran_order': False, 'shape': (-3,), }", f32x3), lowrank.EINVALID, []string{"non-negative integer"}},
		{"expression", good("{'descr': '<f4', 'fortran_order': False, 'shape': (1+2,), }", f32x3), lowrank.EINVALID, []string{"header dict"}},
		{"call", good("{'descr': '<f4', 'fortran_order': __import__('os'), 'shape': (3,), }", f32x3), lowrank.EINVALID, []string{"True or False"}},
		{"escape", good("{'descr': '<f\\x34', 'fortran_order': False, 'shape': (3,), }", f32x3), lowrank.EINVALID, []string{"quoted descr"}},
		{"lowercase bool", good("{'descr': '<f4', 'fortran_order': false, 'shape': (3,), }", f32x3), lowrank.EINVALID, []string{"True or False"}},
		{"after dict", good("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), } x", f32x3), lowrank.EINVALID, []string{"after the dict"}},
		{"leading zero", good("{'descr': '<f4', 'fortran_order': False, 'shape': (03,), }", f32x3), lowrank.EINVALID, []string{"non-negative integer"}},
		{"huge dim", good("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", f32x3), lowrank.EINVALID, []string{"non-negative integer"}},
		{"too many elements", good("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000, 1000000), }", f32x3), lowrank.ETOOLARGE, []string{"limit"}},
		{"too many dims", good("{'descr': '<f4', 'fortran_order': False, 'shape': ("+strings.Repeat("1,", 33)+"), }", f32x3), lowrank.ETOOLARGE, []string{"33 dimensions"}},
		{"big shape small file", good("{'descr': '<f8', 'fortran_order': False, 'shape': (100000000,), }", f32x3), lowrank.EINVALID, []string{"needs 800000000 data bytes", "has 12"}},
	} {
		_, _, err := Inspect(bytes.NewReader(c.file), int64(len(c.file)))
		if c.name == "int dtype" {
			// Integer arrays are listed (their size is known) but not read.
			if err != nil {
				t.Errorf("int dtype: Inspect: %v", err)
			}
		} else {
			wantErr(t, c.name+" (Inspect)", err, c.code, c.frags...)
		}
		_, err = ReadTensor(bytes.NewReader(c.file), int64(len(c.file)), "")
		wantErr(t, c.name+" (ReadTensor)", err, c.code, c.frags...)
	}
}

func TestNPYWriterErrors(t *testing.T) {
	var buf bytes.Buffer
	wantErr(t, "bf16", WriteNPY(&buf, &Tensor{DType: BF16, Shape: []int{1}, F32: []float32{1}}), lowrank.EUNSUPPORTED, "bfloat16")
	wantErr(t, "length", WriteNPY(&buf, &Tensor{Shape: []int{2}, F32: []float32{1}}), lowrank.EINVALID, "needs 2 elements")
	wantErr(t, "negative", WriteNPY(&buf, &Tensor{Shape: []int{-1}, F32: []float32{}}), lowrank.EINVALID, "negative")
	wantErr(t, "both", WriteNPY(&buf, &Tensor{Shape: []int{1}, F32: []float32{1}, F64: []float64{1}}), lowrank.EINVALID, "exactly one")
	// Rounding on write: F64 data stored as F16 reads back rounded.
	in := &Tensor{DType: F16, Shape: []int{3}, F64: []float64{1 + 1.0/2048, 65520, math.Pi}}
	buf.Reset()
	if err := WriteNPY(&buf, in); err != nil {
		t.Fatal(err)
	}
	got, err := ReadTensor(bytes.NewReader(buf.Bytes()), int64(buf.Len()), "")
	if err != nil {
		t.Fatal(err)
	}
	if got.F32[0] != 1 || !math.IsInf(float64(got.F32[1]), 1) || got.F32[2] != F16ToF32(0x4248) {
		t.Errorf("F16 write rounding: %v", got.F32)
	}
}

func TestNPYHeaderVersion2(t *testing.T) {
	// A shape too long for a 16-bit header length needs version 2.0.
	shape := make([]int, 25000)
	for i := range shape {
		shape[i] = 1
	}
	h, err := NPYHeader(F32, shape)
	if err != nil {
		t.Fatal(err)
	}
	if h[6] != 2 || len(h)%64 != 0 || h[len(h)-1] != '\n' {
		t.Errorf("header: version %d, length %d", h[6], len(h))
	}
	h, _ = NPYHeader(F32, []int{3})
	if want := "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }"; !bytes.Contains(h, []byte(want)) {
		t.Errorf("header %q lacks %q", h, want)
	}
}
