/*
 * pgsess asynchronous requests on a libuv loop, one thread.
 *
 * The same as async_epoll.c with libuv: opens the session "demo" (URI from PGSQL_DEMO) with
 * pool_max_size 8, queues 1,000 parameterised statements `SELECT $1::int * 2`, watches the
 * session's completion fd with a uv_poll_t and runs the ready callbacks with
 * pgsess_async_dispatch in the poll callback; once all 1,000 have run it closes the poll handle,
 * so uv_run returns. Every answer is checked; the program exits non-zero on a wrong, failed,
 * missing or duplicated answer, or when no completion arrives for 10 s (a uv_timer_t).
 *
 * Build (Debian: apt-get install libuv1-dev):
 *     cc -std=c99 async_libuv.c $(pkg-config --cflags --libs pgsess libuv)
 */
#define _POSIX_C_SOURCE 200809L
#include <pgsess.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define NQUERIES 1000
#define POOL_SIZE 8
#define IDLE_TIMEOUT_MS 10000

struct query {
    int i;
    int calls; /* how many times its callback ran: must end at exactly 1 */
    int ok;
};

/* Everything the loop's callbacks share (uv handles carry it in their `data`). */
struct app {
    pgsess_session *s;
    uv_poll_t poll;
    uv_timer_t idle; /* fires when no completion arrived for IDLE_TIMEOUT_MS */
    int remaining;   /* callbacks still to run */
    int failures;
    size_t dispatched;
    long wakeups;
    int timed_out;
};

static struct app *APP; /* for on_done's counters (its user_data is the query) */

/* Runs on the loop's thread, inside pgsess_async_dispatch; owns exactly one of r and e. */
static void on_done(void *user_data, pgsess_results *r, pgsess_error *e) {
    struct query *q = user_data;
    q->calls++;
    APP->remaining--;
    if (e != NULL) {
        fprintf(stderr, "query %d failed: %s [%s]\n", q->i, pgsess_error_message(e),
                pgsess_code_name(pgsess_error_code(e)));
        APP->failures++;
        pgsess_error_free(e);
        return;
    }
    char want[24];
    snprintf(want, sizeof want, "%d", q->i * 2);
    const char *v = pgsess_results_value(r, 0, 0);
    if (pgsess_results_nrows(r) == 1 && v != NULL && strcmp(v, want) == 0) {
        q->ok = 1;
    } else {
        fprintf(stderr, "query %d: wrong answer %s (want %s)\n", q->i, v ? v : "NULL", want);
        APP->failures++;
    }
    pgsess_results_free(r); /* returns the connection to the pool */
}

/* Stop watching: closing both handles lets uv_run return. */
static void stop(struct app *app) {
    if (!uv_is_closing((uv_handle_t *)&app->poll)) {
        uv_poll_stop(&app->poll);
        uv_close((uv_handle_t *)&app->poll, NULL);
    }
    if (!uv_is_closing((uv_handle_t *)&app->idle)) {
        uv_timer_stop(&app->idle);
        uv_close((uv_handle_t *)&app->idle, NULL);
    }
}

static void on_idle_timeout(uv_timer_t *t) {
    struct app *app = t->data;
    fprintf(stderr, "no completion for %d ms with %d callbacks still to run\n", IDLE_TIMEOUT_MS, app->remaining);
    app->timed_out = 1;
    stop(app);
}

static void on_readable(uv_poll_t *p, int status, int events) {
    struct app *app = p->data;
    (void)events;
    if (status < 0) {
        fprintf(stderr, "uv_poll: %s\n", uv_strerror(status));
        app->failures++;
        stop(app);
        return;
    }
    app->wakeups++;
    size_t n = pgsess_async_dispatch(app->s); /* runs the ready callbacks here */
    app->dispatched += n;
    if (n > 0)
        uv_timer_again(&app->idle);
    if (app->remaining <= 0)
        stop(app);
}

int main(void) {
    pgsess_error *err = NULL;
    pgsess_options *opts = pgsess_options_new();
    pgsess_options_set_pool_max_size(opts, POOL_SIZE);
    pgsess_session *s = pgsess_open("demo", opts, &err); /* reads PGSQL_DEMO */
    pgsess_options_free(opts);
    if (s == NULL) {
        fprintf(stderr, "pgsess_open(\"demo\") failed: %s\n", pgsess_error_message(err));
        pgsess_error_free(err);
        return 1;
    }

    struct app app;
    memset(&app, 0, sizeof app);
    app.s = s;
    app.remaining = NQUERIES;
    APP = &app;

    uv_loop_t loop;
    int fd = pgsess_async_fd(s); /* owned by the session: never close it */
    if (fd < 0 || uv_loop_init(&loop) != 0) {
        fprintf(stderr, "pgsess_async_fd or uv_loop_init failed\n");
        pgsess_close(s);
        return 1;
    }
    uv_poll_init(&loop, &app.poll, fd);
    app.poll.data = &app;
    uv_timer_init(&loop, &app.idle);
    app.idle.data = &app;

    struct query *queries = calloc(NQUERIES, sizeof *queries);
    if (queries == NULL) {
        pgsess_close(s);
        return 1;
    }
    uint64_t t0 = uv_hrtime();
    int submitted = 0;
    for (int i = 0; i < NQUERIES; i++) {
        char param[16];
        const char *params[] = {param};
        snprintf(param, sizeof param, "%d", i); /* copied by pgsess_query_async */
        queries[i].i = i;
        pgsess_request *rq = pgsess_query_async(s, "SELECT $1::int * 2", 1, params, on_done, &queries[i], &err);
        if (rq == NULL) { /* misuse only; the callback will not run */
            fprintf(stderr, "pgsess_query_async(%d) failed: %s\n", i, pgsess_error_message(err));
            pgsess_error_free(err);
            err = NULL;
            app.remaining--;
            app.failures++;
            continue;
        }
        submitted++;
        pgsess_request_free(rq); /* the callback still runs */
    }

    uv_poll_start(&app.poll, UV_READABLE, on_readable);
    uv_timer_start(&app.idle, on_idle_timeout, IDLE_TIMEOUT_MS, IDLE_TIMEOUT_MS);
    if (app.remaining <= 0)
        stop(&app);
    uv_run(&loop, UV_RUN_DEFAULT); /* returns once both handles are closed */
    double elapsed = (double)(uv_hrtime() - t0) / 1e9;
    int loop_closed = uv_loop_close(&loop) == 0;

    int answered = 0, missing = 0, duplicated = 0;
    for (int i = 0; i < NQUERIES; i++) {
        answered += queries[i].ok;
        missing += queries[i].calls == 0;
        duplicated += queries[i].calls > 1;
    }
    printf("%d queries on pool %d, one thread (libuv %s): %d answered correctly, %d failed, %d missing, "
           "%d duplicated\n",
           NQUERIES, POOL_SIZE, uv_version_string(), answered, app.failures, missing, duplicated);
    printf("%ld poll wakeups, %zu callbacks dispatched, %.1f ms: %.0f queries/s\n", app.wakeups, app.dispatched,
           elapsed * 1e3, (double)answered / elapsed);

    pgsess_close(s); /* nothing is outstanding; would run any remaining callback here */
    free(queries);
    int good = answered == NQUERIES && app.failures == 0 && missing == 0 && duplicated == 0 &&
               submitted == NQUERIES && app.dispatched == (size_t)NQUERIES && !app.timed_out && loop_closed;
    if (!good)
        fprintf(stderr, "FAILED\n");
    return good ? 0 : 1;
}
