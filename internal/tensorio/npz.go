package tensorio

import (
	"archive/zip"
	"errors"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/lowrank/lowrank"
)

// deflateMaxRatio bounds how much deflate can expand: one 258-byte match
// costs at least two bits, so no honest entry claims more than 1032 bytes
// per compressed byte. A declared size beyond that is a bomb or a lie, and
// is refused before anything is allocated for it.
const deflateMaxRatio = 1032

// npzEntry is one checked .npy member of an .npz archive.
type npzEntry struct {
	name       string // the key NumPy gives it: the member name without .npy
	file       *zip.File
	dataOffset int64 // where the member's stored bytes begin in the archive
}

// openNPZ parses the archive's directory and checks every entry: names,
// methods, declared sizes against the limits and the file, and that no two
// entries share bytes (overlapping entries are how the densest zip bombs
// work). Nothing is decompressed.
func openNPZ(r io.ReaderAt, size int64, lim Limits) ([]npzEntry, error) {
	const f = FormatNPZ
	zr, err := zip.NewReader(r, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return nil, ferr(lowrank.EINVALID, f, "", "not a valid zip archive: %v", err)
	}
	if len(zr.File) > lim.MaxEntries {
		return nil, ferr(lowrank.ETOOLARGE, f, "", "%d entries, more than the limit of %d", len(zr.File), lim.MaxEntries)
	}
	for _, zf := range zr.File {
		if path.Base(zf.Name) == "data.pkl" || strings.HasSuffix(zf.Name, ".pkl") {
			return nil, ferr(lowrank.EUNSUPPORTED, f, "", "entry %q: this is a PyTorch checkpoint; %s", clipString(zf.Name), pickleHint)
		}
	}
	entries := make([]npzEntry, 0, len(zr.File))
	seen := map[string]bool{}
	var total uint64
	for _, zf := range zr.File {
		if err := checkEntryName(zf.Name); err != nil {
			return nil, err
		}
		name := strings.TrimSuffix(zf.Name, ".npy")
		if seen[name] {
			return nil, ferr(lowrank.EINVALID, f, "", "entry %q appears twice", zf.Name)
		}
		seen[name] = true
		if zf.Flags&0x1 != 0 {
			return nil, ferr(lowrank.EUNSUPPORTED, f, name, "encrypted entries are not read")
		}
		switch zf.Method {
		case zip.Store:
			if zf.CompressedSize64 != zf.UncompressedSize64 {
				return nil, ferr(lowrank.EINVALID, f, name, "stored entry declares %d bytes compressed but %d uncompressed", zf.CompressedSize64, zf.UncompressedSize64)
			}
		case zip.Deflate:
			if zf.UncompressedSize64/deflateMaxRatio > zf.CompressedSize64 {
				return nil, ferr(lowrank.EINVALID, f, name, "declares %d bytes from %d deflated bytes, more than deflate can expand", zf.UncompressedSize64, zf.CompressedSize64)
			}
		default:
			return nil, ferr(lowrank.EUNSUPPORTED, f, name, "compression method %d is not read (stored and deflated are)", zf.Method)
		}
		if zf.UncompressedSize64 > uint64(lim.MaxTotalBytes) || total+zf.UncompressedSize64 > uint64(lim.MaxTotalBytes) {
			return nil, ferr(lowrank.ETOOLARGE, f, name, "entries uncompress to more than the limit of %d bytes", lim.MaxTotalBytes)
		}
		total += zf.UncompressedSize64
		off, err := zf.DataOffset()
		if err != nil {
			return nil, ferr(lowrank.EINVALID, f, name, "bad local header: %v", err)
		}
		if off < 0 || off > size || zf.CompressedSize64 > uint64(size-off) {
			return nil, ferr(lowrank.EINVALID, f, name, "%d stored bytes at offset %d run past the end of the %d-byte archive", zf.CompressedSize64, off, size)
		}
		entries = append(entries, npzEntry{name: name, file: zf, dataOffset: off})
	}
	byOffset := make([]npzEntry, len(entries))
	copy(byOffset, entries)
	sort.Slice(byOffset, func(i, j int) bool { return byOffset[i].dataOffset < byOffset[j].dataOffset })
	for i := 1; i < len(byOffset); i++ {
		a, b := byOffset[i-1], byOffset[i]
		// Every entry's data is preceded by its own 30-byte local header,
		// so the next entry's data starts strictly after this one's end.
		if uint64(b.dataOffset) < uint64(a.dataOffset)+a.file.CompressedSize64+30 {
			return nil, ferr(lowrank.EINVALID, f, b.name, "entry data at offset %d overlaps entry %q", b.dataOffset, a.name)
		}
	}
	return entries, nil
}

// checkEntryName accepts the names np.savez writes: a relative slash
// path of printable characters ending in .npy.
func checkEntryName(n string) error {
	const f = FormatNPZ
	odd := func(why string) error {
		return ferr(lowrank.EINVALID, f, "", "entry name %q %s", clipString(n), why)
	}
	if len(n) > 1024 {
		return odd("is longer than 1024 bytes")
	}
	if !utf8.ValidString(n) {
		return odd("is not valid UTF-8")
	}
	for _, c := range n {
		if c < 0x20 || c == 0x7f || c == '\\' {
			return odd("holds a control character or a backslash")
		}
	}
	if !fs.ValidPath(n) || n == "." {
		return odd("is not a plain relative path")
	}
	if !strings.HasSuffix(n, ".npy") || n == ".npy" || strings.HasSuffix(n, "/.npy") {
		return odd("is not a .npy file")
	}
	return nil
}

// npzHeader reads the .npy header of one entry, decompressing only as much
// as the header needs.
func npzHeader(e *npzEntry, lim Limits) (*npyHeader, error) {
	rc, err := e.file.Open()
	if err != nil {
		return nil, ferr(lowrank.EINVALID, FormatNPZ, e.name, "cannot open entry: %v", err)
	}
	defer rc.Close()
	return readNPYHeader(FormatNPZ, e.name, zipErrReader{rc, e.name}, int64(e.file.UncompressedSize64), lim)
}

// readNPZEntry decodes one entry and checks that it ends where it says, with
// the right CRC-32.
func readNPZEntry(e *npzEntry, lim Limits) (*Tensor, error) {
	rc, err := e.file.Open()
	if err != nil {
		return nil, ferr(lowrank.EINVALID, FormatNPZ, e.name, "cannot open entry: %v", err)
	}
	defer rc.Close()
	zr := zipErrReader{rc, e.name}
	t, err := readNPY(FormatNPZ, e.name, zr, int64(e.file.UncompressedSize64), lim)
	if err != nil {
		return nil, err
	}
	if err := expectEOF(zr, e.name); err != nil {
		return nil, err
	}
	t.Name = e.name
	return t, nil
}

// expectEOF reads past the declared end: archive/zip checks the size and the
// CRC-32 only when it reaches the end of an entry.
func expectEOF(r io.Reader, name string) error {
	var b [1]byte
	n, err := io.ReadFull(r, b[:])
	if n > 0 {
		return ferr(lowrank.EINVALID, FormatNPZ, name, "entry holds more bytes than it declares")
	}
	if err != io.EOF {
		return err
	}
	return nil
}

// verifyNPZEntry streams an entry through a small buffer to check its size
// and CRC-32 without keeping its data.
func verifyNPZEntry(e *npzEntry) error {
	rc, err := e.file.Open()
	if err != nil {
		return ferr(lowrank.EINVALID, FormatNPZ, e.name, "cannot open entry: %v", err)
	}
	defer rc.Close()
	zr := zipErrReader{rc, e.name}
	n, err := io.CopyN(io.Discard, zr, int64(e.file.UncompressedSize64))
	if err != nil {
		if errors.Is(err, io.EOF) {
			return ferr(lowrank.EINVALID, FormatNPZ, e.name, "entry ends after %d of its declared %d bytes", n, e.file.UncompressedSize64)
		}
		return err
	}
	return expectEOF(zr, e.name)
}

// zipErrReader turns archive/zip's and flate's errors about the data into
// EINVALID errors naming the entry.
type zipErrReader struct {
	r    io.Reader
	name string
}

func (z zipErrReader) Read(p []byte) (int, error) {
	n, err := z.r.Read(p)
	if err != nil && err != io.EOF {
		var le *lowrank.Error
		if errors.Is(err, io.ErrUnexpectedEOF) {
			e := ferr(lowrank.EINVALID, FormatNPZ, z.name, "compressed data ends before the entry's declared size")
			e.Err = err
			err = e
		} else if !errors.As(err, &le) {
			e := ferr(lowrank.EINVALID, FormatNPZ, z.name, "corrupt entry: %v", err)
			e.Err = err
			err = e
		}
	}
	return n, err
}

// WriteNPZ writes tensors as an .npz archive, each as name.npy in its own
// dtype, deflated when compress is true (like np.savez_compressed) and
// stored otherwise (like np.savez).
func WriteNPZ(w io.Writer, tensors []*Tensor, compress bool) error {
	zw := zip.NewWriter(w)
	seen := map[string]bool{}
	method := zip.Store
	if compress {
		method = zip.Deflate
	}
	for _, t := range tensors {
		if seen[t.Name] {
			return ferr(lowrank.EINVALID, FormatNPZ, t.Name, "tensor names must be unique")
		}
		seen[t.Name] = true
		if err := checkEntryName(t.Name + ".npy"); err != nil {
			return err
		}
		fw, err := zw.CreateHeader(&zip.FileHeader{Name: t.Name + ".npy", Method: method})
		if err != nil {
			return err
		}
		if err := WriteNPY(fw, t); err != nil {
			return err
		}
	}
	return zw.Close()
}
