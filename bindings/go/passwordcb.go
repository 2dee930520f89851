package pgsess

/*
#include <stdint.h>
#include <stddef.h>
*/
import "C"

import (
	"runtime/cgo"
	"strings"
	"unsafe"
)

// goPasswordCallback is the pgsess_password_callback of every PasswordProvider: data is the
// provider's cgo.Handle. It writes the password, NUL-terminated, into the library's buffer and
// returns its length; -1 uses the configured password; -2 fails the attempt (an error, a panic,
// a password with a NUL byte or too long for the buffer). No panic leaves it.
//
//export goPasswordCallback
func goPasswordCallback(host *C.char, port C.uint16_t, user *C.char, buf *C.char, size C.size_t,
	data unsafe.Pointer) (rc C.int32_t) {
	defer func() {
		if recover() != nil {
			rc = -2
		}
	}()
	p, ok := cgo.Handle(uintptr(data)).Value().(*PasswordProvider)
	if !ok || p.fn == nil {
		return -2
	}
	password, use, err := p.fn(C.GoString(host), uint16(port), C.GoString(user))
	if err != nil {
		return -2
	}
	if !use {
		return -1
	}
	if strings.IndexByte(password, 0) >= 0 || uint64(len(password)) >= uint64(size) {
		return -2
	}
	out := unsafe.Slice((*byte)(unsafe.Pointer(buf)), int(size))
	n := copy(out, password)
	out[n] = 0
	return C.int32_t(n)
}
