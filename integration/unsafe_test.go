package integration

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

func unsafePointer(p *byte) unsafe.Pointer { return unsafe.Pointer(p) }

func unsafeStat(st *unix.Stat_t) unsafe.Pointer { return unsafe.Pointer(st) }
