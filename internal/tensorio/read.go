package tensorio

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/lowrank/lowrank"
)

// SniffBytes is how many leading bytes Sniff needs to tell the formats apart.
const SniffBytes = 16

// Sniff tells the format from the first bytes of a file (SniffBytes of them,
// or the whole file if shorter): the .npy magic string, a zip local header
// (.npz), a plausible little-endian header length followed by '{'
// (safetensors), or '{' or '[' after optional whitespace (JSON). Pickles,
// including PyTorch's legacy .pt files, give an EUNSUPPORTED error that says
// how to convert them; PyTorch's zip checkpoints sniff as npz and are
// rejected when their entries are listed.
func Sniff(head []byte) (Format, error) {
	switch {
	case len(head) == 0:
		return FormatUnknown, ferr(lowrank.EINVALID, FormatUnknown, "", "the file is empty")
	case bytes.HasPrefix(head, []byte(npyMagic)):
		return FormatNPY, nil
	case bytes.HasPrefix(head, []byte("PK\x03\x04")), bytes.HasPrefix(head, []byte("PK\x05\x06")):
		return FormatNPZ, nil
	case len(head) >= 2 && head[0] == 0x80 && head[1] >= 2 && head[1] <= 5:
		return FormatUnknown, ferr(lowrank.EUNSUPPORTED, FormatUnknown, "", "%s", pickleHint)
	case len(head) >= 9 && head[8] == '{' && binary.LittleEndian.Uint64(head) < 1<<40:
		// A JSON document cannot look like this: the bytes before a '{'
		// at byte 8 would be whitespace, making the length at least 2^56.
		return FormatSafetensors, nil
	}
	s := bytes.TrimLeft(head, " \t\r\n")
	if len(s) > 0 && (s[0] == '{' || s[0] == '[') {
		return FormatJSON, nil
	}
	return FormatUnknown, ferr(lowrank.EUNSUPPORTED, FormatUnknown, "", "unrecognised format: expected .npy, .npz, safetensors or JSON")
}

func sniffAt(r io.ReaderAt, size int64) (Format, error) {
	head := make([]byte, min(size, SniffBytes))
	if err := readFullAt(FormatUnknown, r, head, 0); err != nil {
		return FormatUnknown, err
	}
	return Sniff(head)
}

// Inspect sniffs a stored file and lists its tensors (names, dtypes, shapes,
// byte ranges) after checking its structure, without decoding any data:
// for safetensors only the header is read, for .npz only the directory and
// each entry's .npy header. A JSON file is parsed whole (it is small).
func Inspect(r io.ReaderAt, size int64) (Format, []Info, error) {
	return DefaultLimits().Inspect(r, size)
}

// Inspect is the package function with limits l.
func (l Limits) Inspect(r io.ReaderAt, size int64) (Format, []Info, error) {
	lim := l.withDefaults()
	f, err := sniffAt(r, size)
	if err != nil {
		return f, nil, err
	}
	switch f {
	case FormatNPY:
		h, err := readNPYHeader(f, "", io.NewSectionReader(r, 0, size), size, lim)
		if err != nil {
			return f, nil, err
		}
		return f, []Info{h.info("", h.dataStart)}, nil
	case FormatNPZ:
		entries, err := openNPZ(r, size, lim)
		if err != nil {
			return f, nil, err
		}
		infos := make([]Info, len(entries))
		for i := range entries {
			e := &entries[i]
			h, err := npzHeader(e, lim)
			if err != nil {
				return f, nil, err
			}
			off := int64(-1)
			if e.file.Method == 0 {
				off = e.dataOffset + h.dataStart
			}
			infos[i] = h.info(e.name, off)
		}
		return f, infos, nil
	case FormatSafetensors:
		h, err := lim.ReadSafetensorsHeader(r, size)
		if err != nil {
			return f, nil, err
		}
		return f, h.Tensors, nil
	default: // FormatJSON
		t, err := readJSON(io.NewSectionReader(r, 0, size), size, lim)
		if err != nil {
			return f, nil, err
		}
		return f, []Info{{Name: t.Name, DType: t.DType, Shape: t.Shape, Offset: -1, Length: int64(t.Len() * t.DType.Size())}}, nil
	}
}

// ReadTensor decodes the tensor called name from a stored file, reading only
// that tensor's bytes (and the headers that locate them). The empty name
// selects the only tensor of a file that holds one; .npy files hold one
// unnamed tensor. A missing name is ENOTFOUND.
func ReadTensor(r io.ReaderAt, size int64, name string) (*Tensor, error) {
	return DefaultLimits().ReadTensor(r, size, name)
}

// ReadTensor is the package function with limits l.
func (l Limits) ReadTensor(r io.ReaderAt, size int64, name string) (*Tensor, error) {
	lim := l.withDefaults()
	f, err := sniffAt(r, size)
	if err != nil {
		return nil, err
	}
	switch f {
	case FormatNPY:
		if name != "" {
			return nil, notFound(f, name, []string{""})
		}
		return readNPY(f, "", io.NewSectionReader(r, 0, size), size, lim)
	case FormatNPZ:
		entries, err := openNPZ(r, size, lim)
		if err != nil {
			return nil, err
		}
		names := make([]string, len(entries))
		for i := range entries {
			names[i] = entries[i].name
		}
		i, err := pick(f, name, names)
		if err != nil {
			return nil, err
		}
		return readNPZEntry(&entries[i], lim)
	case FormatSafetensors:
		h, err := lim.ReadSafetensorsHeader(r, size)
		if err != nil {
			return nil, err
		}
		names := make([]string, len(h.Tensors))
		for i := range h.Tensors {
			names[i] = h.Tensors[i].Name
		}
		i, err := pick(f, name, names)
		if err != nil {
			return nil, err
		}
		return readSafetensorsTensor(r, h, i)
	default: // FormatJSON
		t, err := readJSON(io.NewSectionReader(r, 0, size), size, lim)
		if err != nil {
			return nil, err
		}
		if name != "" && name != t.Name {
			return nil, notFound(f, name, []string{t.Name})
		}
		return t, nil
	}
}

// ReadAll decodes every tensor of a stored file, in file order.
func ReadAll(r io.ReaderAt, size int64) (Format, []*Tensor, error) {
	return DefaultLimits().ReadAll(r, size)
}

// ReadAll is the package function with limits l.
func (l Limits) ReadAll(r io.ReaderAt, size int64) (Format, []*Tensor, error) {
	lim := l.withDefaults()
	f, err := sniffAt(r, size)
	if err != nil {
		return f, nil, err
	}
	switch f {
	case FormatNPZ:
		entries, err := openNPZ(r, size, lim)
		if err != nil {
			return f, nil, err
		}
		ts := make([]*Tensor, len(entries))
		for i := range entries {
			if ts[i], err = readNPZEntry(&entries[i], lim); err != nil {
				return f, nil, err
			}
		}
		return f, ts, nil
	case FormatSafetensors:
		h, err := lim.ReadSafetensorsHeader(r, size)
		if err != nil {
			return f, nil, err
		}
		ts := make([]*Tensor, len(h.Tensors))
		for i := range h.Tensors {
			if ts[i], err = readSafetensorsTensor(r, h, i); err != nil {
				return f, nil, err
			}
		}
		return f, ts, nil
	default:
		t, err := lim.ReadTensor(r, size, "")
		if err != nil {
			return f, nil, err
		}
		return f, []*Tensor{t}, nil
	}
}

// pick finds name among names; "" picks the only one.
func pick(f Format, name string, names []string) (int, error) {
	if name == "" && len(names) == 1 {
		return 0, nil
	}
	for i, n := range names {
		if n == name && name != "" {
			return i, nil
		}
	}
	return 0, notFound(f, name, names)
}

func notFound(f Format, name string, names []string) error {
	list := names
	if len(list) > 10 {
		list = list[:10]
	}
	quoted := make([]string, len(list))
	for i, n := range list {
		quoted[i] = fmt.Sprintf("%q", n)
	}
	more := ""
	if len(names) > len(list) {
		more = fmt.Sprintf(", ... (%d in all)", len(names))
	}
	what := fmt.Sprintf("no tensor named %q", name)
	if name == "" {
		what = "no tensor name given"
	}
	e := ferr(lowrank.ENOTFOUND, f, "", "%s; the file holds %s%s", what, strings.Join(quoted, ", "), more)
	e.Field = "tensor"
	return e
}

// Spooled is an upload copied to disk and checked.
type Spooled struct {
	Path    string // the temporary file, in the directory given to Spool
	Size    int64  // bytes
	SHA256  string // lower-case hex digest of the bytes
	Format  Format
	Tensors []Info
}

// Remove deletes the spooled file (when the caller does not keep it).
func (s *Spooled) Remove() error { return os.Remove(s.Path) }

// Spool copies an upload of known or unknown length from r to a new
// temporary file in dir while hashing and counting it, so it is never held
// in memory; more than limits.MaxFileBytes is ETOOLARGE. The file is then
// synced, sniffed and inspected (for .npz every entry's size and CRC-32 is
// checked too), and it must hold at least one tensor of a readable dtype.
// On success the caller owns the file (typically renaming it into place);
// on any error it has been removed. An error from r itself (a client gone,
// a body size cap) is returned as it is, for the caller to classify;
// cancellation of ctx is checked between reads and returns ctx.Err().
func Spool(ctx context.Context, r io.Reader, dir string, limits Limits) (s *Spooled, err error) {
	lim := limits.withDefaults()
	file, err := os.CreateTemp(dir, ".upload-*")
	if err != nil {
		return nil, &lowrank.Error{Code: lowrank.EINTERNAL, Message: "tensorio: spool: " + err.Error(), Err: err}
	}
	defer func() {
		if cerr := file.Close(); err == nil && cerr != nil {
			err = &lowrank.Error{Code: lowrank.EINTERNAL, Message: "tensorio: spool: " + cerr.Error(), Err: cerr}
		}
		if err != nil {
			os.Remove(file.Name())
			s = nil
		}
	}()
	size, sum, err := copyHashed(ctx, file, r, lim.MaxFileBytes)
	if err != nil {
		return nil, err
	}
	if err := file.Sync(); err != nil {
		return nil, &lowrank.Error{Code: lowrank.EINTERNAL, Message: "tensorio: spool: " + err.Error(), Err: err}
	}
	f, infos, err := lim.Inspect(file, size)
	if err != nil {
		return nil, err
	}
	if f == FormatNPZ {
		entries, err := openNPZ(file, size, lim)
		if err != nil {
			return nil, err
		}
		for i := range entries {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if err := verifyNPZEntry(&entries[i]); err != nil {
				return nil, err
			}
		}
	}
	if err := requireReadable(f, infos); err != nil {
		return nil, err
	}
	return &Spooled{Path: file.Name(), Size: size, SHA256: hex.EncodeToString(sum), Format: f, Tensors: infos}, nil
}

func requireReadable(f Format, infos []Info) error {
	if len(infos) == 0 {
		return ferr(lowrank.EINVALID, f, "", "the file holds no tensors")
	}
	var seen []string
	for _, in := range infos {
		if in.DType.Readable() {
			return nil
		}
		seen = append(seen, string(in.DType))
	}
	return ferr(lowrank.EUNSUPPORTED, f, "", "no tensor has a readable dtype (found %s; F16, BF16, F32 and F64 are read)", strings.Join(seen[:min(len(seen), 5)], ", "))
}
