// Tests for include/pgsess.hpp, the C++17 layer over pgsess.h.
//
// Connects to the session "ctest" (URI from the environment variable PGSQL_CTEST). Run by
// tests/cpp/run.sh under valgrind (which is what checks that moved-from objects free nothing twice
// and that nothing leaks). Prints one line per failed check and ends with "N passed, M failed";
// exits 1 when anything failed, 2 when PGSQL_CTEST is unset.
#include <pgsess.hpp>
#include <pgsess.hpp> // include guard

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <limits>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <poll.h>
#include <unistd.h>

namespace {

int g_passed = 0;
int g_failed = 0;

bool check(bool ok, const char *expr, const char *file, int line) {
    if (ok) {
        ++g_passed;
    } else {
        ++g_failed;
        std::cout.flush();
        std::cerr << file << ":" << line << ": CHECK failed: " << expr << std::endl;
    }
    return ok;
}

std::string show(const std::optional<std::string_view> &v) {
    return v ? "\"" + std::string(*v) + "\"" : std::string("nullopt");
}
std::string show(const std::optional<std::string> &v) {
    return v ? "\"" + *v + "\"" : std::string("nullopt");
}
std::string show(std::string_view v) { return "\"" + std::string(v) + "\""; }
std::string show(const std::string &v) { return show(std::string_view(v)); }
std::string show(const char *v) { return v ? show(std::string_view(v)) : std::string("NULL"); }
std::string show(pgsess::Code c) { return std::string(pgsess::code_name(c)); }
template <class T, std::enable_if_t<std::is_arithmetic_v<T>, int> = 0>
std::string show(T v) {
    return std::to_string(v);
}
std::string show(std::nullopt_t) { return "nullopt"; }
template <class T>
std::string show(const std::optional<T> &v) {
    return v ? show(*v) : std::string("nullopt");
}

template <class A, class B>
bool check_eq(const A &a, const B &b, const char *ea, const char *eb, const char *file, int line) {
    const bool ok = (a == b);
    if (ok) {
        ++g_passed;
    } else {
        ++g_failed;
        std::cout.flush();
        std::cerr << file << ":" << line << ": CHECK failed: " << ea << " == " << eb << "\n    got:      "
                  << show(a) << "\n    expected: " << show(b) << std::endl;
    }
    return ok;
}

#define CHECK(expr) check(static_cast<bool>(expr), #expr, __FILE__, __LINE__)
#define CHECK_EQ(a, b) check_eq((a), (b), #a, #b, __FILE__, __LINE__)

// Run f, expecting pgsess::Error; returns it (nullopt, with a failed check, when none is thrown).
#define EXPECT_ERROR(stmt) expect_error([&] { stmt; }, #stmt, __FILE__, __LINE__)
std::optional<pgsess::Error> expect_error(const std::function<void()> &f, const char *what, const char *file,
                                          int line) {
    try {
        f();
    } catch (const pgsess::Error &e) {
        ++g_passed;
        return e;
    } catch (const std::exception &e) {
        check(false, (std::string(what) + " throws pgsess::Error (threw another exception: " + e.what() + ")").c_str(),
              file, line);
        return std::nullopt;
    }
    check(false, (std::string(what) + " throws pgsess::Error (threw nothing)").c_str(), file, line);
    return std::nullopt;
}

#define EXPECT_OUT_OF_RANGE(stmt) expect_out_of_range([&] { stmt; }, #stmt, __FILE__, __LINE__)
void expect_out_of_range(const std::function<void()> &f, const char *what, const char *file, int line) {
    try {
        f();
    } catch (const std::out_of_range &) {
        ++g_passed;
        return;
    } catch (const std::exception &e) {
        check(false, (std::string(what) + " throws std::out_of_range (threw: " + e.what() + ")").c_str(), file, line);
        return;
    }
    check(false, (std::string(what) + " throws std::out_of_range (threw nothing)").c_str(), file, line);
}

bool contains(std::string_view hay, std::string_view needle) { return hay.find(needle) != std::string_view::npos; }

std::string unique_name(const char *tag) {
    const auto ns = std::chrono::steady_clock::now().time_since_epoch().count();
    return "pgsess_cpptest_" + std::string(tag) + "_" + std::to_string(getpid()) + "_" + std::to_string(ns % 1000000);
}

// The count(*) of a table, as text.
std::string count_rows(pgsess::Session &s, const std::string &table) {
    auto r = s.query("SELECT count(*) FROM " + table);
    return std::string(r.value(0, 0).value_or("NULL"));
}

pgsess::Session open_ctest(const pgsess::Options &opts = {}) { return pgsess::Session("ctest", opts); }

// Whether primary key `id` of `table` is free: neither committed nor held by a transaction still
// open somewhere (that would make the probe wait; lock_timeout turns the wait into a failure
// instead of a hang). The probe itself is rolled back.
bool key_is_free(pgsess::Session &s, const std::string &table, int id) {
    try {
        auto tx = s.begin();
        tx.query("SET LOCAL lock_timeout = '2s'");
        tx.query("INSERT INTO " + table + " (id) VALUES ($1)", id);
        tx.rollback();
        return true;
    } catch (const pgsess::Error &e) {
        std::cerr << "key " << id << " of " << table << " is not free: " << e.code_name() << " "
                  << e.sqlstate().value_or("-") << " " << e.what() << std::endl;
        return false;
    }
}

// DROP TABLE without waiting forever for a lock a leaked transaction would hold.
void drop_table(pgsess::Session &s, const std::string &table) {
    auto tx = s.begin();
    tx.query("SET LOCAL lock_timeout = '2s'");
    tx.query("DROP TABLE " + table);
    tx.commit();
}

// ---------------------------------------------------------------------------------------------

void test_params_and_null(pgsess::Session &s) {
    const std::string lvalue = "from a std::string";
    const std::string_view long_view = "hello world";
    const std::string_view not_terminated = long_view.substr(0, 5); // "hello", not NUL-terminated
    const std::optional<std::string_view> opt_sv = std::string_view("opt view");
    const std::optional<std::string_view> opt_sv_null;
    const std::optional<std::string> opt_s = std::string("opt string");
    const char *null_cstr = nullptr;

    auto r = s.query("SELECT $1::text AS a, $2::text AS b, $3::text AS c, $4::text AS d, $5::text AS e, "
                     "$6::text AS f, $7::text AS g, $8::text AS h, $9::text AS i, $10::text AS j",
                     "literal", std::nullopt, lvalue, not_terminated, opt_sv, opt_sv_null, opt_s, null_cstr,
                     std::string("temporary"), nullptr);
    CHECK_EQ(r.rows(), 1u);
    CHECK_EQ(r.columns(), 10u);
    CHECK_EQ(r.value(0, 0), std::optional<std::string_view>("literal"));
    CHECK_EQ(r.value(0, 1), std::nullopt);
    CHECK_EQ(r.value(0, 2), std::optional<std::string_view>("from a std::string"));
    CHECK_EQ(r.value(0, 3), std::optional<std::string_view>("hello"));
    CHECK_EQ(r.value(0, 4), std::optional<std::string_view>("opt view"));
    CHECK_EQ(r.value(0, 5), std::nullopt);
    CHECK_EQ(r.value(0, 6), std::optional<std::string_view>("opt string"));
    CHECK_EQ(r.value(0, 7), std::nullopt);
    CHECK_EQ(r.value(0, 8), std::optional<std::string_view>("temporary"));
    CHECK_EQ(r.value(0, 9), std::nullopt);
    CHECK(r.is_null(0, 1));
    CHECK(!r.is_null(0, 0));

    // Empty string is not NULL; UTF-8 passes through unchanged.
    auto u = s.query("SELECT $1::text, length($1::text), $2::text", "", "straße ✓");
    CHECK_EQ(u.value(0, 0), std::optional<std::string_view>(""));
    CHECK_EQ(u.value(0, 1), std::optional<std::string_view>("0"));
    CHECK_EQ(u.value(0, 2), std::optional<std::string_view>("straße ✓"));

    // The vector overload.
    const std::vector<std::optional<std::string>> params{std::string("a"), std::nullopt, std::string("c")};
    auto v = s.query("SELECT $1::text, $2::text, $3::text", params);
    CHECK_EQ(v.value(0, 0), std::optional<std::string_view>("a"));
    CHECK_EQ(v.value(0, 1), std::nullopt);
    CHECK_EQ(v.value(0, 2), std::optional<std::string_view>("c"));
    auto empty_vec = s.query("SELECT 7", std::vector<std::optional<std::string>>{});
    CHECK_EQ(empty_vec.value(0, 0), std::optional<std::string_view>("7"));

    // No parameters: the simple protocol, several statements, the last one's result.
    auto multi = s.query("SELECT 1; SELECT 2 AS two");
    CHECK_EQ(multi.column_name(0), std::string_view("two"));
    CHECK_EQ(multi.value(0, 0), std::optional<std::string_view>("2"));

    // SQL given as std::string and as a (non-terminated) std::string_view.
    const std::string sql = "SELECT $1::int * 2";
    CHECK_EQ(s.query(sql, 21).value(0, 0), std::optional<std::string_view>("42"));
    const std::string_view sql_view = std::string_view("SELECT 'view'::text trailing garbage").substr(0, 20);
    CHECK_EQ(s.query(sql_view).value(0, 0), std::optional<std::string_view>("view"));
}

void test_typed_ints(pgsess::Session &s) {
    const std::int64_t i64min = std::numeric_limits<std::int64_t>::min();
    const std::int64_t i64max = std::numeric_limits<std::int64_t>::max();
    const std::uint64_t u64max = std::numeric_limits<std::uint64_t>::max();
    const short sh = -32768;
    const unsigned int ui = 4000000000u;
    const std::int8_t i8 = -5;
    const std::uint8_t u8 = 200;
    auto r = s.query("SELECT $1::int8, $2::int8, $3::numeric, $4::int2, $5::int8, $6::int, $7::int, $8::int + $9::int, "
                     "$10::bool, $11::bool, $12::int, $13::text",
                     i64min, i64max, u64max, sh, ui, i8, u8, 40, 2L, true, false, std::optional<int>(),
                     std::optional<long long>(-1));
    CHECK_EQ(r.value(0, 0), std::optional<std::string_view>("-9223372036854775808"));
    CHECK_EQ(r.value(0, 1), std::optional<std::string_view>("9223372036854775807"));
    CHECK_EQ(r.value(0, 2), std::optional<std::string_view>("18446744073709551615"));
    CHECK_EQ(r.value(0, 3), std::optional<std::string_view>("-32768"));
    CHECK_EQ(r.value(0, 4), std::optional<std::string_view>("4000000000"));
    CHECK_EQ(r.value(0, 5), std::optional<std::string_view>("-5"));
    CHECK_EQ(r.value(0, 6), std::optional<std::string_view>("200"));
    CHECK_EQ(r.value(0, 7), std::optional<std::string_view>("42"));
    CHECK_EQ(r.value(0, 8), std::optional<std::string_view>("t"));
    CHECK_EQ(r.value(0, 9), std::optional<std::string_view>("f"));
    CHECK_EQ(r.value(0, 10), std::nullopt);
    CHECK_EQ(r.value(0, 11), std::optional<std::string_view>("-1"));

    // What converts, at compile time: characters and pointers other than const char * do not.
    static_assert(std::is_constructible_v<pgsess::Param, int>);
    static_assert(std::is_constructible_v<pgsess::Param, unsigned long long>);
    static_assert(std::is_constructible_v<pgsess::Param, std::optional<std::string_view>>);
    static_assert(!std::is_constructible_v<pgsess::Param, char>);
    static_assert(!std::is_constructible_v<pgsess::Param, int *>);
    static_assert(!std::is_constructible_v<pgsess::Param, double>);
    static_assert(!std::is_constructible_v<pgsess::Param, std::vector<int>>);
}

void test_iteration_and_columns(pgsess::Session &s) {
    auto r = s.query("SELECT n, 'v' || n AS label, NULL::text AS nothing, n AS n FROM generate_series(1, 3) AS n");
    CHECK_EQ(r.rows(), 3u);
    CHECK_EQ(r.columns(), 4u);
    CHECK(!r.empty());
    CHECK_EQ(r.rows_affected(), 3u);
    CHECK_EQ(r.column_name(0), std::string_view("n"));
    CHECK_EQ(r.column_name(1), std::string_view("label"));
    CHECK_EQ(r.column_type(0), 23u); // int4
    CHECK_EQ(r.column_type(1), 25u); // text
    CHECK_EQ(r.column_index("label"), std::optional<std::size_t>(1));
    CHECK_EQ(r.column_index("n"), std::optional<std::size_t>(0)); // the first of two
    CHECK_EQ(r.column_index("LABEL"), std::nullopt);              // case-sensitive
    CHECK_EQ(r.column_index("missing"), std::nullopt);
    CHECK_EQ(r.column_index(std::string_view("labelXX").substr(0, 5)), std::optional<std::size_t>(1));

    std::size_t count = 0;
    for (auto row : r) {
        const std::string n = std::to_string(count + 1);
        CHECK_EQ(row.index(), count);
        CHECK_EQ(row.size(), 4u);
        CHECK_EQ(row[0], std::optional<std::string_view>(n));
        CHECK_EQ(row["n"], std::optional<std::string_view>(n));
        CHECK_EQ(row["label"], std::optional<std::string_view>("v" + n));
        CHECK_EQ(row[2], std::nullopt);
        CHECK_EQ(row["nothing"], std::nullopt);
        EXPECT_OUT_OF_RANGE(row[4]);
        EXPECT_OUT_OF_RANGE(row["missing"]);
        ++count;
    }
    CHECK_EQ(count, 3u);

    // Iterating a temporary Results: it lives for the whole loop (valgrind checks the reads).
    std::string joined;
    for (auto row : s.query("SELECT 'x' || n FROM generate_series(1, 3) AS n"))
        joined += std::string(row[0].value_or("NULL"));
    CHECK_EQ(joined, std::string("x1x2x3"));

    // Standard algorithms work on the row range.
    const auto big = std::count_if(r.begin(), r.end(), [](const pgsess::Row &row) { return row["n"] >= "2"; });
    CHECK_EQ(big, 2);
    CHECK_EQ(r.row(2)["label"], std::optional<std::string_view>("v3"));
    CHECK_EQ(r.value(1, "label"), std::optional<std::string_view>("v2"));

    // Bad indexes throw std::out_of_range.
    EXPECT_OUT_OF_RANGE(r.value(3, 0));
    EXPECT_OUT_OF_RANGE(r.value(0, 4));
    EXPECT_OUT_OF_RANGE(r.value(0, "missing"));
    EXPECT_OUT_OF_RANGE(r.is_null(9, 0));
    EXPECT_OUT_OF_RANGE(r.column_name(4));
    EXPECT_OUT_OF_RANGE(r.column_type(4));
    EXPECT_OUT_OF_RANGE(r.row(3));
    EXPECT_OUT_OF_RANGE(r[3][0]); // unchecked Row, checked on read

    // A command without rows.
    auto none = s.query("SELECT 1 WHERE false");
    CHECK_EQ(none.rows(), 0u);
    CHECK(none.empty());
    CHECK(none.begin() == none.end());
    CHECK_EQ(none.rows_affected(), 0u);

    // callproc: quoted names, set-returning and scalar functions, integer arguments.
    auto lower = s.callproc("lower", "ABC");
    CHECK_EQ(lower.value(0, 0), std::optional<std::string_view>("abc"));
    auto upper = s.callproc("pg_catalog.upper", std::string("xyz"));
    CHECK_EQ(upper.value(0, 0), std::optional<std::string_view>("XYZ"));
    // (Arguments are untyped text: an overloaded name like generate_series would be ambiguous.)
    auto rep = s.callproc("repeat", "ab", 3);
    CHECK_EQ(rep.value(0, 0), std::optional<std::string_view>("ababab"));
    auto series = s.callproc("regexp_split_to_table", "a,b,c", ",");
    CHECK_EQ(series.rows(), 3u);
    CHECK_EQ(series.value(2, 0), std::optional<std::string_view>("c"));
    auto vec = s.callproc("regexp_split_to_table",
                          std::vector<std::optional<std::string>>{std::string("x;y"), std::string(";")});
    CHECK_EQ(vec.rows(), 2u);
    auto null_arg = s.callproc("repeat", std::nullopt, 3);
    CHECK_EQ(null_arg.value(0, 0), std::nullopt);
    auto bad = EXPECT_ERROR(s.callproc("LOWER", "x")); // case-sensitive: no such function
    if (bad)
        CHECK_EQ(bad->code(), PGSESS_PROGRAMMING_ERROR);
}

void test_errors(pgsess::Session &s) {
    // Division by zero: 22012, a data error.
    auto e = EXPECT_ERROR(s.query("SELECT 1 / $1::int", 0));
    if (e) {
        CHECK_EQ(e->code(), PGSESS_DATA_ERROR);
        CHECK_EQ(e->category(), PGSESS_DATA_ERROR);
        CHECK_EQ(e->sqlstate(), std::optional<std::string>("22012"));
        CHECK_EQ(e->code_name(), std::string_view("PGSESS_DATA_ERROR"));
        CHECK(contains(e->what(), "division by zero"));
        // Copies share the fields.
        const pgsess::Error copy = *e;
        CHECK_EQ(copy.sqlstate(), std::optional<std::string>("22012"));
        CHECK_EQ(std::string(copy.what()), std::string(e->what()));
    }
    // Catchable as std::runtime_error.
    bool caught = false;
    try {
        s.query("SELECT 1/0");
    } catch (const std::runtime_error &re) {
        caught = contains(re.what(), "division by zero");
    }
    CHECK(caught);

    // Syntax error: programming error, 42601.
    e = EXPECT_ERROR(s.query("SELEKT 1"));
    if (e) {
        CHECK_EQ(e->code(), PGSESS_PROGRAMMING_ERROR);
        CHECK_EQ(e->sqlstate(), std::optional<std::string>("42601"));
    }
    // Undefined function: 42883 with a HINT.
    e = EXPECT_ERROR(s.query("SELECT pgsess_cpptest_no_such_function(1)"));
    if (e) {
        CHECK_EQ(e->code(), PGSESS_PROGRAMMING_ERROR);
        CHECK_EQ(e->sqlstate(), std::optional<std::string>("42883"));
        CHECK(e->hint().has_value());
    }
    // Unique violation: an integrity error with a DETAIL.
    const std::string table = unique_name("err");
    s.query("CREATE TABLE " + table + " (id int PRIMARY KEY)");
    s.query("INSERT INTO " + table + " VALUES ($1)", 1);
    e = EXPECT_ERROR(s.query("INSERT INTO " + table + " VALUES ($1)", 1));
    if (e) {
        CHECK_EQ(e->code(), PGSESS_INTEGRITY_ERROR);
        CHECK_EQ(e->category(), PGSESS_INTEGRITY_ERROR);
        CHECK_EQ(e->sqlstate(), std::optional<std::string>("23505"));
        CHECK(e->detail() && contains(*e->detail(), "already exists"));
    }
    s.query("DROP TABLE " + table);

    // Configuration errors: no SQLSTATE, interface category.
    e = EXPECT_ERROR(pgsess::Session("pgsess_cpptest_unset_variable"));
    if (e) {
        CHECK_EQ(e->code(), PGSESS_CONFIG_ERROR);
        CHECK_EQ(e->category(), PGSESS_INTERFACE_ERROR);
        CHECK_EQ(e->sqlstate(), std::nullopt);
        CHECK(contains(e->what(), "PGSQL_PGSESS_CPPTEST_UNSET_VARIABLE"));
    }
    pgsess::Options bad_url;
    bad_url.db_url = "postgresql://user:sekrit-pw@host:notaport/db";
    e = EXPECT_ERROR(pgsess::Session("ctest", bad_url));
    if (e) {
        CHECK_EQ(e->code(), PGSESS_CONFIG_ERROR);
        CHECK(!contains(e->what(), "sekrit-pw"));
    }
    pgsess::Options zero_pool;
    zero_pool.pool_max_size = 0;
    e = EXPECT_ERROR(pgsess::Session("ctest", zero_pool));
    if (e) {
        CHECK_EQ(e->code(), PGSESS_CONFIG_ERROR);
        CHECK_EQ(e->category(), PGSESS_INTERFACE_ERROR);
    }
    pgsess::Options zero_timeout;
    zero_timeout.checkout_timeout_ms = 0;
    e = EXPECT_ERROR(pgsess::Session("ctest", zero_timeout));
    if (e)
        CHECK_EQ(e->code(), PGSESS_CONFIG_ERROR);

    // A NUL byte cannot cross the C API: refused, not truncated.
    using namespace std::string_literals;
    e = EXPECT_ERROR(s.query("SELECT $1::text", "a\0b"s));
    if (e)
        CHECK_EQ(e->code(), PGSESS_INTERFACE_ERROR);
    e = EXPECT_ERROR(s.query("SELECT $1::text", std::vector<std::optional<std::string>>{"a\0b"s}));
    if (e)
        CHECK_EQ(e->code(), PGSESS_INTERFACE_ERROR);
    e = EXPECT_ERROR(s.query("SELECT 1\0; DROP TABLE x"s));
    if (e)
        CHECK_EQ(e->code(), PGSESS_INTERFACE_ERROR);
    // A wrong parameter count fails (whatever the code, it is an Error).
    EXPECT_ERROR(s.query("SELECT $1::int, $2::int", 1));

    // Encodings.
    s.set_encoding("utf-8");
    s.set_encoding("UNICODE");
    e = EXPECT_ERROR(s.set_encoding("LATIN1"));
    if (e)
        CHECK_EQ(e->code(), PGSESS_NOT_SUPPORTED_ERROR);

    // The session still works after all of this.
    CHECK_EQ(s.query("SELECT 'ok'::text").value(0, 0), std::optional<std::string_view>("ok"));
}

void test_transactions(pgsess::Session &s) {
    const std::string table = unique_name("tx");
    s.query("CREATE TABLE " + table + " (id int PRIMARY KEY, note text)");

    // Commit.
    {
        auto tx = s.begin();
        CHECK(tx.active());
        auto r = tx.query("INSERT INTO " + table + " VALUES ($1, $2)", 1, "committed");
        CHECK_EQ(r.rows_affected(), 1u);
        // Not visible outside the transaction yet.
        CHECK_EQ(count_rows(s, table), "0");
        tx.commit();
        CHECK(!tx.active());
    }
    CHECK_EQ(count_rows(s, table), "1");

    // Destroyed without commit: rolled back.
    {
        auto tx = s.begin();
        tx.query("INSERT INTO " + table + " VALUES ($1, $2)", 2, "dropped");
        CHECK_EQ(tx.query("SELECT count(*) FROM " + table).value(0, 0), std::optional<std::string_view>("2"));
    }
    CHECK_EQ(count_rows(s, table), "1");
    CHECK(key_is_free(s, table, 2)); // rolled back, not merely uncommitted

    // Rolled back by an exception unwinding through it.
    try {
        auto tx = s.begin();
        tx.query("INSERT INTO " + table + " VALUES ($1, $2)", 3, "unwound");
        throw std::runtime_error("application failure");
    } catch (const std::runtime_error &) {
    }
    CHECK_EQ(count_rows(s, table), "1");
    CHECK(key_is_free(s, table, 3));

    // Explicit rollback; the transaction is then ended.
    {
        auto tx = s.begin();
        tx.query("INSERT INTO " + table + " VALUES ($1, $2)", 4, "rolled back");
        tx.rollback();
        CHECK(!tx.active());
        tx.rollback(); // harmless
        auto e = EXPECT_ERROR(tx.query("SELECT 1"));
        if (e) {
            CHECK_EQ(e->code(), PGSESS_INTERFACE_ERROR);
            CHECK(contains(e->what(), "ended"));
        }
        e = EXPECT_ERROR(tx.commit());
        if (e)
            CHECK_EQ(e->code(), PGSESS_INTERFACE_ERROR);
    }
    CHECK_EQ(count_rows(s, table), "1");
    CHECK(key_is_free(s, table, 4));

    // A failed statement: later statements fail with 25P02, commit reports the rollback.
    {
        auto tx = s.begin();
        tx.query("INSERT INTO " + table + " VALUES ($1, $2)", 5, "doomed");
        auto e = EXPECT_ERROR(tx.query("INSERT INTO " + table + " VALUES ($1, $2)", 1, "duplicate"));
        if (e)
            CHECK_EQ(e->code(), PGSESS_INTEGRITY_ERROR);
        e = EXPECT_ERROR(tx.query("SELECT 1"));
        if (e)
            CHECK_EQ(e->sqlstate(), std::optional<std::string>("25P02"));
        e = EXPECT_ERROR(tx.commit());
        if (e) {
            CHECK_EQ(e->code(), PGSESS_TRANSACTION_ROLLBACK);
            CHECK_EQ(e->category(), PGSESS_OPERATIONAL_ERROR);
        }
        CHECK(!tx.active()); // ended even though commit threw
        e = EXPECT_ERROR(tx.commit());
        if (e)
            CHECK_EQ(e->code(), PGSESS_INTERFACE_ERROR);
    }
    CHECK_EQ(count_rows(s, table), "1");
    CHECK(key_is_free(s, table, 5));

    // Moved transactions: the moved-from one is empty and its destruction does nothing.
    {
        auto tx = s.begin();
        tx.query("INSERT INTO " + table + " VALUES ($1, $2)", 6, "moved");
        pgsess::Transaction moved(std::move(tx));
        CHECK(!tx.active());
        CHECK(moved.active());
        pgsess::Transaction assigned;
        assigned = std::move(moved);
        CHECK(!moved.active());
        assigned.query("INSERT INTO " + table + " VALUES ($1, $2)", 7, "moved twice");
        assigned.commit();
    }
    CHECK_EQ(count_rows(s, table), "3");

    // Move-assigning over an open transaction rolls the old one back.
    {
        auto first = s.begin();
        first.query("INSERT INTO " + table + " VALUES ($1, $2)", 8, "replaced");
        first = s.begin();
        first.query("INSERT INTO " + table + " VALUES ($1, $2)", 9, "kept");
        first.commit();
    }
    CHECK_EQ(count_rows(s, table), "4");
    auto kept = s.query("SELECT id FROM " + table + " WHERE id IN (8, 9) ORDER BY id");
    CHECK_EQ(kept.rows(), 1u);
    CHECK_EQ(kept.value(0, 0), std::optional<std::string_view>("9"));
    CHECK(key_is_free(s, table, 8));

    // The vector overload inside a transaction.
    {
        auto tx = s.begin();
        tx.query("INSERT INTO " + table + " VALUES ($1, $2)",
                 std::vector<std::optional<std::string>>{std::string("10"), std::nullopt});
        tx.commit();
    }
    auto ten = s.query("SELECT note IS NULL FROM " + table + " WHERE id = $1", 10);
    CHECK_EQ(ten.value(0, 0), std::optional<std::string_view>("t"));

    drop_table(s, table);
}

template <class T>
void self_move_assign(T &a, T &b) {
    a = std::move(b); // a and b are the same object
}

void test_moves(pgsess::Session &s) {
    // Results.
    pgsess::Results r1 = s.query("SELECT 'kept'::text AS v");
    const std::string_view view = *r1.value(0, 0);
    pgsess::Results r2(std::move(r1));
    CHECK(!r1);
    CHECK(r2);
    CHECK_EQ(r1.rows(), 0u);
    CHECK_EQ(r1.columns(), 0u);
    CHECK(r1.begin() == r1.end());
    CHECK_EQ(r1.rows_affected(), 0u);
    CHECK_EQ(r1.backend_pid(), 0);
    CHECK(r1.notices().empty());
    EXPECT_OUT_OF_RANGE(r1.value(0, 0));
    CHECK_EQ(r2.value(0, "v"), std::optional<std::string_view>("kept"));
    CHECK_EQ(view, std::string_view("kept")); // views survive a move of their Results
    pgsess::Results r3;
    r3 = std::move(r2);
    CHECK(!r2);
    CHECK_EQ(r3.value(0, 0), std::optional<std::string_view>("kept"));
    self_move_assign(r3, r3);
    CHECK_EQ(r3.value(0, 0), std::optional<std::string_view>("kept"));
    r3 = s.query("SELECT 'replaced'::text"); // frees the old results
    CHECK_EQ(r3.value(0, 0), std::optional<std::string_view>("replaced"));
    r3.reset();
    CHECK(!r3);
    r3.reset(); // harmless
    // release() hands the handle to C.
    pgsess::Results r4 = s.query("SELECT 1");
    pgsess_results *raw = r4.release();
    CHECK(!r4);
    CHECK_EQ(pgsess_results_nrows(raw), 1u);
    pgsess_results_free(raw);
    // Results outlive their session.
    {
        pgsess::Results survivor;
        {
            auto short_lived = open_ctest();
            survivor = short_lived.query("SELECT 'after close'::text");
        }
        CHECK_EQ(survivor.value(0, 0), std::optional<std::string_view>("after close"));
    }

    // Sessions.
    pgsess::Session a = open_ctest();
    pgsess::Session b(std::move(a));
    CHECK(!a);
    CHECK(b);
    auto e = EXPECT_ERROR(a.query("SELECT 1"));
    if (e) {
        CHECK_EQ(e->code(), PGSESS_INTERFACE_ERROR);
        CHECK_EQ(e->category(), PGSESS_INTERFACE_ERROR);
        CHECK(contains(e->what(), "moved from"));
    }
    e = EXPECT_ERROR(a.begin());
    if (e)
        CHECK_EQ(e->code(), PGSESS_INTERFACE_ERROR);
    e = EXPECT_ERROR(a.callproc("lower", "x"));
    if (e)
        CHECK_EQ(e->code(), PGSESS_INTERFACE_ERROR);
    CHECK(!a.validate());
    CHECK_EQ(a.backend_pid(), 0);
    CHECK_EQ(a.pool_id(), std::string());
    CHECK_EQ(a.encoding(), std::string());
    CHECK(a.notices().empty());
    CHECK_EQ(b.query("SELECT 2").value(0, 0), std::optional<std::string_view>("2"));
    a = std::move(b); // a takes b's handle back
    CHECK(a && !b);
    self_move_assign(a, a);
    CHECK(a.validate());
    a = open_ctest(); // closes the old session
    CHECK(a.validate());
    pgsess::Session empty;
    CHECK(!empty);
    empty = pgsess::Session();
    // Every moved-from or empty object here is destroyed at scope exit: valgrind checks that
    // nothing is freed twice.
}

void test_pool_options() {
    pgsess::Options opts;
    opts.pool_max_size = 3;
    opts.checkout_timeout_ms = 1500;
    opts.pool_max_lifetime = 600;
    opts.pool_min_idle = 2;
    opts.pool_health_check_ms = 1000;
    auto warm = open_ctest(opts);
    pgsess_stats_v2 st{};
    CHECK_EQ(pgsess_pool_stats_v2(warm.get(), &st, sizeof st), PGSESS_OK);
    CHECK_EQ(st.min_idle, 2u);
    CHECK_EQ(st.open, 2u);
    CHECK_EQ(warm.query("SELECT 1").value(0, 0), std::optional<std::string_view>("1"));

    pgsess::Options bad;
    bad.pool_min_idle = 10001;
    auto e = EXPECT_ERROR(open_ctest(bad));
    if (e)
        CHECK_EQ(e->code(), PGSESS_CONFIG_ERROR);
}

// A password callback that counts its calls and defers to the configured password (-1).
std::atomic<int> password_calls{0};
std::int32_t count_password(const char *host, std::uint16_t, const char *user, char *, std::size_t, void *data) {
    if (host != nullptr && user != nullptr && data == &password_calls)
        password_calls.fetch_add(1);
    return -1;
}

void test_pool_operations() {
    pgsess::Options opts;
    opts.pool_max_size = 2;
    opts.checkout_timeout_ms = 3000;
    opts.password_callback = count_password;
    opts.password_user_data = &password_calls;
    auto s = open_ctest(opts);
    CHECK_EQ(s.query("SELECT 1").value(0, 0), std::optional<std::string_view>("1"));
    CHECK(password_calls.load() >= 1);
    pgsess_stats_v2 st = s.pool_stats();
    CHECK_EQ(st.max_size, 2u);
    CHECK(st.size >= sizeof st);
    CHECK(st.checkouts >= 1u);
    s.pool_resize(4);
    CHECK_EQ(s.pool_stats().max_size, 4u);
    auto e = EXPECT_ERROR(s.pool_resize(0));
    if (e)
        CHECK_EQ(e->code(), PGSESS_CONFIG_ERROR);
    const std::string text = s.pool_stats_text();
    CHECK(contains(text, "pool=\"" + s.pool_id() + "\""));
    CHECK(contains(text, "# TYPE"));
    s.pool_drain(2000);
    CHECK_EQ(s.pool_stats().open, 0u);
    const int before = password_calls.load();
    CHECK_EQ(s.query("SELECT 2").value(0, 0), std::optional<std::string_view>("2"));
    CHECK(password_calls.load() > before);

    pgsess::config_check("host=localhost port=5432 dbname=x sslmode=require");
    auto bad = EXPECT_ERROR(pgsess::config_check("host=localhost sslmode=maybe"));
    if (bad)
        CHECK_EQ(bad->code(), PGSESS_CONFIG_ERROR);
    auto unsupported = EXPECT_ERROR(pgsess::config_check("gssencmode=require"));
    if (unsupported)
        CHECK_EQ(unsupported->code(), PGSESS_NOT_SUPPORTED_ERROR);
    pgsess::Session empty;
    auto empty_err = EXPECT_ERROR(empty.pool_stats());
    if (empty_err)
        CHECK_EQ(empty_err->code(), PGSESS_INTERFACE_ERROR);
}

void test_exhaustion() {
    pgsess::Options opts;
    opts.pool_max_size = 1;
    opts.checkout_timeout_ms = 300;
    opts.pool_idle_ttl = 0;
    auto one = open_ctest(opts);

    auto held = one.query("SELECT 1");
    const auto start = std::chrono::steady_clock::now();
    auto e = EXPECT_ERROR(one.query("SELECT 2"));
    const auto waited =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
    if (e) {
        CHECK_EQ(e->code(), PGSESS_POOL_EXHAUSTED);
        CHECK_EQ(e->category(), PGSESS_OPERATIONAL_ERROR);
        CHECK_EQ(e->sqlstate(), std::nullopt);
        CHECK(contains(e->what(), "exhausted"));
        CHECK(contains(e->what(), "1 results not yet freed"));
    }
    CHECK(waited >= 250);
    CHECK(waited < 5000);
    e = EXPECT_ERROR(one.begin());
    if (e)
        CHECK_EQ(e->code(), PGSESS_POOL_EXHAUSTED);
    e = EXPECT_ERROR(one.callproc("lower", "x"));
    if (e)
        CHECK_EQ(e->code(), PGSESS_POOL_EXHAUSTED);

    // Moving the results moves the connection with them; only freeing returns it.
    pgsess::Results moved = std::move(held);
    e = EXPECT_ERROR(one.query("SELECT 2"));
    if (e)
        CHECK_EQ(e->code(), PGSESS_POOL_EXHAUSTED);
    moved.reset();
    CHECK_EQ(one.query("SELECT 2").value(0, 0), std::optional<std::string_view>("2"));

    // Move-assignment frees the results it replaces.
    {
        pgsess::Results a = one.query("SELECT 3");
        pgsess::Results b;
        b = std::move(a);
        b = pgsess::Results();
        CHECK_EQ(one.query("SELECT 4").value(0, 0), std::optional<std::string_view>("4"));
    }

    // Results of a transaction keep its connection after commit, until freed.
    {
        auto tx = one.begin();
        auto r = tx.query("SELECT 5");
        tx.commit();
        e = EXPECT_ERROR(one.query("SELECT 6"));
        if (e)
            CHECK_EQ(e->code(), PGSESS_POOL_EXHAUSTED);
        CHECK_EQ(r.value(0, 0), std::optional<std::string_view>("5"));
    }
    // A transaction destroyed without commit returns its connection too.
    {
        auto tx = one.begin();
        tx.query("SELECT 7");
    }
    CHECK_EQ(one.query("SELECT 8").value(0, 0), std::optional<std::string_view>("8"));
    CHECK(one.validate());
}

void test_session_helpers(pgsess::Session &s) {
    CHECK_EQ(pgsess::version(), std::string_view(pgsess_version()));
    CHECK_EQ(pgsess::code_name(PGSESS_POOL_EXHAUSTED), std::string_view("PGSESS_POOL_EXHAUSTED"));
    CHECK(s.validate());
    CHECK_EQ(s.encoding(), std::string("UTF8"));
    CHECK(!s.pool_id().empty());
    auto other = open_ctest();
    CHECK_EQ(other.pool_id(), s.pool_id()); // same URI and options: same pool
    pgsess::Options small;
    small.pool_max_size = 2;
    auto different = open_ctest(small);
    CHECK(different.pool_id() != s.pool_id());

    auto r = s.query("SELECT pg_backend_pid()");
    CHECK(r.backend_pid() > 0);
    CHECK_EQ(r.value(0, 0), std::optional<std::string_view>(std::to_string(r.backend_pid())));
    CHECK(s.backend_pid() > 0);

    auto n = s.query("DO $$BEGIN RAISE NOTICE 'hello from cpp'; RAISE WARNING 'careful'; END$$");
    const std::vector<std::string_view> notices = n.notices();
    CHECK_EQ(notices.size(), 2u);
    if (notices.size() == 2) {
        CHECK_EQ(notices[0], std::string_view("NOTICE:  hello from cpp\n"));
        CHECK_EQ(notices[1], std::string_view("WARNING:  careful\n"));
    }
    const std::vector<std::string> all = s.notices();
    CHECK(std::find(all.begin(), all.end(), "NOTICE:  hello from cpp\n") != all.end());
    CHECK(std::find(all.begin(), all.end(), "WARNING:  careful\n") != all.end());
}

// Every code's category comes from the library (pgsess_code_category), the one table; errors the
// header raises itself carry it too.
void test_code_categories() {
    struct Expected {
        pgsess::Code code;
        pgsess::Code category;
    };
    const Expected expected[] = {
        {PGSESS_OK, PGSESS_OK},
        {PGSESS_INTERFACE_ERROR, PGSESS_INTERFACE_ERROR},
        {PGSESS_CONFIG_ERROR, PGSESS_INTERFACE_ERROR},
        {PGSESS_OPERATIONAL_ERROR, PGSESS_OPERATIONAL_ERROR},
        {PGSESS_POOL_EXHAUSTED, PGSESS_OPERATIONAL_ERROR},
        {PGSESS_QUERY_CANCELED, PGSESS_OPERATIONAL_ERROR},
        {PGSESS_TRANSACTION_ROLLBACK, PGSESS_OPERATIONAL_ERROR},
        {PGSESS_PROGRAMMING_ERROR, PGSESS_PROGRAMMING_ERROR},
        {PGSESS_INTEGRITY_ERROR, PGSESS_INTEGRITY_ERROR},
        {PGSESS_DATA_ERROR, PGSESS_DATA_ERROR},
        {PGSESS_INTERNAL_ERROR, PGSESS_INTERNAL_ERROR},
        {PGSESS_NOT_SUPPORTED_ERROR, PGSESS_NOT_SUPPORTED_ERROR},
        {PGSESS_DATABASE_ERROR, PGSESS_DATABASE_ERROR},
        {PGSESS_NULL_VALUE, PGSESS_INTERFACE_ERROR},
        {PGSESS_TYPE_MISMATCH, PGSESS_INTERFACE_ERROR},
        {PGSESS_OUT_OF_RANGE, PGSESS_INTERFACE_ERROR},
        {PGSESS_VALUE_OVERFLOW, PGSESS_DATA_ERROR},
        {PGSESS_PANIC, PGSESS_INTERNAL_ERROR},
    };
    for (const Expected &e : expected) {
        CHECK_EQ(pgsess::code_category(e.code), e.category);
        CHECK(pgsess::code_name(e.code) != "PGSESS_UNKNOWN_CODE");
    }
    CHECK_EQ(pgsess::code_name(PGSESS_PANIC), std::string_view("PGSESS_PANIC"));
    // The value after the last code is none.
    const auto past = static_cast<pgsess::Code>(PGSESS_PANIC + 1);
    CHECK_EQ(pgsess::code_name(past), std::string_view("PGSESS_UNKNOWN_CODE"));
    CHECK_EQ(pgsess::code_category(past), PGSESS_INTERFACE_ERROR);

    // An option the library refuses: the header raises the error, with the library's category.
    pgsess::Options bad;
    bad.pool_max_size = 0;
    auto err = EXPECT_ERROR(pgsess::Session("ctest", bad));
    if (err) {
        CHECK_EQ(err->code(), PGSESS_CONFIG_ERROR);
        CHECK_EQ(err->category(), PGSESS_INTERFACE_ERROR);
    }
}

// Session::notices gives each notice whole: its DETAIL and HINT lines stay with it.
void test_notices_whole() {
    auto s = open_ctest(); // a session of its own: its notices are only these
    CHECK(s.notices().empty());
    auto r = s.query("DO $$ BEGIN RAISE NOTICE 'x' USING DETAIL = 'd', HINT = 'h'; RAISE WARNING 'w'; END $$");
    const std::string whole = "NOTICE:  x\nDETAIL:  d\nHINT:  h\n";
    const std::vector<std::string_view> from_results = r.notices();
    CHECK_EQ(from_results.size(), 2u);
    if (from_results.size() == 2)
        CHECK_EQ(from_results[0], std::string_view(whole));
    const std::vector<std::string> notices = s.notices();
    CHECK_EQ(notices.size(), 2u);
    if (notices.size() == 2) {
        CHECK_EQ(notices[0], whole);
        CHECK_EQ(notices[1], std::string("WARNING:  w\n"));
    }

    // Under another lc_messages the severity words are translated, and each notice is still one
    // element. Skipped where the server cannot switch (no such locale, or not allowed).
    pgsess::Options one;
    one.pool_max_size = 1;
    auto local = open_ctest(one);
    auto tx = local.begin();
    try {
        tx.query("SET LOCAL lc_messages = 'de_DE.UTF-8'");
    } catch (const pgsess::Error &e) {
        std::cout << "(lc_messages cannot be set here, translation not checked: " << e.what() << ")" << std::endl;
        return;
    }
    tx.query("DO $$ BEGIN RAISE NOTICE 'x' USING DETAIL = 'd', HINT = 'h'; END $$");
    tx.rollback();
    const std::vector<std::string> translated = local.notices();
    CHECK_EQ(translated.size(), 1u);
    if (translated.size() == 1) {
        CHECK(contains(translated[0], "x\n"));
        CHECK(contains(translated[0], "d\n"));
        CHECK(contains(translated[0], "h\n"));
    }
}

// Bytes travel as a binary parameter: a zero byte and 0xff arrive as they are, through
// callproc (pgsess_callproc_params) and query (pgsess_query_params).
void test_binary_arguments(pgsess::Session &s) {
    const char raw[] = {'\0', '\xff', 'a'};
    const pgsess::Bytes bytes(raw, sizeof raw);
    auto hex = s.callproc("encode", bytes, "hex");
    CHECK_EQ(hex.value(0, 0), std::optional<std::string_view>("00ff61"));
    const std::vector<std::uint8_t> vec{0x00, 0xff};
    auto q = s.query("SELECT encode($1, 'hex'), $2::int", pgsess::Bytes(vec), 7);
    CHECK_EQ(q.value(0, 0), std::optional<std::string_view>("00ff"));
    CHECK_EQ(q.value(0, 1), std::optional<std::string_view>("7"));
    auto empty = s.callproc("encode", pgsess::Bytes(nullptr, 0), "hex");
    CHECK_EQ(empty.value(0, 0), std::optional<std::string_view>(""));
    auto null_bytes = s.callproc("encode", std::optional<pgsess::Bytes>(), "hex");
    CHECK_EQ(null_bytes.value(0, 0), std::nullopt);

    const std::string fn = unique_name("octets");
    s.query("CREATE FUNCTION " + fn + "(b bytea) RETURNS int LANGUAGE sql AS 'SELECT octet_length(b)'");
    auto len = s.callproc(fn, bytes);
    CHECK_EQ(len.value(0, 0), std::optional<std::string_view>("3"));
    s.query("DROP FUNCTION " + fn + "(bytea)");
}

// Transaction::callproc runs in the transaction: what the function does is rolled back with it.
void test_transaction_callproc(pgsess::Session &s) {
    const std::string table = unique_name("txcall");
    const std::string fn = table + "_put";
    s.query("CREATE TABLE " + table + " (b bytea)");
    s.query("CREATE FUNCTION " + fn + "(v bytea) RETURNS int LANGUAGE sql AS 'INSERT INTO " + table +
            " VALUES (v) RETURNING octet_length(b)'");
    const char raw[] = {'\0', '\xff'};
    {
        auto tx = s.begin();
        CHECK_EQ(tx.callproc(fn, pgsess::Bytes(raw, sizeof raw)).value(0, 0),
                 std::optional<std::string_view>("2"));  // binary: pgsess_tx_callproc_params
        CHECK_EQ(tx.callproc(fn, "\\x00ff00").value(0, 0),
                 std::optional<std::string_view>("3"));  // text: pgsess_tx_callproc
        CHECK_EQ(tx.callproc(fn, std::vector<std::optional<std::string>>{std::string("\\x01")}).value(0, 0),
                 std::optional<std::string_view>("1"));
        CHECK_EQ(tx.query("SELECT count(*) FROM " + table).value(0, 0), std::optional<std::string_view>("3"));
        CHECK_EQ(count_rows(s, table), "0"); // not visible outside
        tx.rollback();
        auto e = EXPECT_ERROR(tx.callproc(fn, "\\x00"));
        if (e)
            CHECK_EQ(e->code(), PGSESS_INTERFACE_ERROR);
    }
    CHECK_EQ(count_rows(s, table), "0");
    {
        auto tx = s.begin();
        tx.callproc(fn, pgsess::Bytes(raw, sizeof raw));
        tx.commit();
    }
    auto kept = s.query("SELECT encode(b, 'hex') FROM " + table);
    CHECK_EQ(kept.rows(), 1u);
    CHECK_EQ(kept.value(0, 0), std::optional<std::string_view>("00ff"));
    s.query("DROP FUNCTION " + fn + "(bytea)");
    drop_table(s, table);
}

void test_threads(pgsess::Session &s) {
    constexpr int kThreads = 4;
    constexpr int kQueries = 10;
    std::atomic<int> ok{0};
    std::atomic<int> bad{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&s, &ok, &bad, t] {
            for (int i = 0; i < kQueries; ++i) {
                try {
                    auto r = s.query("SELECT $1::int * 1000 + $2::int", t, i);
                    if (r.value(0, 0) == std::optional<std::string_view>(std::to_string(t * 1000 + i)))
                        ++ok;
                    else
                        ++bad;
                } catch (const std::exception &e) {
                    std::cerr << "thread " << t << ": " << e.what() << std::endl;
                    ++bad;
                }
            }
        });
    }
    for (auto &th : threads)
        th.join();
    CHECK_EQ(ok.load(), kThreads * kQueries);
    CHECK_EQ(bad.load(), 0);
}

// The first value of `sql` on `s`, as a string ("NULL" for SQL NULL).
std::string scalar(pgsess::Session &s, const std::string &sql) {
    auto r = s.query(sql);
    return std::string(r.value(0, 0).value_or("NULL"));
}

std::int32_t backend_of(pgsess::Session &s) {
    auto r = s.query("SELECT pg_backend_pid()");
    CHECK_EQ(r.value(0, 0), std::optional<std::string_view>(std::to_string(r.backend_pid())));
    return r.backend_pid();
}

// A pinned session keeps SET, a temporary table and lastval() from one call to the next, on one
// backend; the pooled session it came from sees none of it.
void test_pinned_state(pgsess::Session &s) {
    const std::string default_path = scalar(s, "SHOW search_path");
    CHECK(!s.is_pinned());
    auto p = s.pin();
    CHECK(p.is_pinned());
    CHECK(p.owns_handle());
    CHECK_EQ(p.pool_id(), s.pool_id());
    const std::int32_t pid = backend_of(p);
    p.query("SET search_path = pgsess_cpp_schema, public");
    CHECK_EQ(scalar(p, "SHOW search_path"), std::string("pgsess_cpp_schema, public"));
    p.query("CREATE TEMP TABLE cpp_pinned (id serial, v int)");
    p.query("INSERT INTO cpp_pinned (v) VALUES ($1), ($2)", 7, 8);
    CHECK_EQ(scalar(p, "SELECT lastval()"), std::string("2"));
    CHECK_EQ(scalar(p, "SELECT sum(v) FROM cpp_pinned"), std::string("15"));
    for (int i = 0; i < 5; ++i)
        CHECK_EQ(backend_of(p), pid);
    // Its Results share its connection: holding one does not stop the next statement.
    auto held = p.query("SELECT 'held'");
    CHECK_EQ(scalar(p, "SELECT count(*) FROM cpp_pinned"), std::string("2"));
    CHECK_EQ(held.backend_pid(), pid);
    CHECK_EQ(scalar(s, "SHOW search_path"), default_path);
    CHECK_EQ(scalar(s, "SELECT to_regclass('cpp_pinned') IS NULL"), std::string("t"));

    // Moving a pinned session moves its connection with it.
    pgsess::Session moved = std::move(p);
    CHECK(!p.is_pinned());
    CHECK(moved.is_pinned());
    CHECK_EQ(scalar(moved, "SHOW search_path"), std::string("pgsess_cpp_schema, public"));
    CHECK_EQ(backend_of(moved), pid);
}

// BEGIN, INSERT and ROLLBACK sent as separate calls on a pinned session are one transaction.
void test_pinned_transaction_as_calls(pgsess::Session &s) {
    const std::string table = unique_name("pinned_tx");
    s.query("CREATE TABLE " + table + " (id int PRIMARY KEY)");
    {
        auto p = s.pin();
        p.query("BEGIN");
        p.query("INSERT INTO " + table + " VALUES ($1)", 1);
        CHECK_EQ(count_rows(p, table), "1");
        CHECK_EQ(count_rows(s, table), "0");
        p.query("ROLLBACK");
        CHECK_EQ(count_rows(p, table), "0");
        p.query("BEGIN");
        p.query("INSERT INTO " + table + " VALUES ($1)", 2);
        p.query("COMMIT");
        // A transaction left open is rolled back when the pinned session closes.
        p.query("BEGIN");
        p.query("INSERT INTO " + table + " VALUES ($1)", 3);
    }
    CHECK_EQ(count_rows(s, table), "1");
    CHECK(key_is_free(s, table, 1));
    CHECK(key_is_free(s, table, 3));
    drop_table(s, table);
}

// On a pool of 1 the pinned session holds the only connection; once it is destroyed the next
// pooled caller gets that connection back with none of its state.
void test_pinned_pool_of_one() {
    pgsess::Options opts;
    opts.pool_max_size = 1;
    opts.checkout_timeout_ms = 300;
    auto base = open_ctest(opts);
    const std::string path = scalar(base, "SHOW search_path");
    const std::string app = scalar(base, "SHOW application_name");
    const std::int32_t pid = backend_of(base);
    CHECK_EQ(base.pinned_sessions(), 0u);
    {
        auto p = base.pin();
        CHECK_EQ(base.pinned_sessions(), 1u);
        CHECK_EQ(backend_of(p), pid);
        p.query("SET search_path = pgsess_cpp_schema");
        p.query("SET application_name = 'pgsess_cpp_pinned'");
        p.query("CREATE TEMP TABLE cpp_one (v int)");
        CHECK_EQ(scalar(p, "SHOW application_name"), std::string("pgsess_cpp_pinned"));
        auto e = EXPECT_ERROR(base.query("SELECT 1"));
        if (e)
            CHECK_EQ(e->code(), PGSESS_POOL_EXHAUSTED);
        e = EXPECT_ERROR(base.pin());
        if (e)
            CHECK_EQ(e->code(), PGSESS_POOL_EXHAUSTED);
    }
    CHECK_EQ(base.pinned_sessions(), 0u);
    CHECK_EQ(backend_of(base), pid);
    CHECK_EQ(scalar(base, "SHOW search_path"), path);
    CHECK_EQ(scalar(base, "SHOW application_name"), app);
    CHECK_EQ(scalar(base, "SELECT to_regclass('cpp_one') IS NULL"), std::string("t"));

    // Options::pinned: the constructor opens a pinned session, on the same pool.
    pgsess::Options pinned_opts = opts;
    pinned_opts.pinned = true;
    {
        auto p = open_ctest(pinned_opts);
        CHECK(p.is_pinned());
        CHECK_EQ(p.pool_id(), base.pool_id());
        CHECK_EQ(base.pinned_sessions(), 1u);
        p.query("SET application_name = 'pgsess_cpp_option'");
        CHECK_EQ(scalar(p, "SHOW application_name"), std::string("pgsess_cpp_option"));
    }
    CHECK_EQ(base.pinned_sessions(), 0u);
    CHECK_EQ(scalar(base, "SHOW application_name"), app);
}

// PGSESS_RESET_NEVER lets a SET reach the next caller on a pool of 1; DIRTY (the default) does not.
void test_reset_modes() {
    pgsess::Options never;
    never.pool_max_size = 1;
    never.reset = PGSESS_RESET_NEVER;
    pgsess::Options dirty;
    dirty.pool_max_size = 1;
    dirty.reset = PGSESS_RESET_DIRTY;
    pgsess::Options deflt;
    deflt.pool_max_size = 1;
    auto n = open_ctest(never);
    auto d = open_ctest(dirty);
    CHECK_EQ(d.pool_id(), open_ctest(deflt).pool_id());
    CHECK(n.pool_id() != d.pool_id());
    const std::string app = scalar(d, "SHOW application_name");

    const std::int32_t npid = backend_of(n);
    n.query("SET application_name = 'pgsess_cpp_never'");
    CHECK_EQ(scalar(n, "SHOW application_name"), std::string("pgsess_cpp_never"));
    CHECK_EQ(backend_of(n), npid);
    n.query("RESET application_name");

    const std::int32_t dpid = backend_of(d);
    d.query("SET application_name = 'pgsess_cpp_dirty'");
    CHECK_EQ(scalar(d, "SHOW application_name"), app);
    CHECK_EQ(backend_of(d), dpid);

    pgsess::Options bad;
    bad.reset = static_cast<pgsess::Reset>(7);
    auto e = EXPECT_ERROR(pgsess::Session("ctest", bad));
    if (e)
        CHECK_EQ(e->code(), PGSESS_INTERFACE_ERROR);
}

// Code written against a Session takes part in a transaction through Transaction::session().
void insert_through(pgsess::Session &session, const std::string &table, int id) {
    session.query("INSERT INTO " + table + " VALUES ($1)", id);
}

// A transaction's session runs every call inside the transaction; it is a view that closes
// nothing.
void test_transaction_session(pgsess::Session &s) {
    const std::string table = unique_name("txsession");
    s.query("CREATE TABLE " + table + " (id int PRIMARY KEY)");
    {
        auto tx = s.begin();
        auto ts = tx.session();
        CHECK(ts.is_pinned());
        CHECK(!ts.owns_handle());
        CHECK(ts.get() == tx.session().get());
        CHECK_EQ(ts.pool_id(), s.pool_id());
        insert_through(ts, table, 1);
        CHECK_EQ(tx.query("SELECT count(*) FROM " + table).value(0, 0), std::optional<std::string_view>("1"));
        CHECK_EQ(count_rows(ts, table), "1");
        CHECK_EQ(count_rows(s, table), "0");
        auto txid = tx.query("SELECT txid_current()");
        CHECK_EQ(scalar(ts, "SELECT txid_current()"), std::string(txid.value(0, 0).value_or("?")));
        CHECK_EQ(backend_of(ts), txid.backend_pid());
        auto e = EXPECT_ERROR(ts.begin());
        if (e)
            CHECK_EQ(e->code(), PGSESS_INTERFACE_ERROR);
        tx.rollback();
        e = EXPECT_ERROR(tx.session());
        if (e)
            CHECK_EQ(e->code(), PGSESS_INTERFACE_ERROR);
    }
    CHECK_EQ(count_rows(s, table), "0");
    CHECK(key_is_free(s, table, 1));

    // Views destroyed, moved and assigned before the commit close nothing: the transaction
    // goes on and commits.
    {
        auto tx = s.begin();
        {
            auto ts = tx.session();
            insert_through(ts, table, 2);
        }
        pgsess::Session owner = open_ctest();
        owner = tx.session(); // closes the session owner held, takes the view
        CHECK(!owner.owns_handle());
        insert_through(owner, table, 3);
        pgsess::Session moved(std::move(owner));
        CHECK(!moved.owns_handle());
        CHECK(owner.owns_handle()); // empty again, as a default-constructed Session
        CHECK(!owner);
        moved = pgsess::Session(); // drops the view
        tx.query("INSERT INTO " + table + " VALUES ($1)", 4);
        tx.commit();
    }
    CHECK_EQ(count_rows(s, table), "3");
    drop_table(s, table);
}

// Rows in COPY's text format, as COPY TO writes them back (escapes, UTF-8, NULL); the id of line
// `bad_line` (1-based; 0: none) is not an integer.
std::string copy_text_rows(int n, int bad_line = 0) {
    std::string out;
    for (int i = 1; i <= n; ++i) {
        out += (i == bad_line ? "x" : "") + std::to_string(i) + "\t";
        switch (i % 4) {
        case 0: out += "tab\\there"; break;
        case 1: out += "back\\\\slash"; break;
        case 2: out += "stra\xc3\x9f" "e"; break;
        default: out += "\\N"; break;
        }
        out += "\n";
    }
    return out;
}

// Write `data` in pieces of varying sizes, so rows straddle write() calls.
void write_pieces(pgsess::Copy &c, std::string_view data) {
    static const std::size_t sizes[] = {1, 5, 300, 4096, 70000, 9};
    std::size_t i = 0;
    while (!data.empty()) {
        const std::size_t n = std::min(data.size(), sizes[i++ % (sizeof sizes / sizeof sizes[0])]);
        c.write(data.substr(0, n));
        data.remove_prefix(n);
    }
}

// Read a COPY TO to the end; `messages` counts the reads that gave data.
std::string read_all(pgsess::Copy &c, std::size_t &messages) {
    std::string out;
    messages = 0;
    while (auto chunk = c.read()) {
        out += *chunk;
        ++messages;
    }
    return out;
}

// Text and binary rows round-trip byte for byte through Copy.
void test_copy_round_trip(pgsess::Session &s) {
    const std::string table = unique_name("copy");
    s.query("CREATE TABLE " + table + " (id int, v text)");
    const std::string rows = copy_text_rows(2000);
    {
        pgsess::Copy c = s.copy_in("COPY " + table + " FROM STDIN");
        CHECK(static_cast<bool>(c));
        write_pieces(c, rows);
        c.write(std::string_view()); // an empty write sends nothing
        CHECK_EQ(c.finish(), 2000u);
    }
    CHECK_EQ(count_rows(s, table), "2000");
    CHECK_EQ(scalar(s, "SELECT v FROM " + table + " WHERE id = 4"), std::string("tab\there"));
    {
        pgsess::Copy c = s.copy_out("COPY (SELECT * FROM " + table + " ORDER BY id) TO STDOUT");
        std::size_t messages = 0;
        const std::string back = read_all(c, messages);
        CHECK_EQ(messages, 2000u);
        CHECK(back == rows);
        CHECK_EQ(c.finish(), 2000u);
    }
    // Binary: what COPY TO (FORMAT binary) gives feeds an empty table, and reads back the same.
    const std::string copy_of = table + "_b";
    s.query("CREATE TABLE " + copy_of + " (LIKE " + table + ")");
    std::string binary;
    {
        pgsess::Copy c = s.copy_out("COPY (SELECT * FROM " + table + " ORDER BY id) TO STDOUT (FORMAT binary)");
        std::size_t messages = 0;
        binary = read_all(c, messages);
        CHECK_EQ(c.finish(), 2000u);
    }
    CHECK(binary.compare(0, 11, std::string("PGCOPY\n\377\r\n\0", 11)) == 0);
    {
        pgsess::Copy c = s.copy_in("COPY " + copy_of + " FROM STDIN (FORMAT binary)");
        write_pieces(c, binary);
        CHECK_EQ(c.finish(), 2000u);
    }
    {
        pgsess::Copy c = s.copy_out("COPY (SELECT * FROM " + copy_of + " ORDER BY id) TO STDOUT (FORMAT binary)");
        std::size_t messages = 0;
        CHECK(read_all(c, messages) == binary);
    }
    drop_table(s, copy_of);
    drop_table(s, table);
}

// Failures are thrown as pgsess::Error; an empty or moved-from Copy throws PGSESS_INTERFACE_ERROR;
// destroying or assigning to an unfinished Copy aborts it.
void test_copy_errors() {
    pgsess::Options opts;
    opts.pool_max_size = 1;
    opts.checkout_timeout_ms = 300;
    auto one = open_ctest(opts);
    const std::string table = unique_name("copyerr");
    one.query("CREATE TABLE " + table + " (id int, v text)");

    auto e = EXPECT_ERROR(one.copy_in("SELECT 1"));
    if (e) {
        CHECK_EQ(e->code(), PGSESS_INTERFACE_ERROR);
        CHECK_EQ(e->context(), std::nullopt);
    }
    e = EXPECT_ERROR(one.copy_out("COPY " + table + " FROM STDIN"));
    if (e) {
        CHECK_EQ(e->code(), PGSESS_NOT_SUPPORTED_ERROR);
        CHECK(contains(e->what(), "pgsess_copy_in"));
    }
    e = EXPECT_ERROR(one.copy_in("COPY pgsess_cpp_no_such_table FROM STDIN"));
    if (e) {
        CHECK_EQ(e->code(), PGSESS_PROGRAMMING_ERROR);
        CHECK_EQ(e->sqlstate(), std::optional<std::string>("42P01"));
    }
    e = EXPECT_ERROR(one.copy_in(std::string_view("COPY x\0 FROM STDIN", 18)));
    if (e)
        CHECK_EQ(e->code(), PGSESS_INTERFACE_ERROR);

    // A bad row: thrown by a later write() or by finish(); nothing committed; the copy is over.
    {
        pgsess::Copy c = one.copy_in("COPY " + table + " FROM STDIN");
        e = EXPECT_ERROR({
            c.write(copy_text_rows(3000, 1500));
            c.finish();
        });
        if (e) {
            CHECK_EQ(e->code(), PGSESS_DATA_ERROR);
            CHECK_EQ(e->sqlstate(), std::optional<std::string>("22P02"));
            CHECK(e->context().has_value() && contains(*e->context(), "line 1500,"));
        }
        e = EXPECT_ERROR(c.write("1\tx\n"));
        if (e)
            CHECK_EQ(e->code(), PGSESS_INTERFACE_ERROR);
    }
    CHECK_EQ(count_rows(one, table), "0");

    // Empty Copy objects.
    pgsess::Copy empty;
    CHECK(!empty);
    CHECK(empty.get() == nullptr);
    for (auto *what : {"write", "read", "finish"}) {
        e = EXPECT_ERROR({
            if (std::string_view(what) == "write")
                empty.write("x");
            else if (std::string_view(what) == "read")
                (void)empty.read();
            else
                (void)empty.finish();
        });
        if (e)
            CHECK_EQ(e->code(), PGSESS_INTERFACE_ERROR);
    }
    empty.reset();

    // Moving moves the copy (and its connection); a moved-from Copy is empty.
    {
        pgsess::Copy a = one.copy_in("COPY " + table + " FROM STDIN");
        a.write("1\tone\n");
        pgsess::Copy b(std::move(a));
        CHECK(!a);
        e = EXPECT_ERROR(a.write("2\ttwo\n"));
        if (e)
            CHECK_EQ(e->code(), PGSESS_INTERFACE_ERROR);
        b.write("2\ttwo\n");
        // The copy holds the pool's only connection, and the message says so.
        e = EXPECT_ERROR(one.query("SELECT 1"));
        if (e) {
            CHECK_EQ(e->code(), PGSESS_POOL_EXHAUSTED);
            CHECK(contains(e->what(), "cop"));
        }
        CHECK_EQ(b.finish(), 2u);
        CHECK_EQ(count_rows(one, table), "2"); // finished: the connection is back already
    }
    // Destroyed, assigned to and reset() unfinished: aborted, nothing committed, connection back.
    {
        pgsess::Copy c = one.copy_in("COPY " + table + " FROM STDIN");
        c.write(copy_text_rows(100));
    }
    CHECK_EQ(count_rows(one, table), "2");
    {
        pgsess::Copy c = one.copy_in("COPY " + table + " FROM STDIN");
        c.write(copy_text_rows(100));
        c = pgsess::Copy();
        CHECK(!c);
        CHECK_EQ(count_rows(one, table), "2");
        c = one.copy_out("COPY (SELECT g FROM generate_series(1, 100000) g) TO STDOUT");
        CHECK_EQ(c.read(), std::optional<std::string_view>("1\n"));
        c.reset(); // cancelled, not read to the end
        CHECK(!c);
    }
    CHECK_EQ(count_rows(one, table), "2");
    CHECK(one.validate());
    drop_table(one, table);
}

// A transaction's session: the copy's rows go with the transaction, and its other statements
// are refused while the copy is open.
void test_copy_transaction(pgsess::Session &s) {
    const std::string table = unique_name("copytx");
    s.query("CREATE TABLE " + table + " (id int, v text)");
    {
        auto tx = s.begin();
        auto ts = tx.session();
        {
            pgsess::Copy c = ts.copy_in("COPY " + table + " FROM STDIN");
            write_pieces(c, copy_text_rows(500));
            auto e = EXPECT_ERROR(ts.query("SELECT 1"));
            if (e)
                CHECK_EQ(e->code(), PGSESS_INTERFACE_ERROR);
            e = EXPECT_ERROR(tx.query("SELECT 1"));
            if (e)
                CHECK_EQ(e->code(), PGSESS_INTERFACE_ERROR);
            CHECK_EQ(c.finish(), 500u);
        }
        CHECK_EQ(count_rows(ts, table), "500");
        CHECK_EQ(count_rows(s, table), "0");
        tx.rollback();
    }
    CHECK_EQ(count_rows(s, table), "0");
    {
        auto tx = s.begin();
        auto ts = tx.session();
        pgsess::Copy c = ts.copy_in("COPY " + table + " FROM STDIN");
        c.write(copy_text_rows(10));
        CHECK_EQ(c.finish(), 10u);
        tx.commit();
    }
    CHECK_EQ(count_rows(s, table), "10");
    drop_table(s, table);
}

std::optional<pgsess::Notification> next_within(pgsess::Session &s, int ms) {
    return s.next_notification(std::chrono::milliseconds(ms));
}

bool fd_readable(int fd) {
    pollfd p{};
    p.fd = fd;
    p.events = POLLIN;
    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

// listen, NOTIFY from another session, next_notification and notification_fd, unlisten.
void test_notifications(pgsess::Session &s) {
    auto listener = open_ctest();
    const std::string ch = "CppChan \"" + unique_name("n") + "\"";
    listener.listen(ch);

    auto sent = s.query("SELECT pg_notify($1, $2)", ch, "hello");
    auto n = next_within(listener, 5000);
    CHECK(n.has_value());
    if (n) {
        CHECK_EQ(n->channel, ch);
        CHECK_EQ(n->payload, std::string("hello"));
        CHECK_EQ(n->pid, sent.backend_pid());
        CHECK(!n->gap);
    }
    sent.reset();
    CHECK_EQ(next_within(listener, 0).has_value(), false);
    const auto start = std::chrono::steady_clock::now();
    CHECK_EQ(next_within(listener, 200).has_value(), false);
    CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(150));

    // The descriptor: readable while one is ready, not once it is taken.
    const int fd = listener.notification_fd();
    CHECK(fd >= 0);
    CHECK(!fd_readable(fd));
    s.query("SELECT pg_notify($1, $2)", ch, "");
    pollfd p{};
    p.fd = fd;
    p.events = POLLIN;
    CHECK_EQ(poll(&p, 1, 5000), 1);
    n = next_within(listener, 0);
    CHECK(n.has_value());
    if (n)
        CHECK_EQ(n->payload, std::string(""));
    CHECK(!fd_readable(fd));

    // A negative timeout waits until one comes.
    std::thread late([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        try {
            s.query("SELECT pg_notify($1, $2)", ch, "late");
        } catch (const pgsess::Error &) {
        }
    });
    n = listener.next_notification(std::chrono::milliseconds(-1));
    late.join();
    CHECK(n.has_value() && n->payload == "late");

    listener.unlisten(ch);
    s.query("SELECT pg_notify($1, $2)", ch, "not heard");
    CHECK_EQ(next_within(listener, 300).has_value(), false);

    // An empty Session.
    pgsess::Session empty;
    CHECK_EQ(empty.notification_fd(), -1);
    for (int i = 0; i < 5; ++i) {
        auto e = EXPECT_ERROR({
            switch (i) {
            case 0: empty.listen("x"); break;
            case 1: empty.unlisten("x"); break;
            case 2: (void)empty.next_notification(std::chrono::milliseconds(0)); break;
            case 3: (void)empty.copy_in("COPY x FROM STDIN"); break;
            default: (void)empty.copy_out("COPY x TO STDOUT"); break;
            }
        });
        if (e)
            CHECK_EQ(e->code(), PGSESS_INTERFACE_ERROR);
    }
    auto e = EXPECT_ERROR(listener.listen(std::string("nul\0inside", 10)));
    if (e)
        CHECK_EQ(e->code(), PGSESS_INTERFACE_ERROR);
}

// The listener's connection is killed: a gap marker for the channel, then delivery again.
void test_notification_gap(pgsess::Session &s) {
    auto listener = open_ctest();
    const std::string ch = unique_name("gap");
    listener.listen(ch);
    auto killed = s.query("SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                          "WHERE query LIKE $1 AND pid <> pg_backend_pid()",
                          "LISTEN%" + ch + "%");
    CHECK_EQ(killed.value(0, 0), std::optional<std::string_view>("1"));
    auto n = next_within(listener, 15000);
    CHECK(n.has_value());
    if (n) {
        CHECK(n->gap);
        CHECK_EQ(n->channel, ch);
        CHECK_EQ(n->payload, std::string(""));
        CHECK_EQ(n->pid, 0);
    }
    s.query("SELECT pg_notify($1, $2)", ch, "after");
    n = next_within(listener, 5000);
    CHECK(n.has_value() && !n->gap && n->payload == "after");
}

// copy_start (either direction), read_chunk, abort.
void test_copy_start_chunk_abort(pgsess::Session &s) {
    const std::string table = unique_name("copyx");
    s.query("CREATE TABLE " + table + " (id int, v text)");
    const std::string rows = copy_text_rows(3000);
    {
        pgsess::Copy c = s.copy_start("COPY " + table + " FROM STDIN");
        CHECK(c.is_in());
        write_pieces(c, rows);
        CHECK_EQ(c.finish(), 3000u);
    }
    {
        pgsess::Copy c = s.copy_start("COPY (SELECT * FROM " + table + " ORDER BY id) TO STDOUT");
        CHECK(!c.is_in());
        std::string back;
        std::size_t calls = 0;
        if (auto first = c.read()) // one row, then chunks
            back += *first;
        while (auto chunk = c.read_chunk()) {
            back += *chunk;
            ++calls;
        }
        CHECK(back == rows);
        CHECK(calls > 0 && calls < 300);
        CHECK_EQ(c.finish(), 3000u);
    }
    auto e = EXPECT_ERROR(s.copy_start("SELECT 1"));
    if (e)
        CHECK_EQ(e->code(), PGSESS_INTERFACE_ERROR);

    // abort: nothing kept, the copy is over, a second abort has nothing to do.
    {
        pgsess::Copy c = s.copy_in("COPY " + table + " FROM STDIN");
        c.write(rows);
        c.abort("changed my mind");
        e = EXPECT_ERROR(c.write("1\tx\n"));
        if (e)
            CHECK_EQ(e->code(), PGSESS_INTERFACE_ERROR);
        c.abort();
        CHECK(c.is_in());
    }
    CHECK_EQ(count_rows(s, table), "3000");
    {
        auto tx = s.begin();
        auto ts = tx.session();
        pgsess::Copy c = ts.copy_in("COPY " + table + " FROM STDIN");
        c.write("1\tone\n");
        c.abort();
        e = EXPECT_ERROR(tx.query("SELECT 1"));
        if (e)
            CHECK_EQ(e->sqlstate(), std::optional<std::string>("25P02"));
    }
    {
        pgsess::Copy c = s.copy_out("COPY (SELECT g FROM generate_series(1, 100000) g) TO STDOUT");
        CHECK(c.read().has_value());
        c.abort(); // the rest is discarded
        c.reset();
    }
    CHECK_EQ(count_rows(s, table), "3000");

    pgsess::Copy empty;
    CHECK(!empty.is_in());
    e = EXPECT_ERROR((void)empty.read_chunk());
    if (e)
        CHECK_EQ(e->code(), PGSESS_INTERFACE_ERROR);
    e = EXPECT_ERROR(empty.abort("x"));
    if (e)
        CHECK_EQ(e->code(), PGSESS_INTERFACE_ERROR);
    drop_table(s, table);
}

// notification_wake returns a waiter at once with nothing.
void test_notification_wake() {
    auto listener = open_ctest();
    const std::string ch = unique_name("wake");
    listener.listen(ch);
    std::optional<pgsess::Notification> got = pgsess::Notification{};
    std::atomic<bool> returned{false};
    std::thread waiter([&] {
        got = listener.next_notification(std::chrono::milliseconds(-1));
        returned = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    CHECK(!returned.load());
    listener.notification_wake();
    waiter.join();
    CHECK(returned.load());
    CHECK(!got.has_value());
    pgsess::Session empty;
    empty.notification_wake(); // nothing to do
}

void run(const char *name, const std::function<void()> &f) {
    std::cout << "== " << name << std::endl;
    try {
        f();
    } catch (const pgsess::Error &e) {
        check(false, (std::string(name) + ": unexpected pgsess::Error " + std::string(e.code_name()) + " " +
                      (e.sqlstate() ? *e.sqlstate() : std::string("-")) + ": " + e.what())
                         .c_str(),
              __FILE__, __LINE__);
    } catch (const std::exception &e) {
        check(false, (std::string(name) + ": unexpected exception: " + e.what()).c_str(), __FILE__, __LINE__);
    }
}

} // namespace

int main() {
    const char *uri = std::getenv("PGSQL_CTEST");
    if (uri == nullptr || *uri == '\0') {
        std::cerr << "PGSQL_CTEST is not set; export it to a PostgreSQL URI" << std::endl;
        return 2;
    }
    std::cout << "pgsess " << pgsess::version() << " C++ tests" << std::endl;
    try {
        pgsess::Session s = open_ctest();
        run("params and NULL", [&] { test_params_and_null(s); });
        run("typed integers", [&] { test_typed_ints(s); });
        run("iteration and columns", [&] { test_iteration_and_columns(s); });
        run("errors", [&] { test_errors(s); });
        run("transactions", [&] { test_transactions(s); });
        run("moves", [&] { test_moves(s); });
        run("exhaustion", [] { test_exhaustion(); });
        run("pool options", [] { test_pool_options(); });
        run("pool operations", [] { test_pool_operations(); });
        run("session helpers", [&] { test_session_helpers(s); });
        run("code categories", [] { test_code_categories(); });
        run("notices whole", [] { test_notices_whole(); });
        run("binary arguments", [&] { test_binary_arguments(s); });
        run("callproc in a transaction", [&] { test_transaction_callproc(s); });
        run("threads", [&] { test_threads(s); });
        run("pinned session state", [&] { test_pinned_state(s); });
        run("pinned transaction as calls", [&] { test_pinned_transaction_as_calls(s); });
        run("pinned on a pool of 1", [] { test_pinned_pool_of_one(); });
        run("reset modes", [] { test_reset_modes(); });
        run("transaction session", [&] { test_transaction_session(s); });
        run("copy round trip", [&] { test_copy_round_trip(s); });
        run("copy errors", [] { test_copy_errors(); });
        run("copy in a transaction", [&] { test_copy_transaction(s); });
        run("notifications", [&] { test_notifications(s); });
        run("notification gap", [&] { test_notification_gap(s); });
        run("copy start, chunks, abort", [&] { test_copy_start_chunk_abort(s); });
        run("notification wake", [] { test_notification_wake(); });
    } catch (const pgsess::Error &e) {
        check(false, (std::string("open session \"ctest\": ") + e.what()).c_str(), __FILE__, __LINE__);
    }
    std::cout << g_passed << " passed, " << g_failed << " failed" << std::endl;
    return g_failed == 0 ? 0 : 1;
}
