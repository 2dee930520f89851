package pgsess

/*
#include <pgsess.h>
*/
import "C"

import (
	"fmt"
	"sync"
)

// Tx is a transaction from Session.Begin: it holds one pooled connection until Commit or
// Rollback. Its methods, and those of its Session, may be called from several goroutines; they
// run one at a time.
type Tx struct {
	mu   sync.Mutex
	tx   *C.pgsess_tx // nil once ended
	name string       // the name of the session it was begun on
	sess *Session     // from Session, made on first use
}

// ErrTxDone is returned by calls on a transaction that has been committed or rolled back.
var ErrTxDone = newError(InterfaceError, "transaction has already been committed or rolled back")

// Begin starts a transaction, checking out one pooled connection (waiting as Query does).
func (s *Session) Begin() (*Tx, error) {
	cs, err := s.handle()
	if err != nil {
		return nil, err
	}
	defer s.release()
	var cerr *C.pgsess_error
	t := C.pgsess_begin(cs, &cerr)
	if t == nil {
		return nil, takeError(cerr, "pgsess_begin")
	}
	return &Tx{tx: t, name: s.name}, nil
}

// Session is the transaction's session (pgsess_tx_session): every Session method on it (Query,
// Exec, Callproc, ...) runs inside this transaction, on its connection, and is committed or
// rolled back with it, so code written for a *Session can take part in the transaction.
//
// It is borrowed from tx and valid until Commit or Rollback: its Close does nothing, and once
// the transaction has ended its calls fail with ErrTxDone. Its calls take turns with tx's own.
// Begin on it fails with InterfaceError (use SAVEPOINT for a nested transaction). Every call
// returns the same *Session.
func (tx *Tx) Session() *Session {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if tx.sess == nil {
		var cs *C.pgsess_session
		if tx.tx != nil {
			cs = C.pgsess_tx_session(tx.tx)
		}
		tx.sess = &Session{s: cs, name: tx.name, tx: tx}
	}
	return tx.sess
}

// Query runs a statement inside the transaction (arguments and results as for Session.Query).
// Its Results share the transaction's connection, which returns to the pool once the
// transaction has ended and all of them are closed. After a failed statement the server refuses
// further statements (SQLSTATE 25P02) until Rollback.
func (tx *Tx) Query(sql string, args ...any) (*Results, error) {
	return tx.run(sqlText, sql, args)
}

// QueryBinary runs a statement inside the transaction with every result column in binary, as
// Session.QueryBinary (on the transaction's session, pgsess_tx_session).
func (tx *Tx) QueryBinary(sql string, args ...any) (*Results, error) {
	return tx.run(sqlBinary, sql, args)
}

// Callproc calls a function inside the transaction (name, arguments and results as for
// Session.Callproc), so what the function does commits or rolls back with the transaction.
func (tx *Tx) Callproc(name string, args ...any) (*Results, error) {
	return tx.run(funcName, name, args)
}

// run runs a statement while the transaction is open, one call at a time.
func (tx *Tx) run(k kind, text string, args []any) (*Results, error) {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if tx.tx == nil {
		return nil, ErrTxDone
	}
	return run(nil, tx.tx, k, text, args)
}

// Exec runs a statement inside the transaction and closes its results, returning the rows
// affected.
func (tx *Tx) Exec(sql string, args ...any) (uint64, error) {
	res, err := tx.Query(sql, args...)
	if err != nil {
		return 0, err
	}
	defer res.Close()
	return res.RowsAffected(), nil
}

// Commit commits and ends the transaction (in every case). If a statement in it failed, the
// server rolled back instead and the error's Code is TransactionRollback.
func (tx *Tx) Commit() error {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if tx.tx == nil {
		return ErrTxDone
	}
	var cerr *C.pgsess_error
	rc := C.pgsess_commit(tx.tx, &cerr)
	tx.tx = nil
	if rc != C.PGSESS_OK {
		return takeError(cerr, "pgsess_commit")
	}
	return nil
}

// Rollback rolls back and ends the transaction. After Commit or Rollback it returns ErrTxDone,
// so `defer tx.Rollback()` is harmless.
func (tx *Tx) Rollback() error {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if tx.tx == nil {
		return ErrTxDone
	}
	C.pgsess_rollback(tx.tx)
	tx.tx = nil
	return nil
}

// InTx runs fn in a transaction: it commits when fn returns nil, and rolls back when fn returns
// an error (which InTx returns) or panics (the panic goes on after the rollback).
func (s *Session) InTx(fn func(*Tx) error) (err error) {
	tx, err := s.Begin()
	if err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed {
			_ = tx.Rollback()
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	committed = true
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
