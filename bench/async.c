/*
 * bench/async.c - throughput of pgsess's asynchronous requests on one event-loop thread.
 *
 * Built through pkg-config against the installed pgsess and libpq (bench/async.sh does it):
 *     cc -std=c99 -O2 bench/async.c $(pkg-config --cflags --libs pgsess libpq) -pthread
 *
 * Each block runs the same 1,000 statements `SELECT $1::int * 2` ($1 = 0..999) three ways, every
 * answer read and checked, against the server and URI in env PGSQL_BENCH:
 *   A async    one session (pool 8), one thread: all 1,000 queued with pgsess_query_async, the
 *              session's fd on an epoll loop, pgsess_async_dispatch on readiness, until all 1,000
 *              callbacks ran (each frees its results). Timed from the first submit to the last
 *              callback.
 *   B threads  the same session, 8 threads each running 125 blocking pgsess_query + free. Timed
 *              from the barrier that releases the threads (created beforehand) to the last join.
 *   C libpq    8 libpq connections in nonblocking mode (PQsetnonblocking) on one epoll loop, one
 *              thread: PQsendQueryParams + PQflush, then PQconsumeInput / PQisBusy / PQgetResult
 *              on readiness, the next statement sent on a connection as soon as its previous one
 *              is done. Timed from the first send to the last result.
 * Blocks alternate A B C A B C ... (one warm-up block of each first, not counted). Reported: the
 * median, min and max throughput of each side over the blocks, the median of the per-block
 * ratios async/threads and async/libpq, and the client's CPU time (user + system, all threads)
 * per statement.
 *
 *   async [-q] [BLOCKS]     -q: 3 blocks (a smoke test); default 15
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <libpq-fe.h>
#include <pgsess.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define NQ 1000    /* statements per block */
#define NCONN 8    /* pool size, threads, libpq connections */
#define STALL_MS 10000

static const char *SQL = "SELECT $1::int * 2";
static const char *URL;
static char PARAMS[NQ][16];      /* "0" .. "999" */
static char WANT[NQ][16];        /* "0" .. "1998" */

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench/async: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Client CPU time so far (all threads, including pgsess's workers), seconds. */
static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *v, long n)
{
    double *c = malloc((size_t)n * sizeof *c), m;
    if (c == NULL)
        die("out of memory");
    memcpy(c, v, (size_t)n * sizeof *c);
    qsort(c, (size_t)n, sizeof *c, cmp_double);
    m = (n % 2) ? c[n / 2] : (c[n / 2 - 1] + c[n / 2]) / 2.0;
    free(c);
    return m;
}

static double min_of(const double *v, long n)
{
    double m = v[0];
    long i;
    for (i = 1; i < n; i++)
        if (v[i] < m)
            m = v[i];
    return m;
}

static double max_of(const double *v, long n)
{
    double m = v[0];
    long i;
    for (i = 1; i < n; i++)
        if (v[i] > m)
            m = v[i];
    return m;
}

static void check_value(const char *side, long i, const char *v)
{
    if (v == NULL || strcmp(v, WANT[i]) != 0)
        die("%s: wrong answer for %ld: %s (want %s)", side, i, v ? v : "NULL", WANT[i]);
}

/* ------------------------------------------------------------------------------------------ */
/* A: pgsess_query_async on one epoll thread                                                   */

static long A_DONE;
static long A_IDX[NQ];

static void a_done(void *user_data, pgsess_results *r, pgsess_error *e)
{
    long i = *(long *)user_data;
    if (e != NULL)
        die("async: query %ld failed: %s", i, pgsess_error_message(e));
    check_value("async", i, pgsess_results_value(r, 0, 0));
    pgsess_results_free(r);
    A_DONE++;
}

static double run_async(pgsess_session *s, int ep)
{
    double t0, t1;
    long i;
    A_DONE = 0;
    t0 = now_s();
    for (i = 0; i < NQ; i++) {
        const char *params[1];
        pgsess_error *err = NULL;
        pgsess_request *rq;
        params[0] = PARAMS[i];
        rq = pgsess_query_async(s, SQL, 1, params, a_done, &A_IDX[i], &err);
        if (rq == NULL)
            die("pgsess_query_async failed: %s", pgsess_error_message(err));
        pgsess_request_free(rq);
    }
    while (A_DONE < NQ) {
        struct epoll_event ev;
        int n = epoll_wait(ep, &ev, 1, STALL_MS);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            die("epoll_wait: %s", strerror(errno));
        if (n == 0)
            die("async: no completion for %d ms (%ld of %d done)", STALL_MS, A_DONE, NQ);
        pgsess_async_dispatch(s);
    }
    t1 = now_s();
    return (double)NQ / (t1 - t0);
}

/* ------------------------------------------------------------------------------------------ */
/* B: 8 threads, blocking pgsess_query on one session                                          */

struct bworker {
    pgsess_session *s;
    long from, to;
    pthread_barrier_t *bar;
};

static void *b_main(void *arg)
{
    struct bworker *w = arg;
    long i;
    pthread_barrier_wait(w->bar);
    for (i = w->from; i < w->to; i++) {
        const char *params[1];
        pgsess_error *err = NULL;
        pgsess_results *r;
        params[0] = PARAMS[i];
        r = pgsess_query(w->s, SQL, 1, params, &err);
        if (r == NULL)
            die("threads: query %ld failed: %s", i, pgsess_error_message(err));
        check_value("threads", i, pgsess_results_value(r, 0, 0));
        pgsess_results_free(r);
    }
    return NULL;
}

static double run_threads(pgsess_session *s)
{
    pthread_t th[NCONN];
    struct bworker w[NCONN];
    pthread_barrier_t bar;
    double t0, t1;
    int k;
    if (pthread_barrier_init(&bar, NULL, NCONN + 1) != 0)
        die("pthread_barrier_init failed");
    for (k = 0; k < NCONN; k++) {
        w[k].s = s;
        w[k].from = (long)k * NQ / NCONN;
        w[k].to = (long)(k + 1) * NQ / NCONN;
        w[k].bar = &bar;
        if (pthread_create(&th[k], NULL, b_main, &w[k]) != 0)
            die("pthread_create failed");
    }
    pthread_barrier_wait(&bar);
    t0 = now_s();
    for (k = 0; k < NCONN; k++)
        pthread_join(th[k], NULL);
    t1 = now_s();
    pthread_barrier_destroy(&bar);
    return (double)NQ / (t1 - t0);
}

/* ------------------------------------------------------------------------------------------ */
/* C: libpq, 8 nonblocking connections on one epoll loop                                       */

struct pqc {
    PGconn *c;
    int fd;
    long cur;       /* statement in flight, -1 when idle */
    int want_write; /* registered for EPOLLOUT (PQflush had more to send) */
};

static long C_NEXT, C_DONE;

static void c_interest(int ep, struct pqc *p, int k, int want_write)
{
    struct epoll_event ev;
    if (p->want_write == want_write)
        return;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN | (want_write ? EPOLLOUT : 0);
    ev.data.u32 = (uint32_t)k;
    if (epoll_ctl(ep, EPOLL_CTL_MOD, p->fd, &ev) != 0)
        die("epoll_ctl: %s", strerror(errno));
    p->want_write = want_write;
}

static void c_flush(int ep, struct pqc *p, int k)
{
    int r = PQflush(p->c);
    if (r < 0)
        die("libpq: PQflush failed: %s", PQerrorMessage(p->c));
    c_interest(ep, p, k, r == 1);
}

static void c_send_next(int ep, struct pqc *p, int k)
{
    const char *params[1];
    if (C_NEXT >= NQ) {
        p->cur = -1;
        return;
    }
    p->cur = C_NEXT++;
    params[0] = PARAMS[p->cur];
    if (!PQsendQueryParams(p->c, SQL, 1, NULL, params, NULL, NULL, 0))
        die("libpq: PQsendQueryParams failed: %s", PQerrorMessage(p->c));
    c_flush(ep, p, k);
}

static void c_readable(int ep, struct pqc *p, int k)
{
    if (!PQconsumeInput(p->c))
        die("libpq: PQconsumeInput failed: %s", PQerrorMessage(p->c));
    while (p->cur >= 0 && !PQisBusy(p->c)) {
        PGresult *r = PQgetResult(p->c);
        if (r == NULL) { /* the statement is complete: send the next one on this connection */
            C_DONE++;
            c_send_next(ep, p, k);
            break;
        }
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
            die("libpq: query %ld failed: %s", p->cur, PQerrorMessage(p->c));
        check_value("libpq", p->cur, PQgetvalue(r, 0, 0));
        PQclear(r);
    }
}

static double run_libpq(struct pqc *cs, int ep)
{
    double t0, t1;
    int k;
    C_NEXT = 0;
    C_DONE = 0;
    t0 = now_s();
    for (k = 0; k < NCONN; k++)
        c_send_next(ep, &cs[k], k);
    while (C_DONE < NQ) {
        struct epoll_event evs[NCONN];
        int n = epoll_wait(ep, evs, NCONN, STALL_MS), j;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            die("epoll_wait: %s", strerror(errno));
        if (n == 0)
            die("libpq: no progress for %d ms (%ld of %d done)", STALL_MS, C_DONE, NQ);
        for (j = 0; j < n; j++) {
            int i = (int)evs[j].data.u32;
            if (evs[j].events & EPOLLOUT)
                c_flush(ep, &cs[i], i);
            if (evs[j].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                c_readable(ep, &cs[i], i);
        }
    }
    t1 = now_s();
    for (k = 0; k < NCONN; k++)
        if (cs[k].cur != -1 || PQtransactionStatus(cs[k].c) != PQTRANS_IDLE)
            die("libpq: connection %d not idle after the block", k);
    return (double)NQ / (t1 - t0);
}

/* ------------------------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    long blocks = 15, b, i;
    int k, epa, epc, fd;
    pgsess_options *o;
    pgsess_error *err = NULL;
    pgsess_session *s;
    struct pqc cs[NCONN];
    double *ta, *tb, *tc, *rab, *rac, cpu[3] = {0, 0, 0};
    struct epoll_event ev;

    for (k = 1; k < argc; k++) {
        if (strcmp(argv[k], "-q") == 0)
            blocks = 3;
        else if (atol(argv[k]) > 0)
            blocks = atol(argv[k]);
        else
            die("usage: async [-q] [BLOCKS]");
    }
    URL = getenv("PGSQL_BENCH");
    if (URL == NULL || URL[0] == '\0')
        die("PGSQL_BENCH is not set");
    for (i = 0; i < NQ; i++) {
        snprintf(PARAMS[i], sizeof PARAMS[i], "%ld", i);
        snprintf(WANT[i], sizeof WANT[i], "%ld", 2 * i);
        A_IDX[i] = i;
    }

    o = pgsess_options_new();
    pgsess_options_set_pool_max_size(o, NCONN);
    s = pgsess_open("bench", o, &err); /* reads PGSQL_BENCH */
    pgsess_options_free(o);
    if (s == NULL)
        die("pgsess_open failed: %s", pgsess_error_message(err));
    fd = pgsess_async_fd(s);
    epa = epoll_create1(EPOLL_CLOEXEC);
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (fd < 0 || epa < 0 || epoll_ctl(epa, EPOLL_CTL_ADD, fd, &ev) != 0)
        die("pgsess_async_fd / epoll failed");

    epc = epoll_create1(EPOLL_CLOEXEC);
    if (epc < 0)
        die("epoll_create1: %s", strerror(errno));
    for (k = 0; k < NCONN; k++) {
        cs[k].c = PQconnectdb(URL);
        if (PQstatus(cs[k].c) != CONNECTION_OK)
            die("PQconnectdb failed: %s", PQerrorMessage(cs[k].c));
        if (PQsetnonblocking(cs[k].c, 1) != 0)
            die("PQsetnonblocking failed: %s", PQerrorMessage(cs[k].c));
        cs[k].fd = PQsocket(cs[k].c);
        cs[k].cur = -1;
        cs[k].want_write = 0;
        memset(&ev, 0, sizeof ev);
        ev.events = EPOLLIN;
        ev.data.u32 = (uint32_t)k;
        if (epoll_ctl(epc, EPOLL_CTL_ADD, cs[k].fd, &ev) != 0)
            die("epoll_ctl: %s", strerror(errno));
    }

    printf("pgsess %s vs libpq %d; server %s; %d statements `%s` per block, pool/threads/connections %d, "
           "%ld blocks per side (A B C interleaved) after 1 warm-up block each\n",
           pgsess_version(), PQlibVersion(), PQparameterStatus(cs[0].c, "server_version"), NQ, SQL, NCONN, blocks);
    fflush(stdout);

    /* Warm-up: opens the pool's 8 connections, starts the engine's workers, warms the caches. */
    run_async(s, epa);
    run_threads(s);
    run_libpq(cs, epc);

    ta = calloc((size_t)blocks, sizeof *ta), tb = calloc((size_t)blocks, sizeof *tb);
    tc = calloc((size_t)blocks, sizeof *tc), rab = calloc((size_t)blocks, sizeof *rab);
    rac = calloc((size_t)blocks, sizeof *rac);
    if (!ta || !tb || !tc || !rab || !rac)
        die("out of memory");
    for (b = 0; b < blocks; b++) {
        double c0 = cpu_s(), c1, c2, c3;
        ta[b] = run_async(s, epa);
        c1 = cpu_s();
        tb[b] = run_threads(s);
        c2 = cpu_s();
        tc[b] = run_libpq(cs, epc);
        c3 = cpu_s();
        cpu[0] += c1 - c0, cpu[1] += c2 - c1, cpu[2] += c3 - c2;
        rab[b] = ta[b] / tb[b];
        rac[b] = ta[b] / tc[b];
        printf("  block %2ld: async %8.0f  threads %8.0f  libpq loop %8.0f stmt/s\n", b + 1, ta[b], tb[b], tc[b]);
        fflush(stdout);
    }

    printf("\nRESULTS-TABLE-BEGIN\n");
    printf("| 1,000 x `SELECT $1::int * 2`, 8 connections | median | min | max | client CPU per statement |\n");
    printf("|---|---:|---:|---:|---:|\n");
    printf("| A. pgsess async: pgsess_query_async, one thread on epoll (pool 8) | %.0f stmt/s | %.0f | %.0f | %.1f us |\n",
           median(ta, blocks), min_of(ta, blocks), max_of(ta, blocks), cpu[0] / ((double)blocks * NQ) * 1e6);
    printf("| B. pgsess threads: 8 threads, blocking pgsess_query, one session (pool 8) | %.0f stmt/s | %.0f | %.0f | %.1f us |\n",
           median(tb, blocks), min_of(tb, blocks), max_of(tb, blocks), cpu[1] / ((double)blocks * NQ) * 1e6);
    printf("| C. libpq loop: 8 nonblocking connections, PQsendQueryParams, one thread on epoll | %.0f stmt/s | %.0f | %.0f | %.1f us |\n",
           median(tc, blocks), min_of(tc, blocks), max_of(tc, blocks), cpu[2] / ((double)blocks * NQ) * 1e6);
    printf("| ratio async/threads (throughput, median of per-block ratios) | %.3f | %.3f | %.3f | |\n",
           median(rab, blocks), min_of(rab, blocks), max_of(rab, blocks));
    printf("| ratio async/libpq loop (throughput, median of per-block ratios) | %.3f | %.3f | %.3f | |\n",
           median(rac, blocks), min_of(rac, blocks), max_of(rac, blocks));
    printf("RESULTS-TABLE-END\n");

    free(ta), free(tb), free(tc), free(rab), free(rac);
    for (k = 0; k < NCONN; k++)
        PQfinish(cs[k].c);
    close(epc);
    close(epa);
    pgsess_close(s);
    return 0;
}
