package tensorio

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lowrank/lowrank"
)

func TestSniff(t *testing.T) {
	npy := npyBytes(t, 1)
	st := stFile(`{}`, nil)
	for _, c := range []struct {
		name string
		head []byte
		want Format
		code string
	}{
		{"npy", npy, FormatNPY, ""},
		{"zip", []byte("PK\x03\x04\x14\x00"), FormatNPZ, ""},
		{"empty zip", []byte("PK\x05\x06\x00\x00"), FormatNPZ, ""},
		{"safetensors", st, FormatSafetensors, ""},
		// A header of 0x380 bytes begins like a protocol-3 pickle.
		{"safetensors 896", append([]byte("\x80\x03\x00\x00\x00\x00\x00\x00{"), make([]byte, 8)...), FormatSafetensors, ""},
		{"json object", []byte(`{"data":[1]}`), FormatJSON, ""},
		{"json spaced", []byte("  \n\t[[1]]"), FormatJSON, ""},
		{"json 8 spaces", []byte(`        {"data":[1]}`), FormatJSON, ""},
		{"pickle 2", []byte("\x80\x02}q\x00"), FormatUnknown, lowrank.EUNSUPPORTED},
		{"pickle 5", []byte("\x80\x05\x95"), FormatUnknown, lowrank.EUNSUPPORTED},
		{"empty", nil, FormatUnknown, lowrank.EINVALID},
		{"text", []byte("hello"), FormatUnknown, lowrank.EUNSUPPORTED},
		{"npy prefix only", []byte("\x93NUM"), FormatUnknown, lowrank.EUNSUPPORTED},
	} {
		got, err := Sniff(c.head)
		if got != c.want {
			t.Errorf("%s: Sniff = %q, want %q", c.name, got, c.want)
		}
		if c.code == "" && err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
		if c.code != "" {
			wantErr(t, c.name, err, c.code)
		}
	}
	_, err := Sniff([]byte("\x80\x03"))
	wantErr(t, "pickle hint", err, lowrank.EUNSUPPORTED, "safetensors.torch.save_file")
}

// oneByteReader returns at most one byte per Read: a stream of unknown
// length arriving in small pieces.
type oneByteReader struct{ r io.Reader }

func (o oneByteReader) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return o.r.Read(p)
}

func TestSpool(t *testing.T) {
	file, _, _ := multiFixture()
	dir := t.TempDir()
	for _, r := range []io.Reader{bytes.NewReader(file), oneByteReader{bytes.NewReader(file)}} {
		s, err := Spool(context.Background(), r, dir, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(file)
		if s.Size != int64(len(file)) || s.SHA256 != hex.EncodeToString(sum[:]) || s.Format != FormatSafetensors || len(s.Tensors) != 5 {
			t.Errorf("Spooled %+v", s)
		}
		if filepath.Dir(s.Path) != dir {
			t.Errorf("spooled to %s, not into %s", s.Path, dir)
		}
		onDisk, err := os.ReadFile(s.Path)
		if err != nil || !bytes.Equal(onDisk, file) {
			t.Errorf("spooled file differs: %v", err)
		}
		if err := s.Remove(); err != nil {
			t.Error(err)
		}
	}
	noLeftovers := func(what string) {
		t.Helper()
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("%s: %d files left in the spool dir", what, len(ents))
		}
	}
	_, err := Spool(context.Background(), bytes.NewReader(file), dir, Limits{MaxFileBytes: int64(len(file) - 1)})
	wantErr(t, "too large", err, lowrank.ETOOLARGE, "limit")
	noLeftovers("too large")
	bad := bytes.Clone(file)
	bad = bad[:len(bad)-1]
	_, err = Spool(context.Background(), bytes.NewReader(bad), dir, Limits{})
	wantErr(t, "truncated", err, lowrank.EINVALID, "safetensors:")
	noLeftovers("truncated")
	_, err = Spool(context.Background(), strings.NewReader("\x80\x04garbage"), dir, Limits{})
	wantErr(t, "pickle", err, lowrank.EUNSUPPORTED, "pickle")
	noLeftovers("pickle")
	ints := stFile(`{"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}`, make([]byte, 8))
	_, err = Spool(context.Background(), bytes.NewReader(ints), dir, Limits{})
	wantErr(t, "no readable", err, lowrank.EUNSUPPORTED, "I64")
	_, err = Spool(context.Background(), bytes.NewReader(stFile(`{}`, nil)), dir, Limits{})
	wantErr(t, "no tensors", err, lowrank.EINVALID, "no tensors")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = Spool(ctx, bytes.NewReader(file), dir, Limits{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}
	noLeftovers("canceled")
	// A corrupt .npz entry is found at upload time, not when a job reads it.
	var buf bytes.Buffer
	WriteNPZ(&buf, []*Tensor{{Name: "a", Shape: []int{2}, F32: []float32{1, 2}}}, false)
	npz := buf.Bytes()
	npz[bytes.Index(npz, []byte("\x00\x00\x80\x3f"))+2] ^= 1
	_, err = Spool(context.Background(), bytes.NewReader(npz), dir, Limits{})
	wantErr(t, "npz crc", err, lowrank.EINVALID, "checksum")
	noLeftovers("npz crc")
	if _, err := Spool(context.Background(), bytes.NewReader(file), filepath.Join(dir, "missing"), Limits{}); lowrank.ErrorCode(err) != lowrank.EINTERNAL {
		t.Errorf("missing dir: %v", err)
	}
}

func TestReadTensorNames(t *testing.T) {
	npy := npyBytes(t, 1, 2)
	_, err := ReadTensor(bytes.NewReader(npy), int64(len(npy)), "w")
	wantErr(t, "npy with a name", err, lowrank.ENOTFOUND, `"w"`)
	js := `{"name":"w","data":[1]}`
	if _, err := ReadTensor(strings.NewReader(js), int64(len(js)), "w"); err != nil {
		t.Error(err)
	}
	_, err = ReadTensor(strings.NewReader(js), int64(len(js)), "v")
	wantErr(t, "json other name", err, lowrank.ENOTFOUND, `"v"`)
}

// failingReaderAt fails every read at or past off: a disk error, not bad data.
type failingReaderAt struct {
	b   []byte
	off int64
}

func (f failingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > f.off {
		return 0, errors.New("disk on fire")
	}
	return bytes.NewReader(f.b).ReadAt(p, off)
}

func TestReaderErrorsAreInternal(t *testing.T) {
	st, _, _ := multiFixture()
	var npz bytes.Buffer
	WriteNPZ(&npz, []*Tensor{{Name: "a", Shape: []int{100}, F32: make([]float32, 100)}}, false)
	for _, c := range []struct {
		name string
		file []byte
		at   int64
	}{
		{"safetensors data", st, int64(len(st)) - 4},
		{"safetensors header", st, 12},
		{"npy data", npyBytes(t, make([]float32, 100)...), 200},
		{"npz data", npz.Bytes(), 200},
	} {
		_, err := ReadTensor(failingReaderAt{c.file, c.at}, int64(len(c.file)), "")
		if c.name == "safetensors data" {
			_, err = ReadTensor(failingReaderAt{c.file, c.at}, int64(len(c.file)), "s")
		}
		if lowrank.ErrorCode(err) != lowrank.EINTERNAL && lowrank.ErrorCode(err) != lowrank.EINVALID {
			t.Errorf("%s: %v", c.name, err)
		}
		if err == nil || !strings.Contains(err.Error(), "disk on fire") && lowrank.ErrorCode(err) == lowrank.EINTERNAL {
			t.Errorf("%s: error %v does not carry the cause", c.name, err)
		}
	}
}

func TestLimits(t *testing.T) {
	// MaxHeaderBytes cannot raise the format's own 100 MB bound.
	file := append(binary.LittleEndian.AppendUint64(nil, 100_000_001), '{')
	_, err := Limits{MaxHeaderBytes: 1 << 40}.ReadSafetensorsHeader(bytes.NewReader(file), 1<<40)
	wantErr(t, "format bound", err, lowrank.ETOOLARGE, "100000000")
	st, _, _ := multiFixture()
	_, err = Limits{MaxHeaderBytes: 64}.ReadSafetensorsHeader(bytes.NewReader(st), int64(len(st)))
	wantErr(t, "header limit", err, lowrank.ETOOLARGE, "limit of 64 bytes")
	_, err = Limits{MaxEntries: 2}.ReadSafetensorsHeader(bytes.NewReader(st), int64(len(st)))
	wantErr(t, "tensor count", err, lowrank.ETOOLARGE, "limit of 2 tensors")
	_, err = Limits{MaxElements: 3}.ReadSafetensorsHeader(bytes.NewReader(st), int64(len(st)))
	wantErr(t, "elements", err, lowrank.ETOOLARGE, `tensor "U"`, "limit of 3 elements")
	_, err = Limits{MaxDims: 1}.ReadSafetensorsHeader(bytes.NewReader(st), int64(len(st)))
	wantErr(t, "dims", err, lowrank.ETOOLARGE, "more than 1")
	d := DefaultLimits()
	if (Limits{}).withDefaults() != d || d.MaxDims != 32 {
		t.Errorf("zero Limits do not take the defaults: %+v", (Limits{}).withDefaults())
	}
}

// TestNPZReadsOneEntry shows that reading one entry of a stored archive
// touches only the directory, that entry's local header and its data.
func TestNPZReadsOneEntry(t *testing.T) {
	var buf bytes.Buffer
	ts := []*Tensor{
		{Name: "a", Shape: []int{1000}, F32: make([]float32, 1000)},
		{Name: "b", Shape: []int{10}, F32: make([]float32, 10)},
		{Name: "c", Shape: []int{1000}, F32: make([]float32, 1000)},
	}
	if err := WriteNPZ(&buf, ts, false); err != nil {
		t.Fatal(err)
	}
	file := buf.Bytes()
	_, infos, err := Inspect(bytes.NewReader(file), int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	rr := &rangeReader{b: file}
	if _, err := ReadTensor(rr, int64(len(file)), "b"); err != nil {
		t.Fatal(err)
	}
	// archive/zip looks for the end record in the last 1 KiB, then reads
	// the directory.
	cd := min(int64(bytes.Index(file, []byte("PK\x01\x02"))), int64(len(file)-1024))
	b := infos[1]
	// Every entry's local header is read (30 bytes and the name) to check
	// that no two entries share bytes; no other entry's data is.
	var big [][2]int64
	for _, g := range rr.ranges {
		if g[1]-g[0] > 64 {
			big = append(big, g)
		}
	}
	rr.ranges = big
	if g, bad := rr.outside([2]int64{b.Offset - 200, b.Offset + b.Length + 16}, [2]int64{cd, int64(len(file))}); bad {
		t.Errorf("read [%d,%d); entry b's data is [%d,%d)", g[0], g[1], b.Offset, b.Offset+b.Length)
	}
}

// TestSpoolShortDeflate: a deflated entry whose stream ends before its
// declared size passes Inspect (which reads only the .npy header) but not
// Spool, which decompresses every entry. Found by FuzzNPZ.
func TestSpoolShortDeflate(t *testing.T) {
	hdr, _ := NPYHeader(F32, []int{1002})
	full := append(hdr, make([]byte, 4*1000)...) // two elements short
	var comp bytes.Buffer
	fw, _ := flate.NewWriter(&comp, flate.DefaultCompression)
	fw.Write(full)
	fw.Close()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.CreateRaw(&zip.FileHeader{Name: "a.npy", Method: zip.Deflate, CRC32: crc32.ChecksumIEEE(full),
		CompressedSize64: uint64(comp.Len()), UncompressedSize64: uint64(len(full) + 8)})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(comp.Bytes())
	zw.Close()
	b := buf.Bytes()
	if _, _, err := Inspect(bytes.NewReader(b), int64(len(b))); err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	_, err = ReadTensor(bytes.NewReader(b), int64(len(b)), "a")
	wantErr(t, "short deflate (ReadTensor)", err, lowrank.EINVALID, `tensor "a"`, "data ends before")
	_, err = Spool(context.Background(), bytes.NewReader(b), t.TempDir(), Limits{})
	wantErr(t, "short deflate (Spool)", err, lowrank.EINVALID, `tensor "a"`, "ends before the entry's declared size")
}
