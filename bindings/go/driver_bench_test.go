package pgsess

import (
	"context"
	"testing"
)

// The round trip of one small statement with an argument: database/sql (a streamed Rows) and the
// native API (buffered Results), with and without a context that can end.
func BenchmarkRoundTrip(b *testing.B) {
	db, _ := openDB(b, 4)
	s := openTest(b, WithPoolMaxSize(4), WithStatementCache(256))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.Run("database/sql QueryRow", func(b *testing.B) {
		var n int
		for i := 0; i < b.N; i++ {
			if err := db.QueryRowContext(ctx, "SELECT $1::int", i).Scan(&n); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("database/sql Exec", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := db.ExecContext(ctx, "SELECT $1::int", i); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("native Query", func(b *testing.B) {
		var n int
		for i := 0; i < b.N; i++ {
			res, err := s.Query("SELECT $1::int", i)
			if err != nil {
				b.Fatal(err)
			}
			res.Next()
			res.Scan(&n)
			res.Close()
		}
	})
	b.Run("native QueryContext", func(b *testing.B) {
		var n int
		for i := 0; i < b.N; i++ {
			res, err := s.QueryContext(ctx, "SELECT $1::int", i)
			if err != nil {
				b.Fatal(err)
			}
			res.Next()
			res.Scan(&n)
			res.Close()
		}
	})
}
