package pgsess

import (
	"context"
	"testing"
)

// A batch runs in one round trip; each statement has its own outcome, and a failed one does not
// stop the others.
func TestSendBatch(t *testing.T) {
	s := openTest(t, WithPoolMaxSize(2))
	var b Batch
	b.Queue("SELECT $1::int + 1", 41)
	b.Queue("SELECT 1/0")
	b.Queue("SELECT length($1::bytea), $2::text IS NULL", []byte{0, 1, 2}, nil)
	b.Queue("SELECT generate_series(1, 3)")
	br, err := s.SendBatch(context.Background(), &b)
	if err != nil {
		t.Fatal(err)
	}
	if br.Len() != 4 {
		t.Fatalf("%d outcomes", br.Len())
	}
	r0, err := br.Results(0)
	var n int
	if err != nil || !r0.Next() || r0.Scan(&n) != nil || n != 42 {
		t.Errorf("statement 0: %d %v", n, err)
	}
	if _, err := br.Results(1); SQLStateOf(err) != "22012" {
		t.Errorf("statement 1: %v", err)
	}
	r2, err := br.Results(2)
	var l int
	var isNull bool
	if err != nil || !r2.Next() || r2.Scan(&l, &isNull) != nil || l != 3 || !isNull {
		t.Errorf("statement 2: %d %v %v", l, isNull, err)
	}
	r3, _ := br.Results(3)
	r3.Close() // does nothing: the batch owns it
	if r3.Rows() != 3 || r3.Status() != "SELECT 3" {
		t.Errorf("statement 3: %d rows, %q", r3.Rows(), r3.Status())
	}
	if st, _ := s.Stats(); st.InUse != 1 {
		t.Errorf("while the batch results are open: %+v", st)
	}
	br.Close()
	br.Close()
	if st, _ := s.Stats(); st.InUse != 0 {
		t.Errorf("after Close: %+v", st)
	}
	if _, err := br.Results(0); CodeOf(err) != InterfaceError {
		t.Errorf("after Close: %v", err)
	}
}
