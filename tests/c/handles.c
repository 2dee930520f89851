/*
 * handles.c - handles used after they end (issue 17, item 9). The header's conventions say
 * handles are checked: a handle used after it was freed, closed, committed or rolled back (or
 * after the object that lent it was), freed twice, or passed as another type is
 * PGSESS_INTERFACE_ERROR (NULL, 0 or false where a call has no error). This program relies on
 * exactly that contract, and on nothing the header leaves undefined. Run under valgrind
 * (tests/c/run.sh) and ASan (run-sanitizers.sh), a use after free inside the library or a
 * double free would be reported.
 * Needs env PGSQL_CTEST (a PostgreSQL URI); opens it as pgsess_open("ctest").
 */
#define _POSIX_C_SOURCE 200809L
#include <pgsess.h>
#include <stdbool.h>
#include <stdint.h>

#include "check.h"
#include "helpers.h"

/* Expect *err to be an interface error whose message contains `words`; frees it. */
static void interface_error_(pgsess_error **err, const char *words, const char *file, int line)
{
    int ok = *err != NULL && pgsess_error_code(*err) == PGSESS_INTERFACE_ERROR &&
             strstr(pgsess_error_message(*err), words) != NULL;
    check_count_(ok);
    if (!ok) {
        fflush(stdout);
        fprintf(stderr, "%s:%d: CHECK failed: an interface error saying \"%s\"\n", file, line, words);
        print_err(file, line, "  got", *err);
    }
    pgsess_error_free(*err);
    *err = NULL;
}
#define INTERFACE_ERROR(err, words) interface_error_(&(err), (words), __FILE__, __LINE__)

/* The session still answers its own statement. */
static void still_works(pgsess_session *s)
{
    char *v = SCALAR(s, "SELECT 'still works'");
    CHECK_STREQ(v, "still works");
    free(v);
}

static void test_tx_after_commit(pgsess_session *s)
{
    pgsess_error *err = NULL;
    pgsess_tx *tx = BEGIN(s);
    pgsess_session *txs = pgsess_tx_session(tx);
    pgsess_results *r;

    CHECK(txs != NULL);
    CHECK(pgsess_tx_session(tx) == txs);
    TXEXEC(tx, "SELECT 1");
    CHECK_INTEQ(pgsess_commit(tx, &err), PGSESS_OK);
    pgsess_error_free(err);
    err = NULL;

    /* The handle is ended: every call reports it. */
    r = pgsess_tx_query(tx, "SELECT 1", 0, NULL, &err);
    CHECK(r == NULL);
    INTERFACE_ERROR(err, "tx is not a live pgsess_tx");
    CHECK_INTEQ(pgsess_commit(tx, &err), PGSESS_INTERFACE_ERROR);
    INTERFACE_ERROR(err, "not a live pgsess_tx");
    pgsess_rollback(tx); /* ignored */
    CHECK(pgsess_tx_session(tx) == NULL);
    CHECK_INTEQ(pgsess_savepoint(tx, "sp", &err), PGSESS_INTERFACE_ERROR);
    INTERFACE_ERROR(err, "not a live pgsess_tx");

    /* And so is the session it lent. */
    r = pgsess_query(txs, "SELECT 1", 0, NULL, &err);
    CHECK(r == NULL);
    INTERFACE_ERROR(err, "session is not a live pgsess_session");
    pgsess_close(txs); /* ignored */
    still_works(s);
}

static void test_tx_after_rollback(pgsess_session *s)
{
    pgsess_error *err = NULL;
    pgsess_tx *tx = BEGIN(s);
    pgsess_rollback(tx);
    pgsess_rollback(tx);
    CHECK_INTEQ(pgsess_commit(tx, &err), PGSESS_INTERFACE_ERROR);
    INTERFACE_ERROR(err, "not a live pgsess_tx");
    still_works(s);
}

struct kept {
    pgsess_tx *tx;
    pgsess_session *session;
};

static pgsess_code keep_tx(pgsess_tx *tx, void *user_data, pgsess_error **err)
{
    struct kept *k = user_data;
    pgsess_results *r = pgsess_tx_query(tx, "SELECT 'inside'", 0, NULL, err);
    const char *v = pgsess_results_value(r, 0, 0);
    int ok = v != NULL && strcmp(v, "inside") == 0;
    pgsess_results_free(r);
    k->tx = tx;
    k->session = pgsess_tx_session(tx);
    return ok ? PGSESS_OK : PGSESS_DATA_ERROR;
}

static void test_runner_tx_kept(pgsess_session *s)
{
    pgsess_error *err = NULL;
    struct kept k = {NULL, NULL};
    CHECK_INTEQ(pgsess_run_in_tx(s, PGSESS_ISOLATION_DEFAULT, 1, keep_tx, &k, &err), PGSESS_OK);
    pgsess_error_free(err);
    err = NULL;
    CHECK(pgsess_tx_query(k.tx, "SELECT 1", 0, NULL, &err) == NULL);
    INTERFACE_ERROR(err, "not a live pgsess_tx");
    CHECK(pgsess_query(k.session, "SELECT 1", 0, NULL, &err) == NULL);
    INTERFACE_ERROR(err, "not a live pgsess_session");
    still_works(s);
}

static void test_stream(pgsess_session *s)
{
    pgsess_error *err = NULL;
    pgsess_stream *st = pgsess_query_stream(s, "SELECT generate_series(1, 100)", 0, NULL, 10, &err);
    pgsess_results *chunk;

    CHECK(st != NULL && err == NULL);
    /* Passed as another type: refused, naming both. */
    CHECK(pgsess_tx_query((pgsess_tx *)st, "SELECT 1", 0, NULL, &err) == NULL);
    INTERFACE_ERROR(err, "tx is a pgsess_stream, not a pgsess_tx");
    chunk = pgsess_stream_next(st, &err);
    CHECK_INTEQ(pgsess_results_nrows(chunk), 10);
    pgsess_results_free(chunk);
    pgsess_stream_free(st); /* rows not fetched are discarded */
    pgsess_stream_free(st); /* a second free does nothing */
    CHECK(pgsess_stream_next(st, &err) == NULL);
    INTERFACE_ERROR(err, "stream is not a live pgsess_stream");
    still_works(s);
}

static void test_copy(pgsess_session *s)
{
    pgsess_error *err = NULL;
    size_t len = 0;
    pgsess_copy *copy = pgsess_copy_out(s, "COPY (SELECT 'row') TO STDOUT", &err);
    const void *data;

    CHECK(copy != NULL && err == NULL);
    data = pgsess_copy_read(copy, &len, &err);
    CHECK(data != NULL && len == 4 && memcmp(data, "row\n", 4) == 0);
    CHECK(pgsess_copy_read(copy, &len, &err) == NULL && err == NULL);
    CHECK_INTEQ(pgsess_copy_finish(copy, &err), 1);
    pgsess_copy_free(copy);
    pgsess_copy_free(copy);
    CHECK(!pgsess_copy_is_in(copy));
    CHECK(pgsess_copy_read(copy, &len, &err) == NULL);
    CHECK_INTEQ(len, 0);
    INTERFACE_ERROR(err, "copy is not a live pgsess_copy");
    CHECK(pgsess_copy_finish(copy, &err) == UINT64_MAX);
    INTERFACE_ERROR(err, "not a live pgsess_copy");
    CHECK_INTEQ(pgsess_copy_write(copy, "x", 1, &err), PGSESS_INTERFACE_ERROR);
    INTERFACE_ERROR(err, "not a live pgsess_copy");
    still_works(s);
}

static void test_batch(pgsess_session *s)
{
    pgsess_error *err = NULL;
    pgsess_batch *b = pgsess_batch_new();
    pgsess_batch_results *out;
    const pgsess_results *r;
    const pgsess_error *e;

    CHECK_INTEQ(pgsess_batch_add(b, "SELECT 'one'", 0, NULL), PGSESS_OK);
    CHECK_INTEQ(pgsess_batch_add(b, "SELECT 1/0", 0, NULL), PGSESS_OK);
    out = pgsess_batch_run(s, b, &err);
    CHECK(out != NULL && err == NULL);
    CHECK_INTEQ(pgsess_batch_results_count(out), 2);
    r = pgsess_batch_results_get(out, 0);
    e = pgsess_batch_results_error(out, 1);
    CHECK(pgsess_batch_results_get(out, 0) == r);
    CHECK_STREQ(pgsess_results_value(r, 0, 0), "one");
    CHECK_STREQ(pgsess_error_sqlstate(e), "22012");
    /* Owned by the batch results: freeing them alone does nothing. */
    pgsess_results_free((pgsess_results *)r);
    pgsess_error_free((pgsess_error *)e);
    CHECK_STREQ(pgsess_results_value(r, 0, 0), "one");
    CHECK_STREQ(pgsess_error_sqlstate(e), "22012");
    pgsess_batch_results_free(out);
    pgsess_batch_results_free(out);
    /* They ended with it. */
    CHECK(pgsess_results_value(r, 0, 0) == NULL);
    CHECK_INTEQ(pgsess_results_nrows(r), 0);
    CHECK(pgsess_error_message(e) == NULL);
    CHECK_INTEQ(pgsess_batch_results_count(out), 0);
    pgsess_batch_free(b);
    pgsess_batch_free(b);
    CHECK_INTEQ(pgsess_batch_len(b), 0);
    CHECK_INTEQ(pgsess_batch_add(b, "SELECT 1", 0, NULL), PGSESS_INTERFACE_ERROR);
    still_works(s);
}

static void test_results_errors_options(pgsess_session *s)
{
    pgsess_error *err = NULL;
    pgsess_results *r = Q(s, "SELECT 'x'");
    pgsess_options *o;

    pgsess_results_free(r);
    pgsess_results_free(r);
    CHECK(pgsess_results_value(r, 0, 0) == NULL);
    CHECK_INTEQ(pgsess_results_nrows(r), 0);
    CHECK(pgsess_results_json(r) == NULL);
    /* A results handle passed as an error: NULL, not a misread. */
    r = Q(s, "SELECT 'y'");
    CHECK(pgsess_error_message((const pgsess_error *)r) == NULL);
    pgsess_error_free((pgsess_error *)r); /* another type: nothing freed */
    CHECK_STREQ(pgsess_results_value(r, 0, 0), "y");
    pgsess_results_free(r);

    CHECK(pgsess_query(s, "SELECT 1/0", 0, NULL, &err) == NULL);
    CHECK(err != NULL);
    pgsess_error_free(err);
    pgsess_error_free(err);
    CHECK(pgsess_error_message(err) == NULL);
    CHECK(pgsess_error_sqlstate(err) == NULL);
    err = NULL;

    o = pgsess_options_new();
    pgsess_options_free(o);
    pgsess_options_free(o);
    CHECK_INTEQ(pgsess_options_set_pool_max_size(o, 2), PGSESS_INTERFACE_ERROR);
    still_works(s);
}

static void test_notification(pgsess_session *s)
{
    pgsess_error *err = NULL;
    char channel[96];
    char sql[160];
    pgsess_notification *n;

    unique_name(channel, sizeof channel, "handles");
    CHECK_INTEQ(pgsess_listen(s, channel, &err), PGSESS_OK);
    pgsess_error_free(err);
    err = NULL;
    snprintf(sql, sizeof sql, "NOTIFY %s, 'hi'", channel);
    EXEC(s, sql);
    n = pgsess_notification_next(s, 5000, &err);
    CHECK(n != NULL && err == NULL);
    CHECK_STREQ(pgsess_notification_payload(n), "hi");
    pgsess_notification_free(n);
    pgsess_notification_free(n);
    CHECK(pgsess_notification_channel(n) == NULL);
    CHECK(pgsess_notification_payload(n) == NULL);
    CHECK_INTEQ(pgsess_notification_pid(n), 0);
    CHECK(!pgsess_notification_is_gap(n));
    CHECK_INTEQ(pgsess_unlisten(s, channel, &err), PGSESS_OK);
    pgsess_error_free(err);
}

static void test_session_after_close(void)
{
    pgsess_error *err = NULL;
    pgsess_session *other = open_ctest(NULL);
    pgsess_close(other);
    pgsess_close(other);
    CHECK(pgsess_query(other, "SELECT 1", 0, NULL, &err) == NULL);
    INTERFACE_ERROR(err, "session is not a live pgsess_session");
    CHECK(pgsess_begin(other, &err) == NULL);
    INTERFACE_ERROR(err, "not a live pgsess_session");
    CHECK(pgsess_pool_id(other) == NULL);
}

/* Many handles made and freed: none of the freed ones is ever taken for a live one. */
static void test_churn(pgsess_session *s)
{
    enum { N = 3000 };
    static pgsess_results *freed[N];
    pgsess_results *live = Q(s, "SELECT 'live'");
    int i, wrong = 0;
    for (i = 0; i < N; i++) {
        freed[i] = pgsess_query(s, "SELECT 1", 0, NULL, NULL);
        pgsess_results_free(freed[i]);
    }
    for (i = 0; i < N; i++) {
        if (freed[i] == live || pgsess_results_nrows(freed[i]) != 0)
            wrong++;
    }
    CHECK_INTEQ(wrong, 0);
    CHECK_STREQ(pgsess_results_value(live, 0, 0), "live");
    pgsess_results_free(live);
}

int main(void)
{
    pgsess_options *opts = pgsess_options_new();
    pgsess_session *s;

    CHECK_INTEQ(pgsess_options_set_pool_max_size(opts, 2), PGSESS_OK);
    s = open_ctest(opts);
    pgsess_options_free(opts);

    test_tx_after_commit(s);
    test_tx_after_rollback(s);
    test_runner_tx_kept(s);
    test_stream(s);
    test_copy(s);
    test_batch(s);
    test_results_errors_options(s);
    test_notification(s);
    test_session_after_close();
    test_churn(s);

    pgsess_close(s);
    return CHECK_DONE();
}
