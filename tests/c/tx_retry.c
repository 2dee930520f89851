/*
 * tx_retry.c - transactions as users write them: pgsess_begin_with's options,
 * pgsess_error_is_retryable, the commit that reports a serialization failure's
 * own SQLSTATE, pgsess_run_in_tx (8 threads incrementing one counter under
 * SERIALIZABLE end with the exact count; what the runner does with its
 * function's codes), and savepoints with quoted names.
 * Needs env PGSQL_CTEST (a PostgreSQL URI); opens it as pgsess_open("ctest").
 */
#define _POSIX_C_SOURCE 200809L
#include <pgsess.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "check.h"
#include "helpers.h"

#define NTHREADS 8
#define NINCREMENTS 50
#define RAISE_40001 "DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = 'serialization_failure'; END $$"

static char table[96];

/* The first value of a statement run in the transaction, compared with `want`. */
static void check_tx_value_(pgsess_tx *tx, const char *sql, const char *want, const char *file, int line)
{
    pgsess_results *r = txq_(tx, sql, 0, NULL, file, line);
    check_streq_(pgsess_results_value(r, 0, 0), want, file, line, sql, want);
    pgsess_results_free(r);
}
#define CHECK_TX_VALUE(tx, sql, want) check_tx_value_((tx), (sql), (want), __FILE__, __LINE__)

static void test_begin_with(pgsess_session *s)
{
    pgsess_error *err = NULL;
    pgsess_tx *tx;

    tx = pgsess_begin_with(s, PGSESS_SERIALIZABLE, true, true, &err);
    CHECK(tx != NULL && err == NULL);
    CHECK_TX_VALUE(tx, "SHOW transaction_isolation", "serializable");
    CHECK_TX_VALUE(tx, "SHOW transaction_read_only", "on");
    CHECK_TX_VALUE(tx, "SHOW transaction_deferrable", "on");
    pgsess_rollback(tx);

    tx = pgsess_begin_with(s, PGSESS_REPEATABLE_READ, false, false, &err);
    CHECK(tx != NULL && err == NULL);
    CHECK_TX_VALUE(tx, "SHOW transaction_isolation", "repeatable read");
    CHECK_TX_VALUE(tx, "SHOW transaction_read_only", "off");
    CHECK_INTEQ(pgsess_commit(tx, NULL), PGSESS_OK);

    tx = pgsess_begin_with(s, PGSESS_ISOLATION_DEFAULT, false, false, &err);
    CHECK(tx != NULL && err == NULL);
    CHECK_TX_VALUE(tx, "SHOW transaction_isolation", "read committed");
    CHECK_INTEQ(pgsess_commit(tx, NULL), PGSESS_OK);

    /* A value outside the enum is refused, not undefined. */
    tx = pgsess_begin_with(s, (pgsess_isolation)7, false, false, &err);
    CHECK(tx == NULL);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_INTERFACE_ERROR);
    pgsess_error_free(err);
    tx = pgsess_begin_with(NULL, PGSESS_SERIALIZABLE, false, false, &err);
    CHECK(tx == NULL);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_INTERFACE_ERROR);
    pgsess_error_free(err);
}

static void test_retryable_and_commit(pgsess_session *s)
{
    pgsess_error *err = NULL;
    pgsess_results *r;
    pgsess_tx *tx;
    pgsess_code c;

    CHECK(!pgsess_error_is_retryable(NULL));
    r = pgsess_query(s, "SELECT 1/0", 0, NULL, &err);
    CHECK(r == NULL && err != NULL);
    CHECK(!pgsess_error_is_retryable(err));
    pgsess_error_free(err);

    /* A serialization failure fails the transaction; commit reports it with its SQLSTATE. */
    tx = BEGIN(s);
    r = pgsess_tx_query(tx, RAISE_40001, 0, NULL, &err);
    CHECK(r == NULL);
    CHECK_STREQ(pgsess_error_sqlstate(err), "40001");
    CHECK(pgsess_error_is_retryable(err));
    pgsess_error_free(err);
    c = pgsess_commit(tx, &err);
    CHECK_INTEQ(c, PGSESS_TRANSACTION_ROLLBACK);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_TRANSACTION_ROLLBACK);
    CHECK_STREQ(pgsess_error_sqlstate(err), "40001");
    CHECK(pgsess_error_is_retryable(err));
    CHECK(contains_ci(pgsess_error_message(err), "serialization failure"));
    pgsess_error_free(err);

    /* Any other failure: 40000, not retryable. */
    tx = BEGIN(s);
    r = pgsess_tx_query(tx, "SELECT 1/0", 0, NULL, &err);
    CHECK(r == NULL);
    pgsess_error_free(err);
    c = pgsess_commit(tx, &err);
    CHECK_INTEQ(c, PGSESS_TRANSACTION_ROLLBACK);
    CHECK_STREQ(pgsess_error_sqlstate(err), "40000");
    CHECK(!pgsess_error_is_retryable(err));
    pgsess_error_free(err);
}

/* ---- 8 threads, one counter ---- */

struct incrementer {
    pgsess_session *s;
    int attempts;
    int failed;
    char first_failure[512];
};

/* Read the counter, then write what was read plus one (lost updates would show in the count).
 * Errors are passed on: a 40001 is what makes the runner retry. */
static pgsess_code increment(pgsess_tx *tx, void *user_data, pgsess_error **err)
{
    struct incrementer *w = user_data;
    char sql[256], next[32];
    const char *params[1];
    pgsess_results *r;
    pgsess_code c;

    w->attempts++;
    snprintf(sql, sizeof sql, "SELECT n FROM %s WHERE id = 1", table);
    r = pgsess_tx_query(tx, sql, 0, NULL, err);
    if (r == NULL)
        return pgsess_error_code(*err);
    snprintf(next, sizeof next, "%ld", atol(pgsess_results_value(r, 0, 0)) + 1);
    pgsess_results_free(r);
    params[0] = next;
    snprintf(sql, sizeof sql, "UPDATE %s SET n = $1::int WHERE id = 1", table);
    r = pgsess_tx_query(tx, sql, 1, params, err);
    if (r == NULL)
        return pgsess_error_code(*err);
    c = pgsess_results_rows_affected(r) == 1 ? PGSESS_OK : PGSESS_DATA_ERROR;
    pgsess_results_free(r);
    return c;
}

static void *incrementer_main(void *arg)
{
    struct incrementer *w = arg;
    int i;
    for (i = 0; i < NINCREMENTS; i++) {
        pgsess_error *err = NULL;
        pgsess_code c = pgsess_run_in_tx(w->s, PGSESS_SERIALIZABLE, 100, increment, w, &err);
        if (c != PGSESS_OK) {
            w->failed++;
            if (w->first_failure[0] == '\0')
                snprintf(w->first_failure, sizeof w->first_failure, "%s: %s", pgsess_code_name(c),
                         err ? pgsess_error_message(err) : "(no error)");
        }
        pgsess_error_free(err);
    }
    return NULL;
}

static void test_eight_threads_one_counter(pgsess_session *s)
{
    struct incrementer w[NTHREADS];
    pthread_t th[NTHREADS];
    char sql[256];
    char *v;
    int i, attempts = 0, failed = 0;

    snprintf(sql, sizeof sql, "UPDATE %s SET n = 0 WHERE id = 1", table);
    EXEC(s, sql);
    memset(w, 0, sizeof w);
    for (i = 0; i < NTHREADS; i++) {
        w[i].s = s;
        CHECK_INTEQ(pthread_create(&th[i], NULL, incrementer_main, &w[i]), 0);
    }
    for (i = 0; i < NTHREADS; i++) {
        pthread_join(th[i], NULL);
        attempts += w[i].attempts;
        failed += w[i].failed;
        if (w[i].first_failure[0] != '\0')
            fprintf(stderr, "thread %d: %s\n", i, w[i].first_failure);
    }
    CHECK_INTEQ(failed, 0);
    snprintf(sql, sizeof sql, "SELECT n FROM %s WHERE id = 1", table);
    v = SCALAR(s, sql);
    CHECK_STREQ(v, "400");
    free(v);
    printf("%d increments: %d attempts (%d retried)\n", NTHREADS * NINCREMENTS, attempts,
           attempts - NTHREADS * NINCREMENTS);
}

/* ---- what the runner does with its function's outcomes ---- */

struct scripted {
    int calls;
    int fail_first;          /* fail this many calls with a passed-on 40001 */
    pgsess_code code;        /* then return this */
    bool set_err;            /* with an error (when code is not OK) */
    bool try_to_end;         /* call pgsess_commit and pgsess_rollback on tx */
    pgsess_code commit_code; /* what that pgsess_commit returned */
};

static pgsess_code scripted_fn(pgsess_tx *tx, void *user_data, pgsess_error **err)
{
    struct scripted *f = user_data;
    char sql[256];
    pgsess_results *r;

    f->calls++;
    snprintf(sql, sizeof sql, "INSERT INTO %s VALUES (100 + %d, 0)", table, f->calls);
    r = pgsess_tx_query(tx, sql, 0, NULL, err);
    if (r == NULL)
        return pgsess_error_code(*err);
    pgsess_results_free(r);
    if (f->calls <= f->fail_first) {
        r = pgsess_tx_query(tx, RAISE_40001, 0, NULL, err);
        pgsess_results_free(r);
        return PGSESS_TRANSACTION_ROLLBACK;
    }
    if (f->try_to_end) {
        pgsess_error *e = NULL;
        f->commit_code = pgsess_commit(tx, &e); /* refused: the runner's */
        pgsess_error_free(e);
        pgsess_rollback(tx); /* ignored */
    }
    if (f->code != PGSESS_OK && f->set_err) {
        r = pgsess_tx_query(tx, "SELECT 1/0", 0, NULL, err);
        pgsess_results_free(r);
    }
    return f->code;
}

static long rows_from_100(pgsess_session *s)
{
    char sql[256];
    char *v;
    long n;
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s WHERE id > 100", table);
    v = SCALAR(s, sql);
    n = v ? atol(v) : -1;
    free(v);
    snprintf(sql, sizeof sql, "DELETE FROM %s WHERE id > 100", table);
    EXEC(s, sql);
    return n;
}

static void test_runner_outcomes(pgsess_session *s)
{
    pgsess_error *err = NULL;
    pgsess_code c;
    struct scripted f;

    /* Retried after two 40001s; the third call commits (only its row). */
    memset(&f, 0, sizeof f);
    f.fail_first = 2;
    c = pgsess_run_in_tx(s, PGSESS_SERIALIZABLE, 5, scripted_fn, &f, &err);
    CHECK_INTEQ(c, PGSESS_OK);
    CHECK(err == NULL);
    CHECK_INTEQ(f.calls, 3);
    CHECK_INTEQ(rows_from_100(s), 1);

    /* The tx is the runner's: pgsess_commit on it is refused, pgsess_rollback ignored. */
    memset(&f, 0, sizeof f);
    f.try_to_end = true;
    c = pgsess_run_in_tx(s, PGSESS_ISOLATION_DEFAULT, 0, scripted_fn, &f, &err);
    CHECK_INTEQ(c, PGSESS_OK);
    CHECK_INTEQ(f.commit_code, PGSESS_INTERFACE_ERROR);
    CHECK_INTEQ(rows_from_100(s), 1);

    /* A non-retryable failure: rolled back, run once, fn's code and fn's error. */
    memset(&f, 0, sizeof f);
    f.code = PGSESS_DATA_ERROR;
    f.set_err = true;
    c = pgsess_run_in_tx(s, PGSESS_ISOLATION_DEFAULT, 5, scripted_fn, &f, &err);
    CHECK_INTEQ(c, PGSESS_DATA_ERROR);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_DATA_ERROR);
    CHECK_STREQ(pgsess_error_sqlstate(err), "22012");
    CHECK_INTEQ(f.calls, 1);
    pgsess_error_free(err);
    CHECK_INTEQ(rows_from_100(s), 0);

    /* A failure without an error: one saying so, with fn's code. */
    memset(&f, 0, sizeof f);
    f.code = PGSESS_INTEGRITY_ERROR;
    c = pgsess_run_in_tx(s, PGSESS_ISOLATION_DEFAULT, 5, scripted_fn, &f, &err);
    CHECK_INTEQ(c, PGSESS_INTEGRITY_ERROR);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_INTEGRITY_ERROR);
    CHECK(contains_ci(pgsess_error_message(err), "without setting *err"));
    pgsess_error_free(err);
    CHECK_INTEQ(rows_from_100(s), 0);

    /* Retryable failures until max_attempts: the last one, saying it gave up. */
    memset(&f, 0, sizeof f);
    f.fail_first = 1000;
    c = pgsess_run_in_tx(s, PGSESS_SERIALIZABLE, 3, scripted_fn, &f, &err);
    CHECK_INTEQ(c, PGSESS_TRANSACTION_ROLLBACK);
    CHECK_STREQ(pgsess_error_sqlstate(err), "40001");
    CHECK(pgsess_error_is_retryable(err));
    CHECK(contains_ci(pgsess_error_message(err), "given up after 3 attempts"));
    CHECK_INTEQ(f.calls, 3);
    pgsess_error_free(err);
    CHECK_INTEQ(rows_from_100(s), 0);

    /* A return value that is not a pgsess_code rolls back and is an interface error. */
    memset(&f, 0, sizeof f);
    f.code = (pgsess_code)999;
    c = pgsess_run_in_tx(s, PGSESS_ISOLATION_DEFAULT, 5, scripted_fn, &f, &err);
    CHECK_INTEQ(c, PGSESS_INTERFACE_ERROR);
    pgsess_error_free(err);
    CHECK_INTEQ(rows_from_100(s), 0);

    /* Misuse. */
    c = pgsess_run_in_tx(s, PGSESS_ISOLATION_DEFAULT, 5, NULL, NULL, &err);
    CHECK_INTEQ(c, PGSESS_INTERFACE_ERROR);
    pgsess_error_free(err);
    c = pgsess_run_in_tx(NULL, PGSESS_ISOLATION_DEFAULT, 5, scripted_fn, &f, &err);
    CHECK_INTEQ(c, PGSESS_INTERFACE_ERROR);
    pgsess_error_free(err);
    c = pgsess_run_in_tx(s, (pgsess_isolation)4, 5, scripted_fn, &f, &err);
    CHECK_INTEQ(c, PGSESS_INTERFACE_ERROR);
    pgsess_error_free(err);
}

static void test_savepoints(pgsess_session *s)
{
    const char *name = "it's a \"quoted\" name";
    pgsess_error *err = NULL;
    pgsess_results *r;
    pgsess_tx *tx;
    char sql[256];
    char *v;

    tx = BEGIN(s);
    snprintf(sql, sizeof sql, "INSERT INTO %s VALUES (201, 0)", table);
    TXEXEC(tx, sql);
    CHECK_INTEQ(pgsess_savepoint(tx, name, &err), PGSESS_OK);
    snprintf(sql, sizeof sql, "INSERT INTO %s VALUES (202, 0)", table);
    TXEXEC(tx, sql);
    r = pgsess_tx_query(tx, "SELECT 1/0", 0, NULL, &err); /* fails the transaction */
    CHECK(r == NULL);
    pgsess_error_free(err);
    CHECK_INTEQ(pgsess_rollback_to(tx, name, &err), PGSESS_OK); /* makes it good again */
    snprintf(sql, sizeof sql, "INSERT INTO %s VALUES (203, 0)", table);
    TXEXEC(tx, sql);
    CHECK_INTEQ(pgsess_savepoint(tx, "inner one", &err), PGSESS_OK);
    CHECK_INTEQ(pgsess_release(tx, "inner one", &err), PGSESS_OK);
    CHECK_INTEQ(pgsess_rollback_to(tx, "inner one", &err), PGSESS_INTERNAL_ERROR); /* released: 3B001 */
    CHECK_STREQ(pgsess_error_sqlstate(err), "3B001");
    pgsess_error_free(err);
    CHECK_INTEQ(pgsess_rollback_to(tx, name, &err), PGSESS_OK);
    TXEXEC(tx, sql);
    CHECK_INTEQ(pgsess_release(tx, name, &err), PGSESS_OK);
    /* Refused names: nothing is sent, the transaction stays good. */
    CHECK_INTEQ(pgsess_savepoint(tx, "", &err), PGSESS_INTERFACE_ERROR);
    pgsess_error_free(err);
    CHECK_INTEQ(pgsess_savepoint(tx, NULL, &err), PGSESS_INTERFACE_ERROR);
    pgsess_error_free(err);
    CHECK_INTEQ(pgsess_release(NULL, "x", &err), PGSESS_INTERFACE_ERROR);
    pgsess_error_free(err);
    CHECK_INTEQ(pgsess_commit(tx, &err), PGSESS_OK);
    CHECK(err == NULL);

    snprintf(sql, sizeof sql, "SELECT string_agg(id::text, ',' ORDER BY id) FROM %s WHERE id > 200", table);
    v = SCALAR(s, sql);
    CHECK_STREQ(v, "201,203");
    free(v);
}

int main(void)
{
    pgsess_options *opts = pgsess_options_new();
    pgsess_session *s;
    char sql[512];

    CHECK_INTEQ(pgsess_options_set_pool_max_size(opts, NTHREADS), PGSESS_OK);
    s = open_ctest(opts);
    pgsess_options_free(opts);

    unique_name(table, sizeof table, "tx_retry");
    snprintf(sql, sizeof sql, "CREATE TABLE %s (id int PRIMARY KEY, n int NOT NULL); INSERT INTO %s VALUES (1, 0)",
             table, table);
    EXEC(s, sql);

    test_begin_with(s);
    test_retryable_and_commit(s);
    test_eight_threads_one_counter(s);
    test_runner_outcomes(s);
    test_savepoints(s);

    snprintf(sql, sizeof sql, "DROP TABLE %s", table);
    EXEC(s, sql);
    pgsess_close(s);
    return CHECK_DONE();
}
