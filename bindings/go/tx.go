package pgsess

/*
#include "handles.h"
*/
import "C"

import (
	"context"
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

	from *Session          // the session it was begun on
	slot *slot             // the gate slot of its connection (its Results hold references too)
	on   *C.pgsess_session // its session in C (pgsess_tx_session): pgsess_cancel on it reaches its statements
	sub  *C.pgsess_session // the sub-session of from's it was begun on, given back when it ends; nil when none
}

// Isolation is a transaction's isolation level (TxOptions).
type Isolation int

const (
	// IsolationDefault says nothing: the server's default_transaction_isolation applies.
	IsolationDefault Isolation = C.PGSESS_ISOLATION_DEFAULT
	// ReadCommitted is ISOLATION LEVEL READ COMMITTED.
	ReadCommitted Isolation = C.PGSESS_READ_COMMITTED
	// RepeatableRead is ISOLATION LEVEL REPEATABLE READ (PostgreSQL's snapshot isolation).
	RepeatableRead Isolation = C.PGSESS_REPEATABLE_READ
	// Serializable is ISOLATION LEVEL SERIALIZABLE.
	Serializable Isolation = C.PGSESS_SERIALIZABLE
	// ReadUncommitted is ISOLATION LEVEL READ UNCOMMITTED, which PostgreSQL runs as READ
	// COMMITTED (but reports as asked). It costs a second statement after BEGIN (SET
	// TRANSACTION), since the library's BEGIN does not spell it.
	ReadUncommitted Isolation = 100
)

// String names the level as SQL does ("READ COMMITTED", ...; "DEFAULT").
func (i Isolation) String() string {
	switch i {
	case IsolationDefault:
		return "DEFAULT"
	case ReadCommitted:
		return "READ COMMITTED"
	case RepeatableRead:
		return "REPEATABLE READ"
	case Serializable:
		return "SERIALIZABLE"
	case ReadUncommitted:
		return "READ UNCOMMITTED"
	}
	return fmt.Sprintf("Isolation(%d)", int(i))
}

// TxOptions are what BeginTx sends with BEGIN, in the same round trip (pgsess_begin_with): only
// what is asked is said, the server's defaults apply to the rest. Deferrable only has an effect
// on a SERIALIZABLE READ ONLY transaction.
type TxOptions struct {
	Isolation  Isolation
	ReadOnly   bool
	Deferrable bool
}

// ErrTxDone is returned by calls on a transaction that has been committed or rolled back.
var ErrTxDone = newError(InterfaceError, "transaction has already been committed or rolled back")

// Begin starts a transaction, checking out one pooled connection (waiting as Query does).
func (s *Session) Begin() (*Tx, error) {
	return s.BeginTx(context.Background(), nil)
}

// BeginTx starts a transaction with options (nil: the server's defaults), sent with BEGIN in
// one round trip, e.g. BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY. ctx bounds the wait for a
// connection and the BEGIN itself, as for QueryContext; it does not end the transaction (use the
// Context methods of Tx for its statements). On a pooled session the transaction runs on a
// session of its own on the pool, so that cancelling one of its statements (QueryContext)
// cancels no other goroutine's.
func (s *Session) BeginTx(ctx context.Context, opts *TxOptions) (*Tx, error) {
	var o TxOptions
	if opts != nil {
		o = *opts
	}
	iso := o.Isolation
	if iso == ReadUncommitted {
		iso = IsolationDefault
	} else if iso < IsolationDefault || iso > Serializable {
		return nil, errorf(InterfaceError, "isolation level %v is not one of the Isolation constants", o.Isolation)
	}
	st, err := s.enter(ctx, true)
	if err != nil {
		return nil, err
	}
	stop := watch(ctx, st.cs)
	var cerr *C.pgsess_error
	t := C.pgsess_begin_with(st.cs, C.pgsess_isolation(iso), C.bool(o.ReadOnly), C.bool(o.Deferrable), &cerr)
	fired := stop()
	if t == nil {
		st.exit(false)
		return nil, finish(ctx, fired, takeError(cerr, "pgsess_begin_with"))
	}
	// pgsess_cancel on the transaction's session reaches the statements of the session it was
	// begun on: a sub-session of its own on a pooled session, so its statements alone.
	tx := &Tx{tx: t, name: s.name, from: s, slot: st.slot, on: C.pgsess_tx_session(t), sub: st.sub}
	st.exitKeeping(true, true)
	if o.Isolation == ReadUncommitted {
		if _, err := tx.ExecContext(ctx, "SET TRANSACTION ISOLATION LEVEL READ UNCOMMITTED"); err != nil {
			_ = tx.Rollback()
			return nil, err
		}
	}
	return tx, nil
}

// end gives back what the transaction held once it has ended (called with tx.mu held).
func (tx *Tx) end() {
	tx.tx = nil
	tx.slot.unref()
	tx.slot = nil
	tx.from.putSub(tx.sub)
	tx.sub, tx.on = nil, nil
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
		tx.sess = &Session{s: cs, name: tx.name, tx: tx, opts: tx.from.opts, gate: tx.from.gate}
	}
	return tx.sess
}

// Query runs a statement inside the transaction (arguments and results as for Session.Query).
// Its Results share the transaction's connection, which returns to the pool once the
// transaction has ended and all of them are closed. After a failed statement the server refuses
// further statements (SQLSTATE 25P02) until Rollback.
func (tx *Tx) Query(sql string, args ...any) (*Results, error) {
	return tx.run(context.Background(), sqlText, sql, args)
}

// QueryContext is Query with a context: when ctx ends while the statement runs it is cancelled
// on the server and the error is a *ContextError (see Session.QueryContext). A cancelled
// statement fails the transaction, as any failed statement does: roll back.
func (tx *Tx) QueryContext(ctx context.Context, sql string, args ...any) (*Results, error) {
	return tx.run(ctx, sqlText, sql, args)
}

// QueryBinaryContext is QueryBinary with a context, as QueryContext.
func (tx *Tx) QueryBinaryContext(ctx context.Context, sql string, args ...any) (*Results, error) {
	return tx.run(ctx, sqlBinary, sql, args)
}

// CallprocContext is Callproc with a context, as QueryContext.
func (tx *Tx) CallprocContext(ctx context.Context, name string, args ...any) (*Results, error) {
	return tx.run(ctx, funcName, name, args)
}

// ExecContext is Exec with a context, as QueryContext.
func (tx *Tx) ExecContext(ctx context.Context, sql string, args ...any) (uint64, error) {
	res, err := tx.QueryContext(ctx, sql, args...)
	if err != nil {
		return 0, err
	}
	defer res.Close()
	return res.RowsAffected(), nil
}

// QueryBinary runs a statement inside the transaction with every result column in binary, as
// Session.QueryBinary (on the transaction's session, pgsess_tx_session).
func (tx *Tx) QueryBinary(sql string, args ...any) (*Results, error) {
	return tx.run(context.Background(), sqlBinary, sql, args)
}

// Callproc calls a function inside the transaction (name, arguments and results as for
// Session.Callproc), so what the function does commits or rolls back with the transaction.
func (tx *Tx) Callproc(name string, args ...any) (*Results, error) {
	return tx.run(context.Background(), funcName, name, args)
}

// run runs a statement while the transaction is open, one call at a time; ctx cancels it on
// the server (pgsess_cancel on the session the transaction was begun on).
func (tx *Tx) run(ctx context.Context, k kind, text string, args []any) (*Results, error) {
	if err := ctx.Err(); err != nil {
		return nil, contextError(ctx, nil)
	}
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if tx.tx == nil {
		return nil, ErrTxDone
	}
	stop := watch(ctx, tx.on)
	res, err := run(nil, tx.tx, k, text, args, tx.slot.ref())
	fired := stop()
	if err != nil {
		tx.slot.unref()
		return nil, finish(ctx, fired, err)
	}
	return res, nil
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
	tx.end()
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
	tx.end()
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
