/*
 * The C side of the per-row cost comparison (bindings/go/run.sh builds and runs it).
 *
 * Reads the same 200,000 x 5 result as the Go TestRowCost / BenchmarkRowCGOCalls (session
 * "gotest", PGSQL_GOTEST) and prints ns/row for:
 *   - pgsess_results_row alone (what Go's Next pays inside its one cgo call);
 *   - pgsess_results_row plus the conversions Go's Scan does (strtoll x2, a malloc'd copy of
 *     the text, strtod, the bool), the C equivalent of Next+Scan.
 *
 * Build: cc -O2 rowcost.c $(pkg-config --cflags --libs pgsess)
 */
#include <pgsess.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SQL                                                                                        \
    "SELECT i, i * 2 AS j, 'row ' || i AS s, i / 3.0::float8 AS f, i % 2 = 0 AS b "               \
    "FROM generate_series(1, 200000) AS i"

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(void) {
    pgsess_error *err = NULL;
    pgsess_session *s = pgsess_open("gotest", NULL, &err);
    if (!s) {
        fprintf(stderr, "open: %s\n", pgsess_error_message(err));
        return 1;
    }
    pgsess_results *r = pgsess_query(s, SQL, 0, NULL, &err);
    if (!r) {
        fprintf(stderr, "query: %s\n", pgsess_error_message(err));
        return 1;
    }
    size_t nrows = pgsess_results_nrows(r);
    const char *vals[5];
    size_t lens[5];
    double best_row = 1e18, best_scan = 1e18;
    volatile int64_t sink = 0;
    for (int k = 0; k < 5; k++) {
        double t0 = now_ns();
        for (size_t row = 0; row < nrows; row++) {
            pgsess_results_row(r, row, vals, lens, 5);
            sink += (int64_t)lens[2];
        }
        double t1 = now_ns();
        int64_t sum = 0;
        for (size_t row = 0; row < nrows; row++) {
            pgsess_results_row(r, row, vals, lens, 5);
            int64_t i = strtoll(vals[0], NULL, 10), j = strtoll(vals[1], NULL, 10);
            char *str = malloc(lens[2] + 1);
            memcpy(str, vals[2], lens[2] + 1);
            double f = strtod(vals[3], NULL);
            int b = vals[4][0] == 't';
            sum += i + j + (int64_t)strlen(str) + b + (f < 0);
            free(str);
        }
        double t2 = now_ns();
        sink += sum;
        if (t1 - t0 < best_row) best_row = t1 - t0;
        if (t2 - t1 < best_scan) best_scan = t2 - t1;
    }
    printf("c row cost: pgsess_results_row alone %.1f ns/row; row + conversions %.1f ns/row (%zu rows)\n",
           best_row / nrows, best_scan / nrows, nrows);
    pgsess_results_free(r);
    pgsess_close(s);
    return 0;
}
