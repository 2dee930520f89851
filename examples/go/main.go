// Command demo shows the Go binding of pgsess: it opens the session "demo" (URI from
// PGSQL_DEMO), creates a table, inserts rows with parameters (bytes with zero bytes included),
// runs a transaction, reads rows with Next/Scan and as maps, calls a function, and shows what a
// failing statement and an exhausted pool report.
//
//	PKG_CONFIG_PATH=PREFIX/lib/pkgconfig CGO_LDFLAGS=-Wl,-rpath,PREFIX/lib go run .
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	pgsess "github.com/pgsess/pgsess/bindings/go"
)

func main() {
	log.SetFlags(0)
	fmt.Println("pgsess", pgsess.Version())
	s, err := pgsess.Open("demo", pgsess.WithPoolMaxSize(4))
	if err != nil {
		log.Fatalf("open session \"demo\" (reads PGSQL_DEMO): %v", err)
	}
	defer s.Close()
	fmt.Printf("opened session \"demo\": pool %s\n", s.PoolID())

	must(s.Exec("DROP TABLE IF EXISTS pgsess_go_demo"))
	must(s.Exec(`CREATE TABLE pgsess_go_demo (id serial PRIMARY KEY, name text NOT NULL UNIQUE,
		score numeric, blob bytea, seen timestamptz DEFAULT now())`))
	defer s.Exec("DROP TABLE pgsess_go_demo")

	for _, r := range []struct {
		name  string
		score any
		blob  []byte
	}{{"ada", 36.5, []byte{0, 1, 2}}, {"grace", nil, nil}, {"linus", 12, []byte("\x00kernel\x00")}} {
		must(s.Exec("INSERT INTO pgsess_go_demo (name, score, blob) VALUES ($1, $2, $3)", r.name, r.score, r.blob))
	}

	// A transaction: both updates or neither.
	err = s.InTx(func(tx *pgsess.Tx) error {
		if _, err := tx.Exec("UPDATE pgsess_go_demo SET score = score + $1 WHERE name = $2", 1, "ada"); err != nil {
			return err
		}
		_, err := tx.Exec("UPDATE pgsess_go_demo SET score = $1 WHERE name = $2", "99.9", "grace")
		return err
	})
	if err != nil {
		log.Fatalf("transaction: %v", err)
	}

	res, err := s.Query("SELECT id, name, score, blob, seen FROM pgsess_go_demo WHERE id > $1 ORDER BY id", 0)
	if err != nil {
		log.Fatal(err)
	}
	for _, c := range res.Columns() {
		fmt.Printf("  %s(oid %d)", c.Name, c.TypeOID)
	}
	fmt.Println()
	for res.Next() {
		var (
			id    int64
			name  string
			score *string // numeric as exact text; nil for NULL
			blob  []byte
			seen  time.Time
		)
		if err := res.Scan(&id, &name, &score, &blob, &seen); err != nil {
			log.Fatal(err)
		}
		sc := "NULL"
		if score != nil {
			sc = *score
		}
		fmt.Printf("  %d | %s | %s | %q | seen %s ago\n", id, name, sc, blob, time.Since(seen).Round(time.Millisecond))
	}
	fmt.Printf("%s, %d rows\n", res.Status(), res.Rows())
	res.Close() // returns the pooled connection

	res, err = s.Query("SELECT name, score, length(blob) AS bytes FROM pgsess_go_demo ORDER BY id")
	if err != nil {
		log.Fatal(err)
	}
	rows, err := res.Maps()
	res.Close()
	if err != nil {
		log.Fatal(err)
	}
	out, _ := json.Marshal(rows)
	fmt.Println("as maps:", string(out))

	res, err = s.Callproc("pg_catalog.upper", "called through callproc")
	if err != nil {
		log.Fatal(err)
	}
	var up string
	if res.Next() {
		_ = res.Scan(&up)
	}
	res.Close()
	fmt.Println("callproc upper:", up)

	res, err = s.Query("DO $$BEGIN RAISE NOTICE 'a notice from the server'; END$$")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("notices: %q\n", res.Notices())
	res.Close()

	_, err = s.Exec("INSERT INTO pgsess_go_demo (name) VALUES ($1)", "ada")
	var pe *pgsess.Error
	if errors.As(err, &pe) {
		fmt.Printf("duplicate insert fails: %s, SQLSTATE %s: %s (%s)\n", pe.Code, pe.SQLState, pe.Message, pe.Detail)
	}

	// A pinned session holds one connection, so session state carries from one call to the
	// next; on the pooled session each statement may run elsewhere, on a reset connection.
	p, err := s.Pin()
	if err != nil {
		log.Fatal(err)
	}
	must(p.Exec("SET search_path = pgsess_go_demo_schema, public"))
	must(p.Exec("CREATE TEMP TABLE pgsess_go_scratch (v int)"))
	must(p.Exec("INSERT INTO pgsess_go_scratch VALUES (1), (2)"))
	var path string
	var scratch int
	res, err = p.Query("SELECT current_setting('search_path'), (SELECT count(*) FROM pgsess_go_scratch)")
	if err != nil {
		log.Fatal(err)
	}
	if res.Next() {
		_ = res.Scan(&path, &scratch)
	}
	res.Close()
	fmt.Printf("pinned session: search_path %q, %d rows in its temp table\n", path, scratch)
	p.Close() // the connection goes back to the pool, reset

	// A results handle holds its connection until Close: with a pool of 1 the next statement
	// waits for the checkout timeout and then explains itself.
	one, err := pgsess.Open("demo", pgsess.WithPoolMaxSize(1), pgsess.WithCheckoutTimeout(300*time.Millisecond))
	if err != nil {
		log.Fatal(err)
	}
	defer one.Close()
	held, err := one.Query("SELECT 1")
	if err != nil {
		log.Fatal(err)
	}
	_, err = one.Query("SELECT 2")
	fmt.Printf("while a results is open on a pool of 1: pool exhausted = %v\n  %v\n", pgsess.IsPoolExhausted(err), err)
	held.Close()
	if _, err := one.Exec("SELECT 3"); err != nil {
		fmt.Fprintln(os.Stderr, "after Close:", err)
		os.Exit(1)
	}
	fmt.Println("after Close the next statement runs")
}

func must(_ uint64, err error) {
	if err != nil {
		log.Fatal(err)
	}
}
