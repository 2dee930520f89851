/*
 * pinned.c - sessions that keep their state: pinned sessions (pgsess_pin and the pinned
 * option), a transaction's session (pgsess_tx_session) and the pool's reset modes.
 * Needs env PGSQL_CTEST (a PostgreSQL URI); opens it as pgsess_open("ctest").
 */
#define _POSIX_C_SOURCE 200809L
#include <pgsess.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "check.h"
#include "helpers.h"

#define NO_RESET (-1)

/* A session on a pool of `max` connections with reset mode `reset` (NO_RESET: the default),
 * pinned when `pinned`. Checkouts give up after `checkout_ms`. */
static pgsess_session *open_pool(uint32_t max, int reset, bool pinned, uint32_t checkout_ms)
{
    pgsess_options *opts = pgsess_options_new();
    pgsess_session *s;
    CHECK_INTEQ(pgsess_options_set_pool_max_size(opts, max), PGSESS_OK);
    CHECK_INTEQ(pgsess_options_set_checkout_timeout_ms(opts, checkout_ms), PGSESS_OK);
    if (reset != NO_RESET)
        CHECK_INTEQ(pgsess_options_set_reset(opts, (pgsess_reset)reset), PGSESS_OK);
    if (pinned)
        CHECK_INTEQ(pgsess_options_set_pinned(opts, true), PGSESS_OK);
    s = open_ctest(opts);
    pgsess_options_free(opts);
    return s;
}

static pgsess_session *pin_(pgsess_session *s, const char *file, int line)
{
    pgsess_error *err = NULL;
    pgsess_session *p = pgsess_pin(s, &err);
    check_count_(p != NULL && err == NULL);
    if (p == NULL || err != NULL) {
        fflush(stdout);
        fprintf(stderr, "%s:%d: CHECK failed: pgsess_pin succeeds\n", file, line);
        print_err(file, line, "  error", err);
    }
    pgsess_error_free(err);
    return p;
}
#define PIN(s) pin_((s), __FILE__, __LINE__)

/* CHECK that the first value of `sql` on `s` is `want` (NULL: SQL NULL). */
static void scalar_is_(pgsess_session *s, const char *sql, const char *want, const char *file, int line)
{
    char *v = scalar_(s, sql, file, line);
    int ok = (v == NULL && want == NULL) || (v != NULL && want != NULL && strcmp(v, want) == 0);
    check_count_(ok);
    if (!ok) {
        fflush(stdout);
        fprintf(stderr, "%s:%d: CHECK failed: %s gives %s%s%s, expected %s\n", file, line, sql, v ? "\"" : "",
                v ? v : "NULL", v ? "\"" : "", want ? want : "NULL");
    }
    free(v);
}
#define SCALAR_IS(s, sql, want) scalar_is_((s), (sql), (want), __FILE__, __LINE__)

/* The backend pid that ran `sql` on `s` (0 on failure). */
static int32_t pid_of_(pgsess_session *s, const char *file, int line)
{
    pgsess_results *r = q_(s, "SELECT pg_backend_pid()", 0, NULL, file, line);
    const char *v = pgsess_results_value(r, 0, 0);
    int32_t pid = pgsess_results_backend_pid(r);
    if (v == NULL || atol(v) != pid) {
        check_count_(0);
        fprintf(stderr, "%s:%d: CHECK failed: pg_backend_pid() %s equals the results' backend pid %d\n", file,
                line, v ? v : "NULL", (int)pid);
    }
    pgsess_results_free(r);
    return pid;
}
#define PID_OF(s) pid_of_((s), __FILE__, __LINE__)

/* CHECK that `sql` on `s` fails with `code`. */
static void expect_code_(pgsess_session *s, const char *sql, pgsess_code code, const char *file, int line)
{
    pgsess_error *err = NULL;
    pgsess_results *r = pgsess_query(s, sql, 0, NULL, &err);
    int ok = r == NULL && pgsess_error_code(err) == code;
    check_count_(ok);
    if (!ok) {
        fflush(stdout);
        fprintf(stderr, "%s:%d: CHECK failed: %s fails with %s\n", file, line, sql, pgsess_code_name(code));
        print_err(file, line, "  got", err);
    }
    pgsess_results_free(r);
    pgsess_error_free(err);
}
#define EXPECT_CODE(s, sql, code) expect_code_((s), (sql), (code), __FILE__, __LINE__)

static char table[96];

static void count_is_(pgsess_session *s, const char *want, const char *file, int line)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
    scalar_is_(s, sql, want, file, line);
}
#define COUNT_IS(s, want) count_is_((s), (want), __FILE__, __LINE__)

static void exec_table_(pgsess_session *s, const char *fmt, const char *file, int line)
{
    char sql[256];
    snprintf(sql, sizeof sql, fmt, table);
    pgsess_results_free(q_(s, sql, 0, NULL, file, line));
}
#define EXEC_TABLE(s, fmt) exec_table_((s), (fmt), __FILE__, __LINE__)

static void test_misuse(void)
{
    pgsess_error *err = NULL;
    pgsess_options *opts = pgsess_options_new();

    CHECK(!pgsess_is_pinned(NULL));
    CHECK(pgsess_pin(NULL, &err) == NULL);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_INTERFACE_ERROR);
    CHECK(pgsess_error_message(err) != NULL);
    pgsess_error_free(err);
    CHECK(pgsess_pin(NULL, NULL) == NULL);
    CHECK(pgsess_tx_session(NULL) == NULL);
    CHECK_INTEQ(pgsess_pool_pinned_sessions(NULL), 0);

    CHECK_INTEQ(pgsess_options_set_reset(opts, (pgsess_reset)7), PGSESS_INTERFACE_ERROR);
    CHECK_INTEQ(pgsess_options_set_reset(opts, (pgsess_reset)-1), PGSESS_INTERFACE_ERROR);
    CHECK_INTEQ(pgsess_options_set_reset(NULL, PGSESS_RESET_DIRTY), PGSESS_INTERFACE_ERROR);
    CHECK_INTEQ(pgsess_options_set_reset(opts, PGSESS_RESET_ALWAYS), PGSESS_OK);
    CHECK_INTEQ(pgsess_options_set_reset(opts, PGSESS_RESET_NEVER), PGSESS_OK);
    CHECK_INTEQ(pgsess_options_set_reset(opts, PGSESS_RESET_DIRTY), PGSESS_OK);
    CHECK_INTEQ(pgsess_options_set_pinned(NULL, true), PGSESS_INTERFACE_ERROR);
    CHECK_INTEQ(pgsess_options_set_pinned(opts, true), PGSESS_OK);
    CHECK_INTEQ(pgsess_options_set_pinned(opts, false), PGSESS_OK);
    pgsess_options_free(opts);
}

/* SET, a temporary table and lastval() carry from one call to the next, on one backend. */
static void test_state_kept(pgsess_session *base)
{
    pgsess_session *p = PIN(base);
    pgsess_results *r;
    int32_t pid;
    int i;
    char *default_path = SCALAR(base, "SHOW search_path");

    if (p == NULL) {
        free(default_path);
        return;
    }
    CHECK(pgsess_is_pinned(p));
    CHECK(!pgsess_is_pinned(base));
    CHECK_STREQ(pgsess_pool_id(p), pgsess_pool_id(base));

    pid = PID_OF(p);
    CHECK(pid > 0);
    EXEC(p, "SET search_path = pgsess_pinned_schema, public");
    SCALAR_IS(p, "SHOW search_path", "pgsess_pinned_schema, public");
    EXEC(p, "CREATE TEMP TABLE pinned_tmp (id serial, v int)");
    EXEC(p, "INSERT INTO pinned_tmp (v) VALUES (7), (8)");
    SCALAR_IS(p, "SELECT lastval()", "2");
    SCALAR_IS(p, "SELECT sum(v) FROM pinned_tmp", "15");
    for (i = 0; i < 10; i++) {
        CHECK_INTEQ(PID_OF(p), pid);
        CHECK_INTEQ(pgsess_backend_pid(p), pid);
    }
    /* Results of a pinned session share its connection: holding one does not stop the next. */
    r = Q(p, "SELECT 'held'");
    SCALAR_IS(p, "SELECT count(*) FROM pinned_tmp", "2");
    CHECK_INTEQ(pgsess_results_backend_pid(r), pid);
    pgsess_results_free(r);

    /* None of it is seen by the pooled session (another connection). */
    SCALAR_IS(base, "SHOW search_path", default_path);
    SCALAR_IS(base, "SELECT to_regclass('pinned_tmp') IS NULL", "t");
    SCALAR_IS(p, "SHOW search_path", "pgsess_pinned_schema, public");

    pgsess_close(p);
    free(default_path);
}

/* BEGIN, INSERT and ROLLBACK (or COMMIT) sent as separate calls are one transaction. */
static void test_transaction_as_calls(pgsess_session *base)
{
    pgsess_session *p = PIN(base);
    if (p == NULL)
        return;

    EXEC(p, "BEGIN");
    EXEC_TABLE(p, "INSERT INTO %s VALUES (1, 'rolled back')");
    COUNT_IS(p, "1");
    COUNT_IS(base, "0"); /* not committed */
    EXEC(p, "ROLLBACK");
    COUNT_IS(p, "0");
    COUNT_IS(base, "0");

    EXEC(p, "BEGIN");
    EXEC_TABLE(p, "INSERT INTO %s VALUES (2, 'committed')");
    COUNT_IS(base, "0");
    EXEC(p, "COMMIT");
    COUNT_IS(base, "1");

    /* A transaction left open is rolled back when the session closes. */
    EXEC(p, "BEGIN");
    EXEC_TABLE(p, "INSERT INTO %s VALUES (3, 'left open')");
    pgsess_close(p);
    COUNT_IS(base, "1");
    EXEC_TABLE(base, "DELETE FROM %s");
}

/* On a pool of 1: the pinned session holds the only connection; once closed, the next pooled
 * caller gets that connection back with none of the pinned session's state. */
static void test_pool_of_one(void)
{
    pgsess_session *base = open_pool(1, NO_RESET, false, 1500);
    pgsess_session *p, *p2;
    pgsess_error *err = NULL;
    pgsess_results *r, *r2;
    pgsess_stats st;
    char *path = SCALAR(base, "SHOW search_path");
    char *app = SCALAR(base, "SHOW application_name");
    char *work_mem = SCALAR(base, "SHOW work_mem");
    int32_t pid = PID_OF(base);

    CHECK_INTEQ(pgsess_pool_pinned_sessions(base), 0);
    p = PIN(base);
    if (p == NULL)
        goto out;
    CHECK_INTEQ(pgsess_pool_pinned_sessions(base), 1);
    CHECK_INTEQ(pgsess_pool_pinned_sessions(p), 1);
    CHECK_INTEQ(pgsess_pool_stats(base, &st), PGSESS_OK);
    CHECK_INTEQ(st.in_use, 1);
    CHECK_INTEQ(PID_OF(p), pid);

    EXEC(p, "SET search_path = pgsess_pinned_schema");
    EXEC(p, "SET application_name = 'pgsess_pinned'");
    EXEC(p, "SET work_mem = '7MB'");
    EXEC(p, "CREATE TEMP TABLE pinned_one (v int)");
    SCALAR_IS(p, "SHOW application_name", "pgsess_pinned");

    /* Results share the pinned connection, even on a pool of 1. */
    r = Q(p, "SELECT 1");
    r2 = Q(p, "SELECT 2");
    CHECK_STREQ(pgsess_results_value(r2, 0, 0), "2");
    pgsess_results_free(r2);
    pgsess_results_free(r);

    /* The pool's one connection is held: a pooled statement and a second pin wait and fail. */
    EXPECT_CODE(base, "SELECT 1", PGSESS_POOL_EXHAUSTED);
    p2 = pgsess_pin(base, &err);
    CHECK(p2 == NULL);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_POOL_EXHAUSTED);
    pgsess_error_free(err);
    err = NULL;
    pgsess_close(p2);

    pgsess_close(p);
    CHECK_INTEQ(pgsess_pool_pinned_sessions(base), 0);
    CHECK_INTEQ(PID_OF(base), pid);
    SCALAR_IS(base, "SHOW search_path", path);
    SCALAR_IS(base, "SHOW application_name", app);
    SCALAR_IS(base, "SHOW work_mem", work_mem);
    SCALAR_IS(base, "SELECT to_regclass('pinned_one') IS NULL", "t");

    /* Closing with results outstanding: the connection comes back once they are freed. */
    p = PIN(base);
    if (p != NULL) {
        EXEC(p, "SET application_name = 'pgsess_pinned_again'");
        r = Q(p, "SELECT 'kept'");
        pgsess_close(p);
        CHECK_STREQ(pgsess_results_value(r, 0, 0), "kept");
        EXPECT_CODE(base, "SELECT 1", PGSESS_POOL_EXHAUSTED);
        pgsess_results_free(r);
        CHECK_INTEQ(PID_OF(base), pid);
        SCALAR_IS(base, "SHOW application_name", app);
        CHECK_INTEQ(pgsess_pool_pinned_sessions(base), 0);
    }

    /* The pinned option: pgsess_open returns a pinned session, on the same pool. */
    p = open_pool(1, NO_RESET, true, 1500);
    CHECK(pgsess_is_pinned(p));
    CHECK_STREQ(pgsess_pool_id(p), pgsess_pool_id(base));
    CHECK_INTEQ(pgsess_pool_pinned_sessions(base), 1);
    EXEC(p, "SET application_name = 'pgsess_pinned_option'");
    SCALAR_IS(p, "SHOW application_name", "pgsess_pinned_option");
    CHECK_INTEQ(PID_OF(p), pid);
    EXPECT_CODE(base, "SELECT 1", PGSESS_POOL_EXHAUSTED);
    pgsess_close(p);
    CHECK_INTEQ(pgsess_pool_pinned_sessions(base), 0);
    SCALAR_IS(base, "SHOW application_name", app);
out:
    free(path);
    free(app);
    free(work_mem);
    pgsess_close(base);
}

/* NEVER lets session state reach the next user of a connection; DIRTY (the default) resets it
 * after a SET; ALWAYS resets even what DIRTY cannot see (a SET inside a DO block). */
static void test_reset_modes(void)
{
    pgsess_session *dirty = open_pool(1, PGSESS_RESET_DIRTY, false, 5000);
    pgsess_session *deflt = open_pool(1, NO_RESET, false, 5000);
    pgsess_session *never = open_pool(1, PGSESS_RESET_NEVER, false, 5000);
    pgsess_session *always = open_pool(1, PGSESS_RESET_ALWAYS, false, 5000);
    pgsess_session *p;
    char *app = SCALAR(dirty, "SHOW application_name");
    char *work_mem = SCALAR(always, "SHOW work_mem");
    int32_t pid;

    CHECK_STREQ(pgsess_pool_id(dirty), pgsess_pool_id(deflt)); /* DIRTY is the default */
    CHECK(strcmp(pgsess_pool_id(dirty), pgsess_pool_id(never)) != 0);
    CHECK(strcmp(pgsess_pool_id(dirty), pgsess_pool_id(always)) != 0);
    CHECK(strcmp(pgsess_pool_id(never), pgsess_pool_id(always)) != 0);

    pid = PID_OF(never);
    EXEC(never, "SET application_name = 'pgsess_never'");
    SCALAR_IS(never, "SHOW application_name", "pgsess_never");
    CHECK_INTEQ(PID_OF(never), pid);
    /* ... and a pinned session's state passes on too. */
    p = PIN(never);
    EXEC(p, "SET application_name = 'pgsess_never_pinned'");
    pgsess_close(p);
    SCALAR_IS(never, "SHOW application_name", "pgsess_never_pinned");
    /* an open transaction is rolled back in every mode */
    p = PIN(never);
    EXEC(p, "BEGIN");
    EXEC(p, "SET application_name = 'pgsess_in_tx'");
    pgsess_close(p);
    SCALAR_IS(never, "SHOW application_name", "pgsess_never_pinned");
    EXEC(never, "RESET application_name");

    pid = PID_OF(dirty);
    EXEC(dirty, "SET application_name = 'pgsess_dirty'");
    SCALAR_IS(dirty, "SHOW application_name", app);
    CHECK_INTEQ(PID_OF(dirty), pid);

    pid = PID_OF(always);
    EXEC(always, "DO $$BEGIN EXECUTE 'SET work_mem = ''7MB'''; END$$");
    SCALAR_IS(always, "SHOW work_mem", work_mem);
    CHECK_INTEQ(PID_OF(always), pid);

    free(app);
    free(work_mem);
    pgsess_close(dirty);
    pgsess_close(deflt);
    pgsess_close(never);
    pgsess_close(always);
}

/* A transaction's session runs every session call inside the transaction. */
static void test_tx_session(pgsess_session *base)
{
    pgsess_tx *tx = BEGIN(base);
    pgsess_session *ts;
    pgsess_results *r;
    pgsess_error *err = NULL;
    const char *p[] = {"5"};
    int32_t pid;

    if (tx == NULL)
        return;
    ts = pgsess_tx_session(tx);
    CHECK(ts != NULL);
    CHECK(ts == pgsess_tx_session(tx));
    CHECK(pgsess_is_pinned(ts));
    CHECK_STREQ(pgsess_pool_id(ts), pgsess_pool_id(base));

    r = TXQ(tx, "SELECT txid_current()");
    pid = pgsess_results_backend_pid(r);
    SCALAR_IS(ts, "SELECT txid_current()", pgsess_results_value(r, 0, 0));
    pgsess_results_free(r);
    CHECK_INTEQ(PID_OF(ts), pid);

    EXEC_TABLE(ts, "INSERT INTO %s VALUES (10, 'through the tx session')");
    r = QP(ts, "SELECT $1::int + 1", 1, p);
    CHECK_STREQ(pgsess_results_value(r, 0, 0), "6");
    pgsess_results_free(r);
    COUNT_IS(ts, "1");
    COUNT_IS(base, "0");
    {
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
        r = TXQ(tx, sql);
        CHECK_STREQ(pgsess_results_value(r, 0, 0), "1");
        pgsess_results_free(r);
    }
    /* No nested transaction on it (SAVEPOINT is the way). */
    CHECK(pgsess_begin(ts, &err) == NULL);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_INTERFACE_ERROR);
    CHECK_CONTAINS(pgsess_error_message(err), "SAVEPOINT");
    pgsess_error_free(err);
    err = NULL;
    pgsess_rollback(tx);
    COUNT_IS(base, "0");

    /* pgsess_close on a transaction's session does nothing: it stays usable and the transaction
     * still commits. */
    tx = BEGIN(base);
    if (tx == NULL)
        return;
    ts = pgsess_tx_session(tx);
    EXEC_TABLE(ts, "INSERT INTO %s VALUES (11, 'before close')");
    pgsess_close(ts);
    pgsess_close(ts);
    EXEC_TABLE(ts, "INSERT INTO %s VALUES (12, 'after close')");
    CHECK(pgsess_is_pinned(ts));
    CHECK_INTEQ(pgsess_commit(tx, &err), PGSESS_OK);
    if (err != NULL)
        print_err(__FILE__, __LINE__, "commit", err);
    pgsess_error_free(err);
    COUNT_IS(base, "2");
    EXEC_TABLE(base, "DELETE FROM %s");
}

/* The connection of a pinned session dies: the statement in flight fails saying the state was
 * lost, and the next one runs on a new connection (with none of the old state). */
static void test_connection_lost(pgsess_session *base)
{
    pgsess_session *p = PIN(base);
    pgsess_results *r;
    pgsess_error *err = NULL;
    char *path = SCALAR(base, "SHOW search_path");
    int32_t pid, pid2;

    if (p == NULL) {
        free(path);
        return;
    }
    pid = PID_OF(p);
    EXEC(p, "SET search_path = pgsess_lost_schema");
    r = pgsess_query(p, "SELECT pg_terminate_backend(pg_backend_pid())", 0, NULL, &err);
    CHECK(r == NULL);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_OPERATIONAL_ERROR);
    CHECK(contains_ci(pgsess_error_message(err), "lost"));
    printf("connection lost: %s\n", pgsess_error_message(err) ? pgsess_error_message(err) : "NULL");
    pgsess_results_free(r);
    pgsess_error_free(err);
    pid2 = PID_OF(p);
    CHECK(pid2 > 0);
    CHECK(pid2 != pid);
    SCALAR_IS(p, "SHOW search_path", path);
    CHECK_INTEQ(PID_OF(p), pid2);
    CHECK(pgsess_is_pinned(p));
    pgsess_close(p);
    free(path);
}

#define NTHREADS 4
#define NITERS 50

struct worker {
    pgsess_session *s;
    int id;
    int ok;
    int failed;
    int32_t pid;
    int pids_differ;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    int i;
    for (i = 0; i < NITERS; i++) {
        char in[32], want[32];
        const char *params[1];
        pgsess_error *err = NULL;
        pgsess_results *r;
        const char *v, *backend;
        long n = (long)w->id * 1000L + i;

        snprintf(in, sizeof in, "%ld", n);
        snprintf(want, sizeof want, "%ld", n * 3);
        params[0] = in;
        r = pgsess_query(w->s, "SELECT $1::int * 3, pg_backend_pid()", 1, params, &err);
        if (r == NULL) {
            w->failed++;
            if (w->failed == 1)
                print_err(__FILE__, __LINE__, "worker query", err);
            pgsess_error_free(err);
            continue;
        }
        v = pgsess_results_value(r, 0, 0);
        backend = pgsess_results_value(r, 0, 1);
        if (v != NULL && strcmp(v, want) == 0 && backend != NULL && atol(backend) == pgsess_results_backend_pid(r))
            w->ok++;
        else
            w->failed++;
        if (w->pid == 0)
            w->pid = pgsess_results_backend_pid(r);
        else if (w->pid != pgsess_results_backend_pid(r))
            w->pids_differ = 1;
        pgsess_results_free(r);
    }
    return NULL;
}

/* Threads sharing one pinned session take turns on its one connection. */
static void test_threads(pgsess_session *base)
{
    pgsess_session *p = PIN(base);
    pthread_t th[NTHREADS];
    struct worker w[NTHREADS];
    int i, ok = 0, failed = 0, differ = 0, same = 1;
    int32_t pid;

    if (p == NULL)
        return;
    pid = PID_OF(p);
    memset(w, 0, sizeof w);
    for (i = 0; i < NTHREADS; i++) {
        w[i].s = p;
        w[i].id = i;
        CHECK(pthread_create(&th[i], NULL, worker_main, &w[i]) == 0);
    }
    for (i = 0; i < NTHREADS; i++)
        CHECK(pthread_join(th[i], NULL) == 0);
    for (i = 0; i < NTHREADS; i++) {
        ok += w[i].ok;
        failed += w[i].failed;
        differ += w[i].pids_differ;
        if (w[i].pid != pid)
            same = 0;
    }
    CHECK_INTEQ(ok, NTHREADS * NITERS);
    CHECK_INTEQ(failed, 0);
    CHECK_INTEQ(differ, 0);
    CHECK(same);
    CHECK_INTEQ(PID_OF(p), pid);
    printf("threads: %d statements from %d threads on backend %d\n", ok, NTHREADS, (int)pid);
    pgsess_close(p);
}

int main(void)
{
    pgsess_session *base;
    char sql[256];

    test_misuse();

    base = open_pool(3, NO_RESET, false, 5000);
    unique_name(table, sizeof table, "pinned");
    snprintf(sql, sizeof sql, "CREATE TABLE %s (id int PRIMARY KEY, v text)", table);
    EXEC(base, sql);

    test_state_kept(base);
    test_transaction_as_calls(base);
    test_pool_of_one();
    test_reset_modes();
    test_tx_session(base);
    test_connection_lost(base);
    test_threads(base);

    snprintf(sql, sizeof sql, "DROP TABLE %s", table);
    EXEC(base, sql);
    pgsess_close(base);
    return CHECK_DONE();
}
