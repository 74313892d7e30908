package tensorio

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"

	"github.com/lowrank/lowrank"
)

// The pipelined copy must hand every byte, in order, to both the file and
// the hash, at sizes around the chunk and buffer-ring edges, whatever piece
// sizes the reader delivers.
func TestCopyHashed(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{0, 1, spoolChunk - 1, spoolChunk, spoolChunk + 1, spoolBuffers * spoolChunk, (spoolBuffers+1)*spoolChunk + 3, spoolFlushEvery + 5}
	for _, n := range sizes {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		readers := map[string]io.Reader{
			"whole": bytes.NewReader(data),
			"half":  iotest.HalfReader(bytes.NewReader(data)),
			"eof":   iotest.DataErrReader(bytes.NewReader(data)),
		}
		for name, r := range readers {
			f, err := os.Create(filepath.Join(t.TempDir(), "x"))
			if err != nil {
				t.Fatal(err)
			}
			size, sum, err := copyHashed(context.Background(), f, r, int64(n))
			f.Close()
			if err != nil {
				t.Fatalf("n=%d %s: %v", n, name, err)
			}
			got, _ := os.ReadFile(f.Name())
			want := sha256.Sum256(data)
			if size != int64(n) || !bytes.Equal(sum, want[:]) || !bytes.Equal(got, data) {
				t.Fatalf("n=%d %s: size %d, hash ok %v, file ok %v", n, name, size, bytes.Equal(sum, want[:]), bytes.Equal(got, data))
			}
		}
	}
}

func TestCopyHashedErrors(t *testing.T) {
	data := bytes.Repeat([]byte{7}, 3*spoolChunk+10)
	newFile := func() *os.File {
		f, err := os.Create(filepath.Join(t.TempDir(), "x"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	// One byte over the limit, the limit falling inside a chunk.
	_, _, err := copyHashed(context.Background(), newFile(), bytes.NewReader(data), int64(len(data)-1))
	if lowrank.ErrorCode(err) != lowrank.ETOOLARGE {
		t.Errorf("over the limit: %v, want ETOOLARGE", err)
	}
	// A body cut short (what net/http reports for a short Content-Length
	// body) is an error, not a clean end.
	cut := io.MultiReader(bytes.NewReader(data[:spoolChunk+5]), iotest.ErrReader(io.ErrUnexpectedEOF))
	if _, _, err := copyHashed(context.Background(), newFile(), cut, 1<<40); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("cut body: %v, want io.ErrUnexpectedEOF", err)
	}
	boom := errors.New("client went away")
	broken := io.MultiReader(bytes.NewReader(data[:2*spoolChunk]), iotest.ErrReader(boom))
	if _, _, err := copyHashed(context.Background(), newFile(), broken, 1<<40); !errors.Is(err, boom) {
		t.Errorf("broken body: %v, want the reader's error", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := copyHashed(ctx, newFile(), bytes.NewReader(data), 1<<40); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}
}
