package kernel

import (
	"golang.org/x/sys/unix"
)

// ReadMem copies len(buf) bytes at addr in process pid into buf with
// process_vm_readv(2) and returns how many it got; a short read happens at
// the end of a mapping. The caller must confirm the notification with
// NotifIDValid afterwards before trusting the bytes.
func ReadMem(pid int, addr uint64, buf []byte) (int, error) {
	if len(buf) == 0 {
		return 0, nil
	}
	local := unix.Iovec{Base: &buf[0]}
	local.SetLen(len(buf))
	remote := unix.RemoteIovec{Base: uintptr(addr), Len: len(buf)}
	n, err := unix.ProcessVMReadv(pid, []unix.Iovec{local}, []unix.RemoteIovec{remote}, 0)
	return n, err
}

// ReadCString reads a NUL-terminated string of at most max bytes at addr
// in process pid, page by page so that a string ending just before an
// unmapped page still reads. It reports whether the terminator was found.
func ReadCString(pid int, addr uint64, buf []byte) (string, bool, error) {
	const page = 4096
	n := 0
	for n < len(buf) {
		chunk := page - int((addr+uint64(n))%page)
		if chunk > len(buf)-n {
			chunk = len(buf) - n
		}
		got, err := ReadMem(pid, addr+uint64(n), buf[n:n+chunk])
		if err != nil {
			return "", false, err
		}
		for i := n; i < n+got; i++ {
			if buf[i] == 0 {
				return string(buf[:i]), true, nil
			}
		}
		n += got
		if got < chunk {
			break
		}
	}
	return string(buf[:n]), false, nil
}
