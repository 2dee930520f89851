/*
 * tx.c - explicit transactions: commit, rollback, errors inside a
 * transaction, and connection affinity.
 * Needs env PGSQL_CTEST (a PostgreSQL URI); opens it as pgsess_open("ctest").
 */
#define _POSIX_C_SOURCE 200809L
#include <pgsess.h>
#include <stdbool.h>
#include <stdint.h>

#include "check.h"
#include "helpers.h"

static char table[96];

static long count_where(pgsess_session *s, const char *cond)
{
    char sql[512];
    char *v;
    long n;
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s WHERE %s", table, cond);
    v = SCALAR(s, sql);
    n = v ? atol(v) : -1;
    free(v);
    return n;
}

static void commit_ok_(pgsess_tx *tx, const char *file, int line)
{
    pgsess_error *err = NULL;
    pgsess_code c = pgsess_commit(tx, &err);
    check_count_(c == PGSESS_OK && err == NULL);
    if (c != PGSESS_OK || err != NULL) {
        fflush(stdout);
        fprintf(stderr, "%s:%d: CHECK failed: pgsess_commit returns PGSESS_OK (got %s)\n", file, line,
                pgsess_code_name(c));
        print_err(file, line, "  error", err);
    }
    pgsess_error_free(err);
}
#define COMMIT_OK(tx) commit_ok_((tx), __FILE__, __LINE__)

static void test_commit_and_rollback(pgsess_session *s)
{
    pgsess_tx *tx;
    pgsess_results *r;
    char sql[512];
    const char *p[] = {"1", "committed"};

    /* commit makes rows visible */
    tx = BEGIN(s);
    snprintf(sql, sizeof sql, "INSERT INTO %s VALUES ($1::int, $2)", table);
    r = TXQP(tx, sql, 2, p);
    CHECK_INTEQ(pgsess_results_rows_affected(r), 1);
    pgsess_results_free(r);
    /* not visible from another pooled connection before commit */
    CHECK_INTEQ(count_where(s, "id = 1"), 0);
    /* visible inside the transaction */
    snprintf(sql, sizeof sql, "SELECT v FROM %s WHERE id = 1", table);
    r = TXQ(tx, sql);
    CHECK_STREQ(pgsess_results_value(r, 0, 0), "committed");
    pgsess_results_free(r);
    COMMIT_OK(tx);
    CHECK_INTEQ(count_where(s, "id = 1"), 1);

    /* rollback discards */
    tx = BEGIN(s);
    snprintf(sql, sizeof sql, "INSERT INTO %s VALUES (2, 'rolled back')", table);
    TXEXEC(tx, sql);
    pgsess_rollback(tx);
    CHECK_INTEQ(count_where(s, "id = 2"), 0);

    /* an empty transaction commits fine */
    tx = BEGIN(s);
    COMMIT_OK(tx);
}

static void test_errors_in_tx(pgsess_session *s)
{
    pgsess_tx *tx;
    pgsess_results *r;
    pgsess_error *err;
    pgsess_code c;
    char sql[512];

    /* error, then rollback of the handle */
    tx = BEGIN(s);
    snprintf(sql, sizeof sql, "INSERT INTO %s VALUES (3, 'before error')", table);
    TXEXEC(tx, sql);
    err = NULL;
    r = pgsess_tx_query(tx, "SELEC 1", 0, NULL, &err);
    CHECK(r == NULL);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_PROGRAMMING_ERROR);
    pgsess_error_free(err);
    /* further statements in the aborted tx fail (25P02, in_failed_sql_transaction) */
    err = NULL;
    r = pgsess_tx_query(tx, "SELECT 1", 0, NULL, &err);
    CHECK(r == NULL);
    CHECK(err != NULL);
    CHECK_STREQ(pgsess_error_sqlstate(err), "25P02");
    pgsess_results_free(r);
    pgsess_error_free(err);
    pgsess_rollback(tx);
    CHECK_INTEQ(count_where(s, "id = 3"), 0);

    /* error, then commit: non-OK, and the row is absent */
    tx = BEGIN(s);
    snprintf(sql, sizeof sql, "INSERT INTO %s VALUES (4, 'commit after error')", table);
    TXEXEC(tx, sql);
    err = NULL;
    r = pgsess_tx_query(tx, "SELECT 1/0", 0, NULL, &err);
    CHECK(r == NULL);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_DATA_ERROR);
    pgsess_error_free(err);
    err = NULL;
    c = pgsess_commit(tx, &err); /* consumes tx */
    CHECK(c != PGSESS_OK);
    CHECK(err != NULL);
    CHECK_INTEQ(pgsess_error_code(err), c);
    if (c != PGSESS_OK)
        printf("note: commit after a failed statement returned %s (%s)\n", pgsess_code_name(c),
               pgsess_error_message(err) ? pgsess_error_message(err) : "NULL");
    pgsess_error_free(err);
    CHECK_INTEQ(count_where(s, "id = 4"), 0);

    /* a commit that fails at COMMIT time (deferred constraint) */
    tx = BEGIN(s);
    snprintf(sql, sizeof sql, "INSERT INTO %s VALUES (5, 'dup'), (5, 'dup')", table);
    TXEXEC(tx, "SET CONSTRAINTS ALL DEFERRED");
    TXEXEC(tx, sql);
    err = NULL;
    c = pgsess_commit(tx, &err);
    CHECK_INTEQ(c, PGSESS_INTEGRITY_ERROR);
    CHECK_STREQ(pgsess_error_sqlstate(err), "23505");
    pgsess_error_free(err);
    CHECK_INTEQ(count_where(s, "id = 5"), 0);

    /* the pool is healthy afterwards: fresh transactions work */
    tx = BEGIN(s);
    snprintf(sql, sizeof sql, "INSERT INTO %s VALUES (7, 'after errors')", table);
    TXEXEC(tx, sql);
    COMMIT_OK(tx);
    CHECK_INTEQ(count_where(s, "id = 7"), 1);
}

static void test_affinity(pgsess_session *s)
{
    pgsess_tx *tx;
    pgsess_results *r;
    int32_t pid = 0;
    int i;
    char *txid1 = NULL;

    tx = BEGIN(s);
    for (i = 0; i < 10; i++) {
        const char *v;
        r = TXQ(tx, "SELECT pg_backend_pid(), txid_current()");
        v = pgsess_results_value(r, 0, 0);
        CHECK(pgsess_results_backend_pid(r) > 0);
        CHECK_INTEQ(atol(v ? v : "0"), pgsess_results_backend_pid(r));
        CHECK_INTEQ(pgsess_backend_pid(s), pgsess_results_backend_pid(r));
        if (i == 0) {
            pid = pgsess_results_backend_pid(r);
            v = pgsess_results_value(r, 0, 1);
            txid1 = v ? strdup(v) : NULL;
        } else {
            CHECK_INTEQ(pgsess_results_backend_pid(r), pid);
            CHECK_STREQ(pgsess_results_value(r, 0, 1), txid1);
        }
        pgsess_results_free(r);
        /* interleave session-level statements: they go elsewhere in the pool */
        r = Q(s, "SELECT txid_current()");
        CHECK(pgsess_results_value(r, 0, 0) == NULL || txid1 == NULL ||
              strcmp(pgsess_results_value(r, 0, 0), txid1) != 0);
        CHECK(pgsess_results_backend_pid(r) != pid);
        pgsess_results_free(r);
    }
    free(txid1);
    COMMIT_OK(tx);

    /* several transactions at once on one session */
    {
        pgsess_tx *a = BEGIN(s), *b = BEGIN(s);
        pgsess_results *ra = TXQ(a, "SELECT 'a'"), *rb = TXQ(b, "SELECT 'b'");
        CHECK_STREQ(pgsess_results_value(ra, 0, 0), "a");
        CHECK_STREQ(pgsess_results_value(rb, 0, 0), "b");
        CHECK(pgsess_results_backend_pid(ra) != pgsess_results_backend_pid(rb));
        pgsess_results_free(ra);
        pgsess_results_free(rb);
        pgsess_rollback(b);
        COMMIT_OK(a);
    }
}

int main(void)
{
    pgsess_options *opts = pgsess_options_new();
    pgsess_session *s;
    char sql[512];

    CHECK_INTEQ(pgsess_options_set_pool_max_size(opts, 4), PGSESS_OK);
    s = open_ctest(opts);
    pgsess_options_free(opts);

    unique_name(table, sizeof table, "tx");
    snprintf(sql, sizeof sql, "CREATE TABLE %s (id int PRIMARY KEY DEFERRABLE, v text)", table);
    EXEC(s, sql);

    test_commit_and_rollback(s);
    test_errors_in_tx(s);
    test_affinity(s);

    snprintf(sql, sizeof sql, "DROP TABLE %s", table);
    EXEC(s, sql);
    pgsess_close(s);
    return CHECK_DONE();
}
