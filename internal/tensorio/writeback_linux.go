package tensorio

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing a file range to disk
// without waiting for it (sync_file_range(2) with SYNC_FILE_RANGE_WRITE).
// It is only a hint that shortens the fsync that follows; an error is
// harmless and ignored.
func startWriteback(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
