/*
 * helpers.h - pgsess-specific helpers for the C test programs (include after
 * <pgsess.h> and "check.h"). Everything here goes through the public API only.
 */
#ifndef PGSESS_CTEST_HELPERS_H
#define PGSESS_CTEST_HELPERS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>
#include <time.h>
#include <unistd.h>

/* Print an error's fields (for diagnosing failed checks). */
static inline void print_err(const char *file, int line, const char *what, const pgsess_error *err)
{
    fflush(stdout);
    if (err == NULL) {
        fprintf(stderr, "%s:%d: %s: (no error object)\n", file, line, what);
    } else {
        const char *m = pgsess_error_message(err);
        const char *st = pgsess_error_sqlstate(err);
        fprintf(stderr, "%s:%d: %s: code=%s category=%s sqlstate=%s message=%s\n", file, line, what,
                pgsess_code_name(pgsess_error_code(err)), pgsess_code_name(pgsess_error_category(err)),
                st ? st : "NULL", m ? m : "NULL");
    }
    fflush(stderr);
}

/* Run a statement and CHECK that it produced a results handle; on failure
 * print the error. Returns the handle (possibly NULL); caller frees it. */
static inline pgsess_results *q_(pgsess_session *s, const char *sql, size_t n, const char *const *p,
                                 const char *file, int line)
{
    pgsess_error *err = NULL;
    pgsess_results *r = pgsess_query(s, sql, n, p, &err);
    check_count_(r != NULL);
    if (r == NULL) {
        fflush(stdout);
        fprintf(stderr, "%s:%d: CHECK failed: query succeeds: %s\n", file, line, sql);
        print_err(file, line, "  error", err);
    }
    pgsess_error_free(err);
    return r;
}

static inline pgsess_results *txq_(pgsess_tx *tx, const char *sql, size_t n, const char *const *p,
                                   const char *file, int line)
{
    pgsess_error *err = NULL;
    pgsess_results *r = pgsess_tx_query(tx, sql, n, p, &err);
    check_count_(r != NULL);
    if (r == NULL) {
        fflush(stdout);
        fprintf(stderr, "%s:%d: CHECK failed: tx query succeeds: %s\n", file, line, sql);
        print_err(file, line, "  error", err);
    }
    pgsess_error_free(err);
    return r;
}

#define Q(s, sql) q_((s), (sql), 0, NULL, __FILE__, __LINE__)
#define QP(s, sql, n, p) q_((s), (sql), (n), (p), __FILE__, __LINE__)
#define EXEC(s, sql) pgsess_results_free(Q((s), (sql)))
#define TXQ(tx, sql) txq_((tx), (sql), 0, NULL, __FILE__, __LINE__)
#define TXQP(tx, sql, n, p) txq_((tx), (sql), (n), (p), __FILE__, __LINE__)
#define TXEXEC(tx, sql) pgsess_results_free(TXQ((tx), (sql)))

/* The first column of the first row of a query, as a malloc'd string (NULL on
 * error or SQL NULL). */
static inline char *scalar_(pgsess_session *s, const char *sql, const char *file, int line)
{
    pgsess_results *r = q_(s, sql, 0, NULL, file, line);
    const char *v = pgsess_results_value(r, 0, 0);
    char *out = NULL;
    if (v != NULL) {
        out = malloc(strlen(v) + 1);
        if (out != NULL)
            strcpy(out, v);
    }
    pgsess_results_free(r);
    return out;
}
#define SCALAR(s, sql) scalar_((s), (sql), __FILE__, __LINE__)

/* pgsess_begin that CHECKs it succeeds. */
static inline pgsess_tx *begin_(pgsess_session *s, const char *file, int line)
{
    pgsess_error *err = NULL;
    pgsess_tx *tx = pgsess_begin(s, &err);
    check_count_(tx != NULL && err == NULL);
    if (tx == NULL || err != NULL) {
        fflush(stdout);
        fprintf(stderr, "%s:%d: CHECK failed: pgsess_begin succeeds\n", file, line);
        print_err(file, line, "  error", err);
    }
    pgsess_error_free(err);
    return tx;
}
#define BEGIN(s) begin_((s), __FILE__, __LINE__)

/* Open the "ctest" database (env PGSQL_CTEST) or die: nothing else can run. */
static inline pgsess_session *open_ctest(const pgsess_options *opts)
{
    pgsess_error *err = NULL;
    pgsess_session *s;
    if (getenv("PGSQL_CTEST") == NULL || getenv("PGSQL_CTEST")[0] == '\0') {
        fprintf(stderr, "PGSQL_CTEST is not set; export it to a PostgreSQL URI\n");
        exit(2);
    }
    s = pgsess_open("ctest", opts, &err);
    if (s == NULL) {
        check_count_(0);
        print_err(__FILE__, __LINE__, "CHECK failed: pgsess_open(\"ctest\") succeeds (cannot go on)", err);
        pgsess_error_free(err);
        check_done_();
        exit(1);
    }
    return s;
}

/* A name unique to this process and moment, e.g. "pgsess_ctest_basic_1234_567". */
static inline void unique_name(char *buf, size_t len, const char *tag)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(buf, len, "pgsess_ctest_%s_%ld_%ld", tag, (long)getpid(), (long)(ts.tv_nsec / 1000));
}

static inline int contains_ci(const char *hay, const char *needle)
{
    size_t i, j, n;
    if (hay == NULL || needle == NULL)
        return 0;
    n = strlen(needle);
    for (i = 0; hay[i] != '\0'; i++) {
        for (j = 0; j < n; j++) {
            if (hay[i + j] == '\0' ||
                tolower((unsigned char)hay[i + j]) != tolower((unsigned char)needle[j]))
                break;
        }
        if (j == n)
            return 1;
    }
    return n == 0;
}

static inline double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

#endif /* PGSESS_CTEST_HELPERS_H */
