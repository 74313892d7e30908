package tensorio

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"math/rand/v2"
	"testing"

	"github.com/lowrank/lowrank"
)

func TestNPZRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, compress := range []bool{false, true} {
		var ts []*Tensor
		for i, shape := range testShapes {
			dt := []DType{F16, F32, F64}[i%3]
			ts = append(ts, randTensor(rng, "t"+string(rune('0'+i)), dt, shape))
		}
		ts = append(ts, randTensor(rng, "dir/sub.name", F32, []int{2}))
		var buf bytes.Buffer
		if err := WriteNPZ(&buf, ts, compress); err != nil {
			t.Fatal(err)
		}
		file := buf.Bytes()
		f, infos, err := Inspect(bytes.NewReader(file), int64(len(file)))
		if err != nil || f != FormatNPZ || len(infos) != len(ts) {
			t.Fatalf("compress=%v: Inspect: %v %v %d", compress, f, err, len(infos))
		}
		for i, in := range infos {
			if in.Name != ts[i].Name || in.DType != ts[i].dtype() || !equalInts(in.Shape, ts[i].Shape) {
				t.Errorf("compress=%v: info %+v", compress, in)
			}
			if compress != (in.Offset == -1) {
				t.Errorf("compress=%v: %s: offset %d", compress, in.Name, in.Offset)
			}
			if !compress {
				// The raw range holds exactly the data WriteNPY wrote.
				var one bytes.Buffer
				WriteNPY(&one, ts[i])
				raw := one.Bytes()[one.Len()-int(in.Length):]
				if !bytes.Equal(file[in.Offset:in.Offset+in.Length], raw) {
					t.Errorf("%s: bytes at Offset are not the data", in.Name)
				}
			}
		}
		_, got, err := ReadAll(bytes.NewReader(file), int64(len(file)))
		if err != nil {
			t.Fatal(err)
		}
		for i := range ts {
			if err := sameTensor(got[i], ts[i]); err != nil {
				t.Errorf("compress=%v: %v", compress, err)
			}
		}
		one, err := ReadTensor(bytes.NewReader(file), int64(len(file)), "dir/sub.name")
		if err != nil || sameTensor(one, ts[len(ts)-1]) != nil {
			t.Errorf("ReadTensor by name: %v", err)
		}
	}
}

// zent is one entry of a hand-built stored zip.
type zent struct {
	name     string // in the central directory
	local    string // in the local header, if different
	data     []byte
	declared int64 // uncompressed size to declare, if not len(data)
	method   uint16
	flags    uint16
	localAt  int // point the central record at entry localAt's local header (-1: own)
}

// buildZip writes stored entries by hand following APPNOTE.TXT: local
// headers and data, the central directory, and the end record. It can lie
// where archive/zip's writer would not.
func buildZip(ents []zent) []byte {
	var b bytes.Buffer
	offs := make([]int, len(ents))
	for i, e := range ents {
		offs[i] = b.Len()
		ln := e.name
		if e.local != "" {
			ln = e.local
		}
		b.WriteString("PK\x03\x04")
		binary.Write(&b, binary.LittleEndian, []uint16{20, e.flags, e.method, 0, 0})
		binary.Write(&b, binary.LittleEndian, []uint32{crc32.ChecksumIEEE(e.data), uint32(len(e.data)), uint32(len(e.data))})
		binary.Write(&b, binary.LittleEndian, []uint16{uint16(len(ln)), 0})
		b.WriteString(ln)
		b.Write(e.data)
	}
	cd := b.Len()
	for i, e := range ents {
		at := offs[i]
		if e.localAt >= 0 && e.localAt != i {
			at = offs[e.localAt]
		}
		decl := uint32(len(e.data))
		if e.declared != 0 {
			decl = uint32(e.declared)
		}
		b.WriteString("PK\x01\x02")
		binary.Write(&b, binary.LittleEndian, []uint16{20, 20, e.flags, e.method, 0, 0})
		binary.Write(&b, binary.LittleEndian, []uint32{crc32.ChecksumIEEE(e.data), uint32(len(e.data)), decl})
		binary.Write(&b, binary.LittleEndian, []uint16{uint16(len(e.name)), 0, 0, 0, 0})
		binary.Write(&b, binary.LittleEndian, []uint32{0, uint32(at)})
		b.WriteString(e.name)
	}
	end := b.Len()
	b.WriteString("PK\x05\x06")
	binary.Write(&b, binary.LittleEndian, []uint16{0, 0, uint16(len(ents)), uint16(len(ents))})
	binary.Write(&b, binary.LittleEndian, []uint32{uint32(end - cd), uint32(cd)})
	binary.Write(&b, binary.LittleEndian, uint16(0))
	return b.Bytes()
}

func npyBytes(t *testing.T, v ...float32) []byte {
	var b bytes.Buffer
	if err := WriteNPY(&b, &Tensor{Shape: []int{len(v)}, F32: v}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestNPZHandBuilt(t *testing.T) {
	a, b := npyBytes(t, 1, 2), npyBytes(t, 3)
	ok := buildZip([]zent{{name: "a.npy", data: a, localAt: -1}, {name: "b.npy", data: b, localAt: -1}})
	_, ts, err := ReadAll(bytes.NewReader(ok), int64(len(ok)))
	if err != nil || len(ts) != 2 || ts[0].F32[1] != 2 || ts[1].F32[0] != 3 {
		t.Fatalf("hand-built zip: %v", err)
	}
	corrupt := bytes.Clone(ok)
	corrupt[30+5+len(a)-1] ^= 0x40 // last data byte of a.npy
	empty := buildZip(nil)
	for _, c := range []struct {
		name  string
		file  []byte
		lim   Limits
		code  string
		frags []string
		read  bool // the fault shows only when the data is read
	}{
		{"overlap", buildZip([]zent{{name: "a.npy", data: a, localAt: -1}, {name: "b.npy", data: b, localAt: 0}}), Limits{}, lowrank.EINVALID, []string{"npz:", "overlaps"}, false},
		{"parent dir", buildZip([]zent{{name: "../a.npy", data: a, localAt: -1}}), Limits{}, lowrank.EINVALID, []string{`"../a.npy"`, "relative path"}, false},
		{"absolute", buildZip([]zent{{name: "/a.npy", data: a, localAt: -1}}), Limits{}, lowrank.EINVALID, []string{"relative path"}, false},
		{"backslash", buildZip([]zent{{name: `x\a.npy`, data: a, localAt: -1}}), Limits{}, lowrank.EINVALID, []string{"backslash"}, false},
		{"control", buildZip([]zent{{name: "a\x00.npy", data: a, localAt: -1}}), Limits{}, lowrank.EINVALID, []string{"control"}, false},
		{"not npy", buildZip([]zent{{name: "a.txt", data: a, localAt: -1}}), Limits{}, lowrank.EINVALID, []string{"not a .npy"}, false},
		{"bare .npy", buildZip([]zent{{name: ".npy", data: a, localAt: -1}}), Limits{}, lowrank.EINVALID, []string{"not a .npy"}, false},
		{"directory", buildZip([]zent{{name: "d/", localAt: -1}}), Limits{}, lowrank.EINVALID, []string{"relative path"}, false},
		{"duplicate", buildZip([]zent{{name: "a.npy", data: a, localAt: -1}, {name: "a.npy", data: b, localAt: -1}}), Limits{}, lowrank.EINVALID, []string{"twice"}, false},
		{"torch zip", buildZip([]zent{{name: "archive/data.pkl", data: a, localAt: -1}, {name: "archive/data/0", data: b, localAt: -1}}), Limits{}, lowrank.EUNSUPPORTED, []string{"PyTorch", "safetensors.torch.save_file"}, false},
		{"encrypted", buildZip([]zent{{name: "a.npy", data: a, flags: 1, localAt: -1}}), Limits{}, lowrank.EUNSUPPORTED, []string{"encrypted"}, false},
		{"method", buildZip([]zent{{name: "a.npy", data: a, method: 12, localAt: -1}}), Limits{}, lowrank.EUNSUPPORTED, []string{"method 12"}, false},
		{"stored size lie", buildZip([]zent{{name: "a.npy", data: a, declared: 1 << 30, localAt: -1}}), Limits{}, lowrank.EINVALID, []string{"stored entry declares"}, false},
		{"entries", ok, Limits{MaxEntries: 1}, lowrank.ETOOLARGE, []string{"2 entries", "limit of 1"}, false},
		{"total", ok, Limits{MaxTotalBytes: int64(len(a))}, lowrank.ETOOLARGE, []string{`tensor "b"`, "uncompress"}, false},
		{"crc", corrupt, Limits{}, lowrank.EINVALID, []string{`tensor "a"`, "checksum"}, true},
		{"truncated", ok[:len(ok)-30], Limits{}, lowrank.EINVALID, []string{"not a valid zip"}, false},
	} {
		_, _, err := c.lim.Inspect(bytes.NewReader(c.file), int64(len(c.file)))
		if !c.read {
			wantErr(t, c.name+" (Inspect)", err, c.code, c.frags...)
		} else if err != nil {
			t.Errorf("%s: Inspect: %v", c.name, err)
		}
		_, _, err = c.lim.ReadAll(bytes.NewReader(c.file), int64(len(c.file)))
		if c.name == "truncated" {
			continue // no longer sniffs as a zip
		}
		wantErr(t, c.name+" (ReadAll)", err, c.code, c.frags...)
	}
	if _, infos, err := Inspect(bytes.NewReader(empty), int64(len(empty))); err != nil || len(infos) != 0 {
		t.Errorf("empty archive: %v %v", infos, err)
	}
}

// TestNPZDeflateLies patches the declared sizes of a deflated entry.
func TestNPZDeflateLies(t *testing.T) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.CreateHeader(&zip.FileHeader{Name: "a.npy", Method: zip.Deflate})
	data := npyBytes(t, make([]float32, 1000)...)
	w.Write(data)
	zw.Close()
	file := buf.Bytes()
	cd := bytes.LastIndex(file, []byte("PK\x01\x02"))
	patch := func(size uint32) []byte {
		b := bytes.Clone(file)
		binary.LittleEndian.PutUint32(b[cd+24:], size)
		return b
	}
	for _, c := range []struct {
		name  string
		size  uint32
		frags []string
	}{
		{"bomb", 1 << 31, []string{"more than deflate can expand"}},
		{"larger", uint32(len(data) + 4), []string{"needs 4000 data bytes", "has 4004"}},
		{"smaller", uint32(len(data) - 4), []string{"needs 4000 data bytes", "has 3996"}},
	} {
		b := patch(c.size)
		_, _, err := Inspect(bytes.NewReader(b), int64(len(b)))
		wantErr(t, c.name, err, lowrank.EINVALID, c.frags...)
	}
	// A declared size that matches the header but not the stream.
	b := bytes.Clone(file)
	binary.LittleEndian.PutUint32(b[cd+20:], binary.LittleEndian.Uint32(b[cd+20:])-1) // compressed size one short
	_, err := ReadTensor(bytes.NewReader(b), int64(len(b)), "a")
	wantErr(t, "short stream", err, lowrank.EINVALID, `tensor "a"`)
}

func TestNPZWriterErrors(t *testing.T) {
	var buf bytes.Buffer
	one := func(name string) *Tensor { return &Tensor{Name: name, Shape: []int{1}, F32: []float32{1}} }
	wantErr(t, "dup", WriteNPZ(&buf, []*Tensor{one("a"), one("a")}, false), lowrank.EINVALID, "unique")
	wantErr(t, "odd", WriteNPZ(&buf, []*Tensor{one("../a")}, false), lowrank.EINVALID, "relative path")
	wantErr(t, "empty", WriteNPZ(&buf, []*Tensor{one("")}, false), lowrank.EINVALID, "not a .npy")
}
