package pgsess

/*
#include <string.h>
#include "handles.h"
*/
import "C"

import (
	"encoding/binary"
	"math"
	"strconv"
	"unsafe"
)

// Binary results (QueryBinary): each value is the type's binary send form, big-endian. Scan
// and Values decode the types below in Go from the cell's bytes, which Next already fetched;
// any other type, and a conversion that needs the value's text (a float scanned into a string,
// a numeric, ...), reads the server's text form through pgsess_results_get_text, one cgo call
// per cell. Either way the Go value is the one Query's text gives.

const (
	// pgEpochMicros and pgEpochDays are 2000-01-01 00:00:00, PostgreSQL's epoch for binary
	// dates and timestamps, in Unix microseconds and days.
	pgEpochMicros = 946684800000000
	pgEpochDays   = 10957
	microsPerDay  = 86400000000
)

// binaryText reports whether a binary value of type oid is its text's bytes.
func binaryText(oid uint32) bool {
	switch oid {
	case OIDText, OIDVarchar, OIDName, OIDBpchar, OIDJSON:
		return true
	}
	return false
}

// binInt decodes a binary int2/int4/int8/oid value (s, as view gives it); handled is false for
// other types.
func (res *Results) binInt(col int, s string) (n int64, handled bool, err error) {
	oid := res.cols[col].TypeOID
	var size int
	switch oid {
	case OIDInt2:
		size = 2
	case OIDInt4, OIDOid:
		size = 4
	case OIDInt8:
		size = 8
	default:
		return 0, false, nil
	}
	if len(s) != size {
		return 0, true, res.badBinary(col, len(s))
	}
	switch {
	case oid == OIDInt2:
		n = int64(int16(binary.BigEndian.Uint16(bytesOf(s))))
	case oid == OIDOid:
		n = int64(binary.BigEndian.Uint32(bytesOf(s)))
	case size == 4:
		n = int64(int32(binary.BigEndian.Uint32(bytesOf(s))))
	default:
		n = int64(binary.BigEndian.Uint64(bytesOf(s)))
	}
	return n, true, nil
}

// binFloat decodes a binary float4/float8 value as the double its text reads as: a float4 is
// the double nearest its shortest decimal (0.1::float4 is 0.1), as PostgreSQL prints it.
func (res *Results) binFloat(col int, s string) (f float64, handled bool, err error) {
	switch res.cols[col].TypeOID {
	case OIDFloat8:
		if len(s) != 8 {
			return 0, true, res.badBinary(col, len(s))
		}
		f = math.Float64frombits(binary.BigEndian.Uint64(bytesOf(s)))
		if f != f {
			return math.NaN(), true, nil // the NaN strconv.ParseFloat gives for the text "NaN"
		}
		return f, true, nil
	case OIDFloat4:
		if len(s) != 4 {
			return 0, true, res.badBinary(col, len(s))
		}
		return float4Double(math.Float32frombits(binary.BigEndian.Uint32(bytesOf(s)))), true, nil
	}
	return 0, false, nil
}

// float4Double is the double nearest f's shortest decimal, which is what parsing a float4's
// text as a float64 gives.
func float4Double(f float32) float64 {
	d := float64(f)
	if d != d {
		return math.NaN() // the NaN strconv.ParseFloat gives for the text "NaN"
	}
	if math.IsInf(d, 0) {
		return d
	}
	var buf [32]byte
	b := strconv.AppendFloat(buf[:0], d, 'g', -1, 32)
	d, _ = strconv.ParseFloat(*(*string)(unsafe.Pointer(&b)), 64)
	return d
}

// binBool decodes a binary bool (one byte).
func (res *Results) binBool(col int, s string) (bool, error) {
	if len(s) != 1 {
		return false, res.badBinary(col, len(s))
	}
	return s[0] != 0, nil
}

// binMicros decodes a binary date, timestamp or timestamptz as timeValue reports the text:
// microseconds since 1970-01-01, inf +1/-1 for infinity/-infinity.
func (res *Results) binMicros(col int, s string) (us int64, inf int, err error) {
	if res.cols[col].TypeOID == OIDDate {
		if len(s) != 4 {
			return 0, 0, res.badBinary(col, len(s))
		}
		days := int32(binary.BigEndian.Uint32(bytesOf(s)))
		d := int64(days) + pgEpochDays
		switch {
		case days == math.MaxInt32:
			return 0, 1, nil
		case days == math.MinInt32:
			return 0, -1, nil
		case d > math.MaxInt64/microsPerDay || d < math.MinInt64/microsPerDay:
			return 0, 0, res.colErr(ValueOverflow, col, "date value is past the 64-bit microsecond range since 1970 (after the year 294246)")
		}
		return d * microsPerDay, 0, nil
	}
	if len(s) != 8 {
		return 0, 0, res.badBinary(col, len(s))
	}
	v := int64(binary.BigEndian.Uint64(bytesOf(s)))
	switch {
	case v == math.MaxInt64:
		return 0, 1, nil
	case v == math.MinInt64:
		return 0, -1, nil
	case v > math.MaxInt64-pgEpochMicros:
		return 0, 0, res.colErr(ValueOverflow, col, "%s value is past the 64-bit microsecond range since 1970 (after the year 294246)",
			oidName(res.cols[col].TypeOID))
	}
	return v + pgEpochMicros, 0, nil
}

// binJSONB is a binary jsonb value's text: the bytes after its version byte (1).
func (res *Results) binJSONB(col int, s string) (string, error) {
	if len(s) < 1 || s[0] != 1 {
		return "", res.colErr(TypeMismatch, col, "binary jsonb value without version byte 1")
	}
	return s[1:], nil
}

// binUUID checks a binary uuid value (16 bytes).
func (res *Results) binUUID(col int, s string) (string, error) {
	if len(s) != 16 {
		return "", res.badBinary(col, len(s))
	}
	return s, nil
}

// formatUUID writes 16 bytes as PostgreSQL prints a uuid (lower-case hex, 8-4-4-4-12).
func formatUUID(b string) string {
	const digits = "0123456789abcdef"
	var out [36]byte
	j := 0
	for i := 0; i < 16; i++ {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out[j] = '-'
			j++
		}
		out[j], out[j+1] = digits[b[i]>>4], digits[b[i]&15]
		j += 2
	}
	return string(out[:])
}

// parseUUID reads a uuid's text (as the server prints it, or with upper-case digits, braces or
// without hyphens, as uuid_in takes it) into 16 bytes.
func parseUUID(s string) (u [16]byte, ok bool) {
	if len(s) >= 2 && s[0] == '{' && s[len(s)-1] == '}' {
		s = s[1 : len(s)-1]
	}
	j := 0
	for i := 0; i < len(s); {
		if s[i] == '-' && j > 0 && j%2 == 0 {
			i++
			continue
		}
		if j == 32 || i+1 >= len(s) {
			return u, false
		}
		hi, ok1 := unhex(s[i])
		lo, ok2 := unhex(s[i+1])
		if !ok1 || !ok2 {
			return u, false
		}
		u[j/2] = hi<<4 | lo
		j += 2
		i += 2
	}
	return u, j == 32
}

func (res *Results) badBinary(col, n int) error {
	return res.colErr(TypeMismatch, col, "binary %s value of %d bytes", oidName(res.cols[col].TypeOID), n)
}

// binText is the server's text form of the current row's binary cell col (ok false for NULL):
// the same bytes for the text types, rendered in Go for integers, bool and uuid, and through
// pgsess_results_get_text for the rest (which refuses types whose text depends on settings it
// cannot see, or that it does not render). The string may view the library's memory: parse or
// copy it.
func (res *Results) binText(col int) (s string, ok bool, err error) {
	s, ok = res.view(col)
	if !ok {
		return "", false, nil
	}
	oid := res.cols[col].TypeOID
	switch {
	case binaryText(oid):
		return s, true, nil
	case oid == OIDJSONB:
		s, err = res.binJSONB(col, s)
		return s, true, err
	case oid == OIDBool:
		b, err := res.binBool(col, s)
		if b {
			return "t", true, err
		}
		return "f", true, err
	case oid == OIDUUID:
		if s, err = res.binUUID(col, s); err != nil {
			return "", true, err
		}
		return formatUUID(s), true, nil
	}
	if n, handled, err := res.binInt(col, s); handled {
		if err != nil {
			return "", true, err
		}
		return strconv.FormatInt(n, 10), true, nil
	}
	return res.libText(res.row, col)
}

// libText is pgsess_results_get_text of a cell, viewed in the library's memory.
func (res *Results) libText(row, col int) (string, bool, error) {
	var p *C.char
	var cerr *C.pgsess_error
	rc := C.pgsess_results_get_text(res.r, C.size_t(row), C.size_t(col), &p, &cerr)
	switch rc {
	case C.PGSESS_OK:
	case C.PGSESS_NULL_VALUE:
		if cerr != nil {
			C.pgsess_error_free(cerr)
		}
		return "", false, nil
	default:
		err := takeError(cerr, "pgsess_results_get_text")
		if e, isErr := err.(*Error); isErr {
			e.Message = "column " + strconv.Quote(res.cols[col].Name) + " (row " + strconv.Itoa(row) + "): " +
				e.Message + " (Query gives the server's own text)"
		}
		return "", true, err
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(p)), int(C.strlen(p)))
	return *(*string)(unsafe.Pointer(&b)), true, nil
}

// textOf is the current row's cell col as text, whatever the column's format, for the
// conversions that parse text.
func (res *Results) textOf(col int) (string, bool, error) {
	if res.bin[col] {
		return res.binText(col)
	}
	s, ok := res.view(col)
	return s, ok, nil
}

// bytesOf views a string's bytes (it must not be modified).
func bytesOf(s string) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice(*(**byte)(unsafe.Pointer(&s)), len(s)) // unsafe.StringData, which Go 1.19 lacks
}
