package pgsess

/*
#include <stdlib.h>
#include <string.h>
#include "handles.h"
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// Arrays in their text form go through the library (pgsess_array_literal and
// pgsess_array_split), so that the quoting and splitting rules are the same in every binding.

// appendArray writes a one-dimensional slice (of strings, integers, floats, bools, []byte,
// time.Time, or pointers to them, nil meaning NULL) as a PostgreSQL array literal, each element
// quoted: {"1","2",NULL}. The server converts it to the parameter's array type. A []byte
// element is written as bytea's hex text.
func appendArray(buf []byte, n int, elem func(i int) (any, bool)) ([]byte, error) {
	texts := make([][]byte, n)
	nulls := make([]bool, n)
	total := 0
	for i := 0; i < n; i++ {
		v, isNull := elem(i)
		if isNull {
			nulls[i] = true
			continue
		}
		switch e := v.(type) {
		case []byte:
			if e == nil {
				nulls[i] = true
				continue
			}
			const hexDigits = "0123456789abcdef"
			t := make([]byte, 0, 2+2*len(e))
			t = append(t, `\x`...)
			for _, c := range e {
				t = append(t, hexDigits[c>>4], hexDigits[c&15])
			}
			texts[i] = t
		default:
			t, null, bin, err := appendArg(nil, v, 1)
			if err != nil {
				return buf, fmt.Errorf("element %d: %w", i, err)
			}
			if bin {
				return buf, fmt.Errorf("element %d: a binary value cannot be an array element", i)
			}
			if null {
				nulls[i] = true
				continue
			}
			texts[i] = t
		}
		total += len(texts[i])
	}
	// The elements' bytes, their pointers and lengths in C memory (C may not keep Go pointers).
	block := C.malloc(C.size_t(total + 1))
	defer C.free(block)
	slots := n
	if slots == 0 {
		slots = 1
	}
	ptrs := (*[1 << 28]*C.char)(C.malloc(C.size_t(slots) * C.size_t(unsafe.Sizeof((*C.char)(nil)))))[:slots:slots]
	defer C.free(unsafe.Pointer(&ptrs[0]))
	lens := (*[1 << 28]C.size_t)(C.malloc(C.size_t(slots) * C.size_t(unsafe.Sizeof(C.size_t(0)))))[:slots:slots]
	defer C.free(unsafe.Pointer(&lens[0]))
	at := 0
	mem := unsafe.Slice((*byte)(block), total+1)
	for i := 0; i < n; i++ {
		if nulls[i] {
			ptrs[i], lens[i] = nil, 0
			continue
		}
		copy(mem[at:], texts[i])
		ptrs[i] = (*C.char)(unsafe.Pointer(&mem[at]))
		lens[i] = C.size_t(len(texts[i]))
		at += len(texts[i])
	}
	var cerr *C.pgsess_error
	lit := C.pgsess_array_literal(&ptrs[0], &lens[0], C.size_t(n), nil, 0, &cerr)
	if lit == nil {
		return buf, takeError(cerr, "pgsess_array_literal")
	}
	defer C.pgsess_string_free(lit)
	return append(buf, unsafe.Slice((*byte)(unsafe.Pointer(lit)), int(C.strlen(lit)))...), nil
}

// parseArray splits the text of a one-dimensional array ("{1,2,NULL}", `{"a b","c\"d"}`) into
// its elements; null[i] marks NULL. Bounds decorations ("[0:2]={...}") are skipped; a
// multi-dimensional array is an error (it does not scan into a slice).
func parseArray(s string) (elems []string, null []bool, err error) {
	n := len(s)
	max := n/2 + 1
	text := C.CBytes([]byte(s))
	defer C.free(text)
	buf := C.malloc(C.size_t(n + 1))
	defer C.free(buf)
	cel := (*[1 << 28]*C.char)(C.malloc(C.size_t(max) * C.size_t(unsafe.Sizeof((*C.char)(nil)))))[:max:max]
	defer C.free(unsafe.Pointer(&cel[0]))
	clen := (*[1 << 28]C.size_t)(C.malloc(C.size_t(max) * C.size_t(unsafe.Sizeof(C.size_t(0)))))[:max:max]
	defer C.free(unsafe.Pointer(&clen[0]))
	var count, ndims C.size_t
	var dims [6]C.size_t
	var cerr *C.pgsess_error
	code := C.pgsess_array_split((*C.char)(text), C.size_t(n), ',', (*C.char)(buf), C.size_t(n+1), &cel[0], &clen[0],
		C.size_t(max), &count, &dims[0], &ndims, &cerr)
	if code != C.PGSESS_OK {
		return nil, nil, takeError(cerr, "pgsess_array_split")
	}
	if ndims > 1 {
		return nil, nil, fmt.Errorf("a %d-dimensional array does not scan into a slice", ndims)
	}
	elems = make([]string, count)
	null = make([]bool, count)
	for i := 0; i < int(count); i++ {
		if cel[i] == nil {
			null[i] = true
			continue
		}
		elems[i] = C.GoStringN(cel[i], C.int(clen[i]))
	}
	return elems, null, nil
}
