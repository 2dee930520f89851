/*
 * Streaming a large result: pgsess_query_stream hands rows over in chunks, so memory stays
 * bounded by one chunk however many rows the statement returns.
 *
 *   stream [stream|whole] [rows] [chunk_rows]
 *
 * Reads every value of `rows` rows (default 2,000,000) either through a stream of `chunk_rows`
 * (default 10,000) or with one pgsess_query, and prints the peak resident set size. URI from
 * PGSQL_DEMO. Build: cc stream.c $(pkg-config --cflags --libs pgsess)
 */
#include <pgsess.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static long peak_rss_kib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* Read every value of a chunk; returns the bytes read. */
static unsigned long long consume(const pgsess_results *r, unsigned long long *rows) {
    unsigned long long bytes = 0;
    size_t nrows = pgsess_results_nrows(r), ncols = pgsess_results_ncols(r);
    const char *values[8];
    size_t lengths[8];
    for (size_t i = 0; i < nrows; i++) {
        size_t n = pgsess_results_row(r, i, values, lengths, ncols < 8 ? ncols : 8);
        for (size_t c = 0; c < n; c++) bytes += lengths[c];
    }
    *rows += nrows;
    return bytes;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "stream";
    const char *rows_arg = argc > 2 ? argv[2] : "2000000";
    unsigned chunk = argc > 3 ? (unsigned)strtoul(argv[3], NULL, 10) : 10000;
    const char *sql = "SELECT i, 'row ' || i, now() + i * interval '1 second', i * 1.5, i % 2 = 0 "
                      "FROM generate_series(1, $1::int) i";
    pgsess_error *err = NULL;
    pgsess_session *s = pgsess_open("demo", NULL, &err);
    if (!s) {
        fprintf(stderr, "open: %s\n", pgsess_error_message(err));
        return 1;
    }
    long before = peak_rss_kib();
    unsigned long long rows = 0, bytes = 0;
    if (strcmp(mode, "whole") == 0) {
        pgsess_results *r = pgsess_query(s, sql, 1, &rows_arg, &err);
        if (!r) {
            fprintf(stderr, "query: %s\n", pgsess_error_message(err));
            return 1;
        }
        bytes = consume(r, &rows);
        pgsess_results_free(r);
    } else {
        pgsess_stream *st = pgsess_query_stream(s, sql, 1, &rows_arg, chunk, &err);
        if (!st) {
            fprintf(stderr, "stream: %s\n", pgsess_error_message(err));
            return 1;
        }
        pgsess_results *part;
        while ((part = pgsess_stream_next(st, &err)) != NULL) {
            bytes += consume(part, &rows);
            pgsess_results_free(part);
        }
        if (err) {
            fprintf(stderr, "stream: %s\n", pgsess_error_message(err));
            return 1;
        }
        pgsess_stream_free(st);
    }
    printf("%s: %llu rows, %llu value bytes, peak RSS %ld KiB (%ld KiB before the query)\n", mode, rows, bytes,
           peak_rss_kib(), before);
    pgsess_close(s);
    return 0;
}
