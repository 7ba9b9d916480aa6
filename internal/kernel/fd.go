package kernel

import (
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// FD is an owned file descriptor. Close is idempotent and safe to call from
// several goroutines; Int returns -1 once closed.
type FD struct {
	fd atomic.Int64
}

// NewFD takes ownership of fd.
func NewFD(fd int) *FD {
	f := &FD{}
	f.fd.Store(int64(fd))
	return f
}

// Int returns the descriptor number, or -1 after Close.
func (f *FD) Int() int { return int(f.fd.Load()) }

// Close closes the descriptor once.
func (f *FD) Close() error {
	fd := f.fd.Swap(-1)
	if fd < 0 {
		return nil
	}
	return unix.Close(int(fd))
}
