/*
 * bench/bench.c - pgsess versus libpq, the workloads of the performance issue.
 *
 * Built through pkg-config against the installed pgsess and libpq (bench/run.sh does it):
 *     cc -std=c99 -O2 bench/bench.c $(pkg-config --cflags --libs pgsess libpq) -pthread
 *
 * Both sides use the same server and URI (env PGSQL_BENCH), run the same SQL, read every value
 * (pgsess_results_value / PQgetvalue, lengths and first bytes summed) and check the results. Sides
 * alternate in blocks (A B A B ...) inside one process; each workload reports per-side medians over
 * blocks and the median of the per-block ratios pgsess/libpq.
 *
 *   bench all [-q]                 every workload, then a markdown table (-q: tiny sizes, a smoke test)
 *   bench mem pgsess|libpq TABLE ROWS
 *                                  child of workload 5: peak RSS of holding the bulk result
 *   bench cg rt|bulk|bulkrow|copyin|copyin64|copyout pgsess|libpq N
 *                                  one side, one workload, N iterations inside the function
 *                                  measured_loop (for valgrind --tool=callgrind --toggle-collect=measured_loop);
 *                                  for copy*, N is the row count of one copy
 *   bench cg notify pgsess|libpq|pgsessfd|relay N
 *                                  N notifications to one receiver of workload 10 (for strace -f -c,
 *                                  perf record, callgrind)
 *
 * Workloads (see BENCHMARKS.md):
 *   1 round trip   SELECT $1::int + 1, one text parameter: pgsess_query + free vs PQexecParams + PQclear
 *   2 bulk fetch   200,000 rows x (int4, text, timestamptz, float8, bool) from a table created at start
 *   3 concurrency  8 threads on one session (pool 8) vs 8 threads with a connection each;
 *                  64 threads on pool 8 vs 64 threads sharing 8 connections through a mutex free list
 *   4 connect      per request: pgsess_open + statement + pgsess_close on a warm pool
 *                  vs PQconnectdb + statement + PQfinish
 *   5 memory       peak RSS minus a baseline taken before the bulk query, in child processes
 *   6 small writes 1,000 single-row parameterised INSERTs (table truncated between blocks);
 *                  libpq pipeline mode as an extra row
 *   7 dirty        SET application_name on a pooled session (reset on return) and a pinned one
 *   8 copy_in      COPY FROM STDIN of 1,000,000 text rows into an unlogged table: pgsess_copy_write
 *                  vs PQputCopyData, one row per call, then 64 KiB per call
 *   9 copy_out     COPY TO STDOUT of 1,000,000 rows: pgsess_copy_read vs PQgetCopyData (async=0)
 *  10 notify       NOTIFY (libpq sender) to the notification in the application's hands:
 *                  pgsess_notification_next(-1) vs poll + PQconsumeInput + PQnotifies; latency
 *                  and context switches per notification
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
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__GNUC__)
#define NOINLINE __attribute__((noinline))
#else
#define NOINLINE
#endif

/* ------------------------------------------------------------------------------------------ */
/* Sizes (the -q smoke test divides them)                                                      */

static long RT_BLOCKS = 31, RT_ITERS = 400, RT_WARM = 500;
static long BULK_ROWS = 200000, BULK_BLOCKS = 15;
static long CONC_TOTAL = 4096, CONC_BLOCKS = 11;
static long CONN_BLOCKS = 11, CONN_REQS = 20;
static long MEM_RUNS = 5;
static long WR_BLOCKS = 21, WR_ROWS = 1000;
static long COPY_ROWS = 1000000, COPY_BLOCKS = 11;
static long NOTIFY_BLOCKS = 10, NOTIFY_PER_BLOCK = 200;

static const char *RT_SQL = "SELECT $1::int + 1";
static const char *URL;
static char BULK_TABLE[64], WR_TABLE[64], COPYIN_TABLE[64], COPYOUT_TABLE[64];
static char BULK_SQL[160], WR_SQL[160], COPYIN_SQL[160], COPYOUT_SQL[160];

/* ------------------------------------------------------------------------------------------ */
/* Helpers                                                                                     */

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static const char *emsg(const pgsess_error *e)
{
    const char *m = pgsess_error_message(e);
    return m ? m : "(no message)";
}

/* Voluntary context switches of the whole process so far (every thread: pgsess's own threads
   count too). A thread that sleeps waiting for its answer and is woken adds one; a wakeup that
   brings no answer adds another. */
static double sleeps_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_nvcsw;
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts v in place; q in [0,1], nearest rank. */
static double quantile_sorted(const double *v, size_t n, double q)
{
    size_t i;
    if (n == 0)
        return 0.0;
    i = (size_t)(q * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

static double median(const double *v, size_t n)
{
    double *c, m;
    if (n == 0)
        return 0.0;
    c = malloc(n * sizeof *c);
    if (c == NULL)
        die("out of memory");
    memcpy(c, v, n * sizeof *c);
    qsort(c, n, sizeof *c, cmp_double);
    m = (n % 2) ? c[n / 2] : (c[n / 2 - 1] + c[n / 2]) / 2.0;
    free(c);
    return m;
}

static double min_of(const double *v, size_t n)
{
    double m = v[0];
    size_t i;
    for (i = 1; i < n; i++)
        if (v[i] < m)
            m = v[i];
    return m;
}

static double max_of(const double *v, size_t n)
{
    double m = v[0];
    size_t i;
    for (i = 1; i < n; i++)
        if (v[i] > m)
            m = v[i];
    return m;
}

static double *dalloc(long n)
{
    double *p = calloc((size_t)(n > 0 ? n : 1), sizeof *p);
    if (p == NULL)
        die("out of memory");
    return p;
}

static PGconn *pq_connect(void)
{
    PGconn *c = PQconnectdb(URL);
    if (PQstatus(c) != CONNECTION_OK)
        die("PQconnectdb failed: %s", PQerrorMessage(c));
    return c;
}

static void pq_exec_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        die("%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
}

static pgsess_session *ps_open(uint32_t pool)
{
    pgsess_options *o = pgsess_options_new();
    pgsess_error *err = NULL;
    pgsess_session *s;
    if (pgsess_options_set_pool_max_size(o, pool) != PGSESS_OK)
        die("pgsess_options_set_pool_max_size(%u) failed", pool);
    s = pgsess_open("bench", o, &err); /* reads PGSQL_BENCH */
    pgsess_options_free(o);
    if (s == NULL)
        die("pgsess_open failed: %s", emsg(err));
    return s;
}

static void print_stats(const char *label, const char *unit, const double *v, long n)
{
    printf("    %-34s median %10.2f  min %10.2f  max %10.2f %s\n", label, median(v, (size_t)n),
           min_of(v, (size_t)n), max_of(v, (size_t)n), unit);
}

/* ------------------------------------------------------------------------------------------ */
/* The result table                                                                            */

enum better { LOWER, HIGHER, INFO };

struct row {
    char workload[96];
    char a[40], b[40];
    double ratio; /* < 0: none */
    char target[56];
    char met[40];
};

static struct row ROWS[64];
static int NROWS;

static void fmt_val(char *buf, size_t n, double v, const char *unit)
{
    if (v >= 100000)
        snprintf(buf, n, "%.0f %s", v, unit);
    else if (v >= 100)
        snprintf(buf, n, "%.1f %s", v, unit);
    else
        snprintf(buf, n, "%.2f %s", v, unit);
}

/* target_ratio <= 0: no target. */
static void add_row(const char *workload, double a, double b, const char *unit, double ratio,
                    enum better better, double target_ratio, const char *target_note)
{
    struct row *r = &ROWS[NROWS++];
    snprintf(r->workload, sizeof r->workload, "%s", workload);
    fmt_val(r->a, sizeof r->a, a, unit);
    fmt_val(r->b, sizeof r->b, b, unit);
    r->ratio = ratio;
    if (target_ratio <= 0 || better == INFO) {
        snprintf(r->target, sizeof r->target, "%s", target_note ? target_note : "-");
        snprintf(r->met, sizeof r->met, "-");
    } else {
        int ok = better == LOWER ? ratio <= target_ratio : ratio >= target_ratio;
        snprintf(r->target, sizeof r->target, "%s %.2f%s%s", better == LOWER ? "<=" : ">=", target_ratio,
                 target_note ? " " : "", target_note ? target_note : "");
        snprintf(r->met, sizeof r->met, "%s", ok ? "yes" : "**no**");
    }
}

static void add_text_row(const char *workload, const char *a, const char *b, const char *target, const char *met)
{
    struct row *r = &ROWS[NROWS++];
    snprintf(r->workload, sizeof r->workload, "%s", workload);
    snprintf(r->a, sizeof r->a, "%s", a);
    snprintf(r->b, sizeof r->b, "%s", b);
    r->ratio = -1;
    snprintf(r->target, sizeof r->target, "%s", target);
    snprintf(r->met, sizeof r->met, "%s", met);
}

static void print_table(void)
{
    int i;
    printf("| workload | pgsess median | libpq median | ratio pgsess/libpq (median of per-block ratios) | target | met? |\n");
    printf("|---|---:|---:|---:|---|---|\n");
    for (i = 0; i < NROWS; i++) {
        char ratio[24];
        if (ROWS[i].ratio < 0)
            snprintf(ratio, sizeof ratio, "-");
        else
            snprintf(ratio, sizeof ratio, "%.3f", ROWS[i].ratio);
        printf("| %s | %s | %s | %s | %s | %s |\n", ROWS[i].workload, ROWS[i].a, ROWS[i].b, ratio,
               ROWS[i].target, ROWS[i].met);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Workload 1: round trip                                                                      */

/* Returns elapsed microseconds for n calls; adds the answers' lengths to *sum. */
static double rt_pgsess(pgsess_session *s, long base, long n, unsigned long long *sum)
{
    long i;
    double t0 = now_us();
    for (i = 0; i < n; i++) {
        char in[24], want[24];
        const char *params[1];
        pgsess_error *err = NULL;
        pgsess_results *r;
        const char *v;
        snprintf(in, sizeof in, "%ld", base + i);
        snprintf(want, sizeof want, "%ld", base + i + 1);
        params[0] = in;
        r = pgsess_query(s, RT_SQL, 1, params, &err);
        if (r == NULL)
            die("pgsess_query(%s) failed: %s", RT_SQL, emsg(err));
        v = pgsess_results_value(r, 0, 0);
        if (v == NULL || strcmp(v, want) != 0)
            die("pgsess: wrong answer for %s: %s", in, v ? v : "NULL");
        *sum += strlen(v);
        pgsess_results_free(r);
    }
    return now_us() - t0;
}

static double rt_libpq(PGconn *conn, long base, long n, unsigned long long *sum)
{
    long i;
    double t0 = now_us();
    for (i = 0; i < n; i++) {
        char in[24], want[24];
        const char *params[1];
        PGresult *r;
        const char *v;
        snprintf(in, sizeof in, "%ld", base + i);
        snprintf(want, sizeof want, "%ld", base + i + 1);
        params[0] = in;
        r = PQexecParams(conn, RT_SQL, 1, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
            die("PQexecParams(%s) failed: %s", RT_SQL, PQerrorMessage(conn));
        v = PQgetvalue(r, 0, 0);
        if (v == NULL || strcmp(v, want) != 0)
            die("libpq: wrong answer for %s: %s", in, v ? v : "NULL");
        *sum += strlen(v);
        PQclear(r);
    }
    return now_us() - t0;
}

static void workload_roundtrip(pgsess_session *s, PGconn *c)
{
    double *a = dalloc(RT_BLOCKS), *b = dalloc(RT_BLOCKS), *ratio = dalloc(RT_BLOCKS);
    double *sla = dalloc(RT_BLOCKS), *slb = dalloc(RT_BLOCKS);
    unsigned long long sa = 0, sb = 0;
    long k;
    printf("1. round trip \"%s\": %ld blocks x %ld calls per side, %ld warm-up calls\n", RT_SQL, RT_BLOCKS,
           RT_ITERS, RT_WARM);
    rt_pgsess(s, 0, RT_WARM, &sa);
    rt_libpq(c, 0, RT_WARM, &sb);
    for (k = 0; k < RT_BLOCKS; k++) {
        double s0 = sleeps_now(), s1, s2;
        a[k] = rt_pgsess(s, k * RT_ITERS, RT_ITERS, &sa) / (double)RT_ITERS;
        s1 = sleeps_now();
        b[k] = rt_libpq(c, k * RT_ITERS, RT_ITERS, &sb) / (double)RT_ITERS;
        s2 = sleeps_now();
        ratio[k] = a[k] / b[k];
        sla[k] = (s1 - s0) / (double)RT_ITERS, slb[k] = (s2 - s1) / (double)RT_ITERS;
    }
    if (sa != sb)
        die("round trip: value lengths differ (pgsess %llu, libpq %llu)", sa, sb);
    print_stats("pgsess per call", "us", a, RT_BLOCKS);
    print_stats("libpq per call", "us", b, RT_BLOCKS);
    print_stats("ratio pgsess/libpq", "", ratio, RT_BLOCKS);
    add_row("1. round trip `SELECT $1::int + 1`, per call", median(a, (size_t)RT_BLOCKS),
            median(b, (size_t)RT_BLOCKS), "us", median(ratio, (size_t)RT_BLOCKS), LOWER, 1.00, "(issue 15)");
    print_stats("pgsess sleeps (voluntary switches) per call", "", sla, RT_BLOCKS);
    print_stats("libpq sleeps (voluntary switches) per call", "", slb, RT_BLOCKS);
    add_row("1. round trip: sleeps (voluntary context switches) per call", median(sla, (size_t)RT_BLOCKS),
            median(slb, (size_t)RT_BLOCKS), "", median(slb, (size_t)RT_BLOCKS) > 0 ? median(sla, (size_t)RT_BLOCKS) / median(slb, (size_t)RT_BLOCKS) : -1, INFO, 0, NULL);
    free(sla), free(slb);
    free(a);
    free(b);
    free(ratio);
}

/* ------------------------------------------------------------------------------------------ */
/* Workload 1b: round trip with the statement cache (issue 15)                                  */

#define RT_STMT "pgsess_bench_rt"

static pgsess_session *ps_open_cached(uint32_t pool, uint32_t cache)
{
    pgsess_options *o = pgsess_options_new();
    pgsess_error *err = NULL;
    pgsess_session *s;
    if (pgsess_options_set_pool_max_size(o, pool) != PGSESS_OK)
        die("pgsess_options_set_pool_max_size(%u) failed", pool);
    if (pgsess_options_set_statement_cache(o, cache) != PGSESS_OK)
        die("pgsess_options_set_statement_cache(%u) failed", cache);
    s = pgsess_open("bench", o, &err); /* its own pool: the cache is part of the pool key */
    pgsess_options_free(o);
    if (s == NULL)
        die("pgsess_open (statement cache) failed: %s", emsg(err));
    return s;
}

/* rt_libpq with the statement prepared once (PQprepare RT_STMT on `conn` beforehand). */
static double rt_libpq_prepared(PGconn *conn, long base, long n, unsigned long long *sum)
{
    long i;
    double t0 = now_us();
    for (i = 0; i < n; i++) {
        char in[24], want[24];
        const char *params[1];
        PGresult *r;
        const char *v;
        snprintf(in, sizeof in, "%ld", base + i);
        snprintf(want, sizeof want, "%ld", base + i + 1);
        params[0] = in;
        r = PQexecPrepared(conn, RT_STMT, 1, params, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
            die("PQexecPrepared(%s) failed: %s", RT_SQL, PQerrorMessage(conn));
        v = PQgetvalue(r, 0, 0);
        if (v == NULL || strcmp(v, want) != 0)
            die("libpq (prepared): wrong answer for %s: %s", in, v ? v : "NULL");
        *sum += strlen(v);
        PQclear(r);
    }
    return now_us() - t0;
}

/* Three sides in each block, in an order that rotates from block to block: pgsess with the
   statement cache on (pgsess_query, prepared once per connection by the library), libpq
   PQexecPrepared (PQprepare once), libpq PQexecParams (parsed and planned every call). */
static void workload_roundtrip_cached(PGconn *c)
{
    double *a = dalloc(RT_BLOCKS), *p = dalloc(RT_BLOCKS), *b = dalloc(RT_BLOCKS);
    double *rp = dalloc(RT_BLOCKS), *rb = dalloc(RT_BLOCKS);
    unsigned long long sa = 0, sp = 0, sb = 0;
    pgsess_session *sc = ps_open_cached(1, 64);
    PGresult *pr;
    long k;
    printf("1b. round trip \"%s\" with the statement cache on (capacity 64, pool 1): %ld blocks x %ld calls per\n"
           "    side, %ld warm-up calls; sides: pgsess cached, libpq PQexecPrepared, libpq PQexecParams\n",
           RT_SQL, RT_BLOCKS, RT_ITERS, RT_WARM);
    pr = PQprepare(c, RT_STMT, RT_SQL, 0, NULL);
    if (PQresultStatus(pr) != PGRES_COMMAND_OK)
        die("PQprepare(%s) failed: %s", RT_SQL, PQerrorMessage(c));
    PQclear(pr);
    rt_pgsess(sc, 0, RT_WARM, &sa);
    rt_libpq_prepared(c, 0, RT_WARM, &sp);
    rt_libpq(c, 0, RT_WARM, &sb);
    for (k = 0; k < RT_BLOCKS; k++) {
        int j;
        for (j = 0; j < 3; j++)
            switch ((j + k) % 3) {
            case 0:
                a[k] = rt_pgsess(sc, k * RT_ITERS, RT_ITERS, &sa) / (double)RT_ITERS;
                break;
            case 1:
                p[k] = rt_libpq_prepared(c, k * RT_ITERS, RT_ITERS, &sp) / (double)RT_ITERS;
                break;
            default:
                b[k] = rt_libpq(c, k * RT_ITERS, RT_ITERS, &sb) / (double)RT_ITERS;
            }
        rp[k] = a[k] / p[k];
        rb[k] = a[k] / b[k];
    }
    if (sa != sp || sa != sb)
        die("round trip (cached): value lengths differ (pgsess %llu, prepared %llu, params %llu)", sa, sp, sb);
    print_stats("pgsess (statement cache) per call", "us", a, RT_BLOCKS);
    print_stats("libpq PQexecPrepared per call", "us", p, RT_BLOCKS);
    print_stats("libpq PQexecParams per call", "us", b, RT_BLOCKS);
    print_stats("ratio pgsess cached/PQexecPrepared", "", rp, RT_BLOCKS);
    print_stats("ratio pgsess cached/PQexecParams", "", rb, RT_BLOCKS);
    add_row("1b. round trip, statement cache on, vs libpq PQexecPrepared", median(a, (size_t)RT_BLOCKS),
            median(p, (size_t)RT_BLOCKS), "us", median(rp, (size_t)RT_BLOCKS), LOWER, 1.00, "(issue 15)");
    add_row("1b. round trip, statement cache on, vs libpq PQexecParams", median(a, (size_t)RT_BLOCKS),
            median(b, (size_t)RT_BLOCKS), "us", median(rb, (size_t)RT_BLOCKS), LOWER, 0.80, "(issue 15)");
    pr = PQexec(c, "DEALLOCATE " RT_STMT);
    PQclear(pr);
    pgsess_close(sc);
    free(a), free(p), free(b), free(rp), free(rb);
}

/* ------------------------------------------------------------------------------------------ */
/* Workload 7: a statement that changes session state                                          */

#define DIRTY_SQL "SET application_name = 'bench_dirty'"

/* n calls of DIRTY_SQL on s (each result freed at once); elapsed microseconds. */
static double dirty_pgsess(pgsess_session *s, long n)
{
    long i;
    double t0 = now_us();
    for (i = 0; i < n; i++) {
        pgsess_error *err = NULL;
        pgsess_results *r = pgsess_query(s, DIRTY_SQL, 0, NULL, &err);
        if (r == NULL)
            die("pgsess_query(%s) failed: %s", DIRTY_SQL, emsg(err));
        pgsess_results_free(r);
    }
    return now_us() - t0;
}

static double dirty_libpq(PGconn *c, long n)
{
    long i;
    double t0 = now_us();
    for (i = 0; i < n; i++)
        pq_exec_ok(c, DIRTY_SQL);
    return now_us() - t0;
}

/* The cost of pool hygiene: a SET on a pooled session is followed by DISCARD ALL when its
   connection returns (PGSESS_RESET_DIRTY); on a pinned session, or on a libpq connection, it is
   not. Both pgsess sides are timed against libpq in the same interleaved blocks. `s` needs a
   pool of at least 2: the pinned session holds one connection meanwhile. */
static void workload_dirty(pgsess_session *s, PGconn *c)
{
    long iters = RT_ITERS / 4;
    double *a = dalloc(RT_BLOCKS), *p = dalloc(RT_BLOCKS), *b = dalloc(RT_BLOCKS);
    double *ratio = dalloc(RT_BLOCKS), *pratio = dalloc(RT_BLOCKS);
    pgsess_error *err = NULL;
    pgsess_session *pinned = pgsess_pin(s, &err);
    long k;
    if (pinned == NULL)
        die("pgsess_pin failed: %s", emsg(err));
    printf("7. a statement that dirties the connection \"%s\": %ld blocks x %ld calls per side\n", DIRTY_SQL,
           RT_BLOCKS, iters);
    dirty_pgsess(s, iters);
    dirty_pgsess(pinned, iters);
    dirty_libpq(c, iters);
    for (k = 0; k < RT_BLOCKS; k++) {
        a[k] = dirty_pgsess(s, iters) / (double)iters;
        p[k] = dirty_pgsess(pinned, iters) / (double)iters;
        b[k] = dirty_libpq(c, iters) / (double)iters;
        ratio[k] = a[k] / b[k];
        pratio[k] = p[k] / b[k];
    }
    pgsess_close(pinned);
    print_stats("pgsess pooled (reset after each) per call", "us", a, RT_BLOCKS);
    print_stats("pgsess pinned per call", "us", p, RT_BLOCKS);
    print_stats("libpq per call", "us", b, RT_BLOCKS);
    print_stats("ratio pooled/libpq", "", ratio, RT_BLOCKS);
    print_stats("ratio pinned/libpq", "", pratio, RT_BLOCKS);
    add_row("7. `SET application_name` on a pooled session (DIRTY: DISCARD ALL on return), per call",
            median(a, (size_t)RT_BLOCKS), median(b, (size_t)RT_BLOCKS), "us", median(ratio, (size_t)RT_BLOCKS),
            INFO, 0, "the price of the reset");
    add_row("7. (extra) the same on a pinned session (no reset), per call", median(p, (size_t)RT_BLOCKS),
            median(b, (size_t)RT_BLOCKS), "us", median(pratio, (size_t)RT_BLOCKS), INFO, 0, "-");
    free(a);
    free(p);
    free(b);
    free(ratio);
    free(pratio);
}

/* ------------------------------------------------------------------------------------------ */
/* Workload 2: bulk fetch                                                                      */

struct bulk_sum {
    unsigned long long len, first; /* sum of value lengths, sum of first bytes */
    long rows;
};

struct bulk_time {
    double query, read, free;
    long minflt; /* minor page faults during the whole fetch (query, read, free) */
};

static long minflt_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

static void bulk_read_pgsess(const pgsess_results *r, struct bulk_sum *out)
{
    size_t nrows = pgsess_results_nrows(r), ncols = pgsess_results_ncols(r), i, j;
    unsigned long long len = 0, first = 0;
    if ((long)nrows != BULK_ROWS || ncols != 5)
        die("pgsess bulk: %zu rows x %zu columns, expected %ld x 5", nrows, ncols, BULK_ROWS);
    for (i = 0; i < nrows; i++)
        for (j = 0; j < ncols; j++) {
            const char *v = pgsess_results_value(r, i, j);
            if (v == NULL)
                die("pgsess bulk: NULL at (%zu, %zu)", i, j);
            len += strlen(v);
            first += (unsigned char)v[0];
        }
    out->len = len;
    out->first = first;
    out->rows = (long)nrows;
}

/* The same reading through the row-wise accessor: one call per row fills 5 value pointers. */
static void bulk_read_pgsess_rows(const pgsess_results *r, struct bulk_sum *out)
{
    size_t nrows = pgsess_results_nrows(r), ncols = pgsess_results_ncols(r), i, j;
    unsigned long long len = 0, first = 0;
    const char *vals[5];
    if ((long)nrows != BULK_ROWS || ncols != 5)
        die("pgsess bulk: %zu rows x %zu columns, expected %ld x 5", nrows, ncols, BULK_ROWS);
    for (i = 0; i < nrows; i++) {
        if (pgsess_results_row(r, i, vals, NULL, 5) != 5)
            die("pgsess_results_row(%zu) did not fill 5 columns", i);
        for (j = 0; j < 5; j++) {
            const char *v = vals[j];
            if (v == NULL)
                die("pgsess bulk: NULL at (%zu, %zu)", i, j);
            len += strlen(v);
            first += (unsigned char)v[0];
        }
    }
    out->len = len;
    out->first = first;
    out->rows = (long)nrows;
}

static void bulk_read_libpq(const PGresult *r, struct bulk_sum *out)
{
    int nrows = PQntuples(r), ncols = PQnfields(r), i, j;
    unsigned long long len = 0, first = 0;
    if (nrows != BULK_ROWS || ncols != 5)
        die("libpq bulk: %d rows x %d columns, expected %ld x 5", nrows, ncols, BULK_ROWS);
    for (i = 0; i < nrows; i++)
        for (j = 0; j < ncols; j++) {
            /* No PQgetisnull here: pgsess learns NULL from the pointer at no extra cost, and the
             * table has no NULLs (the pgsess side and the equal checksums prove it). */
            const char *v = PQgetvalue(r, i, j);
            if (v == NULL)
                die("libpq bulk: no value at (%d, %d)", i, j);
            len += strlen(v);
            first += (unsigned char)v[0];
        }
    out->len = len;
    out->first = first;
    out->rows = nrows;
}

static double bulk_pgsess(pgsess_session *s, int rowwise, struct bulk_sum *sum, struct bulk_time *t)
{
    pgsess_error *err = NULL;
    pgsess_results *r;
    long f0 = t ? minflt_now() : 0;
    double t0 = now_us(), t1, t2, t3;
    r = pgsess_query(s, BULK_SQL, 0, NULL, &err);
    if (r == NULL)
        die("pgsess_query(%s) failed: %s", BULK_SQL, emsg(err));
    t1 = now_us();
    if (rowwise)
        bulk_read_pgsess_rows(r, sum);
    else
        bulk_read_pgsess(r, sum);
    t2 = now_us();
    pgsess_results_free(r);
    t3 = now_us();
    if (t) {
        t->query = t1 - t0;
        t->read = t2 - t1;
        t->free = t3 - t2;
        t->minflt = minflt_now() - f0;
    }
    return t3 - t0;
}

static double bulk_libpq(PGconn *c, struct bulk_sum *sum, struct bulk_time *t)
{
    PGresult *r;
    long f0 = t ? minflt_now() : 0;
    double t0 = now_us(), t1, t2, t3;
    r = PQexec(c, BULK_SQL);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        die("PQexec(%s) failed: %s", BULK_SQL, PQerrorMessage(c));
    t1 = now_us();
    bulk_read_libpq(r, sum);
    t2 = now_us();
    PQclear(r);
    t3 = now_us();
    if (t) {
        t->query = t1 - t0;
        t->read = t2 - t1;
        t->free = t3 - t2;
        t->minflt = minflt_now() - f0;
    }
    return t3 - t0;
}

/* The server's floor: a client that sends the same Query message on a libpq connection's socket
 * and reads the reply, following only the message framing (type + length) to count the DataRow
 * messages and find ReadyForQuery. No client can finish the fetch sooner than this, whatever it
 * does with the rows, so floor/libpq bounds any client's ratio from below. */
static double bulk_floor(PGconn *c)
{
    static unsigned char buf[1 << 16];
    int fd = PQsocket(c), flags = fcntl(fd, F_GETFL);
    size_t sql_len = strlen(BULK_SQL) + 1, need = 5, have = 0;
    uint32_t len = htonl((uint32_t)(4 + sql_len));
    unsigned char hdr[5], type = 0;
    int in_body = 0, done = 0;
    long rows = 0;
    double t0;
    fcntl(fd, F_SETFL, flags & ~O_NONBLOCK); /* libpq keeps its socket non-blocking */
    t0 = now_us();
    hdr[0] = 'Q';
    memcpy(hdr + 1, &len, 4);
    if (send(fd, hdr, 5, 0) != 5 || send(fd, BULK_SQL, sql_len, 0) != (ssize_t)sql_len)
        die("floor: send failed");
    while (!done) {
        ssize_t n = read(fd, buf, sizeof buf), i = 0;
        if (n <= 0)
            die("floor: read failed");
        while (i < n && !done) {
            if (!in_body) { /* collecting the 5-byte header into hdr */
                hdr[5 - need] = buf[i++];
                if (--need == 0) {
                    type = hdr[0];
                    memcpy(&len, hdr + 1, 4);
                    need = ntohl(len) - 4, in_body = 1;
                    rows += type == 'D';
                    if (type == 'E')
                        die("floor: the server returned an error");
                }
            } else {
                have = (size_t)(n - i) < need ? (size_t)(n - i) : need;
                i += (ssize_t)have, need -= have;
            }
            if (in_body && need == 0) {
                in_body = 0, need = 5;
                done = type == 'Z';
            }
        }
    }
    fcntl(fd, F_SETFL, flags);
    if (rows != BULK_ROWS)
        die("floor: %ld DataRow messages, expected %ld", rows, BULK_ROWS);
    return now_us() - t0;
}

static struct bulk_sum BULK_EXPECTED;

static void check_bulk(const char *side, const struct bulk_sum *got)
{
    if (got->len != BULK_EXPECTED.len || got->first != BULK_EXPECTED.first || got->rows != BULK_EXPECTED.rows)
        die("bulk %s: checksum (%ld rows, len %llu, first %llu) differs from (%ld, %llu, %llu)", side, got->rows,
            got->len, got->first, BULK_EXPECTED.rows, BULK_EXPECTED.len, BULK_EXPECTED.first);
}

static void workload_bulk(pgsess_session *s, PGconn *c)
{
    double *a = dalloc(BULK_BLOCKS), *b = dalloc(BULK_BLOCKS), *ratio = dalloc(BULK_BLOCKS);
    double *aq = dalloc(BULK_BLOCKS), *ar = dalloc(BULK_BLOCKS), *af = dalloc(BULK_BLOCKS);
    double *bq = dalloc(BULK_BLOCKS), *br = dalloc(BULK_BLOCKS), *bf = dalloc(BULK_BLOCKS);
    double *w = dalloc(BULK_BLOCKS), *wr = dalloc(BULK_BLOCKS), *wratio = dalloc(BULK_BLOCKS);
    double *afl = dalloc(BULK_BLOCKS), *bfl = dalloc(BULK_BLOCKS);
    double *fl = dalloc(BULK_BLOCKS), *flratio = dalloc(BULK_BLOCKS);
    PGconn *raw = pq_connect();
    struct bulk_sum sa, sb, sw;
    struct bulk_time ta, tb, tw;
    long k;
    printf("2. bulk fetch \"%s\": %ld rows x 5 columns, %ld blocks of one fetch per side, 1 warm-up each;\n"
           "   sides: pgsess_results_value per cell, libpq PQgetvalue per cell, extra: pgsess_results_row per row\n",
           BULK_SQL, BULK_ROWS, BULK_BLOCKS);
    bulk_libpq(c, &BULK_EXPECTED, NULL);
    bulk_pgsess(s, 0, &sa, NULL);
    check_bulk("pgsess", &sa);
    bulk_pgsess(s, 1, &sw, NULL);
    check_bulk("pgsess (rows)", &sw);
    bulk_floor(raw);
    for (k = 0; k < BULK_BLOCKS; k++) {
        a[k] = bulk_pgsess(s, 0, &sa, &ta) / 1000.0;
        b[k] = bulk_libpq(c, &sb, &tb) / 1000.0;
        w[k] = bulk_pgsess(s, 1, &sw, &tw) / 1000.0;
        fl[k] = bulk_floor(raw) / 1000.0;
        flratio[k] = fl[k] / b[k];
        check_bulk("pgsess", &sa);
        check_bulk("libpq", &sb);
        check_bulk("pgsess (rows)", &sw);
        ratio[k] = a[k] / b[k];
        wratio[k] = w[k] / b[k];
        aq[k] = ta.query / 1000.0, ar[k] = ta.read / 1000.0, af[k] = ta.free / 1000.0;
        bq[k] = tb.query / 1000.0, br[k] = tb.read / 1000.0, bf[k] = tb.free / 1000.0;
        wr[k] = tw.read / 1000.0;
        afl[k] = (double)ta.minflt, bfl[k] = (double)tb.minflt;
    }
    printf("    (each fetch reads %ld values, %llu bytes of text)\n", BULK_ROWS * 5, BULK_EXPECTED.len);
    print_stats("pgsess per fetch", "ms", a, BULK_BLOCKS);
    print_stats("  pgsess_query (until returned)", "ms", aq, BULK_BLOCKS);
    print_stats("  reading every value", "ms", ar, BULK_BLOCKS);
    print_stats("  pgsess_results_free", "ms", af, BULK_BLOCKS);
    print_stats("libpq per fetch", "ms", b, BULK_BLOCKS);
    print_stats("  PQexec (until returned)", "ms", bq, BULK_BLOCKS);
    print_stats("  reading every value", "ms", br, BULK_BLOCKS);
    print_stats("  PQclear", "ms", bf, BULK_BLOCKS);
    print_stats("pgsess minor page faults per fetch", "", afl, BULK_BLOCKS);
    print_stats("libpq minor page faults per fetch", "", bfl, BULK_BLOCKS);
    print_stats("pgsess (row accessor) per fetch", "ms", w, BULK_BLOCKS);
    print_stats("  reading every value, by row", "ms", wr, BULK_BLOCKS);
    print_stats("server floor (framing only) per fetch", "ms", fl, BULK_BLOCKS);
    print_stats("ratio pgsess/libpq", "", ratio, BULK_BLOCKS);
    print_stats("ratio pgsess (row accessor)/libpq", "", wratio, BULK_BLOCKS);
    print_stats("ratio server floor/libpq", "", flratio, BULK_BLOCKS);
    {
        char label[96];
        snprintf(label, sizeof label, "2. bulk fetch %ld rows x 5 cols, every value read, per fetch", BULK_ROWS);
        add_row(label, median(a, (size_t)BULK_BLOCKS), median(b, (size_t)BULK_BLOCKS), "ms",
                median(ratio, (size_t)BULK_BLOCKS), LOWER, 0.90, "(issue)");
        add_row("2. (extra) the same, pgsess reading with pgsess_results_row", median(w, (size_t)BULK_BLOCKS),
                median(b, (size_t)BULK_BLOCKS), "ms", median(wratio, (size_t)BULK_BLOCKS), INFO, 0, NULL);
        add_row("2. (extra) server floor: a client that only follows the framing, vs libpq", median(fl, (size_t)BULK_BLOCKS),
                median(b, (size_t)BULK_BLOCKS), "ms", median(flratio, (size_t)BULK_BLOCKS), INFO, 0, NULL);
    }
    PQfinish(raw);
    free(a), free(b), free(ratio), free(aq), free(ar), free(af), free(bq), free(br), free(bf);
    free(w), free(wr), free(wratio), free(afl), free(bfl), free(fl), free(flratio);
}

/* ------------------------------------------------------------------------------------------ */
/* Workload 2b: bulk fetch into C types (issue 15)                                              */

/* What every side computes from the 200,000 rows: the sums of the int4 column, of the text
   column's lengths and first bytes, of the timestamptz column in microseconds since 1970 (mod
   2^64), of the float8 column (exact: multiples of 0.5 far below 2^53), and the count of trues. */
struct typed_sum {
    long rows;
    unsigned long long ints, len, first, micros, trues;
    double floats;
};

static void typed_check(const char *side, const struct typed_sum *got, const struct typed_sum *want)
{
    if (got->rows != want->rows || got->ints != want->ints || got->len != want->len || got->first != want->first ||
        got->micros != want->micros || got->trues != want->trues || got->floats != want->floats)
        die("bulk typed %s: checksum (%ld rows, ints %llu, len %llu, first %llu, micros %llu, trues %llu, floats %.1f) "
            "differs from (%ld, %llu, %llu, %llu, %llu, %llu, %.1f)",
            side, got->rows, got->ints, got->len, got->first, got->micros, got->trues, got->floats, want->rows,
            want->ints, want->len, want->first, want->micros, want->trues, want->floats);
}

/* Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static long long days_from_civil(long long y, long m, long d)
{
    long long era, yoe, doy, doe;
    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The server's ISO text of a timestamptz ("2026-12-02 14:30:00.123456+00", fraction and offset
   minutes optional) to microseconds since 1970, strtol-style: what a C program using libpq's
   text results writes for it. */
static long long ts_text_micros(const char *s)
{
    char *e;
    long y = strtol(s, &e, 10), mo = strtol(e + 1, &e, 10), d = strtol(e + 1, &e, 10);
    long h = strtol(e + 1, &e, 10), mi = strtol(e + 1, &e, 10), sec = strtol(e + 1, &e, 10), off = 0;
    long long us = 0;
    int digits = 0;
    if (*e == '.') {
        for (e++; *e >= '0' && *e <= '9'; e++, digits++)
            if (digits < 6)
                us = us * 10 + (*e - '0');
        for (; digits < 6; digits++)
            us *= 10;
    }
    if (*e == '+' || *e == '-') {
        long sign = *e == '-' ? -1 : 1, oh = strtol(e + 1, &e, 10), om = 0, os = 0;
        if (*e == ':') {
            om = strtol(e + 1, &e, 10);
            if (*e == ':')
                os = strtol(e + 1, &e, 10);
        }
        off = sign * (oh * 3600 + om * 60 + os);
    }
    return (days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off) * 1000000LL + us;
}

static uint64_t be64(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    return (uint64_t)u[0] << 56 | (uint64_t)u[1] << 48 | (uint64_t)u[2] << 40 | (uint64_t)u[3] << 32 |
           (uint64_t)u[4] << 24 | (uint64_t)u[5] << 16 | (uint64_t)u[6] << 8 | (uint64_t)u[7];
}

/* PostgreSQL's binary timestamptz counts microseconds from 2000-01-01 00:00 UTC. */
#define PG_EPOCH_UNIX_MICROS 946684800000000LL

/* Workload 2b's rows through pgsess_query_binary, their shape checked. */
static pgsess_results *typed_binary_results(pgsess_session *s)
{
    pgsess_error *err = NULL;
    pgsess_results *r = pgsess_query_binary(s, BULK_SQL, 0, NULL, NULL, NULL, NULL, &err);
    size_t nrows;
    if (r == NULL)
        die("pgsess_query_binary(%s) failed: %s", BULK_SQL, emsg(err));
    nrows = pgsess_results_nrows(r);
    if ((long)nrows != BULK_ROWS || pgsess_results_ncols(r) != 5 || pgsess_results_column_format(r, 0) != 1)
        die("pgsess bulk typed: %zu rows x %zu columns (format %d), expected %ld x 5 in binary", nrows,
            pgsess_results_ncols(r), (int)pgsess_results_column_format(r, 0), BULK_ROWS);
    return r;
}

static double typed_pgsess(pgsess_session *s, struct typed_sum *out)
{
    size_t nrows, i;
    struct typed_sum t = {0, 0, 0, 0, 0, 0, 0};
    double t0 = now_us();
    pgsess_results *r = typed_binary_results(s);
    nrows = pgsess_results_nrows(r);
    for (i = 0; i < nrows; i++) {
        int32_t iv;
        int64_t us;
        double f;
        bool b;
        const char *txt = pgsess_results_value(r, i, 1);
        if (pgsess_results_get_int32(r, i, 0, &iv) != PGSESS_OK || txt == NULL ||
            pgsess_results_get_epoch_micros(r, i, 2, &us) != PGSESS_OK ||
            pgsess_results_get_double(r, i, 3, &f) != PGSESS_OK || pgsess_results_get_bool(r, i, 4, &b) != PGSESS_OK)
            die("pgsess bulk typed: a getter failed on row %zu", i);
        t.ints += (unsigned long long)(long long)iv;
        t.len += pgsess_results_value_length(r, i, 1);
        t.first += (unsigned char)txt[0];
        t.micros += (unsigned long long)us;
        t.floats += f;
        t.trues += b;
    }
    t.rows = (long)nrows;
    pgsess_results_free(r);
    *out = t;
    return now_us() - t0;
}

/* typed_pgsess with the rows read a block at a time: one column getter call per typed column
   and one pgsess_results_column_cells call (for the text column) per block of TYPED_BLOCK rows. */
#define TYPED_BLOCK 1024
static double typed_pgsess_columns(pgsess_session *s, struct typed_sum *out)
{
    static int64_t ints[TYPED_BLOCK], micros[TYPED_BLOCK];
    static double floats[TYPED_BLOCK];
    static bool bools[TYPED_BLOCK];
    static const char *texts[TYPED_BLOCK];
    static size_t lens[TYPED_BLOCK];
    size_t nrows, i, k, n;
    struct typed_sum t = {0, 0, 0, 0, 0, 0, 0};
    double t0 = now_us();
    pgsess_results *r = typed_binary_results(s);
    nrows = pgsess_results_nrows(r);
    for (i = 0; i < nrows; i += n) {
        n = nrows - i < TYPED_BLOCK ? nrows - i : TYPED_BLOCK;
        if (pgsess_results_get_int64_column(r, 0, i, n, ints, NULL, NULL) != PGSESS_OK ||
            pgsess_results_get_epoch_micros_column(r, 2, i, n, micros, NULL, NULL) != PGSESS_OK ||
            pgsess_results_get_double_column(r, 3, i, n, floats, NULL, NULL) != PGSESS_OK ||
            pgsess_results_get_bool_column(r, 4, i, n, bools, NULL, NULL) != PGSESS_OK ||
            pgsess_results_column_cells(r, 1, i, n, texts, lens) != n)
            die("pgsess bulk typed: a column getter failed on rows %zu..%zu", i, i + n);
        for (k = 0; k < n; k++) {
            t.ints += (unsigned long long)ints[k];
            t.len += lens[k];
            t.first += (unsigned char)texts[k][0];
            t.micros += (unsigned long long)micros[k];
            t.floats += floats[k];
            t.trues += bools[k];
        }
    }
    t.rows = (long)nrows;
    pgsess_results_free(r);
    *out = t;
    return now_us() - t0;
}

static double typed_libpq_text(PGconn *c, struct typed_sum *out)
{
    PGresult *r;
    int nrows, i;
    struct typed_sum t = {0, 0, 0, 0, 0, 0, 0};
    double t0 = now_us();
    r = PQexecParams(c, BULK_SQL, 0, NULL, NULL, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        die("PQexecParams(%s) failed: %s", BULK_SQL, PQerrorMessage(c));
    nrows = PQntuples(r);
    if (nrows != BULK_ROWS || PQnfields(r) != 5)
        die("libpq bulk typed (text): %d rows x %d columns, expected %ld x 5", nrows, PQnfields(r), BULK_ROWS);
    for (i = 0; i < nrows; i++) {
        const char *txt = PQgetvalue(r, i, 1);
        t.ints += (unsigned long long)(long long)atoi(PQgetvalue(r, i, 0));
        t.len += (unsigned long long)PQgetlength(r, i, 1);
        t.first += (unsigned char)txt[0];
        t.micros += (unsigned long long)ts_text_micros(PQgetvalue(r, i, 2));
        t.floats += strtod(PQgetvalue(r, i, 3), NULL);
        t.trues += PQgetvalue(r, i, 4)[0] == 't';
    }
    t.rows = nrows;
    PQclear(r);
    *out = t;
    return now_us() - t0;
}

static double typed_libpq_binary(PGconn *c, struct typed_sum *out)
{
    PGresult *r;
    int nrows, i;
    struct typed_sum t = {0, 0, 0, 0, 0, 0, 0};
    double t0 = now_us();
    r = PQexecParams(c, BULK_SQL, 0, NULL, NULL, NULL, NULL, 1);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        die("PQexecParams(%s, binary) failed: %s", BULK_SQL, PQerrorMessage(c));
    nrows = PQntuples(r);
    if (nrows != BULK_ROWS || PQnfields(r) != 5)
        die("libpq bulk typed (binary): %d rows x %d columns, expected %ld x 5", nrows, PQnfields(r), BULK_ROWS);
    for (i = 0; i < nrows; i++) {
        uint32_t iv;
        uint64_t fb;
        double f;
        const char *txt = PQgetvalue(r, i, 1);
        memcpy(&iv, PQgetvalue(r, i, 0), 4);
        t.ints += (unsigned long long)(long long)(int32_t)ntohl(iv);
        t.len += (unsigned long long)PQgetlength(r, i, 1);
        t.first += (unsigned char)txt[0];
        t.micros += (unsigned long long)((long long)be64(PQgetvalue(r, i, 2)) + PG_EPOCH_UNIX_MICROS);
        fb = be64(PQgetvalue(r, i, 3));
        memcpy(&f, &fb, 8);
        t.floats += f;
        t.trues += PQgetvalue(r, i, 4)[0] != 0;
    }
    t.rows = nrows;
    PQclear(r);
    *out = t;
    return now_us() - t0;
}

/* Three sides per block, order rotating: pgsess binary + typed getters, libpq text + parsing,
   libpq binary + ntohl/be64. Same rows (workload 2's table), same checksums. */
static void workload_bulk_typed(pgsess_session *s, PGconn *c)
{
    double *a = dalloc(BULK_BLOCKS), *b = dalloc(BULK_BLOCKS), *bb = dalloc(BULK_BLOCKS);
    double *rt = dalloc(BULK_BLOCKS), *rbin = dalloc(BULK_BLOCKS);
    double *ac = dalloc(BULK_BLOCKS), *rct = dalloc(BULK_BLOCKS), *rcbin = dalloc(BULK_BLOCKS);
    double *acs = dalloc(BULK_BLOCKS), *bbs = dalloc(BULK_BLOCKS);
    struct typed_sum want, got;
    long k;
    double s0;
    printf("2b. bulk fetch into C types \"%s\": %ld rows, %ld blocks of one fetch per side, 1 warm-up each;\n"
           "    sides: pgsess_query_binary + typed getters (per value, and per column a block of rows at a time),\n"
           "    libpq text + atoi/strtod/strtol, libpq binary + ntohl/be64\n",
           BULK_SQL, BULK_ROWS, BULK_BLOCKS);
    typed_libpq_text(c, &want);
    typed_pgsess(s, &got);
    typed_check("pgsess", &got, &want);
    typed_libpq_binary(c, &got);
    typed_check("libpq binary", &got, &want);
    typed_pgsess_columns(s, &got);
    typed_check("pgsess columns", &got, &want);
    for (k = 0; k < BULK_BLOCKS; k++) {
        int j;
        for (j = 0; j < 4; j++) {
            switch ((j + k) % 4) {
            case 0:
                a[k] = typed_pgsess(s, &got) / 1000.0;
                typed_check("pgsess", &got, &want);
                break;
            case 1:
                b[k] = typed_libpq_text(c, &got) / 1000.0;
                typed_check("libpq text", &got, &want);
                break;
            case 2:
                s0 = sleeps_now();
                ac[k] = typed_pgsess_columns(s, &got) / 1000.0;
                acs[k] = sleeps_now() - s0;
                typed_check("pgsess columns", &got, &want);
                break;
            default:
                s0 = sleeps_now();
                bb[k] = typed_libpq_binary(c, &got) / 1000.0;
                bbs[k] = sleeps_now() - s0;
                typed_check("libpq binary", &got, &want);
            }
        }
        rt[k] = a[k] / b[k];
        rbin[k] = a[k] / bb[k];
        rct[k] = ac[k] / b[k];
        rcbin[k] = ac[k] / bb[k];
    }
    print_stats("pgsess binary + getters per fetch", "ms", a, BULK_BLOCKS);
    print_stats("libpq text + parsing per fetch", "ms", b, BULK_BLOCKS);
    print_stats("libpq binary + decoding per fetch", "ms", bb, BULK_BLOCKS);
    print_stats("pgsess binary + column getters per fetch", "ms", ac, BULK_BLOCKS);
    print_stats("ratio pgsess/libpq text", "", rt, BULK_BLOCKS);
    print_stats("ratio pgsess/libpq binary", "", rbin, BULK_BLOCKS);
    print_stats("ratio pgsess columns/libpq text", "", rct, BULK_BLOCKS);
    print_stats("ratio pgsess columns/libpq binary", "", rcbin, BULK_BLOCKS);
    print_stats("pgsess column getters sleeps (voluntary switches) per fetch", "", acs, BULK_BLOCKS);
    print_stats("libpq binary sleeps (voluntary switches) per fetch", "", bbs, BULK_BLOCKS);
    add_row("2b. bulk fetch into C types: pgsess binary + getters vs libpq text + parsing",
            median(a, (size_t)BULK_BLOCKS), median(b, (size_t)BULK_BLOCKS), "ms", median(rt, (size_t)BULK_BLOCKS),
            LOWER, 0.80, "(issue 15)");
    add_row("2b. bulk fetch into C types: pgsess binary + getters vs libpq binary + ntohl",
            median(a, (size_t)BULK_BLOCKS), median(bb, (size_t)BULK_BLOCKS), "ms",
            median(rbin, (size_t)BULK_BLOCKS), LOWER, 1.00, "(issue 15)");
    add_row("2b. bulk fetch into C types: pgsess binary + column getters (a block of rows per call) vs libpq "
            "binary + ntohl",
            median(ac, (size_t)BULK_BLOCKS), median(bb, (size_t)BULK_BLOCKS), "ms",
            median(rcbin, (size_t)BULK_BLOCKS), LOWER, 1.00, "(issue 15)");
    add_row("2b. (extra) pgsess binary + column getters vs libpq text + parsing", median(ac, (size_t)BULK_BLOCKS),
            median(b, (size_t)BULK_BLOCKS), "ms", median(rct, (size_t)BULK_BLOCKS), INFO, 0, NULL);
    add_row("2b. (extra) sleeps (voluntary context switches) per fetch: pgsess column getters vs libpq binary",
            median(acs, (size_t)BULK_BLOCKS), median(bbs, (size_t)BULK_BLOCKS), "",
            median(bbs, (size_t)BULK_BLOCKS) > 0 ? median(acs, (size_t)BULK_BLOCKS) / median(bbs, (size_t)BULK_BLOCKS) : -1,
            INFO, 0, NULL);
    free(a), free(b), free(bb), free(rt), free(rbin), free(ac), free(rct), free(rcbin), free(acs), free(bbs);
}

/* ------------------------------------------------------------------------------------------ */
/* Workload 3: concurrency                                                                     */

struct connpool { /* the hand-rolled libpq pool: a mutex-protected free list */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    PGconn *free[64];
    int nfree;
};

static PGconn *cp_get(struct connpool *p)
{
    PGconn *c;
    pthread_mutex_lock(&p->mu);
    while (p->nfree == 0)
        pthread_cond_wait(&p->cv, &p->mu);
    c = p->free[--p->nfree];
    pthread_mutex_unlock(&p->mu);
    return c;
}

static void cp_put(struct connpool *p, PGconn *c)
{
    pthread_mutex_lock(&p->mu);
    p->free[p->nfree++] = c;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

enum conc_side { PGSESS_SHARED, LIBPQ_OWN, LIBPQ_FREELIST };

struct worker {
    enum conc_side side;
    pgsess_session *s;
    PGconn *conn;
    struct connpool *pool;
    long base, n;
    double *lat; /* n latencies, us */
    unsigned long long sum;
    pthread_barrier_t *bar;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    long i;
    pthread_barrier_wait(w->bar);
    for (i = 0; i < w->n; i++) {
        char in[24], want[24];
        const char *params[1];
        const char *v;
        double t0 = now_us();
        snprintf(in, sizeof in, "%ld", w->base + i);
        snprintf(want, sizeof want, "%ld", w->base + i + 1);
        params[0] = in;
        if (w->side == PGSESS_SHARED) {
            pgsess_error *err = NULL;
            pgsess_results *r = pgsess_query(w->s, RT_SQL, 1, params, &err);
            if (r == NULL)
                die("pgsess_query (thread) failed: %s", emsg(err));
            v = pgsess_results_value(r, 0, 0);
            if (v == NULL || strcmp(v, want) != 0)
                die("pgsess (thread): wrong answer for %s: %s", in, v ? v : "NULL");
            w->sum += strlen(v);
            pgsess_results_free(r);
        } else {
            PGconn *c = w->side == LIBPQ_OWN ? w->conn : cp_get(w->pool);
            PGresult *r = PQexecParams(c, RT_SQL, 1, NULL, params, NULL, NULL, 0);
            if (PQresultStatus(r) != PGRES_TUPLES_OK)
                die("PQexecParams (thread) failed: %s", PQerrorMessage(c));
            v = PQgetvalue(r, 0, 0);
            if (v == NULL || strcmp(v, want) != 0)
                die("libpq (thread): wrong answer for %s: %s", in, v ? v : "NULL");
            w->sum += strlen(v);
            PQclear(r);
            if (w->side == LIBPQ_FREELIST)
                cp_put(w->pool, c);
        }
        w->lat[i] = now_us() - t0;
    }
    return NULL;
}

struct conc_result {
    double throughput, p50, p99; /* statements/s, us, us */
    double sleeps;               /* voluntary context switches of the process per statement */
    unsigned long long sum;
};

static struct conc_result conc_block(enum conc_side side, int nthreads, long total, pgsess_session *s,
                                     PGconn **conns, struct connpool *pool)
{
    pthread_t th[64];
    struct worker w[64];
    pthread_barrier_t bar;
    double *lat = dalloc(total), t0, t1;
    long per = total / nthreads;
    struct conc_result res = {0, 0, 0, 0, 0};
    double s0;
    int i;
    if (pthread_barrier_init(&bar, NULL, (unsigned)nthreads + 1) != 0)
        die("pthread_barrier_init failed");
    for (i = 0; i < nthreads; i++) {
        w[i].side = side;
        w[i].s = s;
        w[i].conn = conns ? conns[i] : NULL;
        w[i].pool = pool;
        w[i].base = (long)i * per;
        w[i].n = per;
        w[i].lat = lat + (long)i * per;
        w[i].sum = 0;
        w[i].bar = &bar;
        if (pthread_create(&th[i], NULL, worker_main, &w[i]) != 0)
            die("pthread_create failed");
    }
    pthread_barrier_wait(&bar);
    t0 = now_us();
    s0 = sleeps_now();
    for (i = 0; i < nthreads; i++) {
        pthread_join(th[i], NULL);
        res.sum += w[i].sum;
    }
    t1 = now_us();
    res.sleeps = (sleeps_now() - s0) / (double)(per * nthreads);
    pthread_barrier_destroy(&bar);
    qsort(lat, (size_t)(per * nthreads), sizeof *lat, cmp_double);
    res.throughput = (double)(per * nthreads) / ((t1 - t0) / 1e6);
    res.p50 = quantile_sorted(lat, (size_t)(per * nthreads), 0.50);
    res.p99 = quantile_sorted(lat, (size_t)(per * nthreads), 0.99);
    free(lat);
    return res;
}

static void conc_config(const char *name, int nthreads, pgsess_session *s8, PGconn **conns)
{
    double *at = dalloc(CONC_BLOCKS), *bt = dalloc(CONC_BLOCKS), *rt = dalloc(CONC_BLOCKS);
    double *a50 = dalloc(CONC_BLOCKS), *b50 = dalloc(CONC_BLOCKS), *r50 = dalloc(CONC_BLOCKS);
    double *a99 = dalloc(CONC_BLOCKS), *b99 = dalloc(CONC_BLOCKS), *r99 = dalloc(CONC_BLOCKS);
    double *asl = dalloc(CONC_BLOCKS), *bsl = dalloc(CONC_BLOCKS);
    struct connpool pool;
    enum conc_side lside = nthreads <= 8 ? LIBPQ_OWN : LIBPQ_FREELIST;
    long k;
    int i;
    char label[96];
    pthread_mutex_init(&pool.mu, NULL);
    pthread_cond_init(&pool.cv, NULL);
    for (i = 0; i < 8; i++)
        pool.free[i] = conns[i];
    pool.nfree = 8;

    printf("3. %s: %ld statements per block, %ld blocks per side, 1 warm-up block each\n", name,
           (CONC_TOTAL / nthreads) * nthreads, CONC_BLOCKS);
    conc_block(PGSESS_SHARED, nthreads, CONC_TOTAL, s8, NULL, NULL);
    conc_block(lside, nthreads, CONC_TOTAL, NULL, conns, &pool);
    for (k = 0; k < CONC_BLOCKS; k++) {
        struct conc_result a = conc_block(PGSESS_SHARED, nthreads, CONC_TOTAL, s8, NULL, NULL);
        struct conc_result b = conc_block(lside, nthreads, CONC_TOTAL, NULL, conns, &pool);
        if (a.sum != b.sum)
            die("concurrency: value lengths differ (pgsess %llu, libpq %llu)", a.sum, b.sum);
        at[k] = a.throughput, bt[k] = b.throughput, rt[k] = a.throughput / b.throughput;
        a50[k] = a.p50, b50[k] = b.p50, r50[k] = a.p50 / b.p50;
        a99[k] = a.p99, b99[k] = b.p99, r99[k] = a.p99 / b.p99;
        asl[k] = a.sleeps, bsl[k] = b.sleeps;
    }
    print_stats("pgsess throughput", "stmt/s", at, CONC_BLOCKS);
    print_stats("libpq throughput", "stmt/s", bt, CONC_BLOCKS);
    print_stats("ratio pgsess/libpq throughput", "", rt, CONC_BLOCKS);
    print_stats("pgsess p50 latency", "us", a50, CONC_BLOCKS);
    print_stats("libpq p50 latency", "us", b50, CONC_BLOCKS);
    print_stats("pgsess p99 latency", "us", a99, CONC_BLOCKS);
    print_stats("libpq p99 latency", "us", b99, CONC_BLOCKS);
    print_stats("pgsess sleeps per statement", "", asl, CONC_BLOCKS);
    print_stats("libpq sleeps per statement", "", bsl, CONC_BLOCKS);
    snprintf(label, sizeof label, "3. %s: throughput", name);
    add_row(label, median(at, (size_t)CONC_BLOCKS), median(bt, (size_t)CONC_BLOCKS), "stmt/s",
            median(rt, (size_t)CONC_BLOCKS), HIGHER, nthreads > 8 ? 1.00 : 0.95, nthreads > 8 ? "(issue 15)" : "(issue)");
    snprintf(label, sizeof label, "3. %s: p50 latency", name);
    add_row(label, median(a50, (size_t)CONC_BLOCKS), median(b50, (size_t)CONC_BLOCKS), "us",
            median(r50, (size_t)CONC_BLOCKS), INFO, 0, NULL);
    snprintf(label, sizeof label, "3. %s: p99 latency", name);
    add_row(label, median(a99, (size_t)CONC_BLOCKS), median(b99, (size_t)CONC_BLOCKS), "us",
            median(r99, (size_t)CONC_BLOCKS), LOWER, 1.00, "(issue: p99 no worse)");
    snprintf(label, sizeof label, "3. %d threads: sleeps (voluntary context switches) per statement", nthreads);
    add_row(label, median(asl, (size_t)CONC_BLOCKS), median(bsl, (size_t)CONC_BLOCKS), "",
            median(bsl, (size_t)CONC_BLOCKS) > 0 ? median(asl, (size_t)CONC_BLOCKS) / median(bsl, (size_t)CONC_BLOCKS) : -1,
            INFO, 0, NULL);
    free(asl), free(bsl);
    pthread_mutex_destroy(&pool.mu);
    pthread_cond_destroy(&pool.cv);
    free(at), free(bt), free(rt), free(a50), free(b50), free(r50), free(a99), free(b99), free(r99);
}

static void workload_concurrency(pgsess_session *s8)
{
    PGconn *conns[8];
    int i;
    for (i = 0; i < 8; i++)
        conns[i] = pq_connect();
    conc_config("8 threads: one session (pool 8) vs a connection each", 8, s8, conns);
    conc_config("64 threads on 8 connections (pgsess pool 8 vs libpq mutex free list)", 64, s8, conns);
    for (i = 0; i < 8; i++)
        PQfinish(conns[i]);
}

/* ------------------------------------------------------------------------------------------ */
/* Workload 4: connect cost avoided                                                            */

/* Per-phase time of one side's requests, us: open/connect, statement, close/finish. */
struct phases {
    double open, stmt, close;
};

static double connect_pgsess(long base, long n, unsigned long long *sum, struct phases *ph)
{
    long i;
    double t0 = now_us();
    for (i = 0; i < n; i++) {
        double a = now_us(), b, c;
        pgsess_session *s = ps_open(8); /* the warm pool-8 pool of workload 3 */
        b = now_us();
        rt_pgsess(s, base + i, 1, sum);
        c = now_us();
        pgsess_close(s);
        ph->open += b - a, ph->stmt += c - b, ph->close += now_us() - c;
    }
    return now_us() - t0;
}

static double connect_libpq(long base, long n, unsigned long long *sum, struct phases *ph)
{
    long i;
    double t0 = now_us();
    for (i = 0; i < n; i++) {
        double a = now_us(), b, c;
        PGconn *conn = pq_connect();
        b = now_us();
        rt_libpq(conn, base + i, 1, sum);
        c = now_us();
        PQfinish(conn);
        ph->open += b - a, ph->stmt += c - b, ph->close += now_us() - c;
    }
    return now_us() - t0;
}

static void workload_connect(void)
{
    double *a = dalloc(CONN_BLOCKS), *b = dalloc(CONN_BLOCKS), *ratio = dalloc(CONN_BLOCKS);
    double *ao = dalloc(CONN_BLOCKS), *as = dalloc(CONN_BLOCKS), *ac = dalloc(CONN_BLOCKS);
    double *bo = dalloc(CONN_BLOCKS), *bs = dalloc(CONN_BLOCKS), *bc = dalloc(CONN_BLOCKS);
    unsigned long long sa = 0, sb = 0;
    struct phases pa, pb;
    long k;
    printf("4. connect cost avoided: %ld blocks x %ld requests per side, 2 warm-up requests each\n", CONN_BLOCKS,
           CONN_REQS);
    printf("    request = pgsess_open + \"%s\" + pgsess_close (warm pool 8)\n", RT_SQL);
    printf("           vs PQconnectdb + \"%s\" + PQfinish\n", RT_SQL);
    connect_pgsess(0, 2, &sa, &pa);
    connect_libpq(0, 2, &sb, &pb);
    for (k = 0; k < CONN_BLOCKS; k++) {
        memset(&pa, 0, sizeof pa);
        memset(&pb, 0, sizeof pb);
        a[k] = connect_pgsess(k * CONN_REQS, CONN_REQS, &sa, &pa) / (double)CONN_REQS;
        b[k] = connect_libpq(k * CONN_REQS, CONN_REQS, &sb, &pb) / (double)CONN_REQS;
        ratio[k] = a[k] / b[k];
        ao[k] = pa.open / (double)CONN_REQS, as[k] = pa.stmt / (double)CONN_REQS, ac[k] = pa.close / (double)CONN_REQS;
        bo[k] = pb.open / (double)CONN_REQS, bs[k] = pb.stmt / (double)CONN_REQS, bc[k] = pb.close / (double)CONN_REQS;
    }
    if (sa != sb)
        die("connect: value lengths differ (pgsess %llu, libpq %llu)", sa, sb);
    print_stats("pgsess per request", "us", a, CONN_BLOCKS);
    print_stats("  pgsess_open", "us", ao, CONN_BLOCKS);
    print_stats("  statement", "us", as, CONN_BLOCKS);
    print_stats("  pgsess_close", "us", ac, CONN_BLOCKS);
    print_stats("libpq per request", "us", b, CONN_BLOCKS);
    print_stats("  PQconnectdb", "us", bo, CONN_BLOCKS);
    print_stats("  statement", "us", bs, CONN_BLOCKS);
    print_stats("  PQfinish", "us", bc, CONN_BLOCKS);
    print_stats("ratio pgsess/libpq", "", ratio, CONN_BLOCKS);
    printf("    pgsess is %.1fx faster per request (median of per-block ratios)\n",
           1.0 / median(ratio, (size_t)CONN_BLOCKS));
    add_row("4. connect cost avoided: open + statement + close, per request", median(a, (size_t)CONN_BLOCKS),
            median(b, (size_t)CONN_BLOCKS), "us", median(ratio, (size_t)CONN_BLOCKS), LOWER, 0.10,
            "(10x faster; issue)");
    free(a), free(b), free(ratio), free(ao), free(as), free(ac), free(bo), free(bs), free(bc);
}

/* ------------------------------------------------------------------------------------------ */
/* Workload 5: memory (child processes)                                                        */

static long maxrss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss; /* kilobytes on Linux */
}

/* VmHWM of /proc/self/status in kB (this address space's peak, reset by exec), -1 if unknown. */
static long vmhwm_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0) {
            v = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

/* The child: connect, warm up, baseline, fetch and read the bulk result, peak. */
static int mem_child(const char *side)
{
    struct bulk_sum sum;
    long base, peak, hbase, hpeak;
    unsigned long long dummy = 0;
    if (strcmp(side, "pgsess") == 0) {
        pgsess_session *s = ps_open(1);
        pgsess_error *err = NULL;
        pgsess_results *r;
        rt_pgsess(s, 0, 10, &dummy);
        base = maxrss_kb(), hbase = vmhwm_kb();
        r = pgsess_query(s, BULK_SQL, 0, NULL, &err);
        if (r == NULL)
            die("pgsess_query(%s) failed: %s", BULK_SQL, emsg(err));
        bulk_read_pgsess(r, &sum);
        peak = maxrss_kb(), hpeak = vmhwm_kb();
        pgsess_results_free(r);
        pgsess_close(s);
    } else if (strcmp(side, "libpq") == 0) {
        PGconn *c = pq_connect();
        PGresult *r;
        rt_libpq(c, 0, 10, &dummy);
        base = maxrss_kb(), hbase = vmhwm_kb();
        r = PQexec(c, BULK_SQL);
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
            die("PQexec(%s) failed: %s", BULK_SQL, PQerrorMessage(c));
        bulk_read_libpq(r, &sum);
        peak = maxrss_kb(), hpeak = vmhwm_kb();
        PQclear(r);
        PQfinish(c);
    } else {
        die("mem: side must be pgsess or libpq");
        return 2;
    }
    printf("MEM %ld %ld %ld %ld %ld %llu %llu\n", base, peak, hbase, hpeak, sum.rows, sum.len, sum.first);
    return 0;
}

static char SELF[4096];

/*
 * ru_maxrss survives execve: a child forked from this (by then large) process and exec'd starts
 * with the parent's high-water mark, which would hide the baseline. So the memory children are
 * launched by a spawner forked at start-up, while this process is still small: it reads
 * "SIDE TABLE ROWS" lines and answers each with the child's MEM line (or FAIL).
 */
static FILE *SPAWN_REQ, *SPAWN_RESP;
static pid_t SPAWNER;
static long SPAWNER_MAXRSS;

static void spawner_loop(int in_fd, int out_fd)
{
    FILE *in = fdopen(in_fd, "r");
    char line[512];
    if (in == NULL)
        _exit(1);
    while (fgets(line, sizeof line, in)) {
        char side[16], table[128], rows[24];
        int status;
        pid_t pid;
        if (sscanf(line, "%15s %127s %23s", side, table, rows) != 3)
            break;
        pid = fork();
        if (pid == 0) {
            char *argv[6];
            argv[0] = SELF;
            argv[1] = (char *)"mem";
            argv[2] = side;
            argv[3] = table;
            argv[4] = rows;
            argv[5] = NULL;
            dup2(out_fd, 1);
            execv(SELF, argv);
            _exit(127);
        }
        if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            char msg[64];
            int len = snprintf(msg, sizeof msg, "FAIL %d\n", pid < 0 ? -1 : status);
            if (write(out_fd, msg, (size_t)len) < 0)
                _exit(1);
        }
    }
    _exit(0);
}

static void start_spawner(void)
{
    int req[2], resp[2];
    SPAWNER_MAXRSS = maxrss_kb();
    if (pipe(req) != 0 || pipe(resp) != 0)
        die("pipe: %s", strerror(errno));
    fflush(stdout);
    SPAWNER = fork();
    if (SPAWNER < 0)
        die("fork: %s", strerror(errno));
    if (SPAWNER == 0) {
        close(req[1]);
        close(resp[0]);
        spawner_loop(req[0], resp[1]);
    }
    close(req[0]);
    close(resp[1]);
    SPAWN_REQ = fdopen(req[1], "w");
    SPAWN_RESP = fdopen(resp[0], "r");
    if (SPAWN_REQ == NULL || SPAWN_RESP == NULL)
        die("fdopen failed");
}

static void stop_spawner(void)
{
    if (SPAWN_REQ == NULL)
        return;
    fclose(SPAWN_REQ);
    fclose(SPAWN_RESP);
    SPAWN_REQ = SPAWN_RESP = NULL;
    waitpid(SPAWNER, NULL, 0);
}

/* Runs "SELF mem SIDE TABLE ROWS" through the spawner; returns peak - baseline in KiB (ru_maxrss)
 * and in *hwm_delta the same from VmHWM. */
static double mem_run(const char *side, double *hwm_delta, long *base_kb)
{
    char buf[256];
    long base, peak, hbase, hpeak;
    struct bulk_sum sum;
    fprintf(SPAWN_REQ, "%s %s %ld\n", side, BULK_TABLE, BULK_ROWS);
    fflush(SPAWN_REQ);
    if (fgets(buf, sizeof buf, SPAWN_RESP) == NULL)
        die("memory child (%s): no answer from the spawner", side);
    if (sscanf(buf, "MEM %ld %ld %ld %ld %ld %llu %llu", &base, &peak, &hbase, &hpeak, &sum.rows, &sum.len,
               &sum.first) != 7)
        die("memory child (%s) failed: %s", side, buf);
    check_bulk(side, &sum);
    if (hbase >= 0 && base > hbase + 256)
        printf("    warning: %s child's ru_maxrss baseline %ld kB exceeds its VmHWM %ld kB (inherited peak)\n",
               side, base, hbase);
    *hwm_delta = (double)(hpeak - hbase);
    *base_kb = base;
    return (double)(peak - base);
}

static void workload_memory(void)
{
    double *a = dalloc(MEM_RUNS), *b = dalloc(MEM_RUNS), *ratio = dalloc(MEM_RUNS);
    double *ah = dalloc(MEM_RUNS), *bh = dalloc(MEM_RUNS), *ab = dalloc(MEM_RUNS), *bb = dalloc(MEM_RUNS);
    long k, base;
    printf("5. memory: peak RSS (getrusage ru_maxrss) minus a baseline taken before the bulk query, while\n"
           "   the %ld-row result is held and every value read; child processes \"bench mem pgsess|libpq\"\n"
           "   (launched by a spawner forked at start-up, max RSS %ld kB), %ld runs each, alternating\n",
           BULK_ROWS, SPAWNER_MAXRSS, MEM_RUNS);
    for (k = 0; k < MEM_RUNS; k++) {
        a[k] = mem_run("pgsess", &ah[k], &base) / 1024.0;
        ab[k] = (double)base / 1024.0;
        b[k] = mem_run("libpq", &bh[k], &base) / 1024.0;
        bb[k] = (double)base / 1024.0;
        ah[k] /= 1024.0;
        bh[k] /= 1024.0;
        ratio[k] = a[k] / b[k];
    }
    printf("    (the values are %.1f MiB of text, %ld cells)\n", (double)BULK_EXPECTED.len / 1048576.0, BULK_ROWS * 5);
    print_stats("pgsess baseline (ru_maxrss)", "MiB", ab, MEM_RUNS);
    print_stats("libpq baseline (ru_maxrss)", "MiB", bb, MEM_RUNS);
    print_stats("pgsess peak - baseline", "MiB", a, MEM_RUNS);
    print_stats("libpq peak - baseline", "MiB", b, MEM_RUNS);
    print_stats("  cross-check: pgsess VmHWM delta", "MiB", ah, MEM_RUNS);
    print_stats("  cross-check: libpq VmHWM delta", "MiB", bh, MEM_RUNS);
    print_stats("ratio pgsess/libpq", "", ratio, MEM_RUNS);
    add_row("5. memory: peak RSS holding the bulk result (minus baseline)", median(a, (size_t)MEM_RUNS),
            median(b, (size_t)MEM_RUNS), "MiB", median(ratio, (size_t)MEM_RUNS), LOWER, 1.00, "(issue)");
    free(a), free(b), free(ratio), free(ah), free(bh), free(ab), free(bb);
}

/* ------------------------------------------------------------------------------------------ */
/* Workload 6: small writes                                                                    */

static void wr_params(long i, char *id, char *name, char *v, const char **params)
{
    snprintf(id, 24, "%ld", i);
    snprintf(name, 40, "name %ld", i);
    snprintf(v, 32, "%ld.5", i);
    params[0] = id;
    params[1] = name;
    params[2] = v;
}

static double wr_pgsess(pgsess_session *s)
{
    long i;
    double t0 = now_us();
    for (i = 1; i <= WR_ROWS; i++) {
        char id[24], name[40], v[32];
        const char *params[3];
        pgsess_error *err = NULL;
        pgsess_results *r;
        wr_params(i, id, name, v, params);
        r = pgsess_query(s, WR_SQL, 3, params, &err);
        if (r == NULL)
            die("pgsess_query(%s) failed: %s", WR_SQL, emsg(err));
        if (pgsess_results_rows_affected(r) != 1)
            die("pgsess insert: %llu rows affected", (unsigned long long)pgsess_results_rows_affected(r));
        pgsess_results_free(r);
    }
    return now_us() - t0;
}

/* All inserts in one pgsess batch (pgsess_batch_run: one round trip, each statement its own
   implicit transaction, as libpq's pipeline side below); building the batch is timed too. */
static double wr_pgsess_batch(pgsess_session *s)
{
    long i;
    pgsess_error *err = NULL;
    double t0 = now_us();
    pgsess_batch *batch = pgsess_batch_new();
    for (i = 1; i <= WR_ROWS; i++) {
        char id[24], name[40], v[32];
        const char *params[3];
        wr_params(i, id, name, v, params);
        if (pgsess_batch_add(batch, WR_SQL, 3, params) != PGSESS_OK)
            die("pgsess_batch_add failed");
    }
    pgsess_batch_results *br = pgsess_batch_run(s, batch, &err);
    if (br == NULL)
        die("pgsess_batch_run failed: %s", emsg(err));
    for (i = 0; i < WR_ROWS; i++) {
        const pgsess_results *r = pgsess_batch_results_get(br, (size_t)i);
        if (r == NULL)
            die("batched insert %ld: %s", i, pgsess_error_message(pgsess_batch_results_error(br, (size_t)i)));
        if (pgsess_results_rows_affected(r) != 1)
            die("batched insert %ld: %llu rows affected", i, (unsigned long long)pgsess_results_rows_affected(r));
    }
    pgsess_batch_results_free(br);
    pgsess_batch_free(batch);
    return now_us() - t0;
}

static double wr_libpq(PGconn *c)
{
    long i;
    double t0 = now_us();
    for (i = 1; i <= WR_ROWS; i++) {
        char id[24], name[40], v[32];
        const char *params[3];
        PGresult *r;
        wr_params(i, id, name, v, params);
        r = PQexecParams(c, WR_SQL, 3, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            die("PQexecParams(%s) failed: %s", WR_SQL, PQerrorMessage(c));
        if (strcmp(PQcmdTuples(r), "1") != 0)
            die("libpq insert: %s rows affected", PQcmdTuples(r));
        PQclear(r);
    }
    return now_us() - t0;
}

#ifdef LIBPQ_HAS_PIPELINING
/* All inserts sent in pipeline mode (each its own implicit transaction, as one at a time: a Sync
 * after each), then every result read. */
static double wr_libpq_pipeline(PGconn *c)
{
    long i;
    PGresult *r;
    double t0 = now_us();
    if (PQenterPipelineMode(c) != 1)
        die("PQenterPipelineMode failed: %s", PQerrorMessage(c));
    for (i = 1; i <= WR_ROWS; i++) {
        char id[24], name[40], v[32];
        const char *params[3];
        wr_params(i, id, name, v, params);
        if (PQsendQueryParams(c, WR_SQL, 3, NULL, params, NULL, NULL, 0) != 1)
            die("PQsendQueryParams failed: %s", PQerrorMessage(c));
        if (PQpipelineSync(c) != 1)
            die("PQpipelineSync failed: %s", PQerrorMessage(c));
    }
    for (i = 1; i <= WR_ROWS; i++) {
        r = PQgetResult(c);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            die("pipelined insert %ld: %s", i, PQerrorMessage(c));
        if (strcmp(PQcmdTuples(r), "1") != 0)
            die("pipelined insert: %s rows affected", PQcmdTuples(r));
        PQclear(r);
        if ((r = PQgetResult(c)) != NULL)
            die("pipelined insert %ld: unexpected extra result", i);
        r = PQgetResult(c);
        if (PQresultStatus(r) != PGRES_PIPELINE_SYNC)
            die("pipelined insert %ld: expected a sync, got %s", i, PQresStatus(PQresultStatus(r)));
        PQclear(r);
    }
    if (PQexitPipelineMode(c) != 1)
        die("PQexitPipelineMode failed: %s", PQerrorMessage(c));
    return now_us() - t0;
}
#endif

static void wr_truncate(PGconn *ctl)
{
    char sql[128];
    snprintf(sql, sizeof sql, "TRUNCATE %s", WR_TABLE);
    pq_exec_ok(ctl, sql);
}

static void wr_verify(PGconn *ctl, const char *side)
{
    char sql[160], want[64];
    PGresult *r;
    snprintf(sql, sizeof sql, "SELECT count(*) || ' ' || sum(id) || ' ' || sum(v) FROM %s", WR_TABLE);
    snprintf(want, sizeof want, "%ld %ld %ld", WR_ROWS, WR_ROWS * (WR_ROWS + 1) / 2,
             WR_ROWS * (WR_ROWS + 1) / 2 + WR_ROWS / 2);
    if (WR_ROWS % 2)
        snprintf(want, sizeof want, "%ld %ld %ld.5", WR_ROWS, WR_ROWS * (WR_ROWS + 1) / 2,
                 WR_ROWS * (WR_ROWS + 1) / 2 + WR_ROWS / 2);
    r = PQexec(ctl, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || strcmp(PQgetvalue(r, 0, 0), want) != 0)
        die("small writes (%s): table holds \"%s\", expected \"%s\" %s", side,
            PQresultStatus(r) == PGRES_TUPLES_OK ? PQgetvalue(r, 0, 0) : "?", want, PQerrorMessage(ctl));
    PQclear(r);
}

static void workload_writes(pgsess_session *s, PGconn *c, PGconn *ctl)
{
    double *a = dalloc(WR_BLOCKS), *b = dalloc(WR_BLOCKS), *ratio = dalloc(WR_BLOCKS);
    double *p = dalloc(WR_BLOCKS), *pratio = dalloc(WR_BLOCKS);
    double *q = dalloc(WR_BLOCKS), *qratio = dalloc(WR_BLOCKS), *qpratio = dalloc(WR_BLOCKS);
    double *asl = dalloc(WR_BLOCKS), *bsl = dalloc(WR_BLOCKS);
    long k;
    int have_pipeline = 0;
#ifdef LIBPQ_HAS_PIPELINING
    have_pipeline = 1;
#endif
    printf("6. small writes: %ld single-row INSERTs per block (\"%s\"), truncated between blocks,\n"
           "   %ld blocks per side, 1 warm-up block each%s\n",
           WR_ROWS, WR_SQL, WR_BLOCKS, have_pipeline ? "; extra side: libpq pipeline mode" : "");
    for (k = -1; k < WR_BLOCKS; k++) {
        double ta, tb, tp = 0, tq, s0, sla, slb;
        wr_truncate(ctl);
        s0 = sleeps_now();
        ta = wr_pgsess(s) / 1000.0;
        sla = (sleeps_now() - s0) / (double)WR_ROWS;
        wr_verify(ctl, "pgsess");
        wr_truncate(ctl);
        tq = wr_pgsess_batch(s) / 1000.0;
        wr_verify(ctl, "pgsess batch");
        wr_truncate(ctl);
        s0 = sleeps_now();
        tb = wr_libpq(c) / 1000.0;
        slb = (sleeps_now() - s0) / (double)WR_ROWS;
        wr_verify(ctl, "libpq");
#ifdef LIBPQ_HAS_PIPELINING
        wr_truncate(ctl);
        tp = wr_libpq_pipeline(c) / 1000.0;
        wr_verify(ctl, "libpq pipeline");
#endif
        if (k < 0)
            continue;
        a[k] = ta, b[k] = tb, p[k] = tp, q[k] = tq, asl[k] = sla, bsl[k] = slb;
        ratio[k] = ta / tb;
        pratio[k] = tp / tb;
        qratio[k] = tq / tb;
        qpratio[k] = tp > 0 ? tq / tp : 0;
    }
    wr_truncate(ctl);
    print_stats("pgsess one at a time, per block", "ms", a, WR_BLOCKS);
    print_stats("libpq one at a time, per block", "ms", b, WR_BLOCKS);
    print_stats("ratio pgsess/libpq", "", ratio, WR_BLOCKS);
    {
        char label[96];
        snprintf(label, sizeof label, "6. small writes: %ld single-row INSERTs, one at a time", WR_ROWS);
        add_row(label, median(a, (size_t)WR_BLOCKS), median(b, (size_t)WR_BLOCKS), "ms",
                median(ratio, (size_t)WR_BLOCKS), LOWER, 1.00, "(issue 15)");
    }
    print_stats("pgsess sleeps per insert", "", asl, WR_BLOCKS);
    print_stats("libpq sleeps per insert", "", bsl, WR_BLOCKS);
    add_row("6. small writes one at a time: sleeps (voluntary context switches) per insert",
            median(asl, (size_t)WR_BLOCKS), median(bsl, (size_t)WR_BLOCKS), "",
            median(bsl, (size_t)WR_BLOCKS) > 0 ? median(asl, (size_t)WR_BLOCKS) / median(bsl, (size_t)WR_BLOCKS) : -1,
            INFO, 0, NULL);
    free(asl), free(bsl);
    if (have_pipeline) {
        char bval[40];
        print_stats("libpq pipeline mode, per block", "ms", p, WR_BLOCKS);
        print_stats("ratio libpq pipeline/one at a time", "", pratio, WR_BLOCKS);
        fmt_val(bval, sizeof bval, median(p, (size_t)WR_BLOCKS), "ms");
        {
            struct row *r;
            add_text_row("6. (extra) libpq pipeline mode, same inserts; ratio = pipeline / libpq one at a time",
                         "-", bval, "the bar for a pgsess batch call", "-");
            r = &ROWS[NROWS - 1];
            r->ratio = median(pratio, (size_t)WR_BLOCKS);
        }
    }
    print_stats("pgsess batch, per block", "ms", q, WR_BLOCKS);
    print_stats("ratio pgsess batch/libpq one at a time", "", qratio, WR_BLOCKS);
    {
        char label[112];
        snprintf(label, sizeof label, "6. pgsess batch (pgsess_batch_run), same %ld inserts, vs libpq one at a time", WR_ROWS);
        add_row(label, median(q, (size_t)WR_BLOCKS), median(b, (size_t)WR_BLOCKS), "ms",
                median(qratio, (size_t)WR_BLOCKS), LOWER, 0.33, "(3x faster; issue)");
    }
    if (have_pipeline) {
        print_stats("ratio pgsess batch/libpq pipeline", "", qpratio, WR_BLOCKS);
        add_row("6. (extra) pgsess batch vs libpq pipeline mode", median(q, (size_t)WR_BLOCKS),
                median(p, (size_t)WR_BLOCKS), "ms", median(qpratio, (size_t)WR_BLOCKS), INFO, 0, NULL);
    }
    free(a), free(b), free(ratio), free(p), free(pratio), free(q), free(qratio), free(qpratio);
}

/* ------------------------------------------------------------------------------------------ */
/* Workloads 8 and 9: COPY FROM STDIN and COPY TO STDOUT                                      */

/* Client CPU time of the whole process (user + system, every thread), us. */
static double cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* Where a copy's time went, besides the wall clock: the client's CPU (the process, every
 * thread), and from /proc/PID/schedstat (when the server runs on this machine: PID is the
 * backend's) the backend's CPU time and its time runnable but waiting for a CPU, and the
 * client thread's wait for a CPU. The waits show the other jobs on the machine. us; -1 unknown. */
struct copy_cost {
    double cpu, srv_run, srv_wait, cli_wait;
    double cli_sleeps, srv_sleeps; /* voluntary context switches: the client thread, the backend */
};

/* voluntary_ctxt_switches of /proc/<pid>/status; -1 when unreadable. */
static double vol_switches(long pid)
{
    char path[64], line[128];
    double v = -1;
    FILE *f;
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    if ((f = fopen(path, "r")) == NULL)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "voluntary_ctxt_switches:", 24) == 0) {
            v = strtod(line + 24, NULL);
            break;
        }
    fclose(f);
    return v;
}

/* run and wait ns of /proc/<pid>/schedstat (pid 0: this thread); 0 when unreadable. */
static int schedstat(long pid, double *run_us, double *wait_us)
{
    char path[64];
    unsigned long long run, wait;
    FILE *f;
    int ok;
    if (pid == 0)
        snprintf(path, sizeof path, "/proc/thread-self/schedstat");
    else
        snprintf(path, sizeof path, "/proc/%ld/schedstat", pid);
    if ((f = fopen(path, "r")) == NULL)
        return 0;
    ok = fscanf(f, "%llu %llu", &run, &wait) == 2;
    fclose(f);
    *run_us = (double)run / 1e3, *wait_us = (double)wait / 1e3;
    return ok;
}

struct cost_snap {
    double cpu, srv_run, srv_wait, cli_run, cli_wait, cli_sleeps, srv_sleeps;
    int srv_ok, cli_ok;
};

#ifndef RUSAGE_THREAD
#define RUSAGE_THREAD 1 /* Linux; declared only with _GNU_SOURCE */
#endif

static void cost_begin(struct cost_snap *z, long backend)
{
    z->srv_ok = backend > 0 && schedstat(backend, &z->srv_run, &z->srv_wait);
    z->cli_ok = schedstat(0, &z->cli_run, &z->cli_wait);
    z->srv_sleeps = backend > 0 ? vol_switches(backend) : -1;
    {
        struct rusage ru;
        getrusage(RUSAGE_THREAD, &ru);
        z->cli_sleeps = (double)ru.ru_nvcsw;
    }
    z->cpu = cpu_us();
}

static void cost_end(struct copy_cost *c, const struct cost_snap *z, long backend)
{
    struct cost_snap e;
    cost_begin(&e, backend);
    c->cpu = e.cpu - z->cpu;
    c->srv_run = z->srv_ok && e.srv_ok ? e.srv_run - z->srv_run : -1;
    c->srv_wait = z->srv_ok && e.srv_ok ? e.srv_wait - z->srv_wait : -1;
    c->cli_wait = z->cli_ok && e.cli_ok ? e.cli_wait - z->cli_wait : -1;
    c->cli_sleeps = e.cli_sleeps - z->cli_sleeps;
    c->srv_sleeps = z->srv_sleeps >= 0 && e.srv_sleeps >= 0 ? e.srv_sleeps - z->srv_sleeps : -1;
}

/* The backend behind pgsess session s (pool of 1: the connection its copies use). */
static long PS_BACKEND;

static long ps_backend_pid(pgsess_session *s)
{
    pgsess_error *err = NULL;
    pgsess_results *r = pgsess_query(s, "SELECT pg_backend_pid()", 0, NULL, &err);
    long pid;
    if (r == NULL)
        die("pgsess_query(SELECT pg_backend_pid()) failed: %s", emsg(err));
    pid = strtol(pgsess_results_value(r, 0, 0), NULL, 10);
    pgsess_results_free(r);
    return pid;
}

/* The COPY FROM rows, generated once before the timing ("i\tsome text i\n", i = 1..COPY_ROWS):
 * row i is COPY_DATA[COPY_OFF[i - 1] .. COPY_OFF[i]). Both sides write the same bytes. */
static char *COPY_DATA;
static size_t *COPY_OFF;
static unsigned long long COPY_TLEN; /* sum of length(t) over the rows, to check the table */

static void copy_make_data(void)
{
    size_t cap = (size_t)COPY_ROWS * 32 + 1, at = 0;
    long i;
    COPY_DATA = malloc(cap);
    COPY_OFF = malloc(((size_t)COPY_ROWS + 1) * sizeof *COPY_OFF);
    if (COPY_DATA == NULL || COPY_OFF == NULL)
        die("out of memory");
    COPY_TLEN = 0;
    COPY_OFF[0] = 0;
    for (i = 1; i <= COPY_ROWS; i++) {
        int n = snprintf(COPY_DATA + at, cap - at, "%ld\tsome text %ld\n", i, i);
        int digits = snprintf(NULL, 0, "%ld", i);
        at += (size_t)n;
        COPY_OFF[i] = at;
        COPY_TLEN += 10 + (unsigned long long)digits; /* "some text " + i */
    }
}

static size_t copy_bytes(void)
{
    return COPY_OFF[COPY_ROWS];
}

/* chunk 0: one row per write call; otherwise writes of `chunk` bytes (the last one shorter),
 * cut anywhere (COPY data need not be split at rows). Returns elapsed us; *cpu gets the client
 * CPU time. */
static double copyin_pgsess(pgsess_session *s, size_t chunk, struct copy_cost *cost)
{
    pgsess_error *err = NULL;
    pgsess_copy *cp;
    uint64_t n;
    struct cost_snap z;
    double t0, t1;
    long i;
    cost_begin(&z, PS_BACKEND);
    t0 = now_us();
    cp = pgsess_copy_in(s, COPYIN_SQL, &err);
    if (cp == NULL)
        die("pgsess_copy_in(%s) failed: %s", COPYIN_SQL, emsg(err));
    if (chunk == 0) {
        for (i = 0; i < COPY_ROWS; i++)
            if (pgsess_copy_write(cp, COPY_DATA + COPY_OFF[i], COPY_OFF[i + 1] - COPY_OFF[i], &err) != PGSESS_OK)
                die("pgsess_copy_write (row %ld) failed: %s", i + 1, emsg(err));
    } else {
        size_t at, total = copy_bytes();
        for (at = 0; at < total; at += chunk)
            if (pgsess_copy_write(cp, COPY_DATA + at, total - at < chunk ? total - at : chunk, &err) != PGSESS_OK)
                die("pgsess_copy_write (offset %zu) failed: %s", at, emsg(err));
    }
    n = pgsess_copy_finish(cp, &err);
    if (n == UINT64_MAX)
        die("pgsess_copy_finish failed: %s", emsg(err));
    pgsess_copy_free(cp);
    t1 = now_us();
    cost_end(cost, &z, PS_BACKEND);
    if (n != (uint64_t)COPY_ROWS)
        die("pgsess copy in: %llu rows copied, expected %ld", (unsigned long long)n, COPY_ROWS);
    return t1 - t0;
}

/* The end of a COPY on libpq: the command's result, its row count, then no more results. */
static void pq_copy_end(PGconn *c, const char *what)
{
    PGresult *r = PQgetResult(c);
    char want[24];
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        die("libpq %s: %s", what, PQerrorMessage(c));
    snprintf(want, sizeof want, "%ld", COPY_ROWS);
    if (strcmp(PQcmdTuples(r), want) != 0)
        die("libpq %s: %s rows copied, expected %s", what, PQcmdTuples(r), want);
    PQclear(r);
    if ((r = PQgetResult(c)) != NULL)
        die("libpq %s: an unexpected extra result", what);
}

static double copyin_libpq(PGconn *c, size_t chunk, struct copy_cost *cost)
{
    PGresult *r;
    struct cost_snap z;
    double t0, t1;
    long i;
    cost_begin(&z, PQbackendPID(c));
    t0 = now_us();
    r = PQexec(c, COPYIN_SQL);
    if (PQresultStatus(r) != PGRES_COPY_IN)
        die("PQexec(%s): %s", COPYIN_SQL, PQerrorMessage(c));
    PQclear(r);
    if (chunk == 0) {
        for (i = 0; i < COPY_ROWS; i++)
            if (PQputCopyData(c, COPY_DATA + COPY_OFF[i], (int)(COPY_OFF[i + 1] - COPY_OFF[i])) != 1)
                die("PQputCopyData (row %ld) failed: %s", i + 1, PQerrorMessage(c));
    } else {
        size_t at, total = copy_bytes();
        for (at = 0; at < total; at += chunk)
            if (PQputCopyData(c, COPY_DATA + at, (int)(total - at < chunk ? total - at : chunk)) != 1)
                die("PQputCopyData (offset %zu) failed: %s", at, PQerrorMessage(c));
    }
    if (PQputCopyEnd(c, NULL) != 1)
        die("PQputCopyEnd failed: %s", PQerrorMessage(c));
    pq_copy_end(c, "copy in");
    t1 = now_us();
    cost_end(cost, &z, PQbackendPID(c));
    return t1 - t0;
}

static void copyin_truncate(PGconn *ctl)
{
    char sql[128];
    snprintf(sql, sizeof sql, "TRUNCATE %s", COPYIN_TABLE);
    pq_exec_ok(ctl, sql);
}

/* The table holds exactly the rows written: count, sum(i), sum(length(t)). */
static void copyin_verify(PGconn *ctl, const char *side)
{
    char sql[192], want[96];
    PGresult *r;
    snprintf(sql, sizeof sql, "SELECT count(*) || ' ' || sum(i) || ' ' || sum(length(t)) FROM %s", COPYIN_TABLE);
    snprintf(want, sizeof want, "%ld %lld %llu", COPY_ROWS, (long long)COPY_ROWS * (COPY_ROWS + 1) / 2, COPY_TLEN);
    r = PQexec(ctl, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || strcmp(PQgetvalue(r, 0, 0), want) != 0)
        die("copy in (%s): table holds \"%s\", expected \"%s\" %s", side,
            PQresultStatus(r) == PGRES_TUPLES_OK ? PQgetvalue(r, 0, 0) : "?", want, PQerrorMessage(ctl));
    PQclear(r);
}

#define COPY_CHUNK 65536

/* One side's measurements of a COPY workload, one entry per block (ms). */
struct copy_series {
    double *t, *cpu, *srv, *srvw, *cliw, *clis, *srvs;
};

static void cs_alloc(struct copy_series *c)
{
    c->t = dalloc(COPY_BLOCKS), c->cpu = dalloc(COPY_BLOCKS), c->srv = dalloc(COPY_BLOCKS);
    c->srvw = dalloc(COPY_BLOCKS), c->cliw = dalloc(COPY_BLOCKS);
    c->clis = dalloc(COPY_BLOCKS), c->srvs = dalloc(COPY_BLOCKS);
}

static void cs_put(struct copy_series *c, long k, double t_us, const struct copy_cost *cost)
{
    c->t[k] = t_us / 1000.0, c->cpu[k] = cost->cpu / 1000.0;
    c->srv[k] = cost->srv_run / 1000.0, c->srvw[k] = cost->srv_wait / 1000.0, c->cliw[k] = cost->cli_wait / 1000.0;
    c->clis[k] = cost->cli_sleeps, c->srvs[k] = cost->srv_sleeps;
}

static void cs_print(const char *name, const struct copy_series *c)
{
    print_stats(name, "ms", c->t, COPY_BLOCKS);
    print_stats("  client CPU (user+sys, all threads)", "ms", c->cpu, COPY_BLOCKS);
    if (min_of(c->srv, (size_t)COPY_BLOCKS) >= 0) {
        print_stats("  server backend CPU (schedstat)", "ms", c->srv, COPY_BLOCKS);
        print_stats("  server backend waiting for a CPU", "ms", c->srvw, COPY_BLOCKS);
    }
    if (min_of(c->cliw, (size_t)COPY_BLOCKS) >= 0)
        print_stats("  client thread waiting for a CPU", "ms", c->cliw, COPY_BLOCKS);
    print_stats("  client thread's sleeps (voluntary switches)", "", c->clis, COPY_BLOCKS);
    if (min_of(c->srvs, (size_t)COPY_BLOCKS) >= 0)
        print_stats("  server backend's sleeps (voluntary switches)", "", c->srvs, COPY_BLOCKS);
}

static void cs_free(struct copy_series *c)
{
    free(c->t), free(c->cpu), free(c->srv), free(c->srvw), free(c->cliw), free(c->clis), free(c->srvs);
}

/* Ratio rows a/b per block of one measure; the median. */
static double cs_ratio(const double *a, const double *b, double *out)
{
    long k;
    for (k = 0; k < COPY_BLOCKS; k++)
        out[k] = b[k] > 0 ? a[k] / b[k] : 0;
    return median(out, (size_t)COPY_BLOCKS);
}

/* The table rows of one COPY case: time (the issue's target), client CPU, server CPU. */
static void cs_rows(const char *time_label, const char *prefix, const struct copy_series *a,
                    const struct copy_series *b, int extra_rows)
{
    double *r = dalloc(COPY_BLOCKS);
    char label[96];
    add_row(time_label, median(a->t, (size_t)COPY_BLOCKS), median(b->t, (size_t)COPY_BLOCKS), "ms",
            cs_ratio(a->t, b->t, r), LOWER, 1.00, "(issue)");
    print_stats("ratio pgsess/libpq, time", "", r, COPY_BLOCKS);
    cs_ratio(a->cpu, b->cpu, r);
    print_stats("ratio pgsess/libpq, client CPU", "", r, COPY_BLOCKS);
    if (extra_rows) {
        snprintf(label, sizeof label, "%s (extra) the same: client CPU (user+sys, all threads) per copy", prefix);
        add_row(label, median(a->cpu, (size_t)COPY_BLOCKS), median(b->cpu, (size_t)COPY_BLOCKS), "ms",
                median(r, (size_t)COPY_BLOCKS), INFO, 0, NULL);
    }
    if (min_of(a->srv, (size_t)COPY_BLOCKS) >= 0 && min_of(b->srv, (size_t)COPY_BLOCKS) >= 0) {
        cs_ratio(a->srv, b->srv, r);
        print_stats("ratio pgsess/libpq, server backend CPU", "", r, COPY_BLOCKS);
        if (extra_rows) {
            snprintf(label, sizeof label, "%s (extra) the same: the server backend's CPU per copy", prefix);
            add_row(label, median(a->srv, (size_t)COPY_BLOCKS), median(b->srv, (size_t)COPY_BLOCKS), "ms",
                    median(r, (size_t)COPY_BLOCKS), INFO, 0, NULL);
        }
    }
    free(r);
}

/* The A/A control of a COPY workload: a second libpq connection timed against the first in the
   same blocks. Its ratio's spread is this machine's noise for the same work. */
static void cs_control_row(const char *label, const struct copy_series *aa, const struct copy_series *b)
{
    double *r = dalloc(COPY_BLOCKS);
    double m = cs_ratio(aa->t, b->t, r);
    print_stats("ratio control/libpq, time (A/A)", "", r, COPY_BLOCKS);
    add_text_row(label, "-", "", "the noise of the time ratio", "-");
    fmt_val(ROWS[NROWS - 1].b, sizeof ROWS[NROWS - 1].b, median(aa->t, (size_t)COPY_BLOCKS), "ms");
    ROWS[NROWS - 1].ratio = m;
    snprintf(ROWS[NROWS - 1].target, sizeof ROWS[NROWS - 1].target, "- (per block %.2f-%.2f)",
             min_of(r, (size_t)COPY_BLOCKS), max_of(r, (size_t)COPY_BLOCKS));
    free(r);
}

/* Side j of a block of n (0 pgsess, 1 libpq, 2 the control, ...), rotated by block. */
static int copy_side(long k, int j, int n)
{
    return (int)((j + (k < 0 ? 0 : k)) % n);
}

static void workload_copy_in(pgsess_session *s, PGconn *c, PGconn *ctl)
{
    struct copy_series a, b, a64, b64, aa;
    PGconn *c2 = pq_connect();
    char label[96];
    long k;
    copy_make_data();
    cs_alloc(&a), cs_alloc(&b), cs_alloc(&a64), cs_alloc(&b64), cs_alloc(&aa);
    PS_BACKEND = ps_backend_pid(s);
    printf("8. COPY FROM STDIN \"%s\": %ld rows (%zu bytes of text, \"i\\tsome text i\\n\") into an unlogged\n"
           "   table truncated before each copy; %ld blocks per side, 1 warm-up block, sides in alternating order;\n"
           "   each block runs "
           "pgsess_copy_in + pgsess_copy_write + pgsess_copy_finish + pgsess_copy_free vs PQexec +\n"
           "   PQputCopyData + PQputCopyEnd + PQgetResult, first one row per write call on both sides, then\n"
           "   %d-byte writes on both sides; the table is checked after each copy. A/A control: a second\n"
           "   libpq connection's one-row-per-write copy in the same blocks\n",
           COPYIN_SQL, COPY_ROWS, copy_bytes(), COPY_BLOCKS, COPY_CHUNK);
    for (k = -1; k < COPY_BLOCKS; k++) {
        int j;
        /* One row per write: pgsess, libpq, control, rotated by block; then 64 KiB writes,
           pgsess first in even blocks, libpq first in odd ones. */
        for (j = 0; j < 5; j++) {
            int side = j < 3 ? copy_side(k, j, 3) : (j - 3) == (k < 0 ? 0 : (int)(k % 2)) ? 0 : 1, big = j >= 3;
            struct copy_cost cost;
            double t;
            copyin_truncate(ctl);
            if (side == 0)
                t = copyin_pgsess(s, big ? COPY_CHUNK : 0, &cost);
            else
                t = copyin_libpq(side == 2 ? c2 : c, big ? COPY_CHUNK : 0, &cost);
            copyin_verify(ctl, side == 0 ? (big ? "pgsess, 64 KiB writes" : "pgsess, one row per write")
                               : side == 2 ? "libpq control, one row per write"
                                           : (big ? "libpq, 64 KiB writes" : "libpq, one row per write"));
            if (k >= 0)
                cs_put(side == 2 ? &aa : side == 0 ? (big ? &a64 : &a) : (big ? &b64 : &b), k, t, &cost);
        }
    }
    PQfinish(c2);
    copyin_truncate(ctl);
    if (ps_backend_pid(s) != PS_BACKEND)
        printf("    warning: pgsess's backend changed during the workload (its server CPU is not the copies')\n");
    cs_print("pgsess, one row per write, per copy", &a);
    cs_print("libpq, one row per write, per copy", &b);
    snprintf(label, sizeof label, "8. COPY FROM STDIN, %ld rows, one row per write call, per copy", COPY_ROWS);
    cs_rows(label, "8.", &a, &b, 1);
    cs_print("control (a second libpq connection), one row per write", &aa);
    cs_control_row("8. (extra) A/A control: a second libpq connection, one row per write, vs libpq", &aa, &b);
    cs_print("pgsess, 64 KiB writes, per copy", &a64);
    cs_print("libpq, 64 KiB writes, per copy", &b64);
    snprintf(label, sizeof label, "8. COPY FROM STDIN, %ld rows, 64 KiB write calls, per copy", COPY_ROWS);
    cs_rows(label, "8.", &a64, &b64, 0);
    cs_free(&a), cs_free(&b), cs_free(&a64), cs_free(&b64), cs_free(&aa);
    free(COPY_DATA), free(COPY_OFF);
    COPY_DATA = NULL, COPY_OFF = NULL;
}

struct copy_sum {
    unsigned long long len, first, last; /* sums of row lengths, first bytes, last bytes */
    long rows;
};

static double copyout_pgsess(pgsess_session *s, struct copy_sum *sum, struct copy_cost *cost)
{
    pgsess_error *err = NULL;
    pgsess_copy *cp;
    const unsigned char *p;
    size_t len;
    uint64_t n;
    struct copy_sum cs = {0, 0, 0, 0};
    struct cost_snap z;
    double t0, t1;
    cost_begin(&z, PS_BACKEND);
    t0 = now_us();
    cp = pgsess_copy_out(s, COPYOUT_SQL, &err);
    if (cp == NULL)
        die("pgsess_copy_out(%s) failed: %s", COPYOUT_SQL, emsg(err));
    while ((p = pgsess_copy_read(cp, &len, &err)) != NULL) {
        cs.rows++;
        cs.len += len;
        cs.first += p[0];
        cs.last += p[len - 1];
    }
    if (err != NULL)
        die("pgsess_copy_read failed after %ld rows: %s", cs.rows, emsg(err));
    n = pgsess_copy_finish(cp, &err);
    if (n == UINT64_MAX)
        die("pgsess_copy_finish (copy out) failed: %s", emsg(err));
    pgsess_copy_free(cp);
    t1 = now_us();
    cost_end(cost, &z, PS_BACKEND);
    if (n != (uint64_t)COPY_ROWS || cs.rows != COPY_ROWS)
        die("pgsess copy out: %ld rows read, %llu reported, expected %ld", cs.rows, (unsigned long long)n, COPY_ROWS);
    *sum = cs;
    return t1 - t0;
}

/* The same through pgsess_copy_read_chunk (every buffered message at once, joined), each row
   found with memchr and touched as above: the path of bindings that pay per call into C. */
static double copyout_pgsess_chunk(pgsess_session *s, struct copy_sum *sum, struct copy_cost *cost)
{
    pgsess_error *err = NULL;
    pgsess_copy *cp;
    const unsigned char *p;
    size_t len;
    uint64_t n;
    struct copy_sum cs = {0, 0, 0, 0};
    struct cost_snap z;
    double t0, t1;
    cost_begin(&z, PS_BACKEND);
    t0 = now_us();
    cp = pgsess_copy_out(s, COPYOUT_SQL, &err);
    if (cp == NULL)
        die("pgsess_copy_out(%s) failed: %s", COPYOUT_SQL, emsg(err));
    while ((p = pgsess_copy_read_chunk(cp, &len, &err)) != NULL) {
        const unsigned char *row = p, *end = p + len;
        while (row < end) { /* the server sends whole rows, so a chunk ends with one */
            const unsigned char *nl = memchr(row, '\n', (size_t)(end - row));
            size_t rl = nl ? (size_t)(nl - row) + 1 : (size_t)(end - row);
            cs.rows++;
            cs.len += rl;
            cs.first += row[0];
            cs.last += row[rl - 1];
            row += rl;
        }
    }
    if (err != NULL)
        die("pgsess_copy_read_chunk failed after %ld rows: %s", cs.rows, emsg(err));
    n = pgsess_copy_finish(cp, &err);
    if (n == UINT64_MAX)
        die("pgsess_copy_finish (copy out) failed: %s", emsg(err));
    pgsess_copy_free(cp);
    t1 = now_us();
    cost_end(cost, &z, PS_BACKEND);
    if (n != (uint64_t)COPY_ROWS || cs.rows != COPY_ROWS)
        die("pgsess copy out (chunks): %ld rows read, %llu reported, expected %ld", cs.rows, (unsigned long long)n,
            COPY_ROWS);
    *sum = cs;
    return t1 - t0;
}

static double copyout_libpq(PGconn *c, struct copy_sum *sum, struct copy_cost *cost)
{
    PGresult *r;
    char *buf;
    int n;
    struct copy_sum cs = {0, 0, 0, 0};
    struct cost_snap z;
    double t0, t1;
    cost_begin(&z, PQbackendPID(c));
    t0 = now_us();
    r = PQexec(c, COPYOUT_SQL);
    if (PQresultStatus(r) != PGRES_COPY_OUT)
        die("PQexec(%s): %s", COPYOUT_SQL, PQerrorMessage(c));
    PQclear(r);
    while ((n = PQgetCopyData(c, &buf, 0)) > 0) {
        cs.rows++;
        cs.len += (unsigned long long)n;
        cs.first += (unsigned char)buf[0];
        cs.last += (unsigned char)buf[n - 1];
        PQfreemem(buf);
    }
    if (n != -1)
        die("PQgetCopyData failed after %ld rows: %s", cs.rows, PQerrorMessage(c));
    pq_copy_end(c, "copy out");
    t1 = now_us();
    cost_end(cost, &z, PQbackendPID(c));
    if (cs.rows != COPY_ROWS)
        die("libpq copy out: %ld rows read, expected %ld", cs.rows, COPY_ROWS);
    *sum = cs;
    return t1 - t0;
}

static void check_copy_sum(const char *side, const struct copy_sum *got, const struct copy_sum *want)
{
    if (got->rows != want->rows || got->len != want->len || got->first != want->first || got->last != want->last)
        die("copy out %s: checksum (%ld rows, len %llu, first %llu, last %llu) differs from (%ld, %llu, %llu, %llu)",
            side, got->rows, got->len, got->first, got->last, want->rows, want->len, want->first, want->last);
}

static void workload_copy_out(pgsess_session *s, PGconn *c)
{
    struct copy_series a, b, aa, ch;
    struct copy_sum want, sa, sb;
    struct copy_cost ca, cb;
    PGconn *c2 = pq_connect();
    char label[96];
    long k;
    cs_alloc(&a), cs_alloc(&b), cs_alloc(&aa), cs_alloc(&ch);
    PS_BACKEND = ps_backend_pid(s);
    printf("9. COPY TO STDOUT \"%s\": %ld rows (\"i\\tsome text i\\n\"), %ld blocks per side, 1 warm-up each,\n"
           "   sides in alternating order; "
           "pgsess_copy_out + pgsess_copy_read per row + pgsess_copy_finish + pgsess_copy_free vs PQexec +\n"
           "   PQgetCopyData(async=0) + PQfreemem per row + PQgetResult; every row's length, first and last\n"
           "   byte summed and the sums compared. A/A control: a second libpq connection in the same blocks;\n"
           "   extra: pgsess_copy_read_chunk, rows found with memchr\n",
           COPYOUT_SQL, COPY_ROWS, COPY_BLOCKS);
    copyout_libpq(c, &want, &cb);
    copyout_pgsess(s, &sa, &ca);
    check_copy_sum("pgsess", &sa, &want);
    copyout_libpq(c2, &sb, &cb);
    copyout_pgsess_chunk(s, &sa, &ca);
    check_copy_sum("pgsess (chunks)", &sa, &want);
    for (k = 0; k < COPY_BLOCKS; k++) {
        int j;
        for (j = 0; j < 4; j++) { /* pgsess, libpq, control, pgsess by chunks, rotated by block */
            int side = copy_side(k, j, 4);
            if (side == 0 || side == 3) {
                double t = side == 0 ? copyout_pgsess(s, &sa, &ca) : copyout_pgsess_chunk(s, &sa, &ca);
                check_copy_sum(side == 0 ? "pgsess" : "pgsess (chunks)", &sa, &want);
                cs_put(side == 0 ? &a : &ch, k, t, &ca);
            } else {
                double t = copyout_libpq(side == 2 ? c2 : c, &sb, &cb);
                check_copy_sum(side == 2 ? "libpq control" : "libpq", &sb, &want);
                cs_put(side == 2 ? &aa : &b, k, t, &cb);
            }
        }
    }
    PQfinish(c2);
    if (ps_backend_pid(s) != PS_BACKEND)
        printf("    warning: pgsess's backend changed during the workload (its server CPU is not the copies')\n");
    printf("    (each copy reads %ld rows, %llu bytes)\n", want.rows, want.len);
    cs_print("pgsess per copy", &a);
    cs_print("libpq per copy", &b);
    snprintf(label, sizeof label, "9. COPY TO STDOUT, %ld rows, each row read, per copy", COPY_ROWS);
    cs_rows(label, "9.", &a, &b, 1);
    cs_print("control (a second libpq connection) per copy", &aa);
    cs_control_row("9. (extra) A/A control: a second libpq connection vs libpq", &aa, &b);
    cs_print("pgsess by pgsess_copy_read_chunk per copy", &ch);
    {
        double *r = dalloc(COPY_BLOCKS);
        double m = cs_ratio(ch.t, b.t, r);
        print_stats("ratio chunks/libpq, time", "", r, COPY_BLOCKS);
        add_row("9. (extra) the same read by pgsess_copy_read_chunk (rows found with memchr)",
                median(ch.t, (size_t)COPY_BLOCKS), median(b.t, (size_t)COPY_BLOCKS), "ms", m, INFO, 0, NULL);
        free(r);
    }
    cs_free(&a), cs_free(&b), cs_free(&aa), cs_free(&ch);
}

/* ------------------------------------------------------------------------------------------ */
/* Workload 10: LISTEN/NOTIFY latency                                                          */

/*
 * The main thread is the sender (one libpq connection, the same for every side): for each
 * notification it takes t0, runs "NOTIFY channel, 'seq'" (PQexec), and waits until the receiver
 * thread has had it before sending the next. The receiver thread takes t1 as soon as the
 * notification is in the application's hands and hands t1 back under a mutex; latency = t1 - t0
 * (CLOCK_MONOTONIC, one process). Receivers (sides):
 *   NT_PGSESS     pgsess_listen once, then pgsess_notification_next(session, -1) per notification
 *                 (delivered by the session's background listener thread);
 *   NT_LIBPQ      LISTEN once on its own connection, then PQnotifies, else poll(PQsocket) +
 *                 PQconsumeInput until PQnotifies has one;
 *   NT_PGSESS_FD  (extra) the same session, the event-loop way: poll(pgsess_notification_fd),
 *                 then pgsess_notification_next(session, 0);
 *   NT_LIBPQ_RELAY (extra) NT_LIBPQ's loop run by a second thread, which hands each notification
 *                 to the receiver thread through a mutex + condition variable: libpq plus the
 *                 one thread handoff that a library delivering through a background thread
 *                 cannot avoid (the floor of that design on this machine).
 * pgsess's two sides share a channel, libpq's two another; only the side being measured listens
 * during its block (see nt_listen). Context switches (voluntary + involuntary, getrusage) over a block's
 * notifications: the receiver thread's own (RUSAGE_THREAD), and the receiving side's all
 * threads = the process's (RUSAGE_SELF) minus the sender thread's (pgsess's background thread
 * and the relay thread are counted there).
 */

enum nt_side { NT_PGSESS, NT_LIBPQ, NT_PGSESS_FD, NT_LIBPQ_RELAY, NT_SIDES };

static const char *const NT_NAME[NT_SIDES] = {"pgsess next(-1)", "libpq poll", "pgsess fd + next(0)",
                                              "libpq + handoff"};

static double csw(int who, double *voluntary)
{
    struct rusage ru;
    getrusage(who, &ru);
    if (voluntary)
        *voluntary = (double)ru.ru_nvcsw;
    return (double)ru.ru_nvcsw + (double)ru.ru_nivcsw;
}

/* CPU time (user + system) and time runnable but waiting for a CPU of this process's threads
 * except the main one (the sender), from /proc/self/task/TID/schedstat, us. A snapshot is kept
 * per thread, so that a thread gone by the second one (the last block's, exiting) is not counted
 * as negative time. */
#define SNAP_MAX 256
struct task_snap {
    int n;
    long tid[SNAP_MAX];
    double run[SNAP_MAX], wait[SNAP_MAX];
};

static void side_snap(struct task_snap *t)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    long self = (long)getpid();
    t->n = 0;
    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL && t->n < SNAP_MAX) {
        long tid = strtol(e->d_name, NULL, 10);
        char path[80];
        unsigned long long r, w;
        FILE *f;
        if (tid <= 0 || tid == self)
            continue;
        snprintf(path, sizeof path, "/proc/self/task/%ld/schedstat", tid);
        if ((f = fopen(path, "r")) == NULL)
            continue;
        if (fscanf(f, "%llu %llu", &r, &w) == 2) {
            t->tid[t->n] = tid, t->run[t->n] = (double)r / 1e3, t->wait[t->n] = (double)w / 1e3;
            t->n++;
        }
        fclose(f);
    }
    closedir(d);
}

/* What the threads of `end` used since `start` (a thread new in `end` counts from zero). */
static void side_delta(const struct task_snap *start, const struct task_snap *end, double *run, double *wait)
{
    int i, j;
    *run = 0, *wait = 0;
    for (i = 0; i < end->n; i++) {
        double r0 = 0, w0 = 0;
        for (j = 0; j < start->n; j++)
            if (start->tid[j] == end->tid[i]) {
                r0 = start->run[j], w0 = start->wait[j];
                break;
            }
        *run += end->run[i] - r0, *wait += end->wait[i] - w0;
    }
}

struct nt_shared {
    enum nt_side side;
    pgsess_session *s;
    PGconn *lc;          /* the libpq listener */
    const char *channel;
    long n;              /* notifications this block */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int ready;           /* threads about to wait for the first one */
    int release;         /* the block's counts are taken: the threads may exit */
    long got;            /* notifications received so far */
    double t_recv;       /* when the last one arrived */
    double csw_thread, vcsw_thread; /* the receiver thread's switches during the block */
    double run_thread, wait_thread; /* and its CPU time and wait for a CPU, us (schedstat) */
    /* NT_LIBPQ_RELAY: the relay's one-slot mailbox */
    pthread_mutex_t rmu;
    pthread_cond_t rcv;
    PGnotify *slot;
};

static void nt_set_ready(struct nt_shared *sh)
{
    pthread_mutex_lock(&sh->mu);
    sh->ready++;
    pthread_cond_broadcast(&sh->cv);
    pthread_mutex_unlock(&sh->mu);
}

/* A receiving thread stays until the sender has taken the block's counts (an exited thread's
   schedstat is gone). */
static void nt_wait_release(struct nt_shared *sh)
{
    pthread_mutex_lock(&sh->mu);
    while (!sh->release)
        pthread_cond_wait(&sh->cv, &sh->mu);
    pthread_mutex_unlock(&sh->mu);
}

static void nt_deliver(struct nt_shared *sh, long seq, double t1, const char *channel, const char *payload)
{
    char want[24];
    snprintf(want, sizeof want, "%ld", seq);
    if (strcmp(channel, sh->channel) != 0 || strcmp(payload, want) != 0)
        die("notify (%s): got \"%s\" on \"%s\", expected \"%s\" on \"%s\"", NT_NAME[sh->side], payload, channel,
            want, sh->channel);
    pthread_mutex_lock(&sh->mu);
    sh->got = seq + 1;
    sh->t_recv = t1;
    pthread_cond_broadcast(&sh->cv);
    pthread_mutex_unlock(&sh->mu);
}

/* libpq: the next notification on lc, waiting in poll(2) for as long as it takes. */
static PGnotify *nt_libpq_next(PGconn *lc)
{
    PGnotify *nt;
    while ((nt = PQnotifies(lc)) == NULL) {
        struct pollfd pfd;
        pfd.fd = PQsocket(lc);
        pfd.events = POLLIN;
        pfd.revents = 0;
        if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
            die("poll: %s", strerror(errno));
        if (!PQconsumeInput(lc))
            die("PQconsumeInput failed: %s", PQerrorMessage(lc));
    }
    return nt;
}

static void *nt_relay(void *arg)
{
    struct nt_shared *sh = arg;
    long i;
    nt_set_ready(sh);
    for (i = 0; i < sh->n; i++) {
        PGnotify *nt = nt_libpq_next(sh->lc);
        pthread_mutex_lock(&sh->rmu);
        while (sh->slot != NULL) /* not before the receiver took the last one */
            pthread_cond_wait(&sh->rcv, &sh->rmu);
        sh->slot = nt;
        pthread_cond_broadcast(&sh->rcv);
        pthread_mutex_unlock(&sh->rmu);
    }
    nt_wait_release(sh);
    return NULL;
}

static void pgsess_check_notification(const pgsess_notification *nt, const pgsess_error *err)
{
    if (nt == NULL)
        die("pgsess_notification_next failed: %s", err ? emsg(err) : "(nothing ready)");
    if (pgsess_notification_is_gap(nt))
        die("pgsess: a gap marker on \"%s\" (the listener reconnected)", pgsess_notification_channel(nt));
}

static void *nt_receiver(void *arg)
{
    struct nt_shared *sh = arg;
    double c0, v0, v1, r0 = 0, w0 = 0, r1 = 0, w1 = 0;
    int efd = sh->side == NT_PGSESS_FD ? pgsess_notification_fd(sh->s) : -1;
    long i;
    if (sh->side == NT_PGSESS_FD && efd < 0)
        die("pgsess_notification_fd returned %d", efd);
    nt_set_ready(sh);
    c0 = csw(RUSAGE_THREAD, &v0);
    schedstat(0, &r0, &w0);
    for (i = 0; i < sh->n; i++) {
        pgsess_error *err = NULL;
        pgsess_notification *pn;
        PGnotify *nt;
        double t1;
        switch (sh->side) {
        case NT_PGSESS:
            pn = pgsess_notification_next(sh->s, -1, &err);
            t1 = now_us();
            pgsess_check_notification(pn, err);
            nt_deliver(sh, i, t1, pgsess_notification_channel(pn), pgsess_notification_payload(pn));
            pgsess_notification_free(pn);
            break;
        case NT_PGSESS_FD:
            for (;;) {
                struct pollfd pfd;
                pfd.fd = efd;
                pfd.events = POLLIN;
                pfd.revents = 0;
                if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
                    die("poll(pgsess_notification_fd): %s", strerror(errno));
                if ((pn = pgsess_notification_next(sh->s, 0, &err)) != NULL || err != NULL)
                    break;
            }
            t1 = now_us();
            pgsess_check_notification(pn, err);
            nt_deliver(sh, i, t1, pgsess_notification_channel(pn), pgsess_notification_payload(pn));
            pgsess_notification_free(pn);
            break;
        case NT_LIBPQ:
            nt = nt_libpq_next(sh->lc);
            t1 = now_us();
            nt_deliver(sh, i, t1, nt->relname, nt->extra);
            PQfreemem(nt);
            break;
        default: /* NT_LIBPQ_RELAY */
            pthread_mutex_lock(&sh->rmu);
            while (sh->slot == NULL)
                pthread_cond_wait(&sh->rcv, &sh->rmu);
            nt = sh->slot;
            sh->slot = NULL;
            pthread_cond_broadcast(&sh->rcv);
            pthread_mutex_unlock(&sh->rmu);
            t1 = now_us();
            nt_deliver(sh, i, t1, nt->relname, nt->extra);
            PQfreemem(nt);
            break;
        }
    }
    sh->csw_thread = csw(RUSAGE_THREAD, &v1) - c0;
    sh->vcsw_thread = v1 - v0;
    schedstat(0, &r1, &w1);
    sh->run_thread = r1 - r0, sh->wait_thread = w1 - w0;
    nt_wait_release(sh);
    return NULL;
}

/* One block of one side: its p50 and p99, and context switches per notification. */
struct nt_block {
    double p50, p99;
    double csw_all, vcsw_all;       /* the receiving side, all its threads */
    double csw_thread, vcsw_thread; /* the receiver (application) thread alone */
    double csw_sender;              /* the sender thread */
    double run_all, wait_all;       /* the receiving side's CPU and wait for a CPU, us */
    double run_thread, wait_thread; /* the same, the receiver thread alone */
};

/* lat: n latencies out, us. */
/* LISTEN (on = 1) or UNLISTEN the side's channel on its own listener. Only the side being
 * measured listens during its block: every NOTIFY makes the server signal each backend that
 * listens on anything in the database, one after the other, so a second listener left
 * listening would delay whichever side's backend the server happens to signal later. */
static void nt_listen(enum nt_side side, pgsess_session *s, PGconn *lc, const char *channel, int on)
{
    pgsess_error *err = NULL;
    char sql[128];
    if (side == NT_PGSESS || side == NT_PGSESS_FD) {
        if ((on ? pgsess_listen(s, channel, &err) : pgsess_unlisten(s, channel, &err)) != PGSESS_OK)
            die("pgsess_%slisten(%s) failed: %s", on ? "" : "un", channel, emsg(err));
        return;
    }
    snprintf(sql, sizeof sql, "%s %s", on ? "LISTEN" : "UNLISTEN", channel);
    pq_exec_ok(lc, sql);
}

static void nt_run_block(enum nt_side side, pgsess_session *s, PGconn *lc, PGconn *sender, const char *channel,
                         long n, double *lat, struct nt_block *out)
{
    struct nt_shared sh;
    pthread_t th, relay;
    double p0, pv0, s0, sv0, p1, pv1, s1, sv1, *sorted = dalloc(n), srun, swait;
    static struct task_snap snap0, snap1;
    int threads = side == NT_LIBPQ_RELAY ? 2 : 1;
    long i;
    nt_listen(side, s, lc, channel, 1);
    memset(&sh, 0, sizeof sh);
    sh.side = side, sh.s = s, sh.lc = lc, sh.channel = channel, sh.n = n;
    pthread_mutex_init(&sh.mu, NULL);
    pthread_cond_init(&sh.cv, NULL);
    pthread_mutex_init(&sh.rmu, NULL);
    pthread_cond_init(&sh.rcv, NULL);
    if (side == NT_LIBPQ_RELAY && pthread_create(&relay, NULL, nt_relay, &sh) != 0)
        die("pthread_create failed");
    if (pthread_create(&th, NULL, nt_receiver, &sh) != 0)
        die("pthread_create failed");
    pthread_mutex_lock(&sh.mu);
    while (sh.ready < threads)
        pthread_cond_wait(&sh.cv, &sh.mu);
    pthread_mutex_unlock(&sh.mu);
    side_snap(&snap0);
    p0 = csw(RUSAGE_SELF, &pv0);
    s0 = csw(RUSAGE_THREAD, &sv0);
    for (i = 0; i < n; i++) {
        char sql[128];
        double t0;
        snprintf(sql, sizeof sql, "NOTIFY %s, '%ld'", channel, i);
        t0 = now_us();
        pq_exec_ok(sender, sql);
        pthread_mutex_lock(&sh.mu);
        while (sh.got <= i)
            pthread_cond_wait(&sh.cv, &sh.mu);
        lat[i] = sh.t_recv - t0;
        pthread_mutex_unlock(&sh.mu);
    }
    p1 = csw(RUSAGE_SELF, &pv1);
    s1 = csw(RUSAGE_THREAD, &sv1);
    side_snap(&snap1);
    pthread_mutex_lock(&sh.mu);
    sh.release = 1;
    pthread_cond_broadcast(&sh.cv);
    pthread_mutex_unlock(&sh.mu);
    pthread_join(th, NULL);
    if (side == NT_LIBPQ_RELAY)
        pthread_join(relay, NULL);
    nt_listen(side, s, lc, channel, 0);
    pthread_mutex_destroy(&sh.mu);
    pthread_cond_destroy(&sh.cv);
    pthread_mutex_destroy(&sh.rmu);
    pthread_cond_destroy(&sh.rcv);
    memcpy(sorted, lat, (size_t)n * sizeof *sorted);
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_double);
    out->p50 = quantile_sorted(sorted, (size_t)n, 0.50);
    out->p99 = quantile_sorted(sorted, (size_t)n, 0.99);
    free(sorted);
    out->csw_sender = (s1 - s0) / (double)n;
    out->csw_all = ((p1 - p0) - (s1 - s0)) / (double)n;
    out->vcsw_all = ((pv1 - pv0) - (sv1 - sv0)) / (double)n;
    out->csw_thread = sh.csw_thread / (double)n;
    out->vcsw_thread = sh.vcsw_thread / (double)n;
    side_delta(&snap0, &snap1, &srun, &swait);
    out->run_all = srun / (double)n, out->wait_all = swait / (double)n;
    out->run_thread = sh.run_thread / (double)n, out->wait_thread = sh.wait_thread / (double)n;
}

static void workload_notify(PGconn *sender)
{
    long nb = NOTIFY_BLOCKS, per = NOTIFY_PER_BLOCK, k;
    double *p50[NT_SIDES], *p99[NT_SIDES], *cs[NT_SIDES], *vcs[NT_SIDES], *ct[NT_SIDES], *vct[NT_SIDES];
    double *sn[NT_SIDES], *all[NT_SIDES], *ra[NT_SIDES], *wa[NT_SIDES], *rt[NT_SIDES], *wt[NT_SIDES];
    double *r50 = dalloc(nb), *r99 = dalloc(nb), *rcs = dalloc(nb), *rct = dalloc(nb);
    double *f50 = dalloc(nb), *h50 = dalloc(nb), *hf50 = dalloc(nb);
    char cha[64], chb[64], sql[128];
    pgsess_error *err = NULL;
    pgsess_session *s = ps_open(1);
    PGconn *lc = pq_connect();
    struct nt_block blk;
    double *lat = dalloc(per);
    int i;
    /* The order within a block alternates (ABCD, DCBA, ...): no side always runs first. */
    static const enum nt_side order[NT_SIDES] = {NT_PGSESS, NT_LIBPQ, NT_PGSESS_FD, NT_LIBPQ_RELAY};

    for (i = 0; i < NT_SIDES; i++) {
        p50[i] = dalloc(nb), p99[i] = dalloc(nb), cs[i] = dalloc(nb), vcs[i] = dalloc(nb);
        ct[i] = dalloc(nb), vct[i] = dalloc(nb), sn[i] = dalloc(nb), all[i] = dalloc(nb * per);
        ra[i] = dalloc(nb), wa[i] = dalloc(nb), rt[i] = dalloc(nb), wt[i] = dalloc(nb);
    }
    snprintf(cha, sizeof cha, "pgsess_bench_ps_%ld", (long)getpid());
    snprintf(chb, sizeof chb, "pgsess_bench_pq_%ld", (long)getpid());
    /* Opens pgsess's listener connection; each block listens and unlistens (nt_listen). */
    if (pgsess_listen(s, cha, &err) != PGSESS_OK || pgsess_unlisten(s, cha, &err) != PGSESS_OK)
        die("pgsess_listen(%s) failed: %s", cha, emsg(err));
    (void)sql;
    printf("10. LISTEN/NOTIFY latency: a libpq sender connection runs \"NOTIFY channel, 'seq'\" one at a time and\n"
           "   waits until the receiver thread has it; latency = from before the NOTIFY is sent to the\n"
           "   notification in the application's hands (CLOCK_MONOTONIC, one process). Receivers:\n"
           "   pgsess_listen + pgsess_notification_next(-1) vs LISTEN + poll(PQsocket) + PQconsumeInput +\n"
           "   PQnotifies; extra: pgsess by poll(pgsess_notification_fd) + next(0), and libpq's loop in a\n"
           "   second thread handing each notification to the receiver (mutex + condition variable).\n"
           "   %ld blocks x %ld notifications per side, order alternating, 1 warm-up block each\n",
           nb, per);
    for (i = 0; i < NT_SIDES; i++)
        nt_run_block(order[i], s, lc, sender, order[i] == NT_PGSESS || order[i] == NT_PGSESS_FD ? cha : chb,
                     per, lat, &blk);
    for (k = 0; k < nb; k++) {
        int j;
        for (j = 0; j < NT_SIDES; j++) {
            enum nt_side side = order[k % 2 ? NT_SIDES - 1 - j : j];
            nt_run_block(side, s, lc, sender, side == NT_PGSESS || side == NT_PGSESS_FD ? cha : chb, per, lat,
                         &blk);
            memcpy(all[side] + k * per, lat, (size_t)per * sizeof *lat);
            p50[side][k] = blk.p50, p99[side][k] = blk.p99;
            cs[side][k] = blk.csw_all, vcs[side][k] = blk.vcsw_all;
            ct[side][k] = blk.csw_thread, vct[side][k] = blk.vcsw_thread;
            sn[side][k] = blk.csw_sender;
            ra[side][k] = blk.run_all, wa[side][k] = blk.wait_all;
            rt[side][k] = blk.run_thread, wt[side][k] = blk.wait_thread;
        }
        r50[k] = p50[NT_PGSESS][k] / p50[NT_LIBPQ][k];
        r99[k] = p99[NT_PGSESS][k] / p99[NT_LIBPQ][k];
        rcs[k] = cs[NT_LIBPQ][k] > 0 ? cs[NT_PGSESS][k] / cs[NT_LIBPQ][k] : 0;
        rct[k] = ct[NT_LIBPQ][k] > 0 ? ct[NT_PGSESS][k] / ct[NT_LIBPQ][k] : 0;
        f50[k] = p50[NT_PGSESS_FD][k] / p50[NT_LIBPQ][k];
        h50[k] = p50[NT_LIBPQ_RELAY][k] / p50[NT_LIBPQ][k];
        hf50[k] = p50[NT_PGSESS][k] / p50[NT_LIBPQ_RELAY][k];
    }
    pgsess_close(s);
    PQfinish(lc);
    printf("    all %ld notifications of each side:\n", nb * per);
    for (i = 0; i < NT_SIDES; i++) {
        size_t m = (size_t)(nb * per);
        qsort(all[i], m, sizeof *all[i], cmp_double);
        printf("      %-20s p50 %8.2f  p99 %8.2f  max %9.2f us\n", NT_NAME[i], quantile_sorted(all[i], m, 0.50),
               quantile_sorted(all[i], m, 0.99), all[i][m - 1]);
    }
    for (i = 0; i < NT_SIDES; i++) {
        char label[64];
        printf("    %s:\n", NT_NAME[i]);
        print_stats("  p50 latency of a block", "us", p50[i], nb);
        print_stats("  p99 latency of a block", "us", p99[i], nb);
        print_stats("  switches/notif., receiving side", "", cs[i], nb);
        print_stats("    of them voluntary", "", vcs[i], nb);
        print_stats("  switches/notif., receiver thread", "", ct[i], nb);
        print_stats("    of them voluntary", "", vct[i], nb);
        snprintf(label, sizeof label, "  switches/notif., sender thread");
        print_stats(label, "", sn[i], nb);
        print_stats("  CPU/notif., receiving side", "us", ra[i], nb);
        print_stats("  CPU/notif., receiver thread", "us", rt[i], nb);
        print_stats("  CPU wait/notif., receiving side", "us", wa[i], nb);
        print_stats("  CPU wait/notif., receiver thread", "us", wt[i], nb);
    }
    print_stats("ratio p50 pgsess/libpq", "", r50, nb);
    print_stats("ratio p99 pgsess/libpq", "", r99, nb);
    print_stats("ratio p50 pgsess fd/libpq", "", f50, nb);
    print_stats("ratio p50 libpq+handoff/libpq", "", h50, nb);
    print_stats("ratio p50 pgsess/libpq+handoff", "", hf50, nb);
    add_row("10. NOTIFY to the notification in the application: p50 latency", median(p50[NT_PGSESS], (size_t)nb),
            median(p50[NT_LIBPQ], (size_t)nb), "us", median(r50, (size_t)nb), LOWER, 1.10, "(issue)");
    add_row("10. (extra) the same: p99 latency", median(p99[NT_PGSESS], (size_t)nb), median(p99[NT_LIBPQ], (size_t)nb),
            "us", median(r99, (size_t)nb), INFO, 0, NULL);
    add_row("10. (extra) context switches per notification, the receiving side's threads",
            median(cs[NT_PGSESS], (size_t)nb), median(cs[NT_LIBPQ], (size_t)nb), "", median(rcs, (size_t)nb), INFO,
            0, NULL);
    add_row("10. (extra) the same, the application's receiving thread alone", median(ct[NT_PGSESS], (size_t)nb),
            median(ct[NT_LIBPQ], (size_t)nb), "", median(rct, (size_t)nb), INFO, 0, NULL);
    for (k = 0; k < nb; k++)
        rcs[k] = ra[NT_LIBPQ][k] > 0 ? ra[NT_PGSESS][k] / ra[NT_LIBPQ][k] : 0;
    add_row("10. (extra) CPU time (user+sys) per notification, the receiving side's threads",
            median(ra[NT_PGSESS], (size_t)nb), median(ra[NT_LIBPQ], (size_t)nb), "us", median(rcs, (size_t)nb), INFO,
            0, NULL);
    add_row("10. (extra) p50, pgsess by poll(pgsess_notification_fd) + next(0)", median(p50[NT_PGSESS_FD], (size_t)nb),
            median(p50[NT_LIBPQ], (size_t)nb), "us", median(f50, (size_t)nb), INFO, 0, NULL);
    add_text_row("10. (extra) p50, libpq + one thread handoff (the floor of a background-thread design)", "-", "",
                 "-", "-");
    fmt_val(ROWS[NROWS - 1].b, sizeof ROWS[NROWS - 1].b, median(p50[NT_LIBPQ_RELAY], (size_t)nb), "us");
    ROWS[NROWS - 1].ratio = median(h50, (size_t)nb);
    add_row("10. (extra) p50, pgsess next(-1) vs libpq + one thread handoff", median(p50[NT_PGSESS], (size_t)nb),
            median(p50[NT_LIBPQ_RELAY], (size_t)nb), "us", median(hf50, (size_t)nb), INFO, 0, NULL);
    for (i = 0; i < NT_SIDES; i++) {
        free(p50[i]), free(p99[i]), free(cs[i]), free(vcs[i]), free(ct[i]), free(vct[i]), free(sn[i]);
        free(all[i]), free(ra[i]), free(wa[i]), free(rt[i]), free(wt[i]);
    }
    free(r50), free(r99), free(rcs), free(rct), free(f50), free(h50), free(hf50), free(lat);
}

/* ------------------------------------------------------------------------------------------ */
/* Setup                                                                                       */

static void set_names(const char *bulk_table)
{
    if (bulk_table != BULK_TABLE)
        snprintf(BULK_TABLE, sizeof BULK_TABLE, "%s", bulk_table);
    snprintf(BULK_SQL, sizeof BULK_SQL, "SELECT i, t, ts, f, b FROM %s", BULK_TABLE);
}

static void setup_tables(PGconn *ctl)
{
    char sql[512];
    snprintf(BULK_TABLE, sizeof BULK_TABLE, "pgsess_bench_bulk_%ld", (long)getpid());
    snprintf(WR_TABLE, sizeof WR_TABLE, "pgsess_bench_writes_%ld", (long)getpid());
    set_names(BULK_TABLE);
    snprintf(WR_SQL, sizeof WR_SQL, "INSERT INTO %s (id, name, v) VALUES ($1, $2, $3)", WR_TABLE);
    snprintf(COPYIN_TABLE, sizeof COPYIN_TABLE, "pgsess_bench_copyin_%ld", (long)getpid());
    snprintf(COPYOUT_TABLE, sizeof COPYOUT_TABLE, "pgsess_bench_copyout_%ld", (long)getpid());
    snprintf(COPYIN_SQL, sizeof COPYIN_SQL, "COPY %s (i, t) FROM STDIN", COPYIN_TABLE);
    snprintf(COPYOUT_SQL, sizeof COPYOUT_SQL, "COPY %s TO STDOUT", COPYOUT_TABLE);
    snprintf(sql, sizeof sql,
             "CREATE TABLE %s AS SELECT i, 'row ' || i AS t, now() + i * interval '1 second' AS ts,"
             " (i * 1.5)::float8 AS f, i %% 2 = 0 AS b FROM generate_series(1, %ld) i",
             BULK_TABLE, BULK_ROWS);
    pq_exec_ok(ctl, sql);
    snprintf(sql, sizeof sql, "VACUUM ANALYZE %s", BULK_TABLE);
    pq_exec_ok(ctl, sql);
    snprintf(sql, sizeof sql, "CREATE TABLE %s (id int PRIMARY KEY, name text NOT NULL, v float8)", WR_TABLE);
    pq_exec_ok(ctl, sql);
    /* Unlogged: the server's WAL is not what the COPY workloads measure. */
    snprintf(sql, sizeof sql, "CREATE UNLOGGED TABLE %s (i int NOT NULL, t text NOT NULL)", COPYIN_TABLE);
    pq_exec_ok(ctl, sql);
}

/* The source of workload 9, COPY_ROWS rows as COPY FROM writes them; made only when it runs. */
static void setup_copyout_table(PGconn *ctl)
{
    char sql[320];
    snprintf(sql, sizeof sql,
             "CREATE UNLOGGED TABLE %s AS SELECT i, 'some text ' || i AS t FROM generate_series(1, %ld) i",
             COPYOUT_TABLE, COPY_ROWS);
    pq_exec_ok(ctl, sql);
    snprintf(sql, sizeof sql, "VACUUM ANALYZE %s", COPYOUT_TABLE);
    pq_exec_ok(ctl, sql);
}

static void drop_sql(char *sql, size_t n)
{
    /* Quietly: the COPY TO source exists only when workload 9 ran. */
    snprintf(sql, n, "SET client_min_messages = warning; DROP TABLE IF EXISTS %s, %s, %s, %s", BULK_TABLE, WR_TABLE,
             COPYIN_TABLE, COPYOUT_TABLE);
}

static void drop_tables(PGconn *ctl)
{
    char sql[320];
    drop_sql(sql, sizeof sql);
    pq_exec_ok(ctl, sql);
}

static PGconn *CTL_FOR_EXIT;

static void cleanup_at_exit(void)
{
    if (CTL_FOR_EXIT != NULL && PQstatus(CTL_FOR_EXIT) == CONNECTION_OK && BULK_TABLE[0]) {
        char sql[320];
        PGresult *r;
        drop_sql(sql, sizeof sql);
        r = PQexec(CTL_FOR_EXIT, sql);
        PQclear(r);
    }
}

/* PGSESS_BENCH_ONLY: a comma-separated list of workloads to run (roundtrip, roundtrip_cached, bulk, bulk_typed, concurrency,
 * connect, memory, writes, dirty, copy_in, copy_out, notify); unset or empty runs all of them. */
static int wanted(const char *workload)
{
    const char *only = getenv("PGSESS_BENCH_ONLY");
    size_t n = strlen(workload);
    const char *p;
    if (only == NULL || only[0] == '\0')
        return 1;
    for (p = only; (p = strstr(p, workload)) != NULL; p += n)
        if ((p == only || p[-1] == ',') && (p[n] == '\0' || p[n] == ','))
            return 1;
    return 0;
}

static int run_all(void)
{
    PGconn *ctl, *c;
    pgsess_session *s1, *s8;
    double t0 = now_us();

    start_spawner(); /* first, while this process is small: see mem_run */
    ctl = pq_connect();
    CTL_FOR_EXIT = ctl;
    atexit(cleanup_at_exit);
    printf("pgsess %s vs libpq %d; server %s; client pid %ld\n", pgsess_version(), PQlibVersion(),
           PQparameterStatus(ctl, "server_version"), (long)getpid());
    printf("server TimeZone %s, DateStyle %s\n\n", PQparameterStatus(ctl, "TimeZone"),
           PQparameterStatus(ctl, "DateStyle"));
    setup_tables(ctl);

    s1 = ps_open(1);
    s8 = ps_open(8);
    c = pq_connect();

    if (wanted("roundtrip"))
        workload_roundtrip(s1, c);
    if (wanted("roundtrip_cached"))
        workload_roundtrip_cached(c);
    if (wanted("bulk"))
        workload_bulk(s1, c);
    if (wanted("bulk_typed"))
        workload_bulk_typed(s1, c);
    if (wanted("concurrency"))
        workload_concurrency(s8);
    if (wanted("connect"))
        workload_connect();
    if (wanted("memory"))
        workload_memory();
    if (wanted("writes"))
        workload_writes(s1, c, ctl);
    if (wanted("dirty"))
        workload_dirty(s8, c);
    if (wanted("copy_in"))
        workload_copy_in(s1, c, ctl);
    if (wanted("copy_out")) {
        setup_copyout_table(ctl);
        workload_copy_out(s1, c);
    }
    if (wanted("notify"))
        workload_notify(ctl);

    stop_spawner();
    printf("\nall workloads: %.1f s\n\n", (now_us() - t0) / 1e6);
    printf("RESULTS-TABLE-BEGIN\n");
    print_table();
    printf("RESULTS-TABLE-END\n");

    PQfinish(c);
    pgsess_close(s1);
    pgsess_close(s8);
    drop_tables(ctl);
    CTL_FOR_EXIT = NULL;
    PQfinish(ctl);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Callgrind mode: one side, one workload, a fixed count, the loop in measured_loop()          */

static volatile unsigned long long SINK;

/* bulk: 0 round trip, 1 bulk fetch read by cell, 2 bulk fetch read by row (pgsess only), 3-5
   COPY, 6 workload 2b into C types (pgsess: binary + per-value getters; libpq: binary + ntohl),
   7 the same by column getters (pgsess only), 8 round trip with the statement cache on (pgsess
   only) */
NOINLINE static void measured_loop(int bulk, int pg, long n, pgsess_session *s, PGconn *c)
{
    unsigned long long sum = 0;
    long i;
    struct bulk_sum bs;
    if (bulk == 8) {
        rt_pgsess(s, 1000, n, &sum);
        SINK = sum;
        return;
    }
    if (bulk >= 6) {
        struct typed_sum ts;
        for (i = 0; i < n; i++) {
            if (bulk == 7)
                typed_pgsess_columns(s, &ts);
            else
                pg ? typed_pgsess(s, &ts) : typed_libpq_binary(c, &ts);
            sum += ts.ints + ts.micros;
        }
        SINK = sum;
        return;
    }
    if (bulk >= 3) { /* one copy of COPY_ROWS (= n) rows: 3 in by row, 4 in by 64 KiB, 5 out */
        struct copy_sum cs = {0, 0, 0, 0};
        struct copy_cost cost;
        (void)n;
        if (bulk == 5)
            pg ? copyout_pgsess(s, &cs, &cost) : copyout_libpq(c, &cs, &cost);
        else
            pg ? copyin_pgsess(s, bulk == 4 ? COPY_CHUNK : 0, &cost) : copyin_libpq(c, bulk == 4 ? COPY_CHUNK : 0, &cost);
        SINK = cs.len;
        return;
    }
    if (!bulk) {
        if (pg)
            rt_pgsess(s, 1000, n, &sum);
        else
            rt_libpq(c, 1000, n, &sum);
    } else {
        for (i = 0; i < n; i++) {
            if (pg)
                bulk_pgsess(s, bulk == 2, &bs, NULL);
            else
                bulk_libpq(c, &bs, NULL);
            sum += bs.len + bs.first;
        }
    }
    SINK = sum;
}

/* bench cg notify SIDE N: N notifications to one receiver side, nothing else (for strace -f -c,
 * perf record or callgrind; compare two N to take out the setup). */
NOINLINE static void measured_notify(enum nt_side side, pgsess_session *s, PGconn *lc, PGconn *sender,
                                     const char *channel, long n)
{
    double *lat = dalloc(n);
    struct nt_block blk;
    nt_run_block(side, s, lc, sender, channel, n, lat, &blk);
    printf("CG notify %s n=%ld p50 %.2f us p99 %.2f us switches/notification: receiving side %.2f, receiver "
           "thread %.2f, sender %.2f\n",
           NT_NAME[side], n, blk.p50, blk.p99, blk.csw_all, blk.csw_thread, blk.csw_sender);
    free(lat);
}

static int run_cg_notify(const char *side_name, long n)
{
    enum nt_side side = strcmp(side_name, "pgsess") == 0     ? NT_PGSESS
                        : strcmp(side_name, "libpq") == 0    ? NT_LIBPQ
                        : strcmp(side_name, "pgsessfd") == 0 ? NT_PGSESS_FD
                        : strcmp(side_name, "relay") == 0    ? NT_LIBPQ_RELAY
                                                             : NT_SIDES;
    int pg = side == NT_PGSESS || side == NT_PGSESS_FD;
    pgsess_session *s = NULL;
    PGconn *lc = NULL, *sender;
    pgsess_error *err = NULL;
    double *lat;
    struct nt_block blk;
    char ch[64], sql[128];
    if (side == NT_SIDES || n <= 0)
        die("usage: bench cg notify pgsess|libpq|pgsessfd|relay N");
    snprintf(ch, sizeof ch, "pgsess_bench_cg_%ld", (long)getpid());
    sender = pq_connect();
    if (pg)
        s = ps_open(1);
    else
        lc = pq_connect();
    (void)err, (void)sql;
    lat = dalloc(20);
    nt_run_block(side, s, lc, sender, ch, 20, lat, &blk); /* warm-up */
    free(lat);
    measured_notify(side, s, lc, sender, ch, n);
    pgsess_close(s);
    if (lc)
        PQfinish(lc);
    PQfinish(sender);
    return 0;
}

static int run_cg(const char *workload, const char *side, long n)
{
    int bulk = strcmp(workload, "bulk") == 0      ? 1
               : strcmp(workload, "bulkrow") == 0 ? 2
               : strcmp(workload, "copyin") == 0  ? 3
               : strcmp(workload, "copyin64") == 0 ? 4
               : strcmp(workload, "copyout") == 0 ? 5
               : strcmp(workload, "typed") == 0 ? 6
               : strcmp(workload, "typedcol") == 0 ? 7
               : strcmp(workload, "rtc") == 0 ? 8
                                                  : 0;
    int pg = strcmp(side, "pgsess") == 0;
    pgsess_session *s = NULL;
    PGconn *c = NULL, *ctl = NULL;
    unsigned long long dummy = 0;
    struct bulk_sum bs;
    if ((!bulk && strcmp(workload, "rt") != 0) || (!pg && strcmp(side, "libpq") != 0) || n <= 0 ||
        ((bulk == 2 || bulk >= 7) && !pg))
        die("usage: bench cg rt|rtc|bulk|bulkrow|copyin|copyin64|copyout|typed|typedcol pgsess|libpq N  (rtc, "
            "bulkrow, typedcol: pgsess only)");
    if (bulk >= 3 && bulk <= 5)
        COPY_ROWS = n;
    if (bulk && bulk != 8) { /* the table, created here, outside the measured function */
        ctl = pq_connect();
        CTL_FOR_EXIT = ctl;
        atexit(cleanup_at_exit);
        setup_tables(ctl);
        if (bulk == 5)
            setup_copyout_table(ctl);
        if (bulk == 3 || bulk == 4)
            copy_make_data();
    }
    struct typed_sum warm;
    if (pg)
        s = bulk == 8 ? ps_open_cached(1, 64) : ps_open(1);
    else
        c = pq_connect();
    /* Warm up outside the measured function. */
    if (bulk == 8) {
        rt_pgsess(s, 0, 50, &dummy);
    } else if (bulk >= 6) {
        if (bulk == 7)
            typed_pgsess_columns(s, &warm);
        else
            pg ? typed_pgsess(s, &warm) : typed_libpq_binary(c, &warm);
    } else if (!bulk || bulk >= 3) {
        if (pg)
            rt_pgsess(s, 0, 50, &dummy);
        else
            rt_libpq(c, 0, 50, &dummy);
    } else if (pg) {
        bulk_pgsess(s, bulk == 2, &bs, NULL);
    } else {
        bulk_libpq(c, &bs, NULL);
    }
    measured_loop(bulk, pg, n, s, c);
    if (bulk == 3 || bulk == 4)
        copyin_verify(ctl, side);
    printf("CG %s %s n=%ld rows=%ld\n", workload, side, bulk >= 3 && bulk <= 5 ? 1L : n,
           bulk >= 3 && bulk <= 5 ? COPY_ROWS : bulk && bulk != 8 ? BULK_ROWS : 1L);
    if (s)
        pgsess_close(s);
    if (c)
        PQfinish(c);
    if (ctl) {
        drop_tables(ctl);
        CTL_FOR_EXIT = NULL;
        PQfinish(ctl);
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    ssize_t n;
    setvbuf(stdout, NULL, _IOLBF, 0);
    URL = getenv("PGSQL_BENCH");
    if (URL == NULL || URL[0] == '\0') {
        fprintf(stderr, "PGSQL_BENCH is not set; export it to a PostgreSQL URI\n");
        return 2;
    }
    n = readlink("/proc/self/exe", SELF, sizeof SELF - 1);
    if (n <= 0)
        snprintf(SELF, sizeof SELF, "%s", argv[0]);
    else
        SELF[n] = '\0';

    if (argc >= 2 && strcmp(argv[1], "all") == 0) {
        if (argc >= 3 && strcmp(argv[2], "-q") == 0) {
            RT_BLOCKS = 3, RT_ITERS = 50, RT_WARM = 20;
            BULK_ROWS = 2000, BULK_BLOCKS = 3;
            CONC_TOTAL = 256, CONC_BLOCKS = 3;
            CONN_BLOCKS = 3, CONN_REQS = 3;
            MEM_RUNS = 1;
            WR_BLOCKS = 3, WR_ROWS = 50;
            COPY_ROWS = 2000, COPY_BLOCKS = 3;
            NOTIFY_BLOCKS = 3, NOTIFY_PER_BLOCK = 20;
        }
        return run_all();
    }
    if (argc == 5 && strcmp(argv[1], "mem") == 0) {
        set_names(argv[3]);
        BULK_ROWS = strtol(argv[4], NULL, 10);
        return mem_child(argv[2]);
    }
    if (argc == 5 && strcmp(argv[1], "cg") == 0 && strcmp(argv[2], "notify") == 0)
        return run_cg_notify(argv[3], strtol(argv[4], NULL, 10));
    if (argc == 5 && strcmp(argv[1], "cg") == 0)
        return run_cg(argv[2], argv[3], strtol(argv[4], NULL, 10));
    fprintf(stderr,
            "usage: %s all [-q] | mem pgsess|libpq TABLE ROWS | cg rt|rtc|bulk|bulkrow|copyin|copyin64|copyout|typed|"
            "typedcol pgsess|libpq N\n"
            "       | cg notify pgsess|libpq|pgsessfd|relay N\n"
            "  (PGSQL_BENCH must hold a PostgreSQL URI)\n",
            argv[0]);
    return 2;
}
