package pgsess

/*
#include <stdlib.h>
#include <string.h>
#include "handles.h"
*/
import "C"

import (
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"time"
	"unsafe"
)

// params holds statement parameters in C memory: one block (smallBlocks) with the arrays of value
// pointers, lengths and formats first and then every value (each NUL-terminated). All of it C
// memory, so the pointers passed to C cost cgo no Go-pointer check, and nothing is copied by a
// cgo call.
type params struct {
	n       int
	binary  bool           // some parameter is binary: use pgsess_query_params
	block   unsafe.Pointer // from smallBlocks
	size    uintptr        // block's size
	values  []*C.char      // in block
	lengths []C.int32_t    // in block, binary statements only
	formats []C.int32_t    // in block, binary statements only
}

type span struct {
	off, len int
	null     bool
	binary   bool
}

// newParams converts args; a []byte is a binary parameter.
func newParams(args []any) (params, error) {
	p := params{n: len(args)}
	if len(args) == 0 {
		return p, nil
	}
	var few [8]span
	spans := few[:0]
	if len(args) > len(few) {
		spans = make([]span, 0, len(args))
	}
	var data []byte
	for i, a := range args {
		off := len(data)
		var null, bin bool
		var err error
		data, null, bin, err = appendArg(data, a, 0)
		if err != nil {
			return params{}, errorf(InterfaceError, "argument $%d (%T): %v", i+1, a, err)
		}
		spans = append(spans, span{off: off, len: len(data) - off, null: null, binary: bin})
		if bin {
			if len(data)-off > math.MaxInt32 {
				return params{}, errorf(InterfaceError, "argument $%d: %d bytes is too long", i+1, len(data)-off)
			}
			p.binary = true
		}
		if !null {
			data = append(data, 0)
		}
	}
	n := len(args)
	ptrs := uintptr(n) * unsafe.Sizeof((*C.char)(nil))
	ints := uintptr(0)
	if p.binary {
		ints = 2 * uintptr(n) * unsafe.Sizeof(C.int32_t(0))
	}
	p.size = ptrs + ints + uintptr(len(data)) + 1
	p.block = smallBlocks.get(p.size)
	p.values = unsafe.Slice((**C.char)(p.block), n)
	if p.binary {
		p.lengths = unsafe.Slice((*C.int32_t)(unsafe.Add(p.block, ptrs)), n)
		p.formats = unsafe.Slice((*C.int32_t)(unsafe.Add(p.block, ptrs+ints/2)), n)
	}
	values := unsafe.Add(p.block, ptrs+ints)
	copy(unsafe.Slice((*byte)(values), len(data)), data)
	for i, sp := range spans {
		p.values[i] = nil
		if !sp.null {
			p.values[i] = (*C.char)(unsafe.Add(values, sp.off))
		}
		if p.binary {
			p.lengths[i] = C.int32_t(sp.len)
			p.formats[i] = 0
			if sp.binary {
				p.formats[i] = 1
			}
		}
	}
	return p, nil
}

func (p *params) free() {
	if p.block != nil {
		smallBlocks.put(p.block, p.size)
		p.block = nil
	}
}

func (p *params) valuesPtr() **C.char {
	if p.n == 0 {
		return nil
	}
	return &p.values[0]
}

func (p *params) lengthsPtr() *C.int32_t {
	if len(p.lengths) == 0 {
		return nil
	}
	return &p.lengths[0]
}

func (p *params) formatsPtr() *C.int32_t {
	if len(p.formats) == 0 {
		return nil
	}
	return &p.formats[0]
}

// appendArg appends the parameter form of a to buf.
func appendArg(buf []byte, a any, depth int) (out []byte, null, binary bool, err error) {
	if depth > 8 {
		return buf, false, false, fmt.Errorf("too many levels of indirection")
	}
	switch v := a.(type) {
	case nil:
		return buf, true, false, nil
	case string:
		return appendText(buf, v)
	case json.RawMessage:
		if v == nil {
			return buf, true, false, nil
		}
		return appendText(buf, string(v))
	case []byte:
		if v == nil {
			return buf, true, false, nil
		}
		return append(buf, v...), false, true, nil
	case bool:
		if v {
			return append(buf, "true"...), false, false, nil
		}
		return append(buf, "false"...), false, false, nil
	case int:
		return strconv.AppendInt(buf, int64(v), 10), false, false, nil
	case int8:
		return strconv.AppendInt(buf, int64(v), 10), false, false, nil
	case int16:
		return strconv.AppendInt(buf, int64(v), 10), false, false, nil
	case int32:
		return strconv.AppendInt(buf, int64(v), 10), false, false, nil
	case int64:
		return strconv.AppendInt(buf, v, 10), false, false, nil
	case uint:
		return strconv.AppendUint(buf, uint64(v), 10), false, false, nil
	case uint8:
		return strconv.AppendUint(buf, uint64(v), 10), false, false, nil
	case uint16:
		return strconv.AppendUint(buf, uint64(v), 10), false, false, nil
	case uint32:
		return strconv.AppendUint(buf, uint64(v), 10), false, false, nil
	case uint64:
		return strconv.AppendUint(buf, v, 10), false, false, nil
	case uintptr:
		return strconv.AppendUint(buf, uint64(v), 10), false, false, nil
	case float32:
		return appendFloat(buf, float64(v), 32), false, false, nil
	case float64:
		return appendFloat(buf, v, 64), false, false, nil
	case time.Time:
		return v.AppendFormat(buf, time.RFC3339Nano), false, false, nil
	case time.Duration:
		// An interval, exactly (to the microsecond the server keeps).
		buf = strconv.AppendInt(buf, int64(v/time.Microsecond), 10)
		return append(buf, " microseconds"...), false, false, nil
	case driver.Valuer:
		if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && rv.IsNil() {
			return buf, true, false, nil
		}
		dv, err := v.Value()
		if err != nil {
			return buf, false, false, err
		}
		return appendArg(buf, dv, depth+1)
	case fmt.Stringer:
		if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && rv.IsNil() {
			return buf, true, false, nil
		}
		return appendText(buf, v.String())
	}
	// Named types of the kinds above (type ID int64), and pointers to any supported value.
	rv := reflect.ValueOf(a)
	switch rv.Kind() {
	case reflect.Pointer:
		if rv.IsNil() {
			return buf, true, false, nil
		}
		return appendArg(buf, rv.Elem().Interface(), depth+1)
	case reflect.String:
		return appendArg(buf, rv.String(), depth+1)
	case reflect.Bool:
		return appendArg(buf, rv.Bool(), depth+1)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.AppendInt(buf, rv.Int(), 10), false, false, nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return strconv.AppendUint(buf, rv.Uint(), 10), false, false, nil
	case reflect.Float32:
		return appendFloat(buf, rv.Float(), 32), false, false, nil
	case reflect.Float64:
		return appendFloat(buf, rv.Float(), 64), false, false, nil
	case reflect.Slice:
		if rv.Type().Elem().Kind() == reflect.Uint8 {
			return appendArg(buf, rv.Bytes(), depth+1)
		}
		if rv.IsNil() {
			return buf, true, false, nil
		}
		out, err := appendArray(buf, rv.Len(), func(i int) (any, bool) {
			e := rv.Index(i)
			if e.Kind() == reflect.Pointer && e.IsNil() {
				return nil, true
			}
			return e.Interface(), false
		})
		return out, false, false, err
	}
	return buf, false, false, fmt.Errorf("unsupported parameter type %T (use nil, string, []byte, bool, "+
		"an integer or float, time.Time, time.Duration, a slice (an array), fmt.Stringer or driver.Valuer)", a)
}

func appendText(buf []byte, s string) ([]byte, bool, bool, error) {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return buf, false, false, fmt.Errorf("text contains a zero byte at offset %d "+
				"(PostgreSQL text cannot hold one; use []byte for bytea)", i)
		}
	}
	return append(buf, s...), false, false, nil
}

// appendFloat writes the shortest exact form; NaN and the infinities in the spelling that
// PostgreSQL's float and numeric input both accept.
func appendFloat(buf []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(buf, "NaN"...)
	case math.IsInf(f, 1):
		return append(buf, "Infinity"...)
	case math.IsInf(f, -1):
		return append(buf, "-Infinity"...)
	}
	return strconv.AppendFloat(buf, f, 'g', -1, bits)
}
