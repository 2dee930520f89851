package pgsess

import (
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// parseTimeText reads the server's text of a date, timestamp or timestamptz in the ISO DateStyle
// (the default): "2024-02-29", "2024-02-29 12:34:56.123456", "2024-02-29 12:34:56+05:30",
// "0044-03-15 BC", "infinity". A timestamptz gives its instant, the others their wall-clock time,
// both in UTC (as pgsess_results_get_epoch_micros does); inf is +1/-1 for 'infinity'/'-infinity'.
// ok is false for any other text (another DateStyle), which the caller reads through the library.
func parseTimeText(s string, withZone bool) (t time.Time, inf int, ok bool) {
	switch s {
	case "infinity":
		return t, 1, true
	case "-infinity":
		return t, -1, true
	}
	bc := false
	if strings.HasSuffix(s, " BC") {
		bc, s = true, s[:len(s)-3]
	}
	i := 0
	num := func(min, max int) (int, bool) {
		start, n := i, 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' && i-start < max {
			n = n*10 + int(s[i]-'0')
			i++
		}
		return n, i-start >= min
	}
	lit := func(c byte) bool {
		if i < len(s) && s[i] == c {
			i++
			return true
		}
		return false
	}
	year, ok1 := num(4, 9)
	if !ok1 || !lit('-') {
		return t, 0, false
	}
	month, ok2 := num(2, 2)
	if !ok2 || !lit('-') {
		return t, 0, false
	}
	day, ok3 := num(2, 2)
	if !ok3 {
		return t, 0, false
	}
	var hour, min, sec, nsec, off int
	if lit(' ') {
		var okh, okm, oks bool
		hour, okh = num(2, 2)
		if !okh || !lit(':') {
			return t, 0, false
		}
		min, okm = num(2, 2)
		if !okm || !lit(':') {
			return t, 0, false
		}
		sec, oks = num(2, 2)
		if !oks {
			return t, 0, false
		}
		if lit('.') {
			start := i
			frac, okf := num(1, 9)
			if !okf {
				return t, 0, false
			}
			for d := i - start; d < 9; d++ {
				frac *= 10
			}
			nsec = frac
		}
		if withZone && i < len(s) && (s[i] == '+' || s[i] == '-') {
			sign := 1
			if s[i] == '-' {
				sign = -1
			}
			i++
			oh, okoh := num(2, 2)
			if !okoh {
				return t, 0, false
			}
			off = oh * 3600
			if lit(':') {
				om, okom := num(2, 2)
				if !okom {
					return t, 0, false
				}
				off += om * 60
				if lit(':') {
					os, okos := num(2, 2)
					if !okos {
						return t, 0, false
					}
					off += os
				}
			}
			off *= sign
		}
	}
	if i != len(s) || month < 1 || month > 12 || day < 1 || day > 31 || hour > 24 || min > 59 || sec > 60 {
		return t, 0, false
	}
	if bc {
		year = 1 - year // 1 BC is year 0
	}
	t = time.Date(year, time.Month(month), day, hour, min, sec, nsec, time.UTC)
	if off != 0 {
		t = t.Add(-time.Duration(off) * time.Second)
	}
	if t.Before(minMicros) || t.After(maxMicros) {
		return time.Time{}, 0, false // the library reports it (ValueOverflow), as for a binary value
	}
	return t, 0, true
}

// The times a 64-bit count of microseconds since 1970 holds: the library's range, and the
// binary values'.
var (
	minMicros = time.UnixMicro(math.MinInt64 + 2).UTC() // MinInt64 and MinInt64+1 are taken by infinities in some readers
	maxMicros = time.UnixMicro(math.MaxInt64 - 1).UTC()
)

// driverValue is cell col of the current row as a database/sql driver.Value: int64 (int2,
// int4, int8, oid), float64 (float4, float8), bool, []byte (bytea decoded; json and jsonb as
// their text), time.Time (date, timestamp, timestamptz, as Values gives them), the string
// "infinity" or "-infinity" for an infinite time, nil for NULL, and the text form as a string
// for every other type (numeric exact, uuid, interval, arrays, ...).
func (res *Results) driverValue(col int) (driver.Value, error) {
	s, ok := res.view(col)
	if !ok {
		return nil, nil
	}
	if res.bin[col] {
		v, err := res.binValue(col, s)
		if raw, isRaw := v.(json.RawMessage); isRaw {
			return []byte(raw), err
		}
		return v, err
	}
	switch res.cols[col].TypeOID {
	case OIDInt2, OIDInt4, OIDInt8, OIDOid:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, res.colErr(ValueOverflow, col, "%v", err)
		}
		return n, nil
	case OIDFloat4, OIDFloat8:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, res.colErr(TypeMismatch, col, "%v", err)
		}
		return f, nil
	case OIDBool:
		return s == "t", nil
	case OIDBytea:
		return res.bytea(col, s)
	case OIDDate, OIDTimestamp, OIDTimestampTZ:
		t, inf, err := res.timeValue(col)
		if err != nil {
			return nil, err
		}
		switch inf {
		case 1:
			return "infinity", nil
		case -1:
			return "-infinity", nil
		}
		return t, nil
	case OIDJSON, OIDJSONB:
		return []byte(s), nil
	}
	return strings.Clone(s), nil
}

// Interval is a PostgreSQL interval, as the server keeps it: months, days and microseconds,
// which do not convert into one another (a month has no fixed length, nor a day across a
// daylight-saving change). Scan it from an interval column (Results.Scan, Rows.Scan or
// database/sql); as a parameter it is sent as "M months D days U microseconds".
type Interval struct {
	Months       int32
	Days         int32
	Microseconds int64
}

// Duration is the interval as a time.Duration when that is exact: no months or years (a day
// counts as 24 hours), and within time.Duration's range (about ±292 years); otherwise an error.
func (iv Interval) Duration() (time.Duration, error) {
	if iv.Months != 0 {
		return 0, fmt.Errorf("interval %s has months, which have no fixed length: not a time.Duration", iv)
	}
	us := float64(iv.Days)*86400e6 + float64(iv.Microseconds)
	if us > float64(math.MaxInt64/1000) || us < float64(math.MinInt64/1000) {
		return 0, fmt.Errorf("interval %s does not fit a time.Duration", iv)
	}
	return time.Duration(int64(iv.Days)*86400e6+iv.Microseconds) * time.Microsecond, nil
}

// String is the interval in PostgreSQL's input form, e.g. "1 months 2 days 3000000 microseconds".
func (iv Interval) String() string {
	return fmt.Sprintf("%d months %d days %d microseconds", iv.Months, iv.Days, iv.Microseconds)
}

// Value sends the interval as its text.
func (iv Interval) Value() (driver.Value, error) { return iv.String(), nil }

// Scan reads an interval's text in the default IntervalStyle (postgres): "1 year 2 mons 3 days
// 04:05:06.5", "-00:00:01", "3 days". NULL is an error (scan into *Interval's pointer, or a
// sql.Null type of your own).
func (iv *Interval) Scan(src any) error {
	var s string
	switch v := src.(type) {
	case string:
		s = v
	case []byte:
		s = string(v)
	case nil:
		return errors.New("pgsess.Interval: NULL (scan into a **pgsess.Interval)")
	default:
		return fmt.Errorf("pgsess.Interval: cannot scan %T", src)
	}
	parsed, err := parseInterval(s)
	if err != nil {
		return err
	}
	*iv = parsed
	return nil
}

// parseInterval reads the postgres IntervalStyle.
func parseInterval(s string) (Interval, error) {
	var iv Interval
	bad := func() (Interval, error) {
		return Interval{}, fmt.Errorf("pgsess: cannot read interval %q (the IntervalStyle must be postgres, the default)", s)
	}
	fields := strings.Fields(s)
	for i := 0; i < len(fields); i++ {
		f := fields[i]
		if strings.Contains(f, ":") {
			neg := strings.HasPrefix(f, "-")
			f = strings.TrimLeft(f, "+-")
			parts := strings.Split(f, ":")
			if len(parts) != 3 {
				return bad()
			}
			h, err1 := strconv.ParseInt(parts[0], 10, 64)
			m, err2 := strconv.ParseInt(parts[1], 10, 64)
			secParts := strings.SplitN(parts[2], ".", 2)
			sec, err3 := strconv.ParseInt(secParts[0], 10, 64)
			if err1 != nil || err2 != nil || err3 != nil {
				return bad()
			}
			us := ((h*60+m)*60 + sec) * 1e6
			if len(secParts) == 2 {
				frac := secParts[1]
				if len(frac) > 6 || frac == "" {
					return bad()
				}
				n, err := strconv.ParseInt(frac+strings.Repeat("0", 6-len(frac)), 10, 64)
				if err != nil {
					return bad()
				}
				us += n
			}
			if neg {
				us = -us
			}
			iv.Microseconds += us
			continue
		}
		if i+1 >= len(fields) {
			return bad()
		}
		n, err := strconv.ParseInt(f, 10, 32)
		if err != nil {
			return bad()
		}
		unit := fields[i+1]
		i++
		switch strings.TrimSuffix(unit, "s") {
		case "year":
			iv.Months += int32(n) * 12
		case "mon":
			iv.Months += int32(n)
		case "day":
			iv.Days += int32(n)
		default:
			return bad()
		}
	}
	return iv, nil
}
