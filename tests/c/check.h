/*
 * check.h - a tiny check framework shared by the C test programs.
 *
 * CHECK(expr) records a pass or a failure; a failure prints
 * "file:line: CHECK failed: expr" (plus the values involved for the typed
 * variants). CHECK_DONE() prints "N passed, M failed" and evaluates to the
 * process exit status (1 if anything failed), so main() ends with
 * `return CHECK_DONE();`.
 *
 * Plain C99, no dependency on pgsess.h. Not thread-safe: threads count their
 * own outcomes and the main thread CHECKs the totals.
 */
#ifndef PGSESS_CTEST_CHECK_H
#define PGSESS_CTEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_passed_ = 0;
static int check_failed_ = 0;

static inline int check_count_(int ok)
{
    if (ok)
        check_passed_++;
    else
        check_failed_++;
    return ok;
}

static inline int check_record_(int ok, const char *file, int line, const char *expr)
{
    check_count_(ok);
    if (!ok) {
        fflush(stdout);
        fprintf(stderr, "%s:%d: CHECK failed: %s\n", file, line, expr);
        fflush(stderr);
    }
    return ok;
}

static inline int check_streq_(const char *a, const char *b, const char *file, int line,
                               const char *ea, const char *eb)
{
    int ok = (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
    if (!ok) {
        fflush(stdout);
        fprintf(stderr, "%s:%d: CHECK failed: %s == %s\n    got:      %s%s%s\n    expected: %s%s%s\n",
                file, line, ea, eb,
                a ? "\"" : "", a ? a : "NULL", a ? "\"" : "",
                b ? "\"" : "", b ? b : "NULL", b ? "\"" : "");
    }
    fflush(stderr);
    return check_count_(ok);
}

static inline int check_inteq_(long long a, long long b, const char *file, int line,
                               const char *ea, const char *eb)
{
    int ok = (a == b);
    if (!ok) {
        fflush(stdout);
        fprintf(stderr, "%s:%d: CHECK failed: %s == %s\n    got:      %lld\n    expected: %lld\n",
                file, line, ea, eb, a, b);
    }
    fflush(stderr);
    return check_count_(ok);
}

static inline int check_contains_(const char *hay, const char *needle, const char *file, int line,
                                  const char *eh, const char *en)
{
    int ok = hay != NULL && needle != NULL && strstr(hay, needle) != NULL;
    if (!ok) {
        fflush(stdout);
        fprintf(stderr, "%s:%d: CHECK failed: %s contains %s\n    haystack: %s%s%s\n    needle:   %s\n",
                file, line, eh, en,
                hay ? "\"" : "", hay ? hay : "NULL", hay ? "\"" : "",
                needle ? needle : "NULL");
    }
    fflush(stderr);
    return check_count_(ok);
}

static inline int check_done_(void)
{
    fflush(stderr);
    printf("%d passed, %d failed\n", check_passed_, check_failed_);
    fflush(stdout);
    return check_failed_ ? 1 : 0;
}

/* Each evaluates to nonzero on success, so `if (!CHECK(p != NULL)) ...` works. */
#define CHECK(expr) check_record_((expr) ? 1 : 0, __FILE__, __LINE__, #expr)
#define CHECK_STREQ(a, b) check_streq_((a), (b), __FILE__, __LINE__, #a, #b)
#define CHECK_INTEQ(a, b) check_inteq_((long long)(a), (long long)(b), __FILE__, __LINE__, #a, #b)
#define CHECK_CONTAINS(hay, needle) check_contains_((hay), (needle), __FILE__, __LINE__, #hay, #needle)
#define CHECK_DONE() check_done_()

#endif /* PGSESS_CTEST_CHECK_H */
