package tensorio

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
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
