package tensorio

import (
	"context"
	"crypto/sha256"
	"io"
	"os"

	"github.com/lowrank/lowrank"
)

// Spool's copy is a three-stage pipeline — receive, hash, write — over a
// few rotating buffers, because done one after another the three cost the
// sum of their times (for 64 MiB on the reference machine about 40 ms to
// receive, 45 ms to hash and 30 ms to write) and overlapped only the largest.
const (
	spoolChunk   = 1 << 20
	spoolBuffers = 4
	// spoolFlushEvery is how much is written before the kernel is asked to
	// start writing it back, so the final fsync finds little left to do.
	spoolFlushEvery = 8 << 20
)

type spoolChunkMsg struct {
	buf []byte
	n   int
}

// copyHashed copies r to file, at most limit bytes (more is ETOOLARGE),
// and returns the byte count and the SHA-256 of what it copied. Errors of r
// are returned as they are; ctx is checked between reads.
func copyHashed(ctx context.Context, file *os.File, r io.Reader, limit int64) (int64, []byte, error) {
	free := make(chan []byte, spoolBuffers)
	for range spoolBuffers {
		free <- make([]byte, spoolChunk)
	}
	toHash := make(chan spoolChunkMsg, spoolBuffers)
	toWrite := make(chan spoolChunkMsg, spoolBuffers)
	hashDone := make(chan []byte, 1)
	writeDone := make(chan error, 1)
	// A buffer goes back to free once both the hasher and the writer are
	// done with it; the writer, which runs second, returns it.
	hashed := make(chan struct{}, spoolBuffers)
	go func() {
		h := sha256.New()
		for c := range toHash {
			h.Write(c.buf[:c.n])
			hashed <- struct{}{}
		}
		hashDone <- h.Sum(nil)
	}()
	go func() {
		var werr error
		var written, flushed int64
		for c := range toWrite {
			if werr == nil {
				if _, err := file.Write(c.buf[:c.n]); err != nil {
					werr = &lowrank.Error{Code: lowrank.EINTERNAL, Message: "tensorio: spool: " + err.Error(), Err: err}
				}
				written += int64(c.n)
				if written-flushed >= spoolFlushEvery {
					startWriteback(file, flushed, written-flushed)
					flushed = written
				}
			}
			<-hashed
			free <- c.buf
		}
		writeDone <- werr
	}()

	var size int64
	rerr := func() error {
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			buf := <-free
			n, err := fill(r, buf)
			if n > 0 {
				size += int64(n)
				if size > limit {
					return ferr(lowrank.ETOOLARGE, FormatUnknown, "", "the upload is larger than the limit of %d bytes", limit)
				}
				toHash <- spoolChunkMsg{buf, n}
				toWrite <- spoolChunkMsg{buf, n}
			} else {
				free <- buf
			}
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
		}
	}()
	close(toHash)
	close(toWrite)
	sum := <-hashDone
	werr := <-writeDone
	if rerr != nil {
		return 0, nil, rerr
	}
	if werr != nil {
		return 0, nil, werr
	}
	return size, sum, nil
}

// fill reads into buf until it is full or r ends (io.EOF) or fails. Unlike
// io.ReadFull it passes r's own errors through unchanged: a body cut short
// reports io.ErrUnexpectedEOF, which must not read as a clean end.
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
