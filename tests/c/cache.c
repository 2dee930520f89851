/*
 * cache.c - the statement cache as a C program uses it: statements prepared
 * once per connection and run again by name, eviction, and healing after
 * ALTER TABLE run by another connection, without an error outside a
 * transaction block and with one (that says why) inside; pgsess_query_typed's
 * binary columns from a cached statement's second run.
 * Needs env PGSQL_CTEST (a PostgreSQL URI); opens it as pgsess_open("ctest").
 */
#define _POSIX_C_SOURCE 200809L
#include <pgsess.h>
#include <stdbool.h>
#include <stdint.h>

#include "check.h"
#include "helpers.h"

/* How many generated statements the session's connection has prepared, and how
 * often the one for `sql` ran (generic + custom plans, PostgreSQL 14+). */
static long prepared_count(pgsess_session *s)
{
    char *v = SCALAR(s, "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'pgsess\\_%' "
                        "AND NOT from_sql");
    long n = v ? atol(v) : -1;
    free(v);
    return n;
}

static long runs_of(pgsess_session *s, const char *sql)
{
    char q[512];
    char *v;
    long n;
    /* Unparameterised (the simple protocol): it does not take a place in the cache itself. */
    snprintf(q, sizeof q,
             "SELECT coalesce(sum(generic_plans + custom_plans), 0) FROM pg_prepared_statements "
             "WHERE statement = '%s' AND NOT from_sql",
             sql);
    v = SCALAR(s, q);
    n = v ? atol(v) : -1;
    free(v);
    return n;
}

int main(void)
{
    pgsess_options *opts = pgsess_options_new();
    pgsess_session *pool, *a, *b;
    pgsess_error *err = NULL;
    pgsess_results *r;
    char table[96], sql[512], drop[160];
    const char *one[] = {"1"};
    int i;

    CHECK_INTEQ(pgsess_options_set_statement_cache(opts, 100000), PGSESS_CONFIG_ERROR);
    CHECK_INTEQ(pgsess_options_set_statement_cache(NULL, 2), PGSESS_INTERFACE_ERROR);
    CHECK_INTEQ(pgsess_options_set_statement_cache(opts, 2), PGSESS_OK);
    CHECK_INTEQ(pgsess_options_set_pool_max_size(opts, 3), PGSESS_OK); /* a, b and the pool session */
    pool = open_ctest(opts);
    pgsess_options_free(opts);
    a = pgsess_pin(pool, &err);
    CHECK(a != NULL && err == NULL);
    b = pgsess_pin(pool, &err);
    CHECK(b != NULL && err == NULL);

    /* Prepared once, run five times by name. */
    for (i = 0; i < 5; i++) {
        r = QP(a, "SELECT $1::int + 1", 1, one);
        CHECK_STREQ(pgsess_results_value(r, 0, 0), "2");
        pgsess_results_free(r);
    }
    CHECK_INTEQ(prepared_count(a), 1);
    CHECK_INTEQ(runs_of(a, "SELECT $1::int + 1"), 5);
    /* Capacity 2: the third statement closes the least recently used. */
    pgsess_results_free(QP(a, "SELECT $1::int * 2", 1, one));
    pgsess_results_free(QP(a, "SELECT $1::int * 3", 1, one));
    CHECK_INTEQ(prepared_count(a), 2);
    CHECK_INTEQ(runs_of(a, "SELECT $1::int + 1"), 0);

    /* Healing after ALTER TABLE from another connection. */
    unique_name(table, sizeof table, "cache");
    snprintf(sql, sizeof sql, "CREATE TABLE %s (a int); INSERT INTO %s VALUES (1)", table, table);
    EXEC(pool, sql);
    snprintf(sql, sizeof sql, "SELECT * FROM %s WHERE a = $1", table);
    pgsess_results_free(QP(a, sql, 1, one));
    pgsess_results_free(QP(b, sql, 1, one));
    snprintf(drop, sizeof drop, "ALTER TABLE %s ADD COLUMN b text DEFAULT 'x'", table);
    EXEC(pool, drop);
    /* a: outside a transaction, healed and retried: two columns, no error. */
    r = QP(a, sql, 1, one);
    CHECK(r != NULL && pgsess_results_ncols(r) == 2);
    pgsess_results_free(r);
    /* b forgot it before its next use, so even inside a transaction it runs. */
    EXEC(b, "BEGIN");
    r = QP(b, sql, 1, one);
    CHECK(r != NULL && pgsess_results_ncols(r) == 2);
    pgsess_results_free(r);
    EXEC(b, "COMMIT");
    /* Inside a transaction, the connection that finds it invalid reports why. */
    snprintf(drop, sizeof drop, "ALTER TABLE %s ADD COLUMN c int", table);
    EXEC(pool, drop);
    EXEC(a, "BEGIN");
    r = pgsess_query(a, sql, 1, one, &err);
    CHECK(r == NULL && err != NULL);
    if (err) {
        CHECK_STREQ(pgsess_error_sqlstate(err), "0A000");
        CHECK_CONTAINS(pgsess_error_message(err), "inside a transaction block");
    }
    pgsess_error_free(err);
    err = NULL;
    EXEC(a, "ROLLBACK");
    r = QP(a, sql, 1, one);
    CHECK(r != NULL && pgsess_results_ncols(r) == 3);
    pgsess_results_free(r);

    snprintf(drop, sizeof drop, "DROP TABLE %s", table);
    EXEC(pool, drop);

    /* pgsess_query_typed: text at first, then int8 and bytea in binary, text left as text. */
    for (i = 0; i < 3; i++) {
        const char *typed = "SELECT $1::int8 AS n, 'x'::text AS t, '\\x00ff'::bytea AS b";
        int64_t n = 0;
        r = pgsess_query_typed(a, typed, 1, one, &err);
        CHECK(r != NULL && err == NULL);
        if (r == NULL) {
            break;
        }
        CHECK_INTEQ(pgsess_results_column_format(r, 0), i == 0 ? 0 : 1);
        CHECK_INTEQ(pgsess_results_column_format(r, 1), 0);
        CHECK_INTEQ(pgsess_results_column_format(r, 2), i == 0 ? 0 : 1);
        CHECK_INTEQ(pgsess_results_get_int64(r, 0, 0, &n), PGSESS_OK);
        CHECK_INTEQ(n, 1);
        CHECK_STREQ(pgsess_results_value(r, 0, 1), "x");
        CHECK_INTEQ(pgsess_results_value_length(r, 0, 2), i == 0 ? 6 : 2);
        pgsess_results_free(r);
    }
    /* Several statements without parameters: the simple protocol, the last result, text. */
    for (i = 0; i < 2; i++) {
        r = pgsess_query_typed(a, "SELECT 1; SELECT 2::int8", 0, NULL, &err);
        CHECK(r != NULL && err == NULL);
        if (r) {
            CHECK_INTEQ(pgsess_results_column_format(r, 0), 0);
            CHECK_STREQ(pgsess_results_value(r, 0, 0), "2");
        }
        pgsess_results_free(r);
    }
    CHECK(pgsess_query_typed(NULL, "SELECT 1", 0, NULL, &err) == NULL && err != NULL);
    pgsess_error_free(err);
    err = NULL;
    pgsess_close(a);
    pgsess_close(b);
    pgsess_close(pool);
    return CHECK_DONE();
}
