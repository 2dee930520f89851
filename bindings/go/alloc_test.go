package pgsess

import "testing"

// TestRoundTripAllocations: a native round trip (Query with an argument, Next, Scan, Close)
// allocates at most 4 Go objects. Every cgo call of the round trip passes a library handle, and
// cgo's check of a pointer to an incomplete C struct allocated on each call (10 objects per
// round trip before handles.h gave the handles a body). Allocation counts are the compiler's
// only without the race detector: run.sh runs this in its step without -race.
func TestRoundTripAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own; run.sh runs this test without -race")
	}
	s := openTest(t, WithStatementCache(16))
	var n int
	run := func() {
		res, err := s.Query("SELECT $1::int", 7)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Next() || res.Scan(&n) != nil || n != 7 {
			t.Fatalf("got %d", n)
		}
		res.Close()
	}
	run() // prepared, its result types learnt
	if got := testing.AllocsPerRun(500, run); got > 4 {
		t.Fatalf("a round trip allocates %.1f Go objects, want at most 4", got)
	}
}
