/*
 * async.c - asynchronous requests: pgsess_query_async / pgsess_callproc_async, the completion fd,
 * pgsess_async_dispatch, pgsess_request_cancel / _wait / _free, and pgsess_close with requests
 * outstanding.
 * Needs env PGSQL_CTEST (a PostgreSQL URI); sessions are opened with open_ctest.
 *
 * Every callback records what it got in a `struct rec` (how many times it ran, in which order,
 * on which thread, the code and first value), so each check can say "exactly once".
 */
#define _POSIX_C_SOURCE 200809L
#include <pgsess.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "check.h"
#include "helpers.h"

/* ------------------------------------------------------------------------------------------ */
/* What each callback saw                                                                      */

struct rec {
    int calls;          /* times the callback ran: must end at exactly 1 */
    int seq;            /* completion order (1-based, process-wide) of its first call */
    int both_or_none;   /* set when results and error were both NULL or both non-NULL */
    pgsess_code code;   /* PGSESS_OK, or the error's code */
    char sqlstate[8];   /* the error's SQLSTATE, or "" */
    char message[256];  /* the error's message, or "" */
    char value[64];     /* value (0, 0) of the results, or "" (NULL: "<NULL>") */
    int32_t pid;        /* backend pid of the results */
    int keep;           /* keep the results in `kept` instead of freeing them */
    pgsess_results *kept;
    pthread_t thread;   /* where it ran */
    double at_ms;       /* now_ms() when it ran */
    /* Optional: submit one more request from inside the callback. */
    pgsess_session *resubmit_on;
    struct rec *resubmit_rec;
    pgsess_request *resubmitted; /* what pgsess_query_async returned there */
    pgsess_code resubmit_err;    /* its error code when it returned NULL */
};

static int g_seq;

static void on_rec(void *user_data, pgsess_results *r, pgsess_error *e)
{
    struct rec *x = user_data;
    x->calls++;
    if (x->calls == 1) {
        x->seq = ++g_seq;
        x->thread = pthread_self();
        x->at_ms = now_ms();
        x->both_or_none = (r == NULL) == (e == NULL);
        if (e != NULL) {
            const char *st = pgsess_error_sqlstate(e), *m = pgsess_error_message(e);
            x->code = pgsess_error_code(e);
            snprintf(x->sqlstate, sizeof x->sqlstate, "%s", st ? st : "");
            snprintf(x->message, sizeof x->message, "%s", m ? m : "");
        } else {
            const char *v = pgsess_results_value(r, 0, 0);
            x->code = PGSESS_OK;
            snprintf(x->value, sizeof x->value, "%s", v ? v : "<NULL>");
            x->pid = pgsess_results_backend_pid(r);
        }
        if (x->resubmit_on != NULL) {
            pgsess_error *err = NULL;
            x->resubmitted = pgsess_query_async(x->resubmit_on, "SELECT 1", 0, NULL, on_rec, x->resubmit_rec, &err);
            x->resubmit_err = x->resubmitted ? PGSESS_OK : pgsess_error_code(err);
            pgsess_error_free(err);
        }
    }
    if (x->keep && x->kept == NULL && r != NULL) {
        x->kept = r;
        r = NULL;
    }
    pgsess_results_free(r);
    pgsess_error_free(e);
}

/* Submit with on_rec; CHECKs success. Returns the handle (the caller frees it). */
static pgsess_request *submit_(pgsess_session *s, const char *sql, size_t n, const char *const *p, struct rec *x,
                               const char *file, int line)
{
    pgsess_error *err = NULL;
    pgsess_request *rq = pgsess_query_async(s, sql, n, p, on_rec, x, &err);
    check_count_(rq != NULL && err == NULL);
    if (rq == NULL) {
        fflush(stdout);
        fprintf(stderr, "%s:%d: CHECK failed: pgsess_query_async succeeds: %s\n", file, line, sql);
        print_err(file, line, "  error", err);
    }
    pgsess_error_free(err);
    return rq;
}
#define SUBMIT(s, sql, x) submit_((s), (sql), 0, NULL, (x), __FILE__, __LINE__)
#define SUBMITP(s, sql, n, p, x) submit_((s), (sql), (n), (p), (x), __FILE__, __LINE__)

/* Submit and drop the handle at once (the request goes on). */
static void submit_free_(pgsess_session *s, const char *sql, size_t n, const char *const *p, struct rec *x,
                         const char *file, int line)
{
    pgsess_request_free(submit_(s, sql, n, p, x, file, line));
}
#define SUBMITP_FREE(s, sql, n, p, x) submit_free_((s), (sql), (n), (p), (x), __FILE__, __LINE__)

static int all_called(struct rec *const *v, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (v[i]->calls == 0)
            return 0;
    return 1;
}

static long g_empty_wakeups; /* the fd was readable but dispatch ran nothing */

/* The event loop: poll the completion fd and dispatch until every rec in v has been called (or,
 * with n 0, until the time is up) or timeout_ms passed. Returns the sum of
 * pgsess_async_dispatch's return values. */
static size_t pump_until(pgsess_session *s, struct rec *const *v, size_t n, double timeout_ms)
{
    int fd = pgsess_async_fd(s);
    double end = now_ms() + timeout_ms;
    size_t total = 0;
    while (n == 0 || !all_called(v, n)) {
        struct pollfd pfd;
        double left = end - now_ms();
        if (left <= 0)
            break;
        pfd.fd = fd;
        pfd.events = POLLIN;
        pfd.revents = 0;
        if (poll(&pfd, 1, (int)(left + 1)) > 0) {
            size_t got = pgsess_async_dispatch(s);
            total += got;
            if (got == 0)
                g_empty_wakeups++;
        }
    }
    return total;
}

static size_t pump1(pgsess_session *s, struct rec *x, double timeout_ms)
{
    return pump_until(s, &x, 1, timeout_ms);
}

/* Keep the loop running for ms, to see that nothing more arrives. Returns callbacks dispatched. */
static size_t pump_for(pgsess_session *s, double ms)
{
    return pump_until(s, NULL, 0, ms);
}

/* Whether the completion fd is readable now. */
static int fd_readable(pgsess_session *s)
{
    struct pollfd pfd;
    pfd.fd = pgsess_async_fd(s);
    pfd.events = POLLIN;
    pfd.revents = 0;
    return poll(&pfd, 1, 0) > 0;
}

static void sleep_ms(long ms)
{
    struct timespec ts;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    nanosleep(&ts, NULL);
}

static pgsess_session *open_pool(uint32_t pool_max_size, uint32_t checkout_timeout_ms)
{
    pgsess_options *opts = pgsess_options_new();
    pgsess_session *s;
    CHECK_INTEQ(pgsess_options_set_pool_max_size(opts, pool_max_size), PGSESS_OK);
    if (checkout_timeout_ms > 0)
        CHECK_INTEQ(pgsess_options_set_checkout_timeout_ms(opts, checkout_timeout_ms), PGSESS_OK);
    s = open_ctest(opts);
    pgsess_options_free(opts);
    return s;
}

/* How many statements whose text contains `tag` the server is running now (through ctl, a
 * session on another pool). */
static long active_with(pgsess_session *ctl, const char *tag)
{
    char pattern[128];
    const char *params[1];
    pgsess_results *r;
    long n = -1;
    snprintf(pattern, sizeof pattern, "%%%s%%", tag);
    params[0] = pattern;
    r = QP(ctl,
           "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE $1 "
           "AND pid <> pg_backend_pid()",
           1, params);
    if (r != NULL)
        n = atol(pgsess_results_value(r, 0, 0));
    pgsess_results_free(r);
    return n;
}

/* Wait until the server runs `want` statements tagged `tag`; false after timeout_ms. */
static int wait_active(pgsess_session *ctl, const char *tag, long want, double timeout_ms)
{
    double end = now_ms() + timeout_ms;
    while (now_ms() < end) {
        if (active_with(ctl, tag) == want)
            return 1;
        sleep_ms(20);
    }
    return 0;
}

static pthread_t MAIN_THREAD;
static pgsess_session *CTL; /* pool 3: watches pg_stat_activity */

/* Check that every rec ran exactly once, results/error exclusive, on this thread. */
static void check_once(struct rec *const *v, size_t n, const char *what)
{
    size_t i;
    int calls_ok = 1, excl_ok = 1, thread_ok = 1;
    for (i = 0; i < n; i++) {
        if (v[i]->calls != 1) {
            if (calls_ok)
                fprintf(stderr, "%s: request %zu: callback ran %d times\n", what, i, v[i]->calls);
            calls_ok = 0;
        }
        if (v[i]->calls > 0 && v[i]->both_or_none)
            excl_ok = 0;
        if (v[i]->calls > 0 && !pthread_equal(v[i]->thread, MAIN_THREAD))
            thread_ok = 0;
    }
    CHECK(calls_ok);  /* every callback exactly once */
    CHECK(excl_ok);   /* exactly one of results and error */
    CHECK(thread_ok); /* on the thread that dispatched / waited / closed */
}

/* ------------------------------------------------------------------------------------------ */
/* The fd and dispatch basics                                                                  */

static void test_fd(void)
{
    pgsess_session *s = open_pool(2, 0);
    struct rec a;
    int fd = pgsess_async_fd(s);
    size_t n;
    memset(&a, 0, sizeof a);
    CHECK(fd >= 0);
    CHECK_INTEQ(pgsess_async_fd(s), fd); /* the same for the session's life */
    CHECK_INTEQ(pgsess_async_fd(NULL), -1);
    CHECK_INTEQ(pgsess_async_dispatch(NULL), 0);
    CHECK_INTEQ(pgsess_async_dispatch(s), 0); /* nothing ready */
    CHECK(!fd_readable(s));

    pgsess_request_free(SUBMIT(s, "SELECT 41 + 1", &a));
    n = pump1(s, &a, 10000);
    CHECK_INTEQ(n, 1);
    CHECK_INTEQ(a.calls, 1);
    CHECK_INTEQ(a.code, PGSESS_OK);
    CHECK_STREQ(a.value, "42");
    CHECK(!fd_readable(s)); /* dispatch cleared the readiness */
    CHECK_INTEQ(pgsess_async_dispatch(s), 0);
    CHECK_INTEQ(pgsess_async_fd(s), fd);
    pgsess_close(s);
}

/* ------------------------------------------------------------------------------------------ */
/* Pool 1: requests run one at a time and complete in submission order                        */

#define NORDER 40

static void test_order_pool1(void)
{
    pgsess_session *s = open_pool(1, 0);
    struct rec recs[NORDER], *v[NORDER];
    size_t i, n;
    int order_ok = 1, values_ok = 1;
    memset(recs, 0, sizeof recs);
    for (i = 0; i < NORDER; i++) {
        char in[16];
        const char *params[1];
        v[i] = &recs[i];
        snprintf(in, sizeof in, "%zu", i);
        params[0] = in;
        /* The first one sleeps, so the others are all queued behind it. */
        SUBMITP_FREE(s, i == 0 ? "SELECT $1::int FROM pg_sleep(0.2)" : "SELECT $1::int", 1, params, &recs[i]);
    }
    n = pump_until(s, v, NORDER, 30000);
    CHECK_INTEQ(n, NORDER); /* dispatch counted every callback */
    check_once(v, NORDER, "order");
    for (i = 0; i < NORDER; i++) {
        char want[16];
        snprintf(want, sizeof want, "%zu", i);
        if (recs[i].code != PGSESS_OK || strcmp(recs[i].value, want) != 0) {
            if (values_ok)
                fprintf(stderr, "order: request %zu: code %s value %s (%s)\n", i, pgsess_code_name(recs[i].code),
                        recs[i].value, recs[i].message);
            values_ok = 0;
        }
        if (i > 0 && recs[i].seq != recs[i - 1].seq + 1) {
            if (order_ok)
                fprintf(stderr, "order: request %zu completed as #%d after #%d\n", i, recs[i].seq, recs[i - 1].seq);
            order_ok = 0;
        }
    }
    CHECK(values_ok);
    CHECK(order_ok); /* FIFO: completion order is submission order */
    pgsess_close(s);
}

/* ------------------------------------------------------------------------------------------ */
/* Pool 2: 100 requests all answered; at most 2 at a time                                     */

#define NMANY 100

static void test_many_pool2(void)
{
    pgsess_session *s = open_pool(2, 0);
    struct rec recs[NMANY], *v[NMANY], sl[4], *sv[4];
    int32_t pids[2] = {0, 0};
    size_t i, n;
    int values_ok = 1, pids_ok = 1;
    double t0, elapsed;
    pgsess_stats st;
    memset(recs, 0, sizeof recs);
    memset(sl, 0, sizeof sl);
    for (i = 0; i < NMANY; i++) {
        char in[16];
        const char *params[1];
        v[i] = &recs[i];
        snprintf(in, sizeof in, "%zu", i);
        params[0] = in;
        SUBMITP_FREE(s, "SELECT $1::int * 2", 1, params, &recs[i]);
    }
    n = pump_until(s, v, NMANY, 60000);
    CHECK_INTEQ(n, NMANY);
    check_once(v, NMANY, "pool 2");
    for (i = 0; i < NMANY; i++) {
        char want[16];
        snprintf(want, sizeof want, "%zu", i * 2);
        if (recs[i].code != PGSESS_OK || strcmp(recs[i].value, want) != 0)
            values_ok = 0;
        if (recs[i].pid != pids[0] && recs[i].pid != pids[1]) {
            if (pids[0] == 0)
                pids[0] = recs[i].pid;
            else if (pids[1] == 0)
                pids[1] = recs[i].pid;
            else
                pids_ok = 0; /* a third backend on a pool of 2 */
        }
    }
    CHECK(values_ok);
    CHECK(pids_ok);

    /* Four 0.4 s sleeps on pool 2 take two rounds: not one (4 at once), not four (1 at a time). */
    t0 = now_ms();
    for (i = 0; i < 4; i++) {
        sv[i] = &sl[i];
        pgsess_request_free(SUBMIT(s, "SELECT pg_sleep(0.4)", &sl[i]));
    }
    sleep_ms(200);
    CHECK_INTEQ(pgsess_pool_stats(s, &st), PGSESS_OK);
    CHECK(st.in_use <= 2);
    pump_until(s, sv, 4, 10000);
    elapsed = now_ms() - t0;
    check_once(sv, 4, "pool 2 sleeps");
    for (i = 0; i < 4; i++)
        CHECK_INTEQ(sl[i].code, PGSESS_OK);
    if (!CHECK(elapsed >= 780 && elapsed < 1500))
        fprintf(stderr, "    4 x pg_sleep(0.4) on pool 2 took %.0f ms\n", elapsed);
    pgsess_close(s);
}

/* ------------------------------------------------------------------------------------------ */
/* Errors, callproc, and callbacks that submit                                                */

struct chain {
    pgsess_session *s;
    int next, total, bad;
};

static void on_chain(void *user_data, pgsess_results *r, pgsess_error *e)
{
    struct chain *c = user_data;
    char want[16];
    snprintf(want, sizeof want, "%d", c->next);
    if (r == NULL || pgsess_results_value(r, 0, 0) == NULL || strcmp(pgsess_results_value(r, 0, 0), want) != 0)
        c->bad++;
    pgsess_results_free(r);
    pgsess_error_free(e);
    c->next++;
    if (c->next < c->total) { /* a callback may submit new requests */
        char in[16];
        const char *params[1];
        pgsess_request *rq;
        snprintf(in, sizeof in, "%d", c->next);
        params[0] = in;
        rq = pgsess_query_async(c->s, "SELECT $1::int", 1, params, on_chain, c, NULL);
        if (rq == NULL)
            c->bad++;
        pgsess_request_free(rq);
    }
}

static void test_errors_callproc_chain(void)
{
    pgsess_session *s = open_pool(2, 0);
    struct rec a, b, c, *v[3];
    struct chain ch;
    const char *args[1] = {"-5"};
    pgsess_error *err = NULL;
    pgsess_request *rq;
    double end;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    memset(&c, 0, sizeof c);
    v[0] = &a, v[1] = &b, v[2] = &c;

    pgsess_request_free(SUBMIT(s, "SELECT 1/0", &a));
    rq = pgsess_callproc_async(s, "abs", 1, args, on_rec, &b, &err);
    CHECK(rq != NULL && err == NULL);
    pgsess_request_free(rq);
    pgsess_request_free(SUBMIT(s, "SELECT * FROM pgsess_no_such_table_async", &c));
    pump_until(s, v, 3, 10000);
    check_once(v, 3, "errors");
    CHECK_INTEQ(a.code, PGSESS_DATA_ERROR);
    CHECK_STREQ(a.sqlstate, "22012");
    CHECK_INTEQ(b.code, PGSESS_OK);
    CHECK_STREQ(b.value, "5");
    CHECK_INTEQ(c.code, PGSESS_PROGRAMMING_ERROR);
    CHECK_STREQ(c.sqlstate, "42P01");

    /* A chain of 20 requests, each submitted by the previous one's callback. */
    ch.s = s, ch.next = 0, ch.total = 20, ch.bad = 0;
    {
        const char *params[1] = {"0"};
        pgsess_request_free(pgsess_query_async(s, "SELECT $1::int", 1, params, on_chain, &ch, NULL));
    }
    end = now_ms() + 20000;
    while (ch.next < ch.total && now_ms() < end)
        pump_for(s, 20);
    CHECK_INTEQ(ch.next, ch.total);
    CHECK_INTEQ(ch.bad, 0);
    pgsess_close(s);
}

/* ------------------------------------------------------------------------------------------ */
/* Submitting from other threads while this one dispatches                                    */

#define NSUBMITTERS 4
#define NPERSUBMITTER 50

struct submitter {
    pgsess_session *s;
    struct rec *recs;
    int base;
    int failed;
};

static void *submitter_main(void *arg)
{
    struct submitter *w = arg;
    int i;
    for (i = 0; i < NPERSUBMITTER; i++) {
        char in[16];
        const char *params[1];
        pgsess_request *rq;
        snprintf(in, sizeof in, "%d", w->base + i);
        params[0] = in;
        rq = pgsess_query_async(w->s, "SELECT $1::int", 1, params, on_rec, &w->recs[i], NULL);
        if (rq == NULL)
            w->failed++;
        pgsess_request_free(rq);
    }
    return NULL;
}

static void test_submit_from_threads(void)
{
    pgsess_session *s = open_pool(2, 0);
    static struct rec recs[NSUBMITTERS * NPERSUBMITTER];
    struct rec *v[NSUBMITTERS * NPERSUBMITTER];
    struct submitter w[NSUBMITTERS];
    pthread_t th[NSUBMITTERS];
    int k, i, values_ok = 1, failed = 0;
    size_t n;
    memset(recs, 0, sizeof recs);
    for (i = 0; i < NSUBMITTERS * NPERSUBMITTER; i++)
        v[i] = &recs[i];
    pgsess_async_fd(s); /* the engine is running before the threads start */
    for (k = 0; k < NSUBMITTERS; k++) {
        w[k].s = s;
        w[k].recs = &recs[k * NPERSUBMITTER];
        w[k].base = k * NPERSUBMITTER;
        w[k].failed = 0;
        CHECK(pthread_create(&th[k], NULL, submitter_main, &w[k]) == 0);
    }
    /* Dispatch while they submit (the callbacks run here, never on the submitting threads). */
    n = pump_until(s, v, NSUBMITTERS * NPERSUBMITTER, 60000);
    for (k = 0; k < NSUBMITTERS; k++) {
        pthread_join(th[k], NULL);
        failed += w[k].failed;
    }
    CHECK_INTEQ(failed, 0);
    CHECK_INTEQ(n, NSUBMITTERS * NPERSUBMITTER);
    check_once(v, NSUBMITTERS * NPERSUBMITTER, "submitted from threads");
    for (i = 0; i < NSUBMITTERS * NPERSUBMITTER; i++) {
        char want[16];
        snprintf(want, sizeof want, "%d", i);
        if (recs[i].code != PGSESS_OK || strcmp(recs[i].value, want) != 0)
            values_ok = 0;
    }
    CHECK(values_ok);
    pgsess_close(s);
}

/* ------------------------------------------------------------------------------------------ */
/* Cancelling                                                                                  */

static void test_cancel_queued(void)
{
    pgsess_session *s = open_pool(1, 0);
    struct rec a, b, c, *v[3];
    pgsess_request *ra, *rb, *rc;
    double t0;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    memset(&c, 0, sizeof c);
    v[0] = &a, v[1] = &b, v[2] = &c;

    ra = SUBMIT(s, "SELECT pg_sleep(1)", &a); /* the pool's one connection, for 1 s */
    rb = SUBMIT(s, "SELECT 1", &b);           /* queued behind it */
    rc = SUBMIT(s, "SELECT 2", &c);
    t0 = now_ms();
    CHECK_INTEQ(pgsess_request_cancel(rb), PGSESS_OK);
    pump1(s, &b, 5000);
    CHECK_INTEQ(b.calls, 1);
    CHECK_INTEQ(b.code, PGSESS_QUERY_CANCELED);
    CHECK_STREQ(b.sqlstate, "57014");
    CHECK(b.at_ms - t0 < 500); /* at once, not after the sleep */
    CHECK_INTEQ(a.calls, 0);   /* the sleep is still running */

    pump_until(s, v, 3, 10000);
    check_once(v, 3, "cancel queued");
    CHECK_INTEQ(a.code, PGSESS_OK);
    CHECK_INTEQ(c.code, PGSESS_OK);
    CHECK_STREQ(c.value, "2");
    CHECK(b.seq < a.seq && a.seq < c.seq);

    /* Cancelling again, or cancelling a finished request, changes nothing. */
    CHECK_INTEQ(pgsess_request_cancel(rb), PGSESS_OK);
    CHECK_INTEQ(pgsess_request_cancel(rc), PGSESS_OK);
    CHECK_INTEQ(pump_for(s, 300), 0);
    check_once(v, 3, "cancel queued, after");
    CHECK_INTEQ(pgsess_request_cancel(NULL), PGSESS_INTERFACE_ERROR);
    pgsess_request_free(ra);
    pgsess_request_free(rb);
    pgsess_request_free(rc);
    pgsess_close(s);
}

static void test_cancel_running(void)
{
    pgsess_session *s = open_pool(1, 0);
    struct rec a, b, *v[2];
    pgsess_request *ra;
    char tag[96], sql[160];
    double t0;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    v[0] = &a, v[1] = &b;
    unique_name(tag, sizeof tag, "cancel");
    snprintf(sql, sizeof sql, "SELECT pg_sleep(10) /* %s */", tag);

    ra = SUBMIT(s, sql, &a);
    if (!CHECK(wait_active(CTL, tag, 1, 10000)))
        fprintf(stderr, "    the request never showed up as active in pg_stat_activity\n");
    t0 = now_ms();
    CHECK_INTEQ(pgsess_request_cancel(ra), PGSESS_OK);
    pump1(s, &a, 9000);
    CHECK_INTEQ(a.calls, 1);
    if (!CHECK_INTEQ(a.code, PGSESS_QUERY_CANCELED))
        fprintf(stderr, "    got %s: %s\n", pgsess_code_name(a.code), a.message);
    CHECK_STREQ(a.sqlstate, "57014");
    if (!CHECK(a.calls == 1 && a.at_ms - t0 < 3000))
        fprintf(stderr, "    the cancelled request's callback came %.0f ms after the cancel\n", a.at_ms - t0);
    CHECK_INTEQ(active_with(CTL, tag), 0);

    /* The connection is usable afterwards; a second cancel does nothing. */
    CHECK_INTEQ(pgsess_request_cancel(ra), PGSESS_OK);
    pgsess_request_free(SUBMIT(s, "SELECT 7", &b));
    pump_until(s, v, 2, 10000);
    check_once(v, 2, "cancel running");
    CHECK_INTEQ(b.code, PGSESS_OK);
    CHECK_STREQ(b.value, "7");
    CHECK_INTEQ(pump_for(s, 200), 0);
    pgsess_request_free(ra);
    pgsess_close(s);
}

/* ------------------------------------------------------------------------------------------ */
/* Backends killed with requests in flight (what a server restart does to them)               */

static void test_backends_killed_in_flight(void)
{
    enum { N = 120 };
    pgsess_session *s = open_pool(4, 0);
    struct rec recs[N], tail, *v[N + 1];
    char tag[96], sql[160], num[N][16], kill_sql[256];
    const char *p[1];
    size_t i;
    int ok = 0, failed_operational = 0, other = 0;
    unique_name(tag, sizeof tag, "killed");
    snprintf(sql, sizeof sql, "SELECT pg_sleep(0.02)::text || $1 /* %s */", tag);
    memset(recs, 0, sizeof recs);
    memset(&tail, 0, sizeof tail);
    for (i = 0; i < N; i++) {
        v[i] = &recs[i];
        snprintf(num[i], sizeof num[i], "%zu", i);
        p[0] = num[i];
        SUBMITP_FREE(s, sql, 1, p, &recs[i]);
    }
    /* Keep dispatching (completed results hold their connections until their callbacks free
     * them) until some requests are done, then terminate every backend running the others. */
    {
        double end = now_ms() + 20000;
        size_t done = 0;
        while (done < 12 && now_ms() < end) {
            pump_for(s, 10);
            for (done = 0, i = 0; i < N; i++)
                done += recs[i].calls > 0;
        }
        CHECK(done >= 12 && done < N);
    }
    snprintf(kill_sql, sizeof kill_sql,
             "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query LIKE '%%%s%%' "
             "AND pid <> pg_backend_pid()", tag);
    EXEC(CTL, kill_sql);
    pump_until(s, v, N, 60000);
    check_once(v, N, "backends killed in flight");
    for (i = 0; i < N; i++) {
        if (recs[i].code == PGSESS_OK)
            ok++;
        else if (recs[i].code == PGSESS_OPERATIONAL_ERROR || recs[i].code == PGSESS_QUERY_CANCELED)
            failed_operational++;
        else {
            if (!other)
                fprintf(stderr, "    request %zu: %s: %s\n", i, pgsess_code_name(recs[i].code), recs[i].message);
            other++;
        }
    }
    CHECK_INTEQ(other, 0);                /* only operational failures */
    CHECK(failed_operational <= 4);       /* at most the statements that were in flight */
    CHECK_INTEQ(ok + failed_operational, N);
    printf("note: backends killed with %d requests queued or running: %d failed, %d succeeded\n", N,
           failed_operational, ok);
    /* The pool recovered: a new request succeeds. */
    v[N] = &tail;
    pgsess_request_free(SUBMIT(s, "SELECT 9", &tail));
    pump_until(s, v + N, 1, 10000);
    CHECK_STREQ(tail.value, "9");
    pgsess_close(s);
}

/* ------------------------------------------------------------------------------------------ */
/* pgsess_request_wait                                                                         */

static void test_wait(void)
{
    pgsess_session *s = open_pool(1, 0);
    struct rec a, b, c, d, e, *v[5];
    pgsess_request *ra, *rb, *rc, *rd, *re;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    memset(&c, 0, sizeof c);
    memset(&d, 0, sizeof d);
    memset(&e, 0, sizeof e);
    v[0] = &a, v[1] = &b, v[2] = &c, v[3] = &d, v[4] = &e;

    /* Wait runs the callback on this thread; a later dispatch does not run it again. */
    ra = SUBMIT(s, "SELECT 42", &a);
    CHECK(pgsess_request_wait(ra, 0));
    CHECK_INTEQ(a.calls, 1);
    CHECK_STREQ(a.value, "42");
    CHECK(pthread_equal(a.thread, MAIN_THREAD));
    pgsess_async_dispatch(s);          /* (its count is checked in test_dispatch_count_after_wait) */
    CHECK_INTEQ(a.calls, 1);           /* not run again */
    CHECK(pgsess_request_wait(ra, 0)); /* already ran: true, not again */
    CHECK_INTEQ(a.calls, 1);

    /* A timeout: false and no callback; then waiting for good. */
    rb = SUBMIT(s, "SELECT pg_sleep(0.5)", &b);
    CHECK(!pgsess_request_wait(rb, 50));
    CHECK_INTEQ(b.calls, 0);
    CHECK(pgsess_request_wait(rb, 0));
    CHECK_INTEQ(b.calls, 1);
    CHECK_INTEQ(b.code, PGSESS_OK);

    /* A request already dispatched: wait returns true at once. */
    rc = SUBMIT(s, "SELECT 3", &c);
    pump1(s, &c, 10000);
    CHECK(pgsess_request_wait(rc, 100));
    CHECK_INTEQ(c.calls, 1);

    /* Waiting on a request cancelled while queued. */
    rd = SUBMIT(s, "SELECT pg_sleep(0.3)", &d);
    re = SUBMIT(s, "SELECT 5", &e);
    CHECK_INTEQ(pgsess_request_cancel(re), PGSESS_OK);
    CHECK(pgsess_request_wait(re, 0));
    CHECK_INTEQ(e.code, PGSESS_QUERY_CANCELED);
    CHECK(pgsess_request_wait(rd, 0));
    CHECK_INTEQ(d.code, PGSESS_OK);

    CHECK(!pgsess_request_wait(NULL, 0));
    CHECK(!pgsess_request_wait(NULL, 10));
    pump_for(s, 200);
    check_once(v, 5, "wait"); /* nothing ran twice */
    pgsess_request_free(ra);
    pgsess_request_free(rb);
    pgsess_request_free(rc);
    pgsess_request_free(rd);
    pgsess_request_free(re);
    pgsess_close(s);
}

/* ------------------------------------------------------------------------------------------ */
/* Misuse: NULL + PGSESS_INTERFACE_ERROR, and the callback never runs                          */

/* (Each call is made before check_misuse reads err: argument evaluation order is unspecified.) */
static void check_misuse(pgsess_request *rq, pgsess_error *err, const char *what)
{
    if (!CHECK(rq == NULL))
        fprintf(stderr, "    %s returned a request\n", what);
    if (!CHECK_INTEQ(pgsess_error_code(err), PGSESS_INTERFACE_ERROR))
        fprintf(stderr, "    (%s)\n", what);
    pgsess_request_free(rq);
    pgsess_error_free(err);
}

static void test_misuse(void)
{
    pgsess_session *s = open_pool(2, 0);
    struct rec a;
    pgsess_error *err;
    pgsess_request *rq;
    const char *one[1] = {"1"};
    memset(&a, 0, sizeof a);

    err = NULL;
    rq = pgsess_query_async(NULL, "SELECT 1", 0, NULL, on_rec, &a, &err);
    check_misuse(rq, err, "NULL session");
    err = NULL;
    rq = pgsess_query_async(s, "SELECT 1", 0, NULL, NULL, &a, &err);
    check_misuse(rq, err, "NULL callback");
    err = NULL;
    rq = pgsess_query_async(s, NULL, 0, NULL, on_rec, &a, &err);
    check_misuse(rq, err, "NULL sql");
    err = NULL;
    rq = pgsess_query_async(s, "SELECT $1", 1, NULL, on_rec, &a, &err);
    check_misuse(rq, err, "nparams 1, NULL params");
    err = NULL;
    rq = pgsess_query_async(s, "SELECT '\xff'", 0, NULL, on_rec, &a, &err);
    check_misuse(rq, err, "invalid UTF-8 sql");
    err = NULL;
    rq = pgsess_callproc_async(NULL, "abs", 1, one, on_rec, &a, &err);
    check_misuse(rq, err, "callproc NULL session");
    err = NULL;
    rq = pgsess_callproc_async(s, NULL, 1, one, on_rec, &a, &err);
    check_misuse(rq, err, "callproc NULL name");
    err = NULL;
    rq = pgsess_callproc_async(s, "abs", 1, one, NULL, &a, &err);
    check_misuse(rq, err, "callproc NULL callback");
    /* err may be NULL */
    CHECK(pgsess_query_async(NULL, "SELECT 1", 0, NULL, on_rec, &a, NULL) == NULL);
    CHECK(pgsess_query_async(s, "SELECT 1", 0, NULL, NULL, &a, NULL) == NULL);
    pgsess_request_free(NULL);
    CHECK_INTEQ(pgsess_request_cancel(NULL), PGSESS_INTERFACE_ERROR);

    /* *err is set to NULL on entry when the call succeeds. */
    err = (pgsess_error *)&a;
    {
        struct rec ok;
        memset(&ok, 0, sizeof ok);
        rq = pgsess_query_async(s, "SELECT 1", 0, NULL, on_rec, &ok, &err);
        CHECK(rq != NULL);
        CHECK(err == NULL);
        CHECK(pgsess_request_wait(rq, 10000));
        CHECK_INTEQ(ok.calls, 1);
        pgsess_request_free(rq);
    }

    pump_for(s, 300);
    CHECK_INTEQ(a.calls, 0); /* no misused request ever ran its callback */
    pgsess_close(s);
    CHECK_INTEQ(a.calls, 0);
}

/* ------------------------------------------------------------------------------------------ */
/* pgsess_close with requests outstanding                                                      */

#define NCLOSE 20

static void test_close_outstanding(void)
{
    pgsess_session *s = open_pool(2, 0);
    struct rec sleeps[2], q[NCLOSE], re, *v[NCLOSE + 3];
    pgsess_request *kept[NCLOSE];
    char tag[96], sql[160];
    size_t i, nv = 0;
    double t0, elapsed;
    int cancelled = 0, ok_or_cancelled = 1;
    memset(sleeps, 0, sizeof sleeps);
    memset(q, 0, sizeof q);
    memset(&re, 0, sizeof re);
    unique_name(tag, sizeof tag, "close");
    snprintf(sql, sizeof sql, "SELECT pg_sleep(10) /* %s */", tag);

    /* Both workers busy for 10 s, then 20 queued requests; the first queued callback submits
     * one more request from inside pgsess_close. */
    for (i = 0; i < 2; i++) {
        pgsess_request_free(SUBMIT(s, sql, &sleeps[i]));
        v[nv++] = &sleeps[i];
    }
    if (!CHECK(wait_active(CTL, tag, 2, 10000)))
        fprintf(stderr, "    the two sleeps never showed up as active\n");
    q[0].resubmit_on = s;
    q[0].resubmit_rec = &re;
    for (i = 0; i < NCLOSE; i++) {
        char in[16];
        const char *params[1];
        snprintf(in, sizeof in, "%zu", i);
        params[0] = in;
        kept[i] = SUBMITP(s, "SELECT $1::int", 1, params, &q[i]);
        v[nv++] = &q[i];
    }
    CHECK_INTEQ(sleeps[0].calls + sleeps[1].calls, 0); /* nothing dispatched yet */

    t0 = now_ms();
    pgsess_close(s); /* must cancel everything and run all 22 callbacks here */
    elapsed = now_ms() - t0;
    if (!CHECK(elapsed < 3000))
        fprintf(stderr, "    pgsess_close took %.0f ms with 2 running and %d queued requests\n", elapsed, NCLOSE);
    check_once(v, nv, "close");
    for (i = 0; i < 2; i++)
        if (!CHECK_INTEQ(sleeps[i].code, PGSESS_QUERY_CANCELED))
            fprintf(stderr, "    sleep %zu: %s %s\n", i, pgsess_code_name(sleeps[i].code), sleeps[i].message);
    for (i = 0; i < NCLOSE; i++) {
        if (q[i].code == PGSESS_QUERY_CANCELED)
            cancelled++;
        else if (q[i].code != PGSESS_OK)
            ok_or_cancelled = 0;
    }
    CHECK(ok_or_cancelled);
    CHECK_INTEQ(cancelled, NCLOSE); /* both workers were busy: every queued one was dropped */
    CHECK_INTEQ(active_with(CTL, tag), 0);
    /* A request submitted by a callback during close is refused, or it too ran before close
     * returned. */
    CHECK_INTEQ(q[0].calls, 1);
    if (q[0].resubmitted == NULL)
        CHECK_INTEQ(q[0].resubmit_err, PGSESS_INTERFACE_ERROR);
    else
        CHECK_INTEQ(re.calls, 1);
    pgsess_request_free(q[0].resubmitted);

    /* The handles outlive the session: waiting returns at once, cancelling does nothing. */
    for (i = 0; i < NCLOSE; i++) {
        if (i % 2 == 0) {
            CHECK(pgsess_request_wait(kept[i], 100));
            CHECK_INTEQ(pgsess_request_cancel(kept[i]), PGSESS_OK);
        }
        pgsess_request_free(kept[i]);
    }
    check_once(v, nv, "close, after");

    /* Closing a session whose engine never started, and NULL. */
    s = open_pool(2, 0);
    pgsess_close(s);
    pgsess_close(NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* A results handle from a callback holds its connection until freed                           */

static void test_held_results(void)
{
    pgsess_session *s = open_pool(1, 0);
    struct rec a, b, c, d, e, *v[2];
    pgsess_stats st;
    double t0, t1;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    memset(&c, 0, sizeof c);
    memset(&d, 0, sizeof d);
    memset(&e, 0, sizeof e);

    a.keep = 1;
    pgsess_request_free(SUBMIT(s, "SELECT 1", &a));
    pump1(s, &a, 10000);
    CHECK(a.kept != NULL);
    CHECK_STREQ(pgsess_results_value(a.kept, 0, 0), "1");

    pgsess_request_free(SUBMIT(s, "SELECT 2", &b));
    CHECK_INTEQ(pump_for(s, 700), 0); /* waits: the pool's one connection is held */
    CHECK_INTEQ(b.calls, 0);
    CHECK_INTEQ(pgsess_pool_stats(s, &st), PGSESS_OK);
    CHECK_INTEQ(st.in_use, 1);
    CHECK_INTEQ(st.results_outstanding, 1);
    CHECK_INTEQ(st.waiting, 1);

    t0 = now_ms();
    pgsess_results_free(a.kept); /* frees the connection: the next request runs at once */
    a.kept = NULL;
    pump1(s, &b, 5000);
    CHECK_INTEQ(b.calls, 1);
    CHECK_INTEQ(b.code, PGSESS_OK);
    CHECK_STREQ(b.value, "2");
    if (!CHECK(b.calls == 1 && b.at_ms - t0 < 1000))
        fprintf(stderr, "    the waiting request ran %.0f ms after the free\n", b.at_ms - t0);
    pgsess_close(s);

    /* With a 1 s checkout timeout, requests that cannot start fail with PGSESS_POOL_EXHAUSTED:
     * the one the worker took (waiting for the connection) and the one still queued. */
    s = open_pool(1, 1000);
    c.keep = 1;
    pgsess_request_free(SUBMIT(s, "SELECT 3", &c));
    pump1(s, &c, 10000);
    CHECK(c.kept != NULL);
    t0 = now_ms();
    pgsess_request_free(SUBMIT(s, "SELECT 4", &d));
    pgsess_request_free(SUBMIT(s, "SELECT 5", &e));
    v[0] = &d, v[1] = &e;
    pump_until(s, v, 2, 10000);
    t1 = now_ms();
    check_once(v, 2, "exhausted");
    CHECK_INTEQ(d.code, PGSESS_POOL_EXHAUSTED);
    CHECK_INTEQ(e.code, PGSESS_POOL_EXHAUSTED);
    if (!CHECK(d.at_ms - t0 >= 900 && e.at_ms - t0 >= 900 && t1 - t0 < 4000))
        fprintf(stderr, "    exhaustion after %.0f and %.0f ms\n", d.at_ms - t0, e.at_ms - t0);
    pgsess_results_free(c.kept);
    c.kept = NULL;
    memset(&d, 0, sizeof d);
    pgsess_request_free(SUBMIT(s, "SELECT 6", &d));
    pump1(s, &d, 5000);
    CHECK_INTEQ(d.code, PGSESS_OK);
    CHECK_STREQ(d.value, "6");
    CHECK_INTEQ(pgsess_pool_stats(s, &st), PGSESS_OK);
    CHECK_INTEQ(st.results_outstanding, 0);
    pgsess_close(s);
}

/* ------------------------------------------------------------------------------------------ */
/* Library defects found while writing these tests (see the comments): each is checked so that  */
/* the suite fails until it is fixed.                                                          */

/* pgsess_async_dispatch returns "how many callbacks ran". After pgsess_request_wait has run a
 * request's callback, a dispatch must not count that request again. Engine::finish
 * (src/requests.rs) marks the request finished and wakes the waiter before it pushes the request
 * onto the completion list; when the waiter runs in between, Engine::wait finds nothing to
 * remove, and the next dispatch drains the request and counts it although its callback does not
 * run (no callback runs twice: only the count is wrong). Measured: 2 to 28 of every 200-2,000
 * iterations natively (about 1-10%), 189 of 500 under valgrind. */
#define NWAITCOUNT 200

static void test_dispatch_count_after_wait(void)
{
    pgsess_session *s = open_pool(1, 0);
    int i, overcounted = 0, calls_ok = 1;
    for (i = 0; i < NWAITCOUNT; i++) {
        struct rec a;
        pgsess_request *rq;
        size_t n;
        memset(&a, 0, sizeof a);
        rq = pgsess_query_async(s, "SELECT 1", 0, NULL, on_rec, &a, NULL);
        if (!CHECK(rq != NULL))
            break;
        pgsess_request_wait(rq, 10000);
        n = pgsess_async_dispatch(s); /* nothing else was submitted: must be 0 */
        if (n != 0)
            overcounted++;
        if (a.calls != 1)
            calls_ok = 0;
        pgsess_request_free(rq);
    }
    CHECK(calls_ok);
    if (!CHECK_INTEQ(overcounted, 0))
        fprintf(stderr, "    in %d of %d iterations, pgsess_async_dispatch after pgsess_request_wait returned 1 "
                        "although no callback ran\n", overcounted, NWAITCOUNT);
    pgsess_close(s);
}

/* pgsess_close "cancels outstanding requests". A request that a worker has taken but that is
 * still waiting for a connection (the pool's one connection is held by an unfreed results handle)
 * is not cancelled: pgsess_close blocks until that request's checkout times out (the default
 * 5 s), and its callback gets PGSESS_POOL_EXHAUSTED instead of PGSESS_QUERY_CANCELED. */
static void test_close_waiting_for_connection(void)
{
    pgsess_session *s = open_pool(1, 0); /* checkout timeout 5000 ms */
    struct rec b, c, *v[2];
    pgsess_results *held = Q(s, "SELECT 1");
    double t0, elapsed;
    memset(&b, 0, sizeof b);
    memset(&c, 0, sizeof c);
    v[0] = &b, v[1] = &c;
    pgsess_request_free(SUBMIT(s, "SELECT 2", &b)); /* taken by the worker, waits for the connection */
    pgsess_request_free(SUBMIT(s, "SELECT 3", &c)); /* queued */
    sleep_ms(300);
    t0 = now_ms();
    pgsess_close(s);
    elapsed = now_ms() - t0;
    check_once(v, 2, "close while waiting for a connection");
    CHECK_INTEQ(c.code, PGSESS_QUERY_CANCELED);
    if (!CHECK_INTEQ(b.code, PGSESS_QUERY_CANCELED))
        fprintf(stderr, "    the request waiting for a connection got %s: %s\n", pgsess_code_name(b.code), b.message);
    if (!CHECK(elapsed < 3000))
        fprintf(stderr, "    pgsess_close took %.0f ms\n", elapsed);
    pgsess_results_free(held);
}

int main(void)
{
    MAIN_THREAD = pthread_self();
    CTL = open_pool(3, 0);

    test_fd();
    test_order_pool1();
    test_many_pool2();
    test_errors_callproc_chain();
    test_submit_from_threads();
    test_cancel_queued();
    test_cancel_running();
    test_backends_killed_in_flight();
    test_wait();
    test_misuse();
    test_close_outstanding();
    test_held_results();
    test_dispatch_count_after_wait();
    test_close_waiting_for_connection();

    /* Each wait leaves at most one stale wakeup; an fd that dispatch failed to clear would give
     * thousands. */
    CHECK(g_empty_wakeups <= 10);
    if (g_empty_wakeups > 0)
        printf("note: %ld wakeups dispatched nothing\n", g_empty_wakeups);
    pgsess_close(CTL);
    return CHECK_DONE();
}
