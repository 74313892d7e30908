package tensorio

import (
	"archive/zip"
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/lowrank/lowrank"
)

// The fuzz targets check, for any input: no panic; every error is a
// *lowrank.Error naming the format, never EINTERNAL (a bytes.Reader cannot
// fail); what Inspect accepts ReadTensor reads (unless the dtype is not
// readable); memory decoded is bounded by the input; and what is read
// writes back and reads again unchanged.

// fuzzLimits keep a fuzzed header from making the fuzzer itself slow.
var fuzzLimits = Limits{MaxElements: 1 << 22, MaxEntries: 64, MaxTotalBytes: 64 << 20}

func checkErr(t *testing.T, err error, prefix string) {
	t.Helper()
	if err == nil {
		return
	}
	var le *lowrank.Error
	if !errors.As(err, &le) {
		t.Fatalf("error %T %v is not a *lowrank.Error", err, err)
	}
	switch le.Code {
	case lowrank.EINVALID, lowrank.EUNSUPPORTED, lowrank.ETOOLARGE, lowrank.ENOTFOUND:
	default:
		t.Fatalf("error code %s: %v", le.Code, err)
	}
	if prefix != "" && !strings.HasPrefix(le.Message, prefix) {
		t.Fatalf("error %q does not start with %q", le.Message, prefix)
	}
}

// checkAll runs Inspect and ReadAll on data and checks them against each
// other; it returns the tensors read.
func checkAll(t *testing.T, data []byte, prefix string) []*Tensor {
	t.Helper()
	r := bytes.NewReader(data)
	f, infos, ierr := fuzzLimits.Inspect(r, int64(len(data)))
	checkErr(t, ierr, prefix)
	_, ts, rerr := fuzzLimits.ReadAll(r, int64(len(data)))
	checkErr(t, rerr, prefix)
	if ierr == nil && rerr != nil {
		readable := true
		for _, in := range infos {
			readable = readable && in.DType.Readable()
		}
		// Inspect does not decompress .npz entries, so a deflate stream
		// that is corrupt, short or long, or a bad CRC-32, shows only when
		// the data is read (Spool reads it all). Every other format's data
		// is checked against the file size by Inspect.
		if readable && f != FormatNPZ {
			t.Fatalf("Inspect accepted the file, ReadAll failed: %v", rerr)
		}
	}
	if rerr != nil {
		return nil
	}
	if ierr != nil {
		t.Fatalf("ReadAll accepted the file, Inspect failed: %v", ierr)
	}
	var bytesOut int
	for i, tt := range ts {
		if infos[i].Name != tt.Name || !equalInts(infos[i].Shape, tt.Shape) || infos[i].DType != tt.DType {
			t.Fatalf("Info %+v does not describe tensor %s %s %v", infos[i], tt.Name, tt.DType, tt.Shape)
		}
		if tt.Len() != len(tt.F32)+len(tt.F64) {
			t.Fatalf("tensor %s: shape %v but %d values", tt.Name, tt.Shape, len(tt.F32)+len(tt.F64))
		}
		bytesOut += 4*len(tt.F32) + 8*len(tt.F64)
	}
	// Decoding widens F16 to 4 bytes (×2); deflate expands up to 1032×.
	if bytesOut > 2*deflateMaxRatio*len(data)+1024 {
		t.Fatalf("%d input bytes decoded to %d bytes", len(data), bytesOut)
	}
	return ts
}

func FuzzNPY(f *testing.F) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, dt := range []DType{F16, F32, F64} {
		for _, shape := range [][]int{{}, {0}, {3}, {2, 3}, {2, 1, 2}} {
			var b bytes.Buffer
			WriteNPY(&b, randTensor(rng, "", dt, shape))
			f.Add(b.Bytes())
		}
	}
	for _, major := range []byte{1, 2, 3} {
		f.Add(npyFile(major, "{'descr': '>f4', 'fortran_order': True, 'shape': (2, 2), }\n", make([]byte, 16)))
		f.Add(npyFile(major, "{'descr': '<f2', 'fortran_order': False, 'shape': (), }\n", make([]byte, 2)))
	}
	f.Add(npyFile(1, "{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }", make([]byte, 8)))
	f.Add(npyFile(1, "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", make([]byte, 8)))
	f.Add(npyFile(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3), }", make([]byte, 12)))
	f.Add(npyFile(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999,), }", make([]byte, 12)))
	f.Add(npyFile(2, "{'descr': [('a','<f4')], 'fortran_order': False, 'shape': (1,), }", make([]byte, 4)))
	f.Add([]byte("\x93NUMPY\x01\x00\xff\xff{"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// Straight into the .npy reader, so the fuzzer need not find the
		// magic string to get past Sniff.
		_, err := readNPYHeader(FormatNPY, "", bytes.NewReader(data), int64(len(data)), fuzzLimits.withDefaults())
		checkErr(t, err, "npy: ")
		ts := checkAll(t, data, "")
		if err != nil {
			return // another format that Sniff recognised; FuzzSniff's business
		}
		for _, tt := range ts {
			if tt.DType == BF16 {
				t.Fatal("npy produced BF16")
			}
			var b bytes.Buffer
			if err := WriteNPY(&b, tt); err != nil {
				t.Fatalf("WriteNPY of a tensor just read: %v", err)
			}
			back, err := ReadTensor(bytes.NewReader(b.Bytes()), int64(b.Len()), "")
			if err != nil {
				t.Fatalf("re-read: %v", err)
			}
			if err := sameTensor(back, tt); err != nil {
				t.Fatalf("re-read: %v", err)
			}
		}
	})
}

func FuzzNPZ(f *testing.F) {
	rng := rand.New(rand.NewPCG(13, 14))
	for _, compress := range []bool{false, true} {
		var b bytes.Buffer
		WriteNPZ(&b, []*Tensor{randTensor(rng, "a", F32, []int{2, 2}), randTensor(rng, "b/c", F16, []int{3})}, compress)
		f.Add(b.Bytes())
	}
	a := npyFile(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", make([]byte, 4))
	f.Add(buildZip([]zent{{name: "a.npy", data: a, localAt: -1}, {name: "b.npy", data: a, localAt: 0}}))
	f.Add(buildZip([]zent{{name: "../a.npy", data: a, localAt: -1}}))
	f.Add(buildZip([]zent{{name: "archive/data.pkl", data: a, localAt: -1}}))
	f.Add(buildZip([]zent{{name: "a.npy", data: a, declared: 1 << 20, localAt: -1}}))
	f.Add(buildZip(nil))
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	w, _ := zw.CreateHeader(&zip.FileHeader{Name: "z.npy", Method: zip.Deflate})
	w.Write(npyFile(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (512,), }", make([]byte, 4096)))
	zw.Close()
	f.Add(b.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := openNPZ(bytes.NewReader(data), int64(len(data)), fuzzLimits.withDefaults())
		checkErr(t, err, "npz: ")
		checkAll(t, data, "")
	})
}

func FuzzSafetensors(f *testing.F) {
	file, _, _ := multiFixture()
	f.Add(file)
	rng := rand.New(rand.NewPCG(15, 16))
	var b bytes.Buffer
	WriteSafetensors(&b, []*Tensor{randTensor(rng, "w", BF16, []int{3, 2}), randTensor(rng, "b", F64, []int{2})}, map[string]string{"k": "v"})
	f.Add(b.Bytes())
	f32 := func(name, shape, offs string) string {
		return `"` + name + `":{"dtype":"F32","shape":` + shape + `,"data_offsets":` + offs + `}`
	}
	f.Add(stFile(`{`+f32("a", "[1]", "[0,4]")+","+f32("b", "[1]", "[8,12]")+`}`, make([]byte, 12)))
	f.Add(stFile(`{`+f32("a", "[2]", "[0,8]")+","+f32("b", "[2]", "[4,12]")+`}`, make([]byte, 12)))
	f.Add(stFile(`{`+f32("a", "[5,6]", "[0,100]")+`}`, make([]byte, 100)))
	f.Add(stFile(`{"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}`, make([]byte, 8)))
	f.Add(stFile(`{"__metadata__":{"a":1}}`, nil))
	f.Add(stFile(`{}`, nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := fuzzLimits.ReadSafetensorsHeader(bytes.NewReader(data), int64(len(data)))
		checkErr(t, err, "safetensors: ")
		if err == nil {
			// The validated ranges tile the data exactly.
			var sum int64
			for _, in := range h.Tensors {
				if in.Offset < h.DataStart || in.Offset+in.Length > int64(len(data)) {
					t.Fatalf("tensor %s range [%d,%d) outside the data", in.Name, in.Offset, in.Offset+in.Length)
				}
				sum += in.Length
			}
			if sum != int64(len(data))-h.DataStart {
				t.Fatalf("ranges cover %d of %d bytes", sum, int64(len(data))-h.DataStart)
			}
		}
		ts := checkAll(t, data, "")
		if err != nil || len(ts) == 0 {
			return // not safetensors (Sniff may still take it as JSON), or empty
		}
		var b bytes.Buffer
		if err := WriteSafetensors(&b, ts, h.Metadata); err != nil {
			t.Fatalf("WriteSafetensors of tensors just read: %v", err)
		}
		_, back, err := ReadAll(bytes.NewReader(b.Bytes()), int64(b.Len()))
		if err != nil {
			t.Fatalf("re-read: %v", err)
		}
		for i := range ts {
			if err := sameTensor(back[i], ts[i]); err != nil {
				t.Fatalf("re-read: %v", err)
			}
		}
	})
}

func FuzzJSON(f *testing.F) {
	for _, s := range []string{
		`{"shape":[2,3],"data":[1,2,3,4,5,6]}`,
		`{"name":"w","dtype":"F16","data":[[1,2],[3,4]]}`,
		`[[1.5,"NaN"],["Infinity","-Infinity"]]`,
		`{"data":7}`, `[[],[]]`, `[[1,2],[3]]`, `{"data":[1e999]}`,
		`{"shape":[4294967296,4294967296],"data":[]}`,
		`{"data":[1],"data":[2]}`, `[[[[[[[[1]]]]]]]]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := readJSON(bytes.NewReader(data), int64(len(data)), fuzzLimits.withDefaults())
		checkErr(t, err, "json: ")
		ts := checkAll(t, data, "")
		if err != nil {
			return
		}
		for _, tt := range ts {
			var b bytes.Buffer
			if err := WriteJSON(&b, tt); err != nil {
				t.Fatalf("WriteJSON of a tensor just read: %v", err)
			}
			back, err := ReadTensor(bytes.NewReader(b.Bytes()), int64(b.Len()), tt.Name)
			if err != nil {
				t.Fatalf("re-read %q: %v", b.Bytes(), err)
			}
			if err := sameTensor(back, tt); err != nil {
				t.Fatalf("re-read: %v", err)
			}
		}
	})
}

// FuzzSniff feeds any bytes through the whole dispatch, as an upload would.
func FuzzSniff(f *testing.F) {
	file, _, _ := multiFixture()
	f.Add(file)
	f.Add(npyFile(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", make([]byte, 4)))
	f.Add([]byte(`{"data":[1]}`))
	f.Add([]byte("PK\x05\x06" + strings.Repeat("\x00", 18)))
	f.Add([]byte("\x80\x02}q\x00."))
	f.Fuzz(func(t *testing.T, data []byte) {
		fm, err := Sniff(data[:min(len(data), SniffBytes)])
		checkErr(t, err, "")
		if err == nil && fm == FormatUnknown {
			t.Fatal("no error but no format")
		}
		checkAll(t, data, "")
	})
}
