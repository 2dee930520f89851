// pgsess C++ demo: examples/c/demo.c, written with the C++17 layer <pgsess.hpp>.
//
// Opens the session "demo" (URI from PGSQL_DEMO), creates a table, inserts rows with parameters,
// runs a transaction, reads rows back by column name, calls a function, keeps session state on a
// pinned session, shows notices and what a failing statement throws, and shows that a Results
// object holds its pooled connection until it is destroyed.
//
// Build: c++ -std=c++17 demo.cpp $(pkg-config --cflags --libs pgsess)
#include <pgsess.hpp>

#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace {

void print_results(const pgsess::Results &r) {
    for (std::size_t c = 0; c < r.columns(); ++c)
        std::cout << (c ? " | " : "  ") << r.column_name(c) << "(oid " << r.column_type(c) << ")";
    std::cout << "\n";
    for (auto row : r) {
        for (std::size_t c = 0; c < row.size(); ++c)
            std::cout << (c ? " | " : "  ") << row[c].value_or("NULL");
        std::cout << "\n";
    }
}

} // namespace

int main() try {
    std::cout << "pgsess " << pgsess::version() << "\n";

    pgsess::Options options;
    options.pool_max_size = 4;
    pgsess::Session s("demo", options); // reads PGSQL_DEMO
    std::cout << "opened session \"demo\": pool " << s.pool_id() << ", backend pid " << s.backend_pid()
              << ", encoding " << s.encoding() << "\n";

    // A Results that is not kept is destroyed at once, returning its connection to the pool.
    s.query("DROP TABLE IF EXISTS pgsess_demo");
    s.query("CREATE TABLE pgsess_demo (id serial PRIMARY KEY, name text NOT NULL, score numeric, "
            "seen timestamptz DEFAULT now())");

    // Parameters are sent as text; std::nullopt is SQL NULL; integers are converted for you.
    const std::pair<std::string, std::optional<std::string>> people[] = {
        {"ada", "97.5"}, {"brian", std::nullopt}, {"straße", "88"}};
    for (const auto &[name, score] : people) {
        auto r = s.query("INSERT INTO pgsess_demo (name, score) VALUES ($1, $2)", name, score);
        std::cout << "inserted " << name << ": " << r.rows_affected() << " row(s) affected\n";
    }

    // A transaction pins one connection. Leaving the scope without commit() would roll back.
    {
        auto tx = s.begin();
        auto r = tx.query("UPDATE pgsess_demo SET score = score + $1 WHERE score IS NOT NULL", 10);
        std::cout << "transaction updated " << r.rows_affected() << " row(s) on backend " << r.backend_pid() << "\n";
        tx.commit();
    }

    auto rows = s.query("SELECT id, name, score, score IS NULL AS missing FROM pgsess_demo ORDER BY id");
    std::cout << rows.rows() << " rows:\n";
    print_results(rows);
    for (auto row : rows)
        std::cout << "  " << row["name"].value_or("?") << " scored " << row["score"].value_or("nothing") << "\n";
    if (auto index = rows.column_index("score"))
        std::cout << "column \"score\" is at index " << *index << "\n";
    rows.reset(); // free early: returns the connection now

    // callproc runs SELECT * FROM name($1, ...), quoting the name: no SQL is spliced.
    s.query("CREATE OR REPLACE FUNCTION pgsess_demo_above(min_score numeric) "
            "RETURNS TABLE (name text, score numeric) LANGUAGE sql AS "
            "$$ SELECT name, score FROM pgsess_demo WHERE score > min_score ORDER BY score $$");
    std::cout << "callproc public.pgsess_demo_above(100):\n";
    print_results(s.callproc("public.pgsess_demo_above", 100));
    s.query("DROP FUNCTION pgsess_demo_above(numeric)");

    // Notices raised by a statement travel with its results.
    // (Keep the Results in a variable: the notices are views into it.)
    auto raised = s.query("DO $$BEGIN RAISE NOTICE 'hello from the server'; END$$");
    for (std::string_view notice : raised.notices())
        std::cout << "notice: " << notice;
    raised.reset();

    // A pinned session holds one connection, so session state carries from one call to the next
    // (on the pooled session each statement may run on another connection, reset between users).
    {
        pgsess::Session pinned = s.pin();
        pinned.query("SET search_path = pgsess_demo_schema, public");
        pinned.query("CREATE TEMP TABLE pgsess_demo_scratch (v int)");
        pinned.query("INSERT INTO pgsess_demo_scratch VALUES (1), (2)");
        auto r = pinned.query("SELECT current_setting('search_path'), count(*) FROM pgsess_demo_scratch");
        std::cout << "pinned session: search_path " << r.value(0, 0).value_or("?") << ", "
                  << r.value(0, 1).value_or("?") << " rows in its temp table, backend " << r.backend_pid() << "\n";
    } // destroyed: the connection goes back to the pool, reset

    // A transaction's session: code written against a Session runs inside the transaction.
    {
        auto tx = s.begin();
        pgsess::Session in_tx = tx.session(); // a view: destroying it closes nothing
        in_tx.query("DELETE FROM pgsess_demo WHERE name = $1", "brian");
        tx.rollback(); // the DELETE is undone with the transaction
    }

    // Errors are exceptions carrying a code, a DB-API category, the SQLSTATE and the server's detail.
    try {
        s.query("INSERT INTO pgsess_demo (id, name) VALUES ($1, $2)", 1, "dup");
        std::cerr << "expected a unique violation\n";
        return 1;
    } catch (const pgsess::Error &e) {
        std::cout << "duplicate key: " << e.code_name() << ", category " << pgsess::code_name(e.category())
                  << ", SQLSTATE " << e.sqlstate().value_or("none") << "\n  message: " << e.what()
                  << "\n  detail: " << e.detail().value_or("none") << "\n";
    }

    // The free contract: Results hold their connection. With a pool of 1, a second statement waits
    // for the first Results to be destroyed, then fails with an explained error.
    pgsess::Options small;
    small.pool_max_size = 1;
    small.checkout_timeout_ms = 300;
    pgsess::Session one("demo", small);
    {
        auto held = one.query("SELECT 1");
        try {
            one.query("SELECT 2");
            std::cerr << "expected pool exhaustion\n";
            return 1;
        } catch (const pgsess::Error &e) {
            std::cout << "while a result is held: " << e.code_name() << "\n  " << e.what() << "\n";
        }
    } // held is destroyed here
    std::cout << "after the held Results is destroyed: SELECT 2 -> "
              << one.query("SELECT 2").value(0, 0).value_or("NULL") << "\n";

    s.query("DROP TABLE pgsess_demo");
    std::cout << "session notices:\n";
    for (const std::string &notice : s.notices())
        std::cout << notice;
    std::cout << "demo finished\n";
    return 0;
} catch (const pgsess::Error &e) {
    std::cerr << "pgsess error: " << e.what() << " [" << e.code_name() << ", SQLSTATE "
              << e.sqlstate().value_or("none") << "]\n";
    return 1;
}
