/*
 * copy.c - COPY FROM STDIN and COPY TO STDOUT through the C API (pgsess_copy_*): text, CSV and
 * binary rows round-trip byte for byte; a bad row, an abandoned handle, a rolled-back transaction,
 * a pinned session, a pool of 1 and a connection killed mid-copy each leave the table and the pool
 * as they should.
 * Needs env PGSQL_CTEST (a PostgreSQL URI); opens it as pgsess_open("ctest").
 * Row counts are kept moderate (20,000) because run.sh runs this under valgrind.
 */
#define _POSIX_C_SOURCE 200809L
#include <pgsess.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "check.h"
#include "helpers.h"

#define NROWS 20000
#define BAD_LINE 15000

/* A session on a pool of `max` connections whose checkouts give up after `checkout_ms`. */
static pgsess_session *open_pool(uint32_t max, uint32_t checkout_ms)
{
    pgsess_options *opts = pgsess_options_new();
    pgsess_session *s;
    CHECK_INTEQ(pgsess_options_set_pool_max_size(opts, max), PGSESS_OK);
    CHECK_INTEQ(pgsess_options_set_checkout_timeout_ms(opts, checkout_ms), PGSESS_OK);
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

/* A growable byte buffer. */
struct buf {
    char *data;
    size_t len;
    size_t cap;
};

static void buf_add(struct buf *b, const void *data, size_t len)
{
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        char *p;
        while (cap < b->len + len + 1)
            cap *= 2;
        p = realloc(b->data, cap);
        if (p == NULL) {
            fprintf(stderr, "out of memory\n");
            exit(2);
        }
        b->data = p;
        b->cap = cap;
    }
    if (len != 0)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

static void buf_printf(struct buf *b, const char *fmt, ...)
{
    char tmp[512];
    int n;
    va_list ap;
    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        fprintf(stderr, "buf_printf: row too long\n");
        exit(2);
    }
    buf_add(b, tmp, (size_t)n);
}

static void buf_free(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* Whether an error's CONTEXT field (pgsess_error_field 'W', where the server names a COPY's line)
 * mentions `needle`. */
static int context_mentions(const pgsess_error *err, const char *needle)
{
    return contains_ci(pgsess_error_field(err, 'W'), needle);
}

static void print_err_fields(const char *what, const pgsess_error *err)
{
    const char *d = pgsess_error_detail(err), *h = pgsess_error_hint(err), *w = pgsess_error_field(err, 'W');
    print_err(__FILE__, __LINE__, what, err);
    fprintf(stderr, "    detail=%s hint=%s context=%s\n", d ? d : "NULL", h ? h : "NULL", w ? w : "NULL");
}

static pgsess_copy *copy_in_(pgsess_session *s, const char *sql, const char *file, int line)
{
    pgsess_error *err = NULL;
    pgsess_copy *c = pgsess_copy_in(s, sql, &err);
    check_count_(c != NULL && err == NULL);
    if (c == NULL || err != NULL) {
        fflush(stdout);
        fprintf(stderr, "%s:%d: CHECK failed: pgsess_copy_in succeeds: %s\n", file, line, sql);
        print_err(file, line, "  error", err);
    }
    pgsess_error_free(err);
    return c;
}
#define COPY_IN(s, sql) copy_in_((s), (sql), __FILE__, __LINE__)

static pgsess_copy *copy_out_(pgsess_session *s, const char *sql, const char *file, int line)
{
    pgsess_error *err = NULL;
    pgsess_copy *c = pgsess_copy_out(s, sql, &err);
    check_count_(c != NULL && err == NULL);
    if (c == NULL || err != NULL) {
        fflush(stdout);
        fprintf(stderr, "%s:%d: CHECK failed: pgsess_copy_out succeeds: %s\n", file, line, sql);
        print_err(file, line, "  error", err);
    }
    pgsess_error_free(err);
    return c;
}
#define COPY_OUT(s, sql) copy_out_((s), (sql), __FILE__, __LINE__)

/* Write `len` bytes of `data` in pieces of varying sizes (so rows and even the binary header
 * straddle write calls). Returns PGSESS_OK, or the first failure with *err set. */
static pgsess_code write_pieces(pgsess_copy *c, const char *data, size_t len, pgsess_error **err)
{
    static const size_t sizes[] = {1, 3, 100, 4096, 65543, 17, 9000, 2};
    size_t off = 0, i = 0;
    while (off < len) {
        size_t n = sizes[i++ % (sizeof sizes / sizeof sizes[0])];
        pgsess_code rc;
        if (n > len - off)
            n = len - off;
        rc = pgsess_copy_write(c, data + off, n, err);
        if (rc != PGSESS_OK)
            return rc;
        off += n;
    }
    return PGSESS_OK;
}

/* Write all of `data` and finish; CHECK that both succeed and `want` rows were copied. Frees `c`. */
static void write_finish_(pgsess_copy *c, const struct buf *data, uint64_t want, const char *file, int line)
{
    pgsess_error *err = NULL;
    uint64_t n;
    if (c == NULL)
        return;
    if (check_count_(write_pieces(c, data->data, data->len, &err) == PGSESS_OK) == 0) {
        fflush(stdout);
        fprintf(stderr, "%s:%d: CHECK failed: pgsess_copy_write succeeds\n", file, line);
        print_err_fields("  error", err);
    }
    pgsess_error_free(err);
    err = NULL;
    n = pgsess_copy_finish(c, &err);
    if (!check_count_(n == want && err == NULL)) {
        fflush(stdout);
        fprintf(stderr, "%s:%d: CHECK failed: pgsess_copy_finish gives %llu rows, expected %llu\n", file, line,
                (unsigned long long)n, (unsigned long long)want);
        print_err_fields("  error", err);
    }
    pgsess_error_free(err);
    pgsess_copy_free(c);
}
#define WRITE_FINISH(c, data, want) write_finish_((c), (data), (want), __FILE__, __LINE__)

/* Read a COPY TO STDOUT to the end into `out`; returns the number of messages (-1 on error, with a
 * failed check). When `rows_end_nl`, CHECKs each message ends with a newline. */
static uint64_t last_rows; /* what pgsess_copy_finish gave at the end of the last READ_ALL */

static long read_all_(pgsess_session *s, const char *sql, struct buf *out, bool rows_end_nl, const char *file,
                      int line)
{
    pgsess_copy *c = copy_out_(s, sql, file, line);
    pgsess_error *err = NULL;
    long msgs = 0, bad_ends = 0;
    uint64_t n;
    if (c == NULL)
        return -1;
    for (;;) {
        size_t len = 12345;
        const char *p = pgsess_copy_read(c, &len, &err);
        if (p == NULL)
            break;
        msgs++;
        if (rows_end_nl && (len == 0 || p[len - 1] != '\n'))
            bad_ends++;
        buf_add(out, p, len);
    }
    if (!check_count_(err == NULL)) {
        fflush(stdout);
        fprintf(stderr, "%s:%d: CHECK failed: pgsess_copy_read reaches the end without an error\n", file, line);
        print_err_fields("  error", err);
        msgs = -1;
    }
    pgsess_error_free(err);
    err = NULL;
    if (bad_ends != 0) {
        check_count_(0);
        fprintf(stderr, "%s:%d: CHECK failed: %ld of %ld messages do not end with a newline\n", file, line,
                bad_ends, msgs);
    }
    n = last_rows = pgsess_copy_finish(c, &err);
    if (!check_count_(err == NULL && msgs >= 0 && (!rows_end_nl || n == (uint64_t)msgs))) {
        fflush(stdout);
        fprintf(stderr, "%s:%d: CHECK failed: pgsess_copy_finish after the reads gives %llu (messages %ld)\n", file,
                line, (unsigned long long)n, msgs);
        print_err_fields("  error", err);
    }
    pgsess_error_free(err);
    pgsess_copy_free(c);
    return msgs;
}
#define READ_ALL(s, sql, out, nl) read_all_((s), (sql), (out), (nl), __FILE__, __LINE__)

/* CHECK two buffers are byte-equal; on a difference print where. */
static void bytes_equal_(const struct buf *a, const struct buf *b, const char *what, const char *file, int line)
{
    size_t i, n = a->len < b->len ? a->len : b->len;
    if (check_count_(a->len == b->len && (n == 0 || memcmp(a->data, b->data, n) == 0)))
        return;
    for (i = 0; i < n && a->data[i] == b->data[i]; i++)
        ;
    fflush(stdout);
    fprintf(stderr, "%s:%d: CHECK failed: %s round trip is byte-equal: lengths %zu and %zu, first difference at %zu\n",
            file, line, what, a->len, b->len, i);
    if (i < n)
        fprintf(stderr, "    wrote: %.60s\n    read:  %.60s\n", a->data + i, b->data + i);
}
#define BYTES_EQUAL(a, b, what) bytes_equal_((a), (b), (what), __FILE__, __LINE__)

static char table[96];

static void exec_fmt_(pgsess_session *s, const char *fmt, const char *arg, const char *file, int line)
{
    char sql[512];
    snprintf(sql, sizeof sql, fmt, arg);
    pgsess_results_free(q_(s, sql, 0, NULL, file, line));
}
#define EXEC_T(s, fmt) exec_fmt_((s), (fmt), table, __FILE__, __LINE__)

/* CHECK that `table` has `want` rows (as seen by `s`). */
static void count_is_(pgsess_session *s, const char *tbl, long want, const char *file, int line)
{
    char sql[256];
    char *v;
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", tbl);
    v = scalar_(s, sql, file, line);
    if (!check_count_(v != NULL && atol(v) == want)) {
        fflush(stdout);
        fprintf(stderr, "%s:%d: CHECK failed: %s has %s rows, expected %ld\n", file, line, tbl, v ? v : "NULL", want);
    }
    free(v);
}
#define COUNT_IS(s, want) count_is_((s), table, (want), __FILE__, __LINE__)

/* CHECK that no connection of s's pool is checked out (and one statement runs). */
static void pool_idle_(pgsess_session *s, const char *file, int line)
{
    pgsess_stats st;
    char *v = scalar_(s, "SELECT 'pool works'", file, line);
    if (!check_count_(v != NULL && strcmp(v, "pool works") == 0)) {
        fflush(stdout);
        fprintf(stderr, "%s:%d: CHECK failed: a statement runs on the pool afterwards\n", file, line);
    }
    free(v);
    if (!check_count_(pgsess_pool_copies_open(s) == 0)) {
        fflush(stdout);
        fprintf(stderr, "%s:%d: CHECK failed: pgsess_pool_copies_open is 0, got %llu\n", file, line,
                (unsigned long long)pgsess_pool_copies_open(s));
    }
    memset(&st, 0, sizeof st);
    check_count_(pgsess_pool_stats(s, &st) == PGSESS_OK);
    if (!check_count_(st.in_use == 0 && st.open >= 1 && st.idle == st.open)) {
        fflush(stdout);
        fprintf(stderr, "%s:%d: CHECK failed: pool stats show every connection back: in_use=%u idle=%u open=%u\n",
                file, line, st.in_use, st.idle, st.open);
    }
}
#define POOL_IDLE(s) pool_idle_((s), __FILE__, __LINE__)

/* The rows of the text-format test: escapes (tab, newline, backslash), UTF-8 and NULLs, all in the
 * form COPY TO writes them, so that what comes back is byte-equal. Line BAD_LINE gets a non-integer
 * id when `bad`. */
static void text_rows(struct buf *b, int nrows, bool bad)
{
    int i;
    for (i = 1; i <= nrows; i++) {
        const char *v;
        char n[32];
        switch (i % 6) {
        case 0: v = "tab\\there"; break;
        case 1: v = "two\\nlines"; break;
        case 2: v = "back\\\\slash"; break;
        case 3: v = "stra\xc3\x9f" "e \xe2\x9c\x93"; break;
        case 4: v = ""; break;
        default: v = "plain"; break;
        }
        if (i % 7 == 0)
            snprintf(n, sizeof n, "\\N");
        else
            snprintf(n, sizeof n, "%d.%02d", i / 3, i % 100);
        if (bad && i == BAD_LINE)
            buf_printf(b, "x%d\t%s %d\t%s\n", i, v, i, n);
        else
            buf_printf(b, "%d\t%s %d\t%s\n", i, v, i, n);
    }
}

static void test_misuse(pgsess_session *s)
{
    pgsess_error *err = NULL;
    pgsess_copy *c;
    size_t len = 99;
    char sql[256];

    CHECK(pgsess_copy_in(NULL, "COPY x FROM STDIN", &err) == NULL);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_INTERFACE_ERROR);
    pgsess_error_free(err);
    CHECK(pgsess_copy_in(s, NULL, &err) == NULL);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_INTERFACE_ERROR);
    pgsess_error_free(err);
    CHECK(pgsess_copy_in(NULL, NULL, NULL) == NULL);
    CHECK_INTEQ(pgsess_pool_copies_open(NULL), 0);
    CHECK(pgsess_error_field(NULL, 'W') == NULL);
    CHECK(pgsess_copy_out(NULL, "COPY x TO STDOUT", &err) == NULL);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_INTERFACE_ERROR);
    pgsess_error_free(err);
    CHECK(pgsess_copy_out(s, NULL, &err) == NULL);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_INTERFACE_ERROR);
    pgsess_error_free(err);
    CHECK(pgsess_copy_out(NULL, NULL, NULL) == NULL);
    CHECK_INTEQ(pgsess_copy_write(NULL, "1\n", 2, &err), PGSESS_INTERFACE_ERROR);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_INTERFACE_ERROR);
    pgsess_error_free(err);
    CHECK_INTEQ(pgsess_copy_write(NULL, NULL, 0, NULL), PGSESS_INTERFACE_ERROR);
    CHECK(pgsess_copy_finish(NULL, &err) == UINT64_MAX);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_INTERFACE_ERROR);
    pgsess_error_free(err);
    CHECK(pgsess_copy_finish(NULL, NULL) == UINT64_MAX);
    CHECK(pgsess_copy_read(NULL, &len, &err) == NULL);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_INTERFACE_ERROR);
    pgsess_error_free(err);
    CHECK(pgsess_copy_read(NULL, NULL, NULL) == NULL);
    pgsess_copy_free(NULL);

    /* A live COPY FROM: NULL data with a length is refused, NULL with 0 is fine; reading from it is
     * refused; the copy still works afterwards. */
    snprintf(sql, sizeof sql, "COPY %s FROM STDIN", table);
    c = COPY_IN(s, sql);
    if (c != NULL) {
        CHECK_INTEQ(pgsess_copy_write(c, NULL, 0, &err), PGSESS_OK);
        CHECK(err == NULL);
        CHECK_INTEQ(pgsess_copy_write(c, NULL, 5, &err), PGSESS_INTERFACE_ERROR);
        CHECK_INTEQ(pgsess_error_code(err), PGSESS_INTERFACE_ERROR);
        pgsess_error_free(err);
        err = NULL;
        len = 99;
        CHECK(pgsess_copy_read(c, &len, &err) == NULL);
        CHECK(err != NULL);
        CHECK_INTEQ(pgsess_error_code(err), PGSESS_INTERFACE_ERROR);
        pgsess_error_free(err);
        err = NULL;
        CHECK_INTEQ(pgsess_copy_write(c, "1\tone\t1.5\n", 10, &err), PGSESS_OK);
        CHECK(err == NULL);
        CHECK_INTEQ(pgsess_copy_finish(c, &err), 1);
        CHECK(err == NULL);
        pgsess_error_free(err);
        err = NULL;
        /* Finished: a second finish gives the count again, a write fails, freeing is still
         * required (and fine). */
        CHECK_INTEQ(pgsess_copy_finish(c, &err), 1);
        CHECK(err == NULL);
        pgsess_error_free(err);
        err = NULL;
        CHECK_INTEQ(pgsess_copy_write(c, "2\ttwo\t2\n", 8, &err), PGSESS_INTERFACE_ERROR);
        pgsess_error_free(err);
        err = NULL;
        pgsess_copy_free(c);
    }
    COUNT_IS(s, 1);

    /* A live COPY TO: writing to it is refused; a NULL len is refused or ignored, never a crash. */
    snprintf(sql, sizeof sql, "COPY %s TO STDOUT", table);
    c = COPY_OUT(s, sql);
    if (c != NULL) {
        const char *p;
        CHECK_INTEQ(pgsess_copy_write(c, "x", 1, &err), PGSESS_INTERFACE_ERROR);
        pgsess_error_free(err);
        err = NULL;
        p = pgsess_copy_read(c, NULL, &err);
        CHECK(p != NULL || pgsess_error_code(err) == PGSESS_INTERFACE_ERROR);
        pgsess_error_free(err);
        err = NULL;
        pgsess_copy_free(c);
    }
    EXEC_T(s, "TRUNCATE %s");
    POOL_IDLE(s);
}

/* Statements that are not the COPY direction asked for are refused, saying so, and hold nothing. */
static void test_not_a_copy(pgsess_session *s)
{
    pgsess_error *err = NULL;
    pgsess_copy *c;
    char sql[256];

    CHECK(pgsess_copy_in(s, "SELECT 1", &err) == NULL);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_INTERFACE_ERROR);
    CHECK(contains_ci(pgsess_error_message(err), "COPY"));
    printf("copy_in(SELECT 1): %s: %s\n", pgsess_code_name(pgsess_error_code(err)),
           pgsess_error_message(err) ? pgsess_error_message(err) : "NULL");
    pgsess_error_free(err);
    CHECK(pgsess_copy_out(s, "SELECT 1", &err) == NULL);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_INTERFACE_ERROR);
    CHECK(contains_ci(pgsess_error_message(err), "COPY"));
    pgsess_error_free(err);
    /* The wrong direction: refused, naming the call that would do it. */
    snprintf(sql, sizeof sql, "COPY %s TO STDOUT", table);
    CHECK(pgsess_copy_in(s, sql, &err) == NULL);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_NOT_SUPPORTED_ERROR);
    CHECK_CONTAINS(pgsess_error_message(err), "pgsess_copy_out");
    pgsess_error_free(err);
    snprintf(sql, sizeof sql, "COPY %s FROM STDIN", table);
    CHECK(pgsess_copy_out(s, sql, &err) == NULL);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_NOT_SUPPORTED_ERROR);
    CHECK_CONTAINS(pgsess_error_message(err), "pgsess_copy_in");
    pgsess_error_free(err);
    CHECK_INTEQ(pgsess_pool_copies_open(s), 0);
    /* Two statements ending in a COPY FROM STDIN: refused, or (as libpq's PQexec would) the
     * COPY; then it must work as one. */
    snprintf(sql, sizeof sql, "SELECT 1; COPY %s (id, v, n) FROM STDIN", table);
    c = pgsess_copy_in(s, sql, &err);
    CHECK(c != NULL || err != NULL);
    pgsess_error_free(err);
    err = NULL;
    if (c != NULL) {
        CHECK_INTEQ(pgsess_copy_write(c, "1\tone\t1\n", 8, &err), PGSESS_OK);
        pgsess_error_free(err);
        err = NULL;
        CHECK_INTEQ(pgsess_copy_finish(c, &err), 1);
        pgsess_error_free(err);
        err = NULL;
        pgsess_copy_free(c);
        EXEC_T(s, "TRUNCATE %s");
    }
    /* A COPY the server refuses: its error, classified. */
    CHECK(pgsess_copy_in(s, "COPY pgsess_no_such_table FROM STDIN", &err) == NULL);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_PROGRAMMING_ERROR);
    CHECK_STREQ(pgsess_error_sqlstate(err), "42P01");
    pgsess_error_free(err);
    /* A COPY TO whose query fails after two rows: the rows, then the error from a read. */
    c = COPY_OUT(s, "COPY (SELECT 1 / (g - 3) FROM generate_series(1, 5) g) TO STDOUT");
    if (c != NULL) {
        size_t len = 0;
        int rows = 0;
        while (pgsess_copy_read(c, &len, &err) != NULL)
            rows++;
        CHECK(rows <= 2);
        CHECK_INTEQ(pgsess_error_code(err), PGSESS_DATA_ERROR);
        CHECK_STREQ(pgsess_error_sqlstate(err), "22012");
        pgsess_error_free(err);
        err = NULL;
        CHECK(pgsess_copy_finish(c, &err) == UINT64_MAX);
        pgsess_error_free(err);
        pgsess_copy_free(c);
    }
    COUNT_IS(s, 0);
    POOL_IDLE(s);
}

/* Text format: 20,000 rows with escapes, UTF-8 and NULLs, written in odd-sized pieces, come back
 * byte for byte, one row per read. */
static void test_text(pgsess_session *s)
{
    struct buf in = {0}, out = {0};
    char sql[256];
    long msgs;

    text_rows(&in, NROWS, false);
    snprintf(sql, sizeof sql, "COPY %s (id, v, n) FROM STDIN", table);
    WRITE_FINISH(COPY_IN(s, sql), &in, NROWS);
    COUNT_IS(s, NROWS);
    snprintf(sql, sizeof sql, "COPY (SELECT id, v, n FROM %s ORDER BY id) TO STDOUT", table);
    msgs = READ_ALL(s, sql, &out, true);
    CHECK_INTEQ(msgs, NROWS);
    BYTES_EQUAL(&in, &out, "text");
    {
        char *v;
        snprintf(sql, sizeof sql, "SELECT v FROM %s WHERE id = 6", table);
        v = SCALAR(s, sql);
        CHECK_STREQ(v, "tab\there 6");
        free(v);
        snprintf(sql, sizeof sql, "SELECT count(*) FROM %s WHERE n IS NULL", table);
        v = SCALAR(s, sql);
        CHECK_INTEQ(v ? atol(v) : -1, NROWS / 7);
        free(v);
    }
    printf("text: %zu bytes, %d rows in, %ld messages out\n", in.len, NROWS, msgs);
    buf_free(&in);
    buf_free(&out);
    EXEC_T(s, "TRUNCATE %s");
    POOL_IDLE(s);
}

/* CSV: quoted fields with commas, doubled quotes and newlines inside, empty strings and NULLs. */
static void test_csv(pgsess_session *s)
{
    struct buf in = {0}, out = {0};
    char sql[256];
    long msgs;
    int i;

    for (i = 1; i <= NROWS; i++) {
        char a[64], b[32];
        switch (i % 4) {
        case 0: snprintf(a, sizeof a, "plain%d", i); break;
        case 1: snprintf(a, sizeof a, "\"has, comma %d\"", i); break;
        case 2: snprintf(a, sizeof a, "\"say \"\"hi\"\" %d\"", i); break;
        default: snprintf(a, sizeof a, "\"two\nlines %d\"", i); break;
        }
        switch (i % 6) {
        case 0: b[0] = '\0'; break;                        /* NULL */
        case 1: snprintf(b, sizeof b, "\"\""); break;      /* empty string */
        default: snprintf(b, sizeof b, "%d.5", i); break;
        }
        buf_printf(&in, "%d,%s,%s\n", i, a, b);
    }
    snprintf(sql, sizeof sql, "COPY %s (id, v, n) FROM STDIN (FORMAT csv)", table);
    /* n is numeric: the empty string of case 1 would not parse, so load it as text first. */
    EXEC_T(s, "ALTER TABLE %s ALTER COLUMN n TYPE text");
    WRITE_FINISH(COPY_IN(s, sql), &in, NROWS);
    COUNT_IS(s, NROWS);
    snprintf(sql, sizeof sql, "COPY (SELECT id, v, n FROM %s ORDER BY id) TO STDOUT (FORMAT csv)", table);
    msgs = READ_ALL(s, sql, &out, true);
    CHECK_INTEQ(msgs, NROWS);
    BYTES_EQUAL(&in, &out, "CSV");
    {
        char *v;
        snprintf(sql, sizeof sql, "SELECT v || '|' || coalesce(n, 'NULL') FROM %s WHERE id = 3", table);
        v = SCALAR(s, sql);
        CHECK_STREQ(v, "two\nlines 3|3.5");
        free(v);
        snprintf(sql, sizeof sql, "SELECT n IS NULL FROM %s WHERE id = 6", table);
        v = SCALAR(s, sql);
        CHECK_STREQ(v, "t");
        free(v);
        snprintf(sql, sizeof sql, "SELECT '[' || n || ']' FROM %s WHERE id = 7", table);
        v = SCALAR(s, sql);
        CHECK_STREQ(v, "[]");
        free(v);
        snprintf(sql, sizeof sql, "SELECT v FROM %s WHERE id = 2", table);
        v = SCALAR(s, sql);
        CHECK_STREQ(v, "say \"hi\" 2");
        free(v);
    }
    printf("csv: %zu bytes, %ld messages out\n", in.len, msgs);
    buf_free(&in);
    buf_free(&out);
    EXEC_T(s, "TRUNCATE %s");
    EXEC_T(s, "ALTER TABLE %s ALTER COLUMN n TYPE numeric USING n::numeric");
    POOL_IDLE(s);
}

/* Binary: COPY TO (FORMAT binary) of a generated table, fed into an empty one, read back equal. */
static void test_binary(pgsess_session *s)
{
    struct buf first = {0}, second = {0};
    char src[128], dst[128], sql[1024];
    char *v;

    snprintf(src, sizeof src, "%s_bsrc", table);
    snprintf(dst, sizeof dst, "%s_bdst", table);
    snprintf(sql, sizeof sql,
             "CREATE TABLE %s AS SELECT g AS id, 'row ' || g AS v, (g %% 7 = 0) AS flag, "
             "CASE WHEN g %% 11 = 0 THEN NULL ELSE g::float8 / 3 END AS f, decode(md5(g::text), 'hex') AS b, "
             "ARRAY[g, -g] AS arr, timestamptz '2026-01-01 00:00:00+00' + g * interval '1 minute' AS ts "
             "FROM generate_series(1, %d) g",
             src, NROWS);
    EXEC(s, sql);
    snprintf(sql, sizeof sql, "CREATE TABLE %s (LIKE %s)", dst, src);
    EXEC(s, sql);

    snprintf(sql, sizeof sql, "COPY (SELECT * FROM %s ORDER BY id) TO STDOUT (FORMAT binary)", src);
    READ_ALL(s, sql, &first, false);
    CHECK_INTEQ(last_rows, NROWS);
    CHECK(first.len > 19 && memcmp(first.data, "PGCOPY\n\377\r\n\0", 11) == 0);
    CHECK(first.len > 2 && memcmp(first.data + first.len - 2, "\377\377", 2) == 0);

    snprintf(sql, sizeof sql, "COPY %s FROM STDIN (FORMAT binary)", dst);
    WRITE_FINISH(COPY_IN(s, sql), &first, NROWS);
    count_is_(s, dst, NROWS, __FILE__, __LINE__);

    snprintf(sql, sizeof sql, "COPY (SELECT * FROM %s ORDER BY id) TO STDOUT (FORMAT binary)", dst);
    READ_ALL(s, sql, &second, false);
    CHECK_INTEQ(last_rows, NROWS);
    BYTES_EQUAL(&first, &second, "binary");
    snprintf(sql, sizeof sql,
             "SELECT (SELECT count(*) FROM (SELECT * FROM %s EXCEPT SELECT * FROM %s) a) + "
             "(SELECT count(*) FROM (SELECT * FROM %s EXCEPT SELECT * FROM %s) b)",
             src, dst, dst, src);
    v = SCALAR(s, sql);
    CHECK_STREQ(v, "0");
    free(v);
    printf("binary: %zu bytes round trip\n", first.len);

    buf_free(&first);
    buf_free(&second);
    snprintf(sql, sizeof sql, "DROP TABLE %s, %s", src, dst);
    EXEC(s, sql);
    POOL_IDLE(s);
}

/* A bad row at line 15,000: SQLSTATE 22P02 naming the line, nothing committed, later writes fail
 * with an interface error, and the connection goes back to the pool. */
static void test_bad_row(pgsess_session *s)
{
    struct buf in = {0};
    char sql[256], line[64];
    pgsess_copy *c;
    pgsess_error *err = NULL;
    pgsess_code rc;
    uint64_t n;

    text_rows(&in, NROWS, true);
    snprintf(sql, sizeof sql, "COPY %s (id, v, n) FROM STDIN", table);
    c = COPY_IN(s, sql);
    if (c == NULL) {
        buf_free(&in);
        return;
    }
    rc = write_pieces(c, in.data, in.len, &err);
    if (rc == PGSESS_OK) {
        /* Everything was written before the error arrived: finish reports it. */
        CHECK(err == NULL);
        n = pgsess_copy_finish(c, &err);
        CHECK(n == UINT64_MAX);
        printf("bad row: reported by pgsess_copy_finish\n");
    } else {
        printf("bad row: reported by pgsess_copy_write\n");
        CHECK_INTEQ(rc, PGSESS_DATA_ERROR);
    }
    CHECK(err != NULL);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_DATA_ERROR);
    CHECK_STREQ(pgsess_error_sqlstate(err), "22P02");
    snprintf(line, sizeof line, "line %d", BAD_LINE);
    if (!CHECK(context_mentions(err, line)))
        print_err_fields("  the bad-row error does not name its line (CONTEXT)", err);
    else
        printf("bad row: %s | CONTEXT: %s\n", pgsess_error_message(err), pgsess_error_field(err, 'W'));
    CHECK_STREQ(pgsess_error_field(err, 'C'), "22P02");
    CHECK_STREQ(pgsess_error_field(err, 'M'), pgsess_error_message(err));
    pgsess_error_free(err);
    err = NULL;
    /* The copy is over: writes and finish fail with an interface error. */
    CHECK_INTEQ(pgsess_copy_write(c, "1\tx\t1\n", 6, &err), PGSESS_INTERFACE_ERROR);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_INTERFACE_ERROR);
    pgsess_error_free(err);
    err = NULL;
    CHECK(pgsess_copy_finish(c, &err) == UINT64_MAX);
    CHECK(err != NULL);
    pgsess_error_free(err);
    err = NULL;
    pgsess_copy_free(c);
    COUNT_IS(s, 0);
    POOL_IDLE(s);
    buf_free(&in);
}

/* A server error is returned by a write once it has arrived, without waiting for finish: a bad
 * first row, then rows written on (with pauses) until a write fails. */
static void test_error_during_writes(pgsess_session *s)
{
    struct buf chunk = {0};
    char sql[256];
    pgsess_copy *c;
    pgsess_error *err = NULL;
    pgsess_code rc = PGSESS_OK;
    double start = now_ms();
    size_t written = 0;

    snprintf(sql, sizeof sql, "COPY %s (id, v, n) FROM STDIN", table);
    c = COPY_IN(s, sql);
    if (c == NULL)
        return;
    text_rows(&chunk, 1000, false);
    CHECK_INTEQ(pgsess_copy_write(c, "oops\tbad\t1\n", 11, &err), PGSESS_OK);
    pgsess_error_free(err);
    err = NULL;
    while (now_ms() - start < 15000 && written < (size_t)64 << 20) {
        struct timespec pause = {0, 2 * 1000 * 1000};
        rc = pgsess_copy_write(c, chunk.data, chunk.len, &err);
        if (rc != PGSESS_OK)
            break;
        written += chunk.len;
        nanosleep(&pause, NULL);
    }
    CHECK_INTEQ(rc, PGSESS_DATA_ERROR);
    CHECK_STREQ(pgsess_error_sqlstate(err), "22P02");
    if (!CHECK(context_mentions(err, "line 1,")))
        print_err_fields("  the error does not name its line (CONTEXT)", err);
    printf("error during writes: reported after %zu more bytes, %.0f ms\n", written, now_ms() - start);
    pgsess_error_free(err);
    err = NULL;
    CHECK_INTEQ(pgsess_copy_write(c, chunk.data, chunk.len, &err), PGSESS_INTERFACE_ERROR);
    pgsess_error_free(err);
    pgsess_copy_free(c);
    buf_free(&chunk);
    COUNT_IS(s, 0);
    POOL_IDLE(s);
}

/* pgsess_copy_free without finish aborts a COPY FROM (nothing committed) and cancels a COPY TO;
 * either way the connection comes back and works, on a pool of 1. */
static void test_free_without_finish(void)
{
    pgsess_session *one = open_pool(1, 5000);
    struct buf in = {0};
    char sql[256];
    pgsess_copy *c;
    pgsess_error *err = NULL;
    pgsess_stats before, after;
    double t0;

    memset(&before, 0, sizeof before);
    memset(&after, 0, sizeof after);
    text_rows(&in, 1000, false);
    snprintf(sql, sizeof sql, "COPY %s (id, v, n) FROM STDIN", table);
    c = COPY_IN(one, sql);
    if (c != NULL) {
        CHECK_INTEQ(write_pieces(c, in.data, in.len, &err), PGSESS_OK);
        pgsess_error_free(err);
        err = NULL;
        pgsess_copy_free(c);
    }
    COUNT_IS(one, 0);
    POOL_IDLE(one);

    /* Freed with nothing written at all. */
    pgsess_copy_free(COPY_IN(one, sql));
    COUNT_IS(one, 0);
    POOL_IDLE(one);

    /* A COPY TO of 200,000 rows, two read, then freed: cancelled, not read to the end. */
    CHECK_INTEQ(pgsess_pool_stats(one, &before), PGSESS_OK);
    t0 = now_ms();
    c = COPY_OUT(one, "COPY (SELECT g, repeat('x', 100) FROM generate_series(1, 200000) g) TO STDOUT");
    if (c != NULL) {
        size_t len = 0;
        const char *p = pgsess_copy_read(c, &len, &err);
        CHECK(p != NULL && len > 0 && strncmp(p, "1\t", 2) == 0);
        p = pgsess_copy_read(c, &len, &err);
        CHECK(p != NULL && strncmp(p, "2\t", 2) == 0);
        CHECK(err == NULL);
        pgsess_error_free(err);
        err = NULL;
        pgsess_copy_free(c);
    }
    POOL_IDLE(one);
    CHECK_INTEQ(pgsess_pool_stats(one, &after), PGSESS_OK);
    printf("copy out freed after 2 rows: %.0f ms until the pool ran a statement again; discarded_dead %llu -> %llu\n",
           now_ms() - t0, (unsigned long long)before.discarded_dead, (unsigned long long)after.discarded_dead);
    buf_free(&in);
    pgsess_close(one);
}

/* COPY inside a transaction (through its session), then rollback: nothing left. */
static void test_transaction(pgsess_session *s)
{
    pgsess_tx *tx = BEGIN(s);
    pgsess_session *ts;
    pgsess_copy *c;
    pgsess_error *err = NULL;
    pgsess_results *r;
    struct buf in = {0}, out = {0};
    char sql[256];

    if (tx == NULL)
        return;
    ts = pgsess_tx_session(tx);
    text_rows(&in, 1000, false);
    snprintf(sql, sizeof sql, "COPY %s (id, v, n) FROM STDIN", table);
    c = COPY_IN(ts, sql);
    if (c != NULL) {
        CHECK_INTEQ(write_pieces(c, in.data, in.len / 2, &err), PGSESS_OK);
        pgsess_error_free(err);
        err = NULL;
        /* While the copy is open, other statements on the transaction are refused. */
        r = pgsess_query(ts, "SELECT 1", 0, NULL, &err);
        CHECK(r == NULL);
        CHECK_INTEQ(pgsess_error_code(err), PGSESS_INTERFACE_ERROR);
        pgsess_results_free(r);
        pgsess_error_free(err);
        err = NULL;
        r = pgsess_tx_query(tx, "SELECT 1", 0, NULL, &err);
        CHECK(r == NULL);
        CHECK_INTEQ(pgsess_error_code(err), PGSESS_INTERFACE_ERROR);
        pgsess_results_free(r);
        pgsess_error_free(err);
        err = NULL;
        CHECK(pgsess_copy_in(ts, sql, &err) == NULL);
        CHECK_INTEQ(pgsess_error_code(err), PGSESS_INTERFACE_ERROR);
        pgsess_error_free(err);
        err = NULL;
        CHECK_INTEQ(pgsess_copy_write(c, in.data + in.len / 2, in.len - in.len / 2, &err), PGSESS_OK);
        pgsess_error_free(err);
        err = NULL;
        CHECK_INTEQ(pgsess_copy_finish(c, &err), 1000);
        CHECK(err == NULL);
        pgsess_error_free(err);
        err = NULL;
        pgsess_copy_free(c);
    }
    COUNT_IS(ts, 1000);
    COUNT_IS(s, 0);
    /* COPY TO inside the transaction sees its rows. */
    snprintf(sql, sizeof sql, "COPY (SELECT id, v, n FROM %s ORDER BY id) TO STDOUT", table);
    READ_ALL(ts, sql, &out, true);
    BYTES_EQUAL(&in, &out, "text in a transaction");
    pgsess_rollback(tx);
    COUNT_IS(s, 0);

    /* An unfinished copy freed inside a transaction: the transaction goes on (the COPY failed, so
     * the server wants a rollback, which is what we do). */
    tx = BEGIN(s);
    if (tx != NULL) {
        ts = pgsess_tx_session(tx);
        snprintf(sql, sizeof sql, "COPY %s (id, v, n) FROM STDIN", table);
        c = COPY_IN(ts, sql);
        if (c != NULL) {
            CHECK_INTEQ(pgsess_copy_write(c, in.data, in.len, &err), PGSESS_OK);
            pgsess_error_free(err);
            err = NULL;
            pgsess_copy_free(c);
        }
        pgsess_rollback(tx);
    }
    COUNT_IS(s, 0);
    POOL_IDLE(s);
    buf_free(&in);
    buf_free(&out);
}

/* On a pinned session a copy holds its one connection: other statements are refused until it
 * ends; a temporary table of the session can be copied into. */
static void test_pinned(pgsess_session *s)
{
    pgsess_session *p = PIN(s);
    pgsess_copy *c;
    pgsess_error *err = NULL;
    pgsess_results *r;
    struct buf in = {0}, out = {0};

    if (p == NULL)
        return;
    text_rows(&in, 2000, false);
    EXEC(p, "CREATE TEMP TABLE copy_pinned (id int, v text, n numeric)");
    c = COPY_IN(p, "COPY copy_pinned FROM STDIN");
    if (c != NULL) {
        CHECK_INTEQ(pgsess_copy_write(c, in.data, 100, &err), PGSESS_OK);
        pgsess_error_free(err);
        err = NULL;
        r = pgsess_query(p, "SELECT 1", 0, NULL, &err);
        CHECK(r == NULL);
        CHECK_INTEQ(pgsess_error_code(err), PGSESS_INTERFACE_ERROR);
        if (err != NULL)
            printf("pinned, statement during a copy: %s\n", pgsess_error_message(err));
        pgsess_results_free(r);
        pgsess_error_free(err);
        err = NULL;
        CHECK(pgsess_copy_out(p, "COPY copy_pinned TO STDOUT", &err) == NULL);
        CHECK_INTEQ(pgsess_error_code(err), PGSESS_INTERFACE_ERROR);
        pgsess_error_free(err);
        err = NULL;
        CHECK(pgsess_begin(p, &err) == NULL);
        CHECK_INTEQ(pgsess_error_code(err), PGSESS_INTERFACE_ERROR);
        pgsess_error_free(err);
        err = NULL;
        CHECK_INTEQ(pgsess_copy_write(c, in.data + 100, in.len - 100, &err), PGSESS_OK);
        pgsess_error_free(err);
        err = NULL;
        CHECK_INTEQ(pgsess_copy_finish(c, &err), 2000);
        pgsess_error_free(err);
        err = NULL;
        /* Finished (not yet freed): the session works again. */
        count_is_(p, "copy_pinned", 2000, __FILE__, __LINE__);
        pgsess_copy_free(c);
    }
    READ_ALL(p, "COPY (SELECT * FROM copy_pinned ORDER BY id) TO STDOUT", &out, true);
    BYTES_EQUAL(&in, &out, "text on a pinned session");
    /* A COPY TO left open also refuses other statements on the session. */
    c = COPY_OUT(p, "COPY copy_pinned TO STDOUT");
    if (c != NULL) {
        r = pgsess_query(p, "SELECT 1", 0, NULL, &err);
        CHECK(r == NULL);
        CHECK_INTEQ(pgsess_error_code(err), PGSESS_INTERFACE_ERROR);
        pgsess_results_free(r);
        pgsess_error_free(err);
        err = NULL;
        pgsess_copy_free(c);
    }
    count_is_(p, "copy_pinned", 2000, __FILE__, __LINE__);
    pgsess_close(p);
    buf_free(&in);
    buf_free(&out);
    POOL_IDLE(s);
}

/* A pool of 1 whose only connection a copy holds: a statement waits out the checkout timeout and
 * fails with PGSESS_POOL_EXHAUSTED, and the message says a copy holds it. */
static void test_pool_of_one(void)
{
    pgsess_session *one = open_pool(1, 300);
    pgsess_copy *c;
    pgsess_error *err = NULL;
    pgsess_results *r;
    char sql[256];
    double t0;

    snprintf(sql, sizeof sql, "COPY %s (id, v, n) FROM STDIN", table);
    c = COPY_IN(one, sql);
    if (c != NULL) {
        CHECK_INTEQ(pgsess_copy_write(c, "1\tone\t1\n", 8, &err), PGSESS_OK);
        pgsess_error_free(err);
        err = NULL;
        CHECK_INTEQ(pgsess_pool_copies_open(one), 1);
        t0 = now_ms();
        r = pgsess_query(one, "SELECT 1", 0, NULL, &err);
        CHECK(r == NULL);
        CHECK(now_ms() - t0 >= 250);
        CHECK_INTEQ(pgsess_error_code(err), PGSESS_POOL_EXHAUSTED);
        if (!CHECK(contains_ci(pgsess_error_message(err), "copy") || contains_ci(pgsess_error_message(err), "copies")))
            print_err(__FILE__, __LINE__, "  the exhaustion message does not mention the copy", err);
        else
            printf("pool of 1 held by a copy: %s\n", pgsess_error_message(err));
        pgsess_results_free(r);
        pgsess_error_free(err);
        err = NULL;
        CHECK(pgsess_copy_in(one, sql, &err) == NULL);
        CHECK_INTEQ(pgsess_error_code(err), PGSESS_POOL_EXHAUSTED);
        pgsess_error_free(err);
        err = NULL;
        CHECK_INTEQ(pgsess_copy_finish(c, &err), 1);
        pgsess_error_free(err);
        err = NULL;
        /* Finished: the connection is back even before the handle is freed. */
        CHECK_INTEQ(pgsess_pool_copies_open(one), 0);
        COUNT_IS(one, 1);
        pgsess_copy_free(c);
    }
    /* A COPY TO holds it as well. */
    c = COPY_OUT(one, "COPY (SELECT 1) TO STDOUT");
    if (c != NULL) {
        r = pgsess_query(one, "SELECT 1", 0, NULL, &err);
        CHECK(r == NULL);
        CHECK_INTEQ(pgsess_error_code(err), PGSESS_POOL_EXHAUSTED);
        CHECK(contains_ci(pgsess_error_message(err), "copy") || contains_ci(pgsess_error_message(err), "copies"));
        pgsess_results_free(r);
        pgsess_error_free(err);
        err = NULL;
        pgsess_copy_free(c);
    }
    EXEC_T(one, "TRUNCATE %s");
    POOL_IDLE(one);
    pgsess_close(one);
}

/* Terminate the backend running `like` (a pg_stat_activity.query pattern) from another connection
 * of `s`'s pool. Returns whether exactly one backend was terminated. */
static int terminate_(pgsess_session *s, const char *like, const char *file, int line)
{
    const char *p[] = {like};
    pgsess_results *r = q_(s,
                           "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                           "WHERE query LIKE $1 AND state = 'active' AND pid <> pg_backend_pid()",
                           1, p, file, line);
    const char *v = pgsess_results_value(r, 0, 0);
    int ok = v != NULL && strcmp(v, "1") == 0;
    if (!check_count_(ok)) {
        fflush(stdout);
        fprintf(stderr, "%s:%d: CHECK failed: one backend running %s terminated (got %s)\n", file, line, like,
                v ? v : "NULL");
    }
    pgsess_results_free(r);
    return ok;
}
#define TERMINATE(s, like) terminate_((s), (like), __FILE__, __LINE__)

/* The copy's connection is killed mid-copy: a write or finish fails with an operational error,
 * nothing is committed, and the pool replaces the connection. */
static void test_killed(pgsess_session *s)
{
    struct buf chunk = {0};
    char sql[256], like[256];
    pgsess_copy *c;
    pgsess_error *err = NULL;
    pgsess_code rc = PGSESS_OK;
    pgsess_stats before, after;
    double start;
    uint64_t n;

    memset(&before, 0, sizeof before);
    memset(&after, 0, sizeof after);
    CHECK_INTEQ(pgsess_pool_stats(s, &before), PGSESS_OK);
    text_rows(&chunk, 500, false);
    snprintf(sql, sizeof sql, "COPY %s (id, v, n) FROM STDIN", table);
    snprintf(like, sizeof like, "COPY %s %%FROM STDIN%%", table);
    c = COPY_IN(s, sql);
    if (c == NULL)
        return;
    CHECK_INTEQ(pgsess_copy_write(c, chunk.data, chunk.len, &err), PGSESS_OK);
    pgsess_error_free(err);
    err = NULL;
    TERMINATE(s, like);
    start = now_ms();
    while (now_ms() - start < 15000) {
        struct timespec pause = {0, 2 * 1000 * 1000};
        rc = pgsess_copy_write(c, chunk.data, chunk.len, &err);
        if (rc != PGSESS_OK)
            break;
        nanosleep(&pause, NULL);
    }
    if (rc == PGSESS_OK) {
        n = pgsess_copy_finish(c, &err);
        CHECK(n == UINT64_MAX);
        printf("killed copy in: reported by finish\n");
    } else {
        printf("killed copy in: reported by a write after %.0f ms\n", now_ms() - start);
    }
    CHECK(err != NULL);
    CHECK_INTEQ(pgsess_error_category(err), PGSESS_OPERATIONAL_ERROR);
    if (err != NULL)
        printf("killed copy in: %s %s: %s\n", pgsess_code_name(pgsess_error_code(err)),
               pgsess_error_sqlstate(err) ? pgsess_error_sqlstate(err) : "-", pgsess_error_message(err));
    pgsess_error_free(err);
    err = NULL;
    CHECK(pgsess_copy_finish(c, &err) == UINT64_MAX);
    CHECK(err != NULL);
    pgsess_error_free(err);
    err = NULL;
    pgsess_copy_free(c);
    COUNT_IS(s, 0);
    POOL_IDLE(s);
    CHECK_INTEQ(pgsess_pool_stats(s, &after), PGSESS_OK);
    CHECK(after.discarded_dead >= before.discarded_dead + 1);

    /* The same for a COPY TO: a read fails once the connection is gone. */
    snprintf(like, sizeof like, "COPY (SELECT g, repeat('k', 100) FROM generate_series(1, 2000000) g)%%");
    c = COPY_OUT(s, "COPY (SELECT g, repeat('k', 100) FROM generate_series(1, 2000000) g) TO STDOUT");
    if (c != NULL) {
        size_t len = 0;
        long reads = 0;
        CHECK(pgsess_copy_read(c, &len, &err) != NULL);
        TERMINATE(s, like);
        while (pgsess_copy_read(c, &len, &err) != NULL)
            reads++;
        CHECK(err != NULL);
        CHECK_INTEQ(pgsess_error_category(err), PGSESS_OPERATIONAL_ERROR);
        printf("killed copy out: failed after %ld more reads: %s\n", reads,
               err != NULL ? pgsess_error_message(err) : "NULL");
        pgsess_error_free(err);
        err = NULL;
        CHECK(pgsess_copy_finish(c, &err) == UINT64_MAX);
        pgsess_error_free(err);
        pgsess_copy_free(c);
    }
    POOL_IDLE(s);
    buf_free(&chunk);
}

/* Messages and rows bigger than the library's 64 KiB buffers, and empty copies. */
static void test_big_and_empty(pgsess_session *s)
{
    struct buf row = {0};
    pgsess_copy *c;
    pgsess_error *err = NULL;
    const char *p;
    size_t len = 77, i;
    char sql[256];
    const size_t big = 3 * 1000 * 1000;

    /* One 3 MB row in one write, and back in one read. */
    buf_add(&row, "1\t", 2);
    for (i = 0; i < big; i++)
        buf_add(&row, i % 64 == 63 ? "\\n" : "y", i % 64 == 63 ? 2 : 1);
    buf_add(&row, "\t1\n", 3);
    snprintf(sql, sizeof sql, "COPY %s (id, v, n) FROM STDIN", table);
    c = COPY_IN(s, sql);
    if (c != NULL) {
        CHECK_INTEQ(pgsess_copy_write(c, row.data, row.len, &err), PGSESS_OK);
        pgsess_error_free(err);
        err = NULL;
        CHECK_INTEQ(pgsess_copy_finish(c, &err), 1);
        pgsess_error_free(err);
        err = NULL;
        pgsess_copy_free(c);
    }
    snprintf(sql, sizeof sql, "COPY (SELECT id, v, n FROM %s) TO STDOUT", table);
    c = COPY_OUT(s, sql);
    if (c != NULL) {
        p = pgsess_copy_read(c, &len, &err);
        CHECK(p != NULL);
        CHECK_INTEQ(len, row.len);
        CHECK(p != NULL && len == row.len && memcmp(p, row.data, len) == 0);
        CHECK(pgsess_copy_read(c, &len, &err) == NULL);
        CHECK(err == NULL);
        CHECK_INTEQ(len, 0);
        CHECK_INTEQ(pgsess_copy_finish(c, &err), 1);
        pgsess_error_free(err);
        err = NULL;
        pgsess_copy_free(c);
    }
    EXEC_T(s, "TRUNCATE %s");

    /* Nothing written: 0 rows. Nothing to read: the end at once, 0 rows. */
    snprintf(sql, sizeof sql, "COPY %s FROM STDIN", table);
    c = COPY_IN(s, sql);
    if (c != NULL) {
        CHECK_INTEQ(pgsess_copy_finish(c, &err), 0);
        CHECK(err == NULL);
        pgsess_error_free(err);
        err = NULL;
        pgsess_copy_free(c);
    }
    c = COPY_OUT(s, "COPY (SELECT 1 WHERE false) TO STDOUT");
    if (c != NULL) {
        len = 77;
        CHECK(pgsess_copy_read(c, &len, &err) == NULL);
        CHECK(err == NULL);
        CHECK_INTEQ(len, 0);
        CHECK_INTEQ(pgsess_copy_finish(c, &err), 0);
        CHECK(err == NULL);
        pgsess_error_free(err);
        err = NULL;
        pgsess_copy_free(c);
    }
    COUNT_IS(s, 0);
    POOL_IDLE(s);
    buf_free(&row);
}

/* The transaction ends while its COPY is open: the COPY is aborted first (nothing kept, a commit
 * reports the rollback), and the handle, which outlives the transaction, only reports errors. */
static void test_transaction_ends_first(pgsess_session *s)
{
    pgsess_tx *tx = BEGIN(s);
    pgsess_copy *c;
    pgsess_error *err = NULL;
    size_t len = 0;
    char sql[256];

    if (tx == NULL)
        return;
    snprintf(sql, sizeof sql, "COPY %s (id, v, n) FROM STDIN", table);
    c = COPY_IN(pgsess_tx_session(tx), sql);
    CHECK_INTEQ(pgsess_copy_write(c, "1\tone\t1\n", 8, &err), PGSESS_OK);
    pgsess_error_free(err);
    err = NULL;
    CHECK_INTEQ(pgsess_commit(tx, &err), PGSESS_TRANSACTION_ROLLBACK);
    if (err != NULL)
        printf("commit with a COPY open: %s\n", pgsess_error_message(err));
    pgsess_error_free(err);
    err = NULL;
    /* The COPY has ended: it holds nothing any more, and writes and finish say so. */
    CHECK_INTEQ(pgsess_pool_copies_open(s), 0);
    CHECK_INTEQ(pgsess_copy_write(c, "2\ttwo\t2\n", 8, &err), PGSESS_INTERFACE_ERROR);
    pgsess_error_free(err);
    err = NULL;
    CHECK(pgsess_copy_finish(c, &err) == UINT64_MAX);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_INTERFACE_ERROR);
    pgsess_error_free(err);
    err = NULL;
    pgsess_copy_free(c);
    COUNT_IS(s, 0);

    /* A COPY TO with rows unread when the transaction is rolled back: what was buffered may still
     * be read, then the end is an error (it did not reach its end), not the end of the data. */
    tx = BEGIN(s);
    if (tx == NULL)
        return;
    c = COPY_OUT(pgsess_tx_session(tx), "COPY (SELECT g FROM generate_series(1, 2000000) g) TO STDOUT");
    CHECK(pgsess_copy_read(c, &len, &err) != NULL);
    pgsess_rollback(tx);
    CHECK_INTEQ(pgsess_pool_copies_open(s), 0);
    {
        long reads = 0;
        while (pgsess_copy_read(c, &len, &err) != NULL)
            reads++;
        CHECK(reads < 1999999); /* at most what one receive buffered (1 MiB), not all 14 MB */
        /* "the COPY has ended", or (its rest too long to drain, the connection closed) broken */
        CHECK(err != NULL);
        printf("rolled back with a COPY TO open: %ld buffered rows read, then: %s %s\n", reads,
               pgsess_code_name(pgsess_error_code(err)), err != NULL ? pgsess_error_message(err) : "NULL");
    }
    pgsess_error_free(err);
    err = NULL;
    CHECK(pgsess_copy_finish(c, &err) == UINT64_MAX);
    pgsess_error_free(err);
    err = NULL;
    pgsess_copy_free(c);
    POOL_IDLE(s);
}

/* The session a copy came from is closed while the copy is open: the handle stays usable or fails
 * cleanly, and nothing is left held once it is freed (valgrind and ASan watch the memory). */
static void test_session_closed_first(pgsess_session *s)
{
    pgsess_session *other = open_pool(4, 5000); /* the same pool as s */
    pgsess_session *p;
    pgsess_copy *c;
    pgsess_error *err = NULL;
    uint64_t n;
    char sql[256];

    CHECK_STREQ(pgsess_pool_id(other), pgsess_pool_id(s));
    snprintf(sql, sizeof sql, "COPY %s (id, v, n) FROM STDIN", table);
    c = COPY_IN(other, sql);
    CHECK_INTEQ(pgsess_copy_write(c, "1\tone\t1\n", 8, &err), PGSESS_OK);
    pgsess_error_free(err);
    err = NULL;
    pgsess_close(other);
    if (pgsess_copy_write(c, "2\ttwo\t2\n", 8, &err) == PGSESS_OK) {
        n = pgsess_copy_finish(c, &err);
        CHECK(n == 2 || (n == UINT64_MAX && err != NULL));
        printf("pooled session closed during a copy: finish gave %lld\n", n == UINT64_MAX ? -1LL : (long long)n);
    } else {
        CHECK(err != NULL);
        printf("pooled session closed during a copy: the write failed: %s\n", pgsess_error_message(err));
    }
    pgsess_error_free(err);
    err = NULL;
    pgsess_copy_free(c);
    EXEC_T(s, "TRUNCATE %s");

    /* A pinned session closed while its copy is open. */
    p = PIN(s);
    if (p != NULL) {
        c = COPY_IN(p, sql);
        CHECK_INTEQ(pgsess_copy_write(c, "3\tthree\t3\n", 10, &err), PGSESS_OK);
        pgsess_error_free(err);
        err = NULL;
        pgsess_close(p);
        if (pgsess_copy_write(c, "4\tfour\t4\n", 9, &err) == PGSESS_OK) {
            n = pgsess_copy_finish(c, &err);
            CHECK(n == 2 || (n == UINT64_MAX && err != NULL));
            printf("pinned session closed during a copy: finish gave %lld\n", n == UINT64_MAX ? -1LL : (long long)n);
        } else {
            CHECK(err != NULL);
            printf("pinned session closed during a copy: the write failed: %s\n", pgsess_error_message(err));
        }
        pgsess_error_free(err);
        err = NULL;
        pgsess_copy_free(c);
    }
    CHECK_INTEQ(pgsess_pool_pinned_sessions(s), 0);
    EXEC_T(s, "TRUNCATE %s");
    POOL_IDLE(s);
}

#define NCOPIERS 4
#define ROWS_PER_COPIER 2500

struct copier {
    pgsess_session *s;
    int id;
    uint64_t rows;
    int failed;
};

static void *copier_main(void *arg)
{
    struct copier *w = arg;
    struct buf data = {0};
    pgsess_error *err = NULL;
    pgsess_copy *c;
    char sql[256];
    int i;

    for (i = 0; i < ROWS_PER_COPIER; i++)
        buf_printf(&data, "%d\tthread %d\t%d\n", w->id * ROWS_PER_COPIER + i, w->id, i);
    snprintf(sql, sizeof sql, "COPY %s (id, v, n) FROM STDIN", table);
    c = pgsess_copy_in(w->s, sql, &err);
    if (c == NULL) {
        w->failed++;
        print_err(__FILE__, __LINE__, "copier copy_in", err);
    } else if (write_pieces(c, data.data, data.len, &err) != PGSESS_OK) {
        w->failed++;
        print_err(__FILE__, __LINE__, "copier write", err);
    } else {
        w->rows = pgsess_copy_finish(c, &err);
        if (w->rows == UINT64_MAX) {
            w->failed++;
            print_err(__FILE__, __LINE__, "copier finish", err);
        }
    }
    pgsess_error_free(err);
    pgsess_copy_free(c);
    buf_free(&data);
    return NULL;
}

/* Threads copying at once through one pooled session of a pool of 2: each copy holds a connection,
 * the others wait their turn. */
static void test_threads(void)
{
    pgsess_session *two = open_pool(2, 60000);
    pthread_t th[NCOPIERS];
    struct copier w[NCOPIERS];
    int i, failed = 0;
    uint64_t rows = 0;
    char sql[256], *v;

    memset(w, 0, sizeof w);
    for (i = 0; i < NCOPIERS; i++) {
        w[i].s = two;
        w[i].id = i;
        CHECK(pthread_create(&th[i], NULL, copier_main, &w[i]) == 0);
    }
    for (i = 0; i < NCOPIERS; i++) {
        CHECK(pthread_join(th[i], NULL) == 0);
        failed += w[i].failed;
        rows += w[i].rows;
    }
    CHECK_INTEQ(failed, 0);
    CHECK_INTEQ(rows, NCOPIERS * ROWS_PER_COPIER);
    snprintf(sql, sizeof sql, "SELECT count(DISTINCT id) || ' ' || sum(id) FROM %s", table);
    v = SCALAR(two, sql);
    snprintf(sql, sizeof sql, "%d %lld", NCOPIERS * ROWS_PER_COPIER,
             (long long)NCOPIERS * ROWS_PER_COPIER * (NCOPIERS * ROWS_PER_COPIER - 1) / 2);
    CHECK_STREQ(v, sql);
    free(v);
    EXEC_T(two, "TRUNCATE %s");
    POOL_IDLE(two);
    pgsess_close(two);
}

/* pgsess_copy_start: either direction, as the server answers; pgsess_copy_is_in says which. */
static void test_copy_start(pgsess_session *s)
{
    pgsess_copy *c;
    pgsess_error *err = NULL;
    struct buf in = {0}, out = {0};
    char sql[256];

    CHECK(pgsess_copy_start(NULL, "COPY x FROM STDIN", &err) == NULL);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_INTERFACE_ERROR);
    pgsess_error_free(err);
    err = NULL;
    CHECK(pgsess_copy_start(s, NULL, &err) == NULL);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_INTERFACE_ERROR);
    pgsess_error_free(err);
    err = NULL;
    CHECK(!pgsess_copy_is_in(NULL));
    CHECK(pgsess_copy_start(s, "SELECT 1", &err) == NULL);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_INTERFACE_ERROR);
    pgsess_error_free(err);
    err = NULL;

    text_rows(&in, 500, false);
    snprintf(sql, sizeof sql, "COPY %s (id, v, n) FROM STDIN", table);
    c = pgsess_copy_start(s, sql, &err);
    CHECK(c != NULL && err == NULL);
    CHECK(pgsess_copy_is_in(c));
    if (c != NULL) {
        CHECK_INTEQ(write_pieces(c, in.data, in.len, &err), PGSESS_OK);
        CHECK_INTEQ(pgsess_copy_finish(c, &err), 500);
        CHECK(err == NULL);
        pgsess_error_free(err);
        err = NULL;
        CHECK(pgsess_copy_is_in(c)); /* still a COPY FROM, ended */
        pgsess_copy_free(c);
    }
    snprintf(sql, sizeof sql, "COPY (SELECT id, v, n FROM %s ORDER BY id) TO STDOUT", table);
    c = pgsess_copy_start(s, sql, &err);
    CHECK(c != NULL && err == NULL);
    CHECK(!pgsess_copy_is_in(c));
    if (c != NULL) {
        const char *p;
        size_t len;
        while ((p = pgsess_copy_read(c, &len, &err)) != NULL)
            buf_add(&out, p, len);
        CHECK(err == NULL);
        CHECK_INTEQ(pgsess_copy_finish(c, &err), 500);
        pgsess_error_free(err);
        err = NULL;
        pgsess_copy_free(c);
    }
    BYTES_EQUAL(&in, &out, "pgsess_copy_start");
    EXEC_T(s, "TRUNCATE %s");
    POOL_IDLE(s);
    buf_free(&in);
    buf_free(&out);
}

/* pgsess_copy_read_chunk: every buffered message at once; the pieces joined are the same bytes
 * as one row per pgsess_copy_read, and the two may be mixed. */
static void test_read_chunk(pgsess_session *s)
{
    struct buf rows = {0}, chunks = {0};
    pgsess_copy *c;
    pgsess_error *err = NULL;
    const char *p;
    size_t len = 0;
    long calls = 0;
    char sql[256];

    text_rows(&rows, NROWS, false);
    snprintf(sql, sizeof sql, "COPY %s (id, v, n) FROM STDIN", table);
    WRITE_FINISH(COPY_IN(s, sql), &rows, NROWS);
    CHECK(pgsess_copy_read_chunk(NULL, &len, &err) == NULL);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_INTERFACE_ERROR);
    pgsess_error_free(err);
    err = NULL;
    snprintf(sql, sizeof sql, "COPY (SELECT id, v, n FROM %s ORDER BY id) TO STDOUT", table);
    c = COPY_OUT(s, sql);
    if (c != NULL) {
        /* One row first, then chunks. */
        p = pgsess_copy_read(c, &len, &err);
        CHECK(p != NULL && len > 0 && p[len - 1] == '\n');
        if (p != NULL)
            buf_add(&chunks, p, len);
        while ((p = pgsess_copy_read_chunk(c, &len, &err)) != NULL) {
            CHECK(len > 0);
            buf_add(&chunks, p, len);
            calls++;
        }
        CHECK(err == NULL);
        CHECK_INTEQ(len, 0);
        CHECK(calls > 0 && calls < NROWS / 10);
        CHECK_INTEQ(pgsess_copy_finish(c, &err), NROWS);
        pgsess_error_free(err);
        err = NULL;
        pgsess_copy_free(c);
    }
    BYTES_EQUAL(&rows, &chunks, "read_chunk");
    printf("read_chunk: %zu bytes in 1 row + %ld chunks\n", chunks.len, calls);
    /* On a COPY FROM: refused. */
    snprintf(sql, sizeof sql, "COPY %s FROM STDIN", table);
    c = COPY_IN(s, sql);
    if (c != NULL) {
        CHECK(pgsess_copy_read_chunk(c, &len, &err) == NULL);
        CHECK_INTEQ(pgsess_error_code(err), PGSESS_INTERFACE_ERROR);
        pgsess_error_free(err);
        err = NULL;
        pgsess_copy_free(c);
    }
    EXEC_T(s, "TRUNCATE %s");
    POOL_IDLE(s);
    buf_free(&rows);
    buf_free(&chunks);
}

/* pgsess_copy_abort: the COPY fails with the reason, nothing kept, the handle says it ended; in a
 * transaction the transaction is failed too; after a bad row it returns that row's error. */
static void test_abort(pgsess_session *s)
{
    struct buf in = {0};
    pgsess_copy *c;
    pgsess_error *err = NULL;
    pgsess_tx *tx;
    pgsess_results *r;
    size_t len = 0;
    char sql[256];

    CHECK_INTEQ(pgsess_copy_abort(NULL, "why", &err), PGSESS_INTERFACE_ERROR);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_INTERFACE_ERROR);
    pgsess_error_free(err);
    err = NULL;
    text_rows(&in, 2000, false);
    snprintf(sql, sizeof sql, "COPY %s (id, v, n) FROM STDIN", table);
    c = COPY_IN(s, sql);
    if (c != NULL) {
        CHECK_INTEQ(write_pieces(c, in.data, in.len, &err), PGSESS_OK);
        CHECK_INTEQ(pgsess_copy_abort(c, "changed my mind", &err), PGSESS_OK);
        CHECK(err == NULL);
        pgsess_error_free(err);
        err = NULL;
        CHECK_INTEQ(pgsess_pool_copies_open(s), 0);
        CHECK_INTEQ(pgsess_copy_write(c, "1\tx\t1\n", 6, &err), PGSESS_INTERFACE_ERROR);
        pgsess_error_free(err);
        err = NULL;
        CHECK(pgsess_copy_finish(c, &err) == UINT64_MAX);
        CHECK_INTEQ(pgsess_error_code(err), PGSESS_INTERFACE_ERROR);
        pgsess_error_free(err);
        err = NULL;
        CHECK_INTEQ(pgsess_copy_abort(c, "twice", &err), PGSESS_OK); /* ended: nothing to do */
        pgsess_error_free(err);
        err = NULL;
        pgsess_copy_free(c);
    }
    COUNT_IS(s, 0);

    /* A NULL reason; a reason with odd bytes. */
    c = COPY_IN(s, sql);
    if (c != NULL) {
        CHECK_INTEQ(pgsess_copy_abort(c, NULL, &err), PGSESS_OK);
        pgsess_error_free(err);
        err = NULL;
        pgsess_copy_free(c);
    }
    c = COPY_IN(s, sql);
    if (c != NULL) {
        CHECK_INTEQ(pgsess_copy_abort(c, "it's \"odd\" stra\xc3\x9f" "e", &err), PGSESS_OK);
        pgsess_error_free(err);
        err = NULL;
        pgsess_copy_free(c);
    }

    /* In a transaction: the transaction fails with the reason (25P02 afterwards). */
    tx = BEGIN(s);
    if (tx != NULL) {
        c = COPY_IN(pgsess_tx_session(tx), sql);
        CHECK_INTEQ(pgsess_copy_write(c, in.data, in.len, &err), PGSESS_OK);
        CHECK_INTEQ(pgsess_copy_abort(c, "abort in a transaction", &err), PGSESS_OK);
        pgsess_error_free(err);
        err = NULL;
        pgsess_copy_free(c);
        r = pgsess_tx_query(tx, "SELECT 1", 0, NULL, &err);
        CHECK(r == NULL);
        CHECK_STREQ(pgsess_error_sqlstate(err), "25P02");
        pgsess_results_free(r);
        pgsess_error_free(err);
        err = NULL;
        CHECK_INTEQ(pgsess_commit(tx, &err), PGSESS_TRANSACTION_ROLLBACK);
        pgsess_error_free(err);
        err = NULL;
    }
    COUNT_IS(s, 0);

    /* After a bad row that has already arrived: that error. */
    c = COPY_IN(s, sql);
    if (c != NULL) {
        struct timespec settle = {0, 300 * 1000 * 1000};
        struct buf big = {0};
        pgsess_code rc;
        CHECK_INTEQ(pgsess_copy_write(c, "bad\trow\t1\n", 10, &err), PGSESS_OK);
        text_rows(&big, 3000, false); /* past 64 KiB: the bad row is sent */
        rc = pgsess_copy_write(c, big.data, big.len, &err);
        pgsess_error_free(err);
        err = NULL;
        nanosleep(&settle, NULL);
        if (rc == PGSESS_OK) {
            CHECK(pgsess_copy_abort(c, "too late", &err) != PGSESS_OK);
            CHECK_STREQ(pgsess_error_sqlstate(err), "22P02");
        } else {
            /* the write saw it already; the COPY is over: abort has nothing to do */
            CHECK_INTEQ(pgsess_copy_abort(c, "too late", &err), PGSESS_OK);
        }
        pgsess_error_free(err);
        err = NULL;
        pgsess_copy_free(c);
        buf_free(&big);
    }
    COUNT_IS(s, 0);

    /* A COPY TO: the rest is discarded, the connection comes back. */
    c = COPY_OUT(s, "COPY (SELECT g FROM generate_series(1, 100000) g) TO STDOUT");
    if (c != NULL) {
        CHECK(pgsess_copy_read(c, &len, &err) != NULL);
        CHECK_INTEQ(pgsess_copy_abort(c, NULL, &err), PGSESS_OK);
        pgsess_error_free(err);
        err = NULL;
        CHECK(pgsess_copy_read(c, &len, &err) == NULL);
        pgsess_error_free(err);
        err = NULL;
        pgsess_copy_free(c);
    }
    POOL_IDLE(s);
    buf_free(&in);
}

struct canceller {
    pgsess_session *s;
    int delay_ms;
    pgsess_code rc;
};

static void *canceller_main(void *arg)
{
    struct canceller *k = arg;
    struct timespec ts = {k->delay_ms / 1000, (long)(k->delay_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    k->rc = pgsess_cancel(k->s);
    return NULL;
}

/* pgsess_cancel from another thread stops a COPY TO waiting for the server: 100 KB of rows (so
 * the server has sent the COPY's start and some data), then a 30 s pause. The canceller starts
 * before pgsess_copy_out, so the cancel lands wherever the wait is. */
static void test_cancel(pgsess_session *s)
{
    pgsess_copy *c;
    pgsess_error *err = NULL;
    pthread_t th;
    struct canceller k;
    size_t len = 0;
    long rows = 0;
    double t0;

    k.s = s;
    k.delay_ms = 1000;
    k.rc = PGSESS_PANIC;
    t0 = now_ms();
    CHECK(pthread_create(&th, NULL, canceller_main, &k) == 0);
    c = pgsess_copy_out(s,
                        "COPY (SELECT g, repeat('c', 100), pg_sleep(CASE WHEN g = 1000 THEN 30 ELSE 0 END) "
                        "FROM generate_series(1, 1001) g) TO STDOUT",
                        &err);
    if (c != NULL) {
        while (pgsess_copy_read(c, &len, &err) != NULL)
            rows++;
    }
    CHECK(pthread_join(th, NULL) == 0);
    CHECK_INTEQ(k.rc, PGSESS_OK);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_QUERY_CANCELED);
    CHECK(rows < 1001);
    CHECK(now_ms() - t0 < 20000);
    printf("cancelled COPY TO after %.0f ms and %ld rows (%s): %s\n", now_ms() - t0, rows,
           c != NULL ? "by a read" : "by pgsess_copy_out", err ? pgsess_error_message(err) : "NULL");
    pgsess_error_free(err);
    err = NULL;
    if (c != NULL) {
        CHECK(pgsess_copy_finish(c, &err) == UINT64_MAX);
        pgsess_error_free(err);
        pgsess_copy_free(c);
    }
    POOL_IDLE(s);
}

int main(void)
{
    pgsess_session *base;
    char sql[256];

    base = open_pool(4, 5000);
    unique_name(table, sizeof table, "copy");
    snprintf(sql, sizeof sql, "CREATE TABLE %s (id int, v text, n numeric)", table);
    EXEC(base, sql);

    test_misuse(base);
    test_not_a_copy(base);
    test_text(base);
    test_csv(base);
    test_binary(base);
    test_bad_row(base);
    test_error_during_writes(base);
    test_free_without_finish();
    test_transaction(base);
    test_pinned(base);
    test_pool_of_one();
    test_killed(base);
    test_big_and_empty(base);
    test_transaction_ends_first(base);
    test_session_closed_first(base);
    test_threads();
    test_copy_start(base);
    test_read_chunk(base);
    test_abort(base);
    test_cancel(base);

    snprintf(sql, sizeof sql, "DROP TABLE %s", table);
    EXEC(base, sql);
    pgsess_close(base);
    return CHECK_DONE();
}
