/*
 * pgsess asynchronous requests on a plain epoll loop, one thread.
 *
 * Opens the session "demo" (URI from PGSQL_DEMO) with pool_max_size 8, queues 1,000 parameterised
 * statements `SELECT $1::int * 2` at once, adds the session's completion fd to epoll and, each
 * time it is readable, runs the ready callbacks with pgsess_async_dispatch until all 1,000 have
 * run. Every answer is checked; the program exits non-zero on a wrong, failed, missing or
 * duplicated answer, or when no completion arrives for 10 s.
 *
 * Build: cc -std=c99 async_epoll.c $(pkg-config --cflags --libs pgsess)
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pgsess.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define NQUERIES 1000
#define POOL_SIZE 8
#define IDLE_TIMEOUT_MS 10000

/* One request's context: handed to pgsess_query_async as user_data, read back in the callback. */
struct query {
    int i;
    int calls; /* how many times its callback ran: must end at exactly 1 */
    int ok;
};

static int remaining = NQUERIES; /* callbacks still to run */
static int failures;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs on this thread, inside pgsess_async_dispatch; owns exactly one of r and e. */
static void on_done(void *user_data, pgsess_results *r, pgsess_error *e) {
    struct query *q = user_data;
    q->calls++;
    remaining--;
    if (e != NULL) {
        fprintf(stderr, "query %d failed: %s [%s]\n", q->i, pgsess_error_message(e),
                pgsess_code_name(pgsess_error_code(e)));
        failures++;
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
        failures++;
    }
    pgsess_results_free(r); /* returns the connection to the pool */
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

    int fd = pgsess_async_fd(s); /* owned by the session: never close it */
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data = {.fd = fd}};
    if (fd < 0 || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        perror("pgsess_async_fd / epoll");
        pgsess_close(s);
        return 1;
    }

    struct query *queries = calloc(NQUERIES, sizeof *queries);
    if (queries == NULL) {
        pgsess_close(s);
        return 1;
    }
    double t0 = now_s();
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
            remaining--;
            failures++;
            continue;
        }
        submitted++;
        pgsess_request_free(rq); /* not needed: we neither cancel nor wait; the callback still runs */
    }

    size_t dispatched = 0;
    long wakeups = 0;
    while (remaining > 0) {
        struct epoll_event got;
        int n = epoll_wait(ep, &got, 1, IDLE_TIMEOUT_MS);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            perror("epoll_wait");
            break;
        }
        if (n == 0) {
            fprintf(stderr, "no completion for %d ms with %d callbacks still to run\n", IDLE_TIMEOUT_MS,
                    remaining);
            break;
        }
        wakeups++;
        dispatched += pgsess_async_dispatch(s); /* runs the ready callbacks here */
    }
    double elapsed = now_s() - t0;

    int answered = 0, missing = 0, duplicated = 0;
    for (int i = 0; i < NQUERIES; i++) {
        answered += queries[i].ok;
        missing += queries[i].calls == 0;
        duplicated += queries[i].calls > 1;
    }
    printf("%d queries on pool %d, one thread: %d answered correctly, %d failed, %d missing, %d duplicated\n",
           NQUERIES, POOL_SIZE, answered, failures, missing, duplicated);
    printf("%ld epoll wakeups, %zu callbacks dispatched, %.1f ms: %.0f queries/s\n", wakeups, dispatched,
           elapsed * 1e3, (double)answered / elapsed);

    close(ep);
    pgsess_close(s); /* nothing is outstanding; would run any remaining callback here */
    free(queries);
    int good = answered == NQUERIES && failures == 0 && missing == 0 && duplicated == 0 &&
               submitted == NQUERIES && dispatched == (size_t)NQUERIES;
    if (!good)
        fprintf(stderr, "FAILED\n");
    return good ? 0 : 1;
}
