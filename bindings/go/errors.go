package pgsess

/*
#include "handles.h"
*/
import "C"

import (
	"errors"
	"fmt"
)

// Code is a pgsess result code; the values are those of the C enum pgsess_code.
type Code int

// The codes of pgsess_code, in the header's order and with its numbering.
const (
	OK                  Code = C.PGSESS_OK
	InterfaceError      Code = C.PGSESS_INTERFACE_ERROR
	ConfigError         Code = C.PGSESS_CONFIG_ERROR
	OperationalError    Code = C.PGSESS_OPERATIONAL_ERROR
	PoolExhausted       Code = C.PGSESS_POOL_EXHAUSTED
	QueryCanceled       Code = C.PGSESS_QUERY_CANCELED
	TransactionRollback Code = C.PGSESS_TRANSACTION_ROLLBACK
	ProgrammingError    Code = C.PGSESS_PROGRAMMING_ERROR
	IntegrityError      Code = C.PGSESS_INTEGRITY_ERROR
	DataError           Code = C.PGSESS_DATA_ERROR
	InternalError       Code = C.PGSESS_INTERNAL_ERROR
	NotSupportedError   Code = C.PGSESS_NOT_SUPPORTED_ERROR
	DatabaseError       Code = C.PGSESS_DATABASE_ERROR
	NullValue           Code = C.PGSESS_NULL_VALUE
	TypeMismatch        Code = C.PGSESS_TYPE_MISMATCH
	OutOfRange          Code = C.PGSESS_OUT_OF_RANGE
	ValueOverflow       Code = C.PGSESS_VALUE_OVERFLOW
	Panic               Code = C.PGSESS_PANIC // a bug in pgsess, caught at the C boundary
)

// String gives the code's name as the C header spells it, e.g. "PGSESS_POOL_EXHAUSTED"
// (pgsess_code_name; "PGSESS_UNKNOWN_CODE" for a value that is not a code).
func (c Code) String() string {
	return C.GoString(C.pgsess_code_name(C.pgsess_code(c)))
}

// Category is the DB-API base class of the code, as pgsess_error_category gives it for an error
// with that code (pgsess_code_category): OperationalError for PoolExhausted, InternalError for
// Panic, InterfaceError for a value that is not a code.
func (c Code) Category() Code {
	return Code(C.pgsess_code_category(C.pgsess_code(c)))
}

// Error is every error this package returns: those of the library (with the server's fields
// when the server reported it) and the binding's own (bad arguments, conversions in Scan,
// use after Close), which have no SQLState.
//
// Use errors.As to get at it, or the Is* helpers:
//
//	var pe *pgsess.Error
//	if errors.As(err, &pe) && pe.SQLState == "23505" { ... }
type Error struct {
	Code     Code   // the precise code
	Category Code   // the DB-API base class (OperationalError for PoolExhausted, ...)
	SQLState string // five characters, or "" when there is none
	Message  string // never contains a password
	Detail   string // the server's DETAIL field, or ""
	Hint     string // the server's HINT field, or ""
	// Context is the server's CONTEXT field (PG_DIAG_CONTEXT), or "": where the error arose, e.g.
	// `COPY items, line 50001, column id: "abc"` for a bad row in CopyFrom, or the PL/pgSQL
	// call stack. Error() includes it.
	Context string

	// The other fields of the server's report (libpq's PG_DIAG_*; "" when the server sent none,
	// and for the binding's own errors):
	Severity         string // 'V': ERROR, FATAL, PANIC (never translated)
	Position         string // 'P': 1-based character position in the statement, as text
	InternalPosition string // 'p': position in InternalQuery
	InternalQuery    string // 'q': the internally generated statement that failed (PL/pgSQL)
	SchemaName       string // 's'
	TableName        string // 't'
	ColumnName       string // 'c'
	DataTypeName     string // 'd'
	ConstraintName   string // 'n': e.g. the unique index or check constraint violated
	File             string // 'F': the server's source file
	Line             string // 'L'
	Routine          string // 'R'

	// retryable is pgsess_error_is_retryable: a serialization failure or deadlock, or a
	// statement that never reached the server.
	retryable bool
}

func (e *Error) Error() string {
	msg := "pgsess: " + e.Message + " (" + e.Code.String()
	if e.SQLState != "" {
		msg += ", SQLSTATE " + e.SQLState
	}
	msg += ")"
	if e.Context != "" {
		msg += "; context: " + e.Context
	}
	return msg
}

// Is reports whether target is an *Error with the same Code, so that
//
//	errors.Is(err, &pgsess.Error{Code: pgsess.PoolExhausted})
//
// works; a target with a SQLState must match it too.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok {
		return false
	}
	return t.Code == e.Code && (t.SQLState == "" || t.SQLState == e.SQLState)
}

// Retryable reports whether the failed work may be run again and then succeed
// (pgsess_error_is_retryable): a serialization failure (40001) or deadlock (40P01), whose
// transaction the server rolled back, or a statement that never reached the server.
func (e *Error) Retryable() bool { return e.retryable }

// IsRetryable reports whether err is (or wraps) an *Error that is Retryable.
func IsRetryable(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.retryable
}

// CodeOf gives the Code of err when it is (or wraps) an *Error, OK for nil, and
// InterfaceError for any other error.
func CodeOf(err error) Code {
	if err == nil {
		return OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return InterfaceError
}

// SQLStateOf gives the SQLSTATE of err when it is (or wraps) an *Error that has one, else "".
func SQLStateOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.SQLState
	}
	return ""
}

func hasCode(err error, c Code) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == c
}

func hasCategory(err error, c Code) bool {
	var e *Error
	return errors.As(err, &e) && e.Category == c
}

// IsPoolExhausted reports whether err is a checkout that timed out with every connection held.
func IsPoolExhausted(err error) bool { return hasCode(err, PoolExhausted) }

// IsConfigError reports a missing PGSQL_* variable, a bad URI or an unsupported option.
func IsConfigError(err error) bool { return hasCode(err, ConfigError) }

// IsQueryCanceled reports SQLSTATE 57014 (statement_timeout, a cancel request).
func IsQueryCanceled(err error) bool { return hasCode(err, QueryCanceled) }

// IsTransactionRollback reports SQLSTATE class 40, or a commit the server turned into a rollback.
func IsTransactionRollback(err error) bool { return hasCode(err, TransactionRollback) }

// IsIntegrityError reports SQLSTATE class 23 (unique, foreign key, not null, check violations).
func IsIntegrityError(err error) bool { return hasCode(err, IntegrityError) }

// IsDataError reports SQLSTATE class 22 (invalid input, division by zero, out of range).
func IsDataError(err error) bool { return hasCode(err, DataError) }

// IsProgrammingError reports SQL errors: syntax, undefined objects, privileges.
func IsProgrammingError(err error) bool { return hasCode(err, ProgrammingError) }

// IsOperational reports the operational category: the server unreachable, a lost connection,
// pool exhaustion, cancellation, a rolled-back transaction.
func IsOperational(err error) bool { return hasCategory(err, OperationalError) }

// IsNull reports a NULL value scanned into a destination that cannot hold NULL.
func IsNull(err error) bool { return hasCode(err, NullValue) }

func cstr(p *C.char) string {
	if p == nil {
		return ""
	}
	return C.GoString(p)
}

// takeError converts a library error to an *Error and frees it. A nil cerr (a failure the
// library reported without an error object) becomes an InterfaceError naming what failed.
func takeError(cerr *C.pgsess_error, what string) error {
	if cerr == nil {
		return newError(InterfaceError, what+" failed without an error object")
	}
	defer C.pgsess_error_free(cerr)
	return convertError(cerr)
}

// convertError converts a library error that the caller keeps (and frees, if it is its own).
func convertError(cerr *C.pgsess_error) *Error {
	return &Error{
		Code:     Code(C.pgsess_error_code(cerr)),
		Category: Code(C.pgsess_error_category(cerr)),
		SQLState: cstr(C.pgsess_error_sqlstate(cerr)),
		Message:  cstr(C.pgsess_error_message(cerr)),
		Detail:   cstr(C.pgsess_error_detail(cerr)),
		Hint:     cstr(C.pgsess_error_hint(cerr)),
		Context:  cstr(C.pgsess_error_field(cerr, 'W')),

		Severity:         cstr(C.pgsess_error_field(cerr, 'V')),
		Position:         cstr(C.pgsess_error_field(cerr, 'P')),
		InternalPosition: cstr(C.pgsess_error_field(cerr, 'p')),
		InternalQuery:    cstr(C.pgsess_error_field(cerr, 'q')),
		SchemaName:       cstr(C.pgsess_error_field(cerr, 's')),
		TableName:        cstr(C.pgsess_error_field(cerr, 't')),
		ColumnName:       cstr(C.pgsess_error_field(cerr, 'c')),
		DataTypeName:     cstr(C.pgsess_error_field(cerr, 'd')),
		ConstraintName:   cstr(C.pgsess_error_field(cerr, 'n')),
		File:             cstr(C.pgsess_error_field(cerr, 'F')),
		Line:             cstr(C.pgsess_error_field(cerr, 'L')),
		Routine:          cstr(C.pgsess_error_field(cerr, 'R')),
		retryable:        bool(C.pgsess_error_is_retryable(cerr)),
	}
}

func newError(c Code, msg string) *Error {
	return &Error{Code: c, Category: c.Category(), Message: msg}
}

func errorf(c Code, format string, args ...any) *Error {
	return newError(c, fmt.Sprintf(format, args...))
}

// codeError is for calls that return a bare pgsess_code.
func codeError(c C.enum_pgsess_code, what string) error {
	if c == C.PGSESS_OK {
		return nil
	}
	return errorf(Code(c), "%s refused by the library (see pgsess.h for the valid range)", what)
}
