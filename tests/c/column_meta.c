/*
 * column_meta.c - a result column's metadata as libpq gives it: pgsess_results_column_typmod,
 * _size, _table and _table_column against PQfmod, PQfsize, PQftable and PQftablecol for the
 * same statement on the same server (table columns of types with and without a modifier,
 * expressions, a view, a join), text and binary results, and the out-of-range answers.
 * pkg-config: libpq
 * Needs env PGSQL_CTEST (a PostgreSQL URI); opens it as pgsess_open("ctest") and with PQconnectdb.
 */
#define _POSIX_C_SOURCE 200809L
#include <pgsess.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "check.h"
#include "helpers.h"

static void exec_both(pgsess_session *s, PGconn *pq, const char *sql)
{
    pgsess_results *r = Q(s, sql);
    pgsess_results_free(r);
    (void)pq;
}

/* Every column of `sql` has libpq's metadata, in pgsess's text and binary results. */
static void same_as_libpq(pgsess_session *s, PGconn *pq, const char *sql)
{
    PGresult *want = PQexecParams(pq, sql, 0, NULL, NULL, NULL, NULL, 0);
    if (!CHECK(PQresultStatus(want) == PGRES_TUPLES_OK)) {
        fprintf(stderr, "libpq: %s", PQresultErrorMessage(want));
        PQclear(want);
        return;
    }
    for (int binary = 0; binary <= 1; binary++) {
        pgsess_error *err = NULL;
        pgsess_results *r = binary ? pgsess_query_binary(s, sql, 0, NULL, NULL, NULL, NULL, &err)
                                   : pgsess_query(s, sql, 0, NULL, &err);
        if (!CHECK(r != NULL)) {
            print_err(__FILE__, __LINE__, sql, err);
            pgsess_error_free(err);
            continue;
        }
        CHECK_INTEQ(pgsess_results_ncols(r), PQnfields(want));
        for (int c = 0; c < PQnfields(want); c++) {
            CHECK_INTEQ(pgsess_results_column_typmod(r, (size_t)c), PQfmod(want, c));
            CHECK_INTEQ(pgsess_results_column_size(r, (size_t)c), PQfsize(want, c));
            CHECK_INTEQ(pgsess_results_column_table(r, (size_t)c), PQftable(want, c));
            CHECK_INTEQ(pgsess_results_column_table_column(r, (size_t)c), PQftablecol(want, c));
        }
        size_t past = (size_t)PQnfields(want);
        CHECK_INTEQ(pgsess_results_column_typmod(r, past), -1);
        CHECK_INTEQ(pgsess_results_column_size(r, past), 0);
        CHECK_INTEQ(pgsess_results_column_table(r, past), 0);
        CHECK_INTEQ(pgsess_results_column_table_column(r, past), 0);
        pgsess_results_free(r);
    }
    PQclear(want);
}

int main(void)
{
    pgsess_session *s = open_ctest(NULL);
    PGconn *pq = PQconnectdb(getenv("PGSQL_CTEST"));
    if (!CHECK(PQstatus(pq) == CONNECTION_OK)) {
        fprintf(stderr, "libpq: %s", PQerrorMessage(pq));
        PQfinish(pq);
        pgsess_close(s);
        return CHECK_DONE();
    }
    char t[80], v[90], sql[1024];
    unique_name(t, sizeof t, "meta");
    snprintf(v, sizeof v, "%s_v", t);
    snprintf(sql, sizeof sql,
             "CREATE TABLE %s (id int4 PRIMARY KEY, name varchar(10), code char(5), price numeric(8,3), "
             "n numeric, at timestamp(3), d interval hour to second(2), note text, flag bool)",
             t);
    exec_both(s, pq, sql);
    snprintf(sql, sizeof sql, "CREATE VIEW %s AS SELECT id, name, price * 2 AS twice FROM %s", v, t);
    exec_both(s, pq, sql);
    snprintf(sql, sizeof sql, "SELECT * FROM %s", t);
    same_as_libpq(s, pq, sql);
    snprintf(sql, sizeof sql, "SELECT name, 1 + id AS expr, 'x'::varchar(3) AS lit, now() FROM %s", t);
    same_as_libpq(s, pq, sql);
    snprintf(sql, sizeof sql, "SELECT * FROM %s", v);
    same_as_libpq(s, pq, sql);
    snprintf(sql, sizeof sql, "SELECT a.code, b.twice FROM %s a JOIN %s b USING (id)", t, v);
    same_as_libpq(s, pq, sql);

    /* NULL results: the out-of-range answers, no crash. */
    CHECK_INTEQ(pgsess_results_column_typmod(NULL, 0), -1);
    CHECK_INTEQ(pgsess_results_column_size(NULL, 0), 0);
    CHECK_INTEQ(pgsess_results_column_table(NULL, 0), 0);
    CHECK_INTEQ(pgsess_results_column_table_column(NULL, 0), 0);

    snprintf(sql, sizeof sql, "DROP TABLE %s CASCADE", t);
    exec_both(s, pq, sql);
    PQfinish(pq);
    pgsess_close(s);
    return CHECK_DONE();
}
