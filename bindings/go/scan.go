package pgsess

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
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
		if !ok {
			return res.nullErr(col, dest)
		}
		*d = strings.Clone(s)
		return nil
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
			*d = []byte(s)
		}
		return err
	case *json.RawMessage:
		if !ok {
			*d = nil
		} else {
			*d = json.RawMessage(s)
		}
		return nil
	case *int64:
		var n int64
		if n, err = res.parseInt(col, s, ok, 64, dest); err == nil {
			*d = n
		}
		return err
	case *int32:
		var n int64
		if n, err = res.parseInt(col, s, ok, 32, dest); err == nil {
			*d = int32(n)
		}
		return err
	case *int:
		var n int64
		if n, err = res.parseInt(col, s, ok, strconv.IntSize, dest); err == nil {
			*d = int(n)
		}
		return err
	case *int16:
		var n int64
		if n, err = res.parseInt(col, s, ok, 16, dest); err == nil {
			*d = int16(n)
		}
		return err
	case *int8:
		var n int64
		if n, err = res.parseInt(col, s, ok, 8, dest); err == nil {
			*d = int8(n)
		}
		return err
	case *uint64:
		var n uint64
		if n, err = res.parseUint(col, s, ok, 64, dest); err == nil {
			*d = n
		}
		return err
	case *uint32:
		var n uint64
		if n, err = res.parseUint(col, s, ok, 32, dest); err == nil {
			*d = uint32(n)
		}
		return err
	case *uint:
		var n uint64
		if n, err = res.parseUint(col, s, ok, strconv.IntSize, dest); err == nil {
			*d = uint(n)
		}
		return err
	case *float64:
		var f float64
		if f, err = res.parseFloat(col, s, ok, 64, dest); err == nil {
			*d = f
		}
		return err
	case *float32:
		var f float64
		if f, err = res.parseFloat(col, s, ok, 32, dest); err == nil {
			*d = float32(f)
		}
		return err
	case *bool:
		var b bool
		if b, err = res.parseBool(col, s, ok, dest); err == nil {
			*d = b
		}
		return err
	case *time.Time:
		var t time.Time
		if t, err = res.scanTime(col, ok, dest); err == nil {
			*d = t
		}
		return err
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
	return res.scanReflect(col, s, ok, dest)
}

// scanReflect handles **T (nil for NULL) and named types of the supported kinds.
func (res *Results) scanReflect(col int, s string, ok bool, dest any) error {
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
		n, err := res.parseInt(col, s, ok, e.Type().Bits(), dest)
		if err == nil {
			e.SetInt(n)
		}
		return err
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := res.parseUint(col, s, ok, e.Type().Bits(), dest)
		if err == nil {
			e.SetUint(n)
		}
		return err
	case reflect.Float32, reflect.Float64:
		f, err := res.parseFloat(col, s, ok, e.Type().Bits(), dest)
		if err == nil {
			e.SetFloat(f)
		}
		return err
	case reflect.Bool:
		b, err := res.parseBool(col, s, ok, dest)
		if err == nil {
			e.SetBool(b)
		}
		return err
	case reflect.String:
		if !ok {
			return res.nullErr(col, dest)
		}
		e.SetString(strings.Clone(s))
		return nil
	}
	return res.colErr(TypeMismatch, col, "unsupported Scan destination %s", fmt.Sprintf("%T", dest))
}
