/*
 * bench/roundtrip.c - per-call round-trip cost of pgsess versus raw libpq.
 *
 * Same process, same server, same URI (env PGSQL_BENCH), interleaved blocks
 * A B A B ...: A = pgsess_query("SELECT $1::int + 1") + check + results_free
 * on a pool of size 1, B = PQexecParams(same SQL) + check + PQclear.
 * Reports each side's median per-call time over blocks and the median of the
 * per-block ratios pgsess/libpq.
 *
 * usage: roundtrip [BLOCKS [ITERATIONS_PER_BLOCK [WARMUP]]]   (default 20 500 1000)
 */
#define _POSIX_C_SOURCE 200809L
#include <libpq-fe.h>
#include <pgsess.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

static double median(const double *v, size_t n)
{
    double *c = malloc(n * sizeof *c);
    double m;
    if (c == NULL) {
        perror("malloc");
        exit(1);
    }
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

static const char *SQL = "SELECT $1::int + 1";

/* Returns elapsed microseconds for n calls, or a negative value on failure. */
static double run_pgsess(pgsess_session *s, long base, long n)
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
        r = pgsess_query(s, SQL, 1, params, &err);
        if (r == NULL) {
            fprintf(stderr, "pgsess_query failed: %s\n",
                    pgsess_error_message(err) ? pgsess_error_message(err) : "(no message)");
            pgsess_error_free(err);
            return -1.0;
        }
        v = pgsess_results_value(r, 0, 0);
        if (v == NULL || strcmp(v, want) != 0) {
            fprintf(stderr, "pgsess: wrong answer for %s: %s\n", in, v ? v : "NULL");
            pgsess_results_free(r);
            return -1.0;
        }
        pgsess_results_free(r);
    }
    return now_us() - t0;
}

static double run_libpq(PGconn *conn, long base, long n)
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
        r = PQexecParams(conn, SQL, 1, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            fprintf(stderr, "PQexecParams failed: %s", PQerrorMessage(conn));
            PQclear(r);
            return -1.0;
        }
        v = PQgetvalue(r, 0, 0);
        if (v == NULL || strcmp(v, want) != 0) {
            fprintf(stderr, "libpq: wrong answer for %s: %s\n", in, v ? v : "NULL");
            PQclear(r);
            return -1.0;
        }
        PQclear(r);
    }
    return now_us() - t0;
}

static long arg_or(int argc, char **argv, int i, long dflt)
{
    long v;
    if (argc <= i)
        return dflt;
    v = strtol(argv[i], NULL, 10);
    if (v <= 0) {
        fprintf(stderr, "usage: %s [BLOCKS [ITERATIONS [WARMUP]]] (positive integers)\n", argv[0]);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    const char *url = getenv("PGSQL_BENCH");
    long blocks = arg_or(argc, argv, 1, 20);
    long iters = arg_or(argc, argv, 2, 500);
    long warm = arg_or(argc, argv, 3, 1000);
    pgsess_options *opts;
    pgsess_session *s;
    pgsess_error *err = NULL;
    PGconn *conn;
    double *a, *b, *ratio;
    long k;

    if (url == NULL || url[0] == '\0') {
        fprintf(stderr, "PGSQL_BENCH is not set; export it to a PostgreSQL URI\n");
        return 2;
    }

    opts = pgsess_options_new();
    if (pgsess_options_set_pool_max_size(opts, 1) != PGSESS_OK) {
        fprintf(stderr, "cannot set pool size\n");
        return 1;
    }
    s = pgsess_open("bench", opts, &err); /* reads PGSQL_BENCH */
    pgsess_options_free(opts);
    if (s == NULL) {
        fprintf(stderr, "pgsess_open failed: %s\n",
                pgsess_error_message(err) ? pgsess_error_message(err) : "(no message)");
        pgsess_error_free(err);
        return 1;
    }
    conn = PQconnectdb(url);
    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "PQconnectdb failed: %s", PQerrorMessage(conn));
        PQfinish(conn);
        pgsess_close(s);
        return 1;
    }

    printf("roundtrip: pgsess %s vs libpq %d; %ld blocks x %ld calls, %ld warm-up calls each; \"%s\"\n",
           pgsess_version(), PQlibVersion(), blocks, iters, warm, SQL);

    if (run_pgsess(s, 0, warm) < 0 || run_libpq(conn, 0, warm) < 0)
        return 1;

    a = calloc((size_t)blocks, sizeof *a);
    b = calloc((size_t)blocks, sizeof *b);
    ratio = calloc((size_t)blocks, sizeof *ratio);
    if (a == NULL || b == NULL || ratio == NULL) {
        perror("calloc");
        return 1;
    }
    for (k = 0; k < blocks; k++) {
        double ta = run_pgsess(s, k * iters, iters);
        double tb = run_libpq(conn, k * iters, iters);
        if (ta < 0 || tb < 0)
            return 1;
        a[k] = ta / (double)iters;
        b[k] = tb / (double)iters;
        ratio[k] = a[k] / b[k];
    }

    printf("%-8s %12s %12s\n", "side", "median us", "min us");
    printf("%-8s %12.2f %12.2f\n", "pgsess", median(a, (size_t)blocks), min_of(a, (size_t)blocks));
    printf("%-8s %12.2f %12.2f\n", "libpq", median(b, (size_t)blocks), min_of(b, (size_t)blocks));
    printf("median per-block ratio pgsess/libpq: %.3f (min %.3f)\n", median(ratio, (size_t)blocks),
           min_of(ratio, (size_t)blocks));

    free(a);
    free(b);
    free(ratio);
    PQfinish(conn);
    pgsess_close(s);
    return 0;
}
