package pgsess

/*
#include "handles.h"
*/
import "C"

import (
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
)

func oidName(oid uint32) string {
	switch oid {
	case OIDBool:
		return "bool"
	case OIDBytea:
		return "bytea"
	case OIDInt8:
		return "int8"
	case OIDInt2:
		return "int2"
	case OIDInt4:
		return "int4"
	case OIDText:
		return "text"
	case OIDOid:
		return "oid"
	case OIDJSON:
		return "json"
	case OIDFloat4:
		return "float4"
	case OIDFloat8:
		return "float8"
	case OIDVarchar:
		return "varchar"
	case OIDDate:
		return "date"
	case OIDTimestamp:
		return "timestamp"
	case OIDTimestampTZ:
		return "timestamptz"
	case OIDNumeric:
		return "numeric"
	case OIDJSONB:
		return "jsonb"
	case OIDName:
		return "name"
	case OIDBpchar:
		return "bpchar"
	case OIDUUID:
		return "uuid"
	}
	return "type " + strconv.FormatUint(uint64(oid), 10)
}

func isTimeOID(oid uint32) bool {
	return oid == OIDDate || oid == OIDTimestamp || oid == OIDTimestampTZ
}

// numericText reports whether a column's text may be read as a number.
func numericText(oid uint32) bool {
	return oid != OIDBool && oid != OIDBytea && oid != OIDJSON && oid != OIDJSONB && !isTimeOID(oid)
}

func (res *Results) mismatch(col int, dest any) error {
	return res.colErr(TypeMismatch, col, "cannot scan a %s value into %T", oidName(res.cols[col].TypeOID), dest)
}

func (res *Results) parseInt(col int, s string, ok bool, bits int, dest any) (int64, error) {
	if !ok {
		return 0, res.nullErr(col, dest)
	}
	if !numericText(res.cols[col].TypeOID) {
		return 0, res.mismatch(col, dest)
	}
	n, err := strconv.ParseInt(s, 10, bits)
	if err != nil {
		return 0, res.numErr(col, s, dest, err)
	}
	return n, nil
}

func (res *Results) parseUint(col int, s string, ok bool, bits int, dest any) (uint64, error) {
	if !ok {
		return 0, res.nullErr(col, dest)
	}
	if !numericText(res.cols[col].TypeOID) {
		return 0, res.mismatch(col, dest)
	}
	n, err := strconv.ParseUint(s, 10, bits)
	if err != nil {
		return 0, res.numErr(col, s, dest, err)
	}
	return n, nil
}

func (res *Results) parseFloat(col int, s string, ok bool, bits int, dest any) (float64, error) {
	if !ok {
		return 0, res.nullErr(col, dest)
	}
	if !numericText(res.cols[col].TypeOID) {
		return 0, res.mismatch(col, dest)
	}
	f, err := strconv.ParseFloat(s, bits)
	if err != nil {
		return 0, res.numErr(col, s, dest, err)
	}
	return f, nil
}

func (res *Results) numErr(col int, s string, dest any, err error) error {
	if errors.Is(err, strconv.ErrRange) {
		return res.colErr(ValueOverflow, col, "%s value %q does not fit %T", oidName(res.cols[col].TypeOID), s, dest)
	}
	return res.colErr(TypeMismatch, col, "cannot scan %s value %q into %T", oidName(res.cols[col].TypeOID), s, dest)
}

func (res *Results) parseBool(col int, s string, ok bool, dest any) (bool, error) {
	if !ok {
		return false, res.nullErr(col, dest)
	}
	if res.cols[col].TypeOID == OIDBool {
		return s == "t", nil
	}
	if !numericText(res.cols[col].TypeOID) {
		return false, res.mismatch(col, dest)
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, res.colErr(TypeMismatch, col, "cannot scan %s value %q into %T", oidName(res.cols[col].TypeOID), s, dest)
	}
	return b, nil
}

// scanInt is parseInt of cell col of the current row in either format: a binary integer is
// decoded in Go and range-checked as ParseInt checks its text; other binary values are parsed
// from their text.
func (res *Results) scanInt(col, bits int, dest any) (int64, error) {
	s, ok := res.view(col)
	if res.bin[col] && ok && numericText(res.cols[col].TypeOID) {
		n, handled, err := res.binInt(col, s)
		if !handled {
			if s, ok, err = res.binText(col); err != nil {
				return 0, err
			}
			return res.parseInt(col, s, ok, bits, dest)
		}
		if err != nil {
			return 0, err
		}
		if bits < 64 && (n < -1<<(bits-1) || n > 1<<(bits-1)-1) {
			return 0, res.numErr(col, strconv.FormatInt(n, 10), dest, strconv.ErrRange)
		}
		return n, nil
	}
	return res.parseInt(col, s, ok, bits, dest)
}

// scanUint is parseUint in either format (a negative binary integer is a mismatch, as its text
// is for ParseUint).
func (res *Results) scanUint(col, bits int, dest any) (uint64, error) {
	s, ok := res.view(col)
	if res.bin[col] && ok && numericText(res.cols[col].TypeOID) {
		n, handled, err := res.binInt(col, s)
		if !handled {
			if s, ok, err = res.binText(col); err != nil {
				return 0, err
			}
			return res.parseUint(col, s, ok, bits, dest)
		}
		if err != nil {
			return 0, err
		}
		if n < 0 {
			return 0, res.numErr(col, strconv.FormatInt(n, 10), dest, strconv.ErrSyntax)
		}
		if bits < 64 && uint64(n) > 1<<bits-1 {
			return 0, res.numErr(col, strconv.FormatInt(n, 10), dest, strconv.ErrRange)
		}
		return uint64(n), nil
	}
	return res.parseUint(col, s, ok, bits, dest)
}

// scanFloat is parseFloat in either format: binary float8 (and float4 into either size) and
// integers in Go, a numeric into a float64 through pgsess_results_get_double (exact rounding),
// the rest from their text.
func (res *Results) scanFloat(col, bits int, dest any) (float64, error) {
	s, ok := res.view(col)
	oid := res.cols[col].TypeOID
	if res.bin[col] && ok && numericText(oid) {
		switch {
		case oid == OIDFloat4 && bits == 32: // the float32 itself, as ParseFloat(text, 32) gives
			if len(s) != 4 {
				return 0, res.badBinary(col, len(s))
			}
			return float64(math.Float32frombits(binary.BigEndian.Uint32(bytesOf(s)))), nil
		case oid == OIDFloat4, oid == OIDFloat8 && bits == 64:
			f, _, err := res.binFloat(col, s)
			return f, err
		case oid == OIDNumeric && bits == 64:
			var f C.double
			rc := C.pgsess_results_get_double(res.r, C.size_t(res.row), C.size_t(col), &f)
			if rc == C.PGSESS_OK {
				if f != f {
					return math.NaN(), nil // the NaN strconv.ParseFloat gives for "NaN"
				}
				return float64(f), nil
			}
			t, _, _ := res.binText(col)
			if Code(rc) == ValueOverflow {
				return 0, res.numErr(col, t, dest, strconv.ErrRange)
			}
			return 0, res.colErr(Code(rc), col, "cannot scan numeric value %q into %T", t, dest)
		}
		if n, handled, err := res.binInt(col, s); handled {
			if err != nil {
				return 0, err
			}
			if bits == 64 {
				return float64(n), nil
			}
		}
		var err error
		if s, ok, err = res.binText(col); err != nil {
			return 0, err
		}
	}
	return res.parseFloat(col, s, ok, bits, dest)
}

// scanBool is parseBool in either format.
func (res *Results) scanBool(col int, dest any) (bool, error) {
	s, ok := res.view(col)
	if res.bin[col] && ok {
		if res.cols[col].TypeOID == OIDBool {
			return res.binBool(col, s)
		}
		if numericText(res.cols[col].TypeOID) {
			var err error
			if s, ok, err = res.binText(col); err != nil {
				return false, err
			}
		}
	}
	return res.parseBool(col, s, ok, dest)
}

// scanString is the cell's text in either format, copied out of the library's memory.
func (res *Results) scanString(col int, dest any) (string, error) {
	s, ok, err := res.textOf(col)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", res.nullErr(col, dest)
	}
	return strings.Clone(s), nil
}

// scanUUID reads a uuid cell (its text or its 16 binary bytes).
func (res *Results) scanUUID(col int, dest any) ([16]byte, error) {
	var u [16]byte
	s, ok := res.view(col)
	switch {
	case !ok:
		return u, res.nullErr(col, dest)
	case res.cols[col].TypeOID != OIDUUID:
		return u, res.mismatch(col, dest)
	case res.bin[col]:
		b, err := res.binUUID(col, s)
		if err == nil {
			copy(u[:], b)
		}
		return u, err
	}
	u, valid := parseUUID(s)
	if !valid {
		return u, res.colErr(TypeMismatch, col, "bad uuid text %q", s)
	}
	return u, nil
}

func (res *Results) scanTime(col int, ok bool, dest any) (time.Time, error) {
	if !ok {
		return time.Time{}, res.nullErr(col, dest)
	}
	if !isTimeOID(res.cols[col].TypeOID) {
		return time.Time{}, res.mismatch(col, dest)
	}
	t, inf, err := res.timeValue(col)
	if err != nil {
		return t, err
	}
	if inf != 0 {
		return t, res.colErr(ValueOverflow, col, "%s is infinite; scan into *any or *string", oidName(res.cols[col].TypeOID))
	}
	return t, nil
}

// scanCol converts cell col of the current row into dest.
func (res *Results) scanCol(col int, dest any) error {
	if dest == nil {
		return nil
	}
	s, ok := res.view(col)
	var err error
	switch d := dest.(type) {
	case *any:
		var v any
		if v, err = res.value(col); err == nil {
			*d = v
		}
		return err
	case *string:
		var t string
		if t, err = res.scanString(col, dest); err == nil {
			*d = t
		}
		return err
	case *[]byte:
		switch {
		case !ok:
			*d = nil
		case res.cols[col].TypeOID == OIDBytea:
			var b []byte
			if b, err = res.bytea(col, s); err == nil {
				*d = b
			}
		default:
			var t string
			if t, _, err = res.textOf(col); err == nil {
				*d = []byte(t)
			}
		}
		return err
	case *json.RawMessage:
		if !ok {
			*d = nil
			return nil
		}
		var t string
		if t, _, err = res.textOf(col); err == nil {
			*d = json.RawMessage(t)
		}
		return err
	case *[16]byte:
		var u [16]byte
		if u, err = res.scanUUID(col, dest); err == nil {
			*d = u
		}
		return err
	case *int64:
		var n int64
		if n, err = res.scanInt(col, 64, dest); err == nil {
			*d = n
		}
		return err
	case *int32:
		var n int64
		if n, err = res.scanInt(col, 32, dest); err == nil {
			*d = int32(n)
		}
		return err
	case *int:
		var n int64
		if n, err = res.scanInt(col, strconv.IntSize, dest); err == nil {
			*d = int(n)
		}
		return err
	case *int16:
		var n int64
		if n, err = res.scanInt(col, 16, dest); err == nil {
			*d = int16(n)
		}
		return err
	case *int8:
		var n int64
		if n, err = res.scanInt(col, 8, dest); err == nil {
			*d = int8(n)
		}
		return err
	case *uint64:
		var n uint64
		if n, err = res.scanUint(col, 64, dest); err == nil {
			*d = n
		}
		return err
	case *uint32:
		var n uint64
		if n, err = res.scanUint(col, 32, dest); err == nil {
			*d = uint32(n)
		}
		return err
	case *uint:
		var n uint64
		if n, err = res.scanUint(col, strconv.IntSize, dest); err == nil {
			*d = uint(n)
		}
		return err
	case *float64:
		var f float64
		if f, err = res.scanFloat(col, 64, dest); err == nil {
			*d = f
		}
		return err
	case *float32:
		var f float64
		if f, err = res.scanFloat(col, 32, dest); err == nil {
			*d = float32(f)
		}
		return err
	case *bool:
		var b bool
		if b, err = res.scanBool(col, dest); err == nil {
			*d = b
		}
		return err
	case *time.Time:
		var t time.Time
		if t, err = res.scanTime(col, ok, dest); err == nil {
			*d = t
		}
		return err
	case *time.Duration:
		if res.cols[col].TypeOID != OIDInterval {
			var n int64
			if n, err = res.scanInt(col, 64, dest); err == nil {
				*d = time.Duration(n)
			}
			return err
		}
		if !ok {
			return res.nullErr(col, dest)
		}
		var t string
		if t, _, err = res.textOf(col); err != nil {
			return err
		}
		iv, err := parseInterval(t)
		if err != nil {
			return res.colErr(TypeMismatch, col, "%v", err)
		}
		dur, err := iv.Duration()
		if err != nil {
			return res.colErr(ValueOverflow, col, "%v", err)
		}
		*d = dur
		return nil
	case sql.Scanner:
		var v any
		if v, err = res.value(col); err != nil {
			return err
		}
		if err = d.Scan(v); err != nil {
			return res.colErr(TypeMismatch, col, "%T.Scan: %v", dest, err)
		}
		return nil
	}
	return res.scanReflect(col, ok, dest)
}

// scanReflect handles **T (nil for NULL) and named types of the supported kinds.
func (res *Results) scanReflect(col int, ok bool, dest any) error {
	rv := reflect.ValueOf(dest)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return res.colErr(InterfaceError, col, "Scan destination %T is not a non-nil pointer", dest)
	}
	e := rv.Elem()
	switch e.Kind() {
	case reflect.Pointer:
		if !ok {
			e.Set(reflect.Zero(e.Type()))
			return nil
		}
		nv := reflect.New(e.Type().Elem())
		if err := res.scanCol(col, nv.Interface()); err != nil {
			return err
		}
		e.Set(nv)
		return nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := res.scanInt(col, e.Type().Bits(), dest)
		if err == nil {
			e.SetInt(n)
		}
		return err
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := res.scanUint(col, e.Type().Bits(), dest)
		if err == nil {
			e.SetUint(n)
		}
		return err
	case reflect.Float32, reflect.Float64:
		f, err := res.scanFloat(col, e.Type().Bits(), dest)
		if err == nil {
			e.SetFloat(f)
		}
		return err
	case reflect.Bool:
		b, err := res.scanBool(col, dest)
		if err == nil {
			e.SetBool(b)
		}
		return err
	case reflect.String:
		t, err := res.scanString(col, dest)
		if err == nil {
			e.SetString(t)
		}
		return err
	case reflect.Slice:
		// An array column into a slice (*[]int64, *[]string, *[]*float64, ...).
		if !ok {
			e.Set(reflect.Zero(e.Type()))
			return nil
		}
		t, _, err := res.textOf(col)
		if err != nil {
			return err
		}
		if err := scanArray(t, dest); err != nil {
			return res.colErr(TypeMismatch, col, "%v", err)
		}
		return nil
	}
	return res.colErr(TypeMismatch, col, "unsupported Scan destination %s", fmt.Sprintf("%T", dest))
}
