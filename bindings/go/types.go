package pgsess

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// OIDInterval is the interval type's OID.
const OIDInterval uint32 = 1186

// Numeric is a numeric value as its exact decimal text ("12.50", "NaN", "-Infinity"): scan a
// numeric column into it (Results, Rows or database/sql), and pass it as a parameter, without
// the rounding of a float64.
type Numeric string

// Scan takes a numeric's text (or any number database/sql gives).
func (n *Numeric) Scan(src any) error {
	switch v := src.(type) {
	case string:
		*n = Numeric(v)
	case []byte:
		*n = Numeric(v)
	case int64:
		*n = Numeric(strconv.FormatInt(v, 10))
	case float64:
		*n = Numeric(strconv.FormatFloat(v, 'g', -1, 64))
	case nil:
		return errors.New("pgsess.Numeric: NULL (scan into a *pgsess.Numeric pointer, or sql.NullString)")
	default:
		return fmt.Errorf("pgsess.Numeric: cannot scan %T", src)
	}
	return nil
}

// Value sends the text.
func (n Numeric) Value() (driver.Value, error) { return string(n), nil }

// Float64 parses the value as a float64 (rounding it).
func (n Numeric) Float64() (float64, error) { return strconv.ParseFloat(string(n), 64) }

// UUID is a uuid's 16 bytes: scan a uuid column into it, pass it as a parameter (sent as its
// text). A uuid also scans into a *[16]byte with Results.Scan and Rows.Scan.
type UUID [16]byte

// String is the canonical form, e.g. "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".
func (u UUID) String() string { return formatUUID(string(u[:])) }

// Value sends the canonical text.
func (u UUID) Value() (driver.Value, error) { return u.String(), nil }

// Scan takes a uuid's text (any form the server prints or accepts with hyphens) or 16 bytes.
func (u *UUID) Scan(src any) error {
	switch v := src.(type) {
	case string:
		p, ok := parseUUID(v)
		if !ok {
			return fmt.Errorf("pgsess.UUID: %q is not a uuid", v)
		}
		*u = p
	case []byte:
		if len(v) == 16 {
			copy(u[:], v)
			return nil
		}
		return u.Scan(string(v))
	case nil:
		return errors.New("pgsess.UUID: NULL (scan into a *pgsess.UUID pointer)")
	default:
		return fmt.Errorf("pgsess.UUID: cannot scan %T", src)
	}
	return nil
}

// Array adapts a pointer to a slice for scanning an array column, or a slice for sending one
// (as lib/pq's pq.Array does), for database/sql:
//
//	var ids []int64
//	err := db.QueryRow("SELECT array_agg(id) FROM t").Scan(pgsess.Array(&ids))
//	_, err = db.Exec("DELETE FROM t WHERE id = ANY($1)", pgsess.Array(ids))
//
// Slices of strings, every integer and float kind, bool, []byte (bytea[]), time.Time and
// pointers to those (nil for a NULL element) are supported; scanning a NULL element into a
// slice of non-pointers is an error. The binding's own Query and Scan take such slices
// directly (no Array needed), and so do database/sql's arguments (the driver's
// CheckNamedValue): Array is for database/sql's Scan.
func Array(v any) interface {
	sql.Scanner
	driver.Valuer
} {
	return &array{v: v}
}

type array struct{ v any }

// Value gives the array literal of the slice.
func (a *array) Value() (driver.Value, error) {
	b, null, _, err := appendArg(nil, a.v, 0)
	if err != nil {
		return nil, err
	}
	if null {
		return nil, nil
	}
	return string(b), nil
}

// Scan parses an array's text into the slice a points to.
func (a *array) Scan(src any) error {
	var s string
	switch v := src.(type) {
	case nil:
		rv := reflect.ValueOf(a.v)
		if rv.Kind() == reflect.Pointer && !rv.IsNil() && rv.Elem().Kind() == reflect.Slice {
			rv.Elem().Set(reflect.Zero(rv.Elem().Type()))
			return nil
		}
		return fmt.Errorf("pgsess.Array: destination %T is not a pointer to a slice", a.v)
	case string:
		s = v
	case []byte:
		s = string(v)
	default:
		return fmt.Errorf("pgsess.Array: cannot scan %T", src)
	}
	return scanArray(s, a.v)
}

// scanArray parses the text of a one-dimensional array into *[]T (dest).
func scanArray(s string, dest any) error {
	rv := reflect.ValueOf(dest)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Slice {
		return fmt.Errorf("array destination %T is not a pointer to a slice", dest)
	}
	elems, nulls, err := parseArray(s)
	if err != nil {
		return err
	}
	sl := rv.Elem()
	et := sl.Type().Elem()
	out := reflect.MakeSlice(sl.Type(), len(elems), len(elems))
	for i, e := range elems {
		ev := out.Index(i)
		if et.Kind() == reflect.Pointer {
			if nulls[i] {
				continue
			}
			p := reflect.New(et.Elem())
			ev.Set(p)
			ev = p.Elem()
		} else if nulls[i] {
			return fmt.Errorf("element %d is NULL: scan into a slice of pointers", i+1)
		}
		if err := setElem(ev, e); err != nil {
			return fmt.Errorf("element %d (%q): %w", i+1, e, err)
		}
	}
	sl.Set(out)
	return nil
}

var timeType = reflect.TypeOf(time.Time{})

// setElem sets an array element from its text.
func setElem(v reflect.Value, s string) error {
	if v.Type() == timeType {
		t, inf, ok := parseTimeText(s, strings.ContainsAny(s[min(len(s), 10):], "+-"))
		if !ok || inf != 0 {
			return errors.New("not a finite ISO date or timestamp")
		}
		v.Set(reflect.ValueOf(t))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(s, 10, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(s, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetFloat(f)
	case reflect.Bool:
		switch s {
		case "t", "true":
			v.SetBool(true)
		case "f", "false":
			v.SetBool(false)
		default:
			return errors.New("not a bool")
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.Uint8 || !strings.HasPrefix(s, `\x`) {
			return fmt.Errorf("unsupported element type %s", v.Type())
		}
		b, ok := decodeHex(s[2:])
		if !ok {
			return errors.New("bad bytea hex text")
		}
		v.SetBytes(b)
	default:
		return fmt.Errorf("unsupported element type %s", v.Type())
	}
	return nil
}

func min(a, b int) int {
	if a < b {
		return a
	}
	return b
}
