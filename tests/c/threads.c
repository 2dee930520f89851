/*
 * threads.c - one session shared by many threads; pool exhaustion.
 * Needs env PGSQL_CTEST (a PostgreSQL URI), passed through the db_url option.
 */
#define _POSIX_C_SOURCE 200809L
#include <pgsess.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "check.h"
#include "helpers.h"

#define NTHREADS 8
#define NITERS 500
#define POOL_SIZE 4
#define MAX_PIDS 64

struct worker {
    pgsess_session *s;
    int id;
    int ok;
    int failed;
    int32_t pids[MAX_PIDS];
    int npids;
    char first_failure[512];
};

static void note_failure(struct worker *w, const char *what, pgsess_error *err)
{
    w->failed++;
    if (w->first_failure[0] == '\0') {
        const char *m = err ? pgsess_error_message(err) : NULL;
        snprintf(w->first_failure, sizeof w->first_failure, "thread %d: %s%s%s", w->id, what,
                 m ? ": " : "", m ? m : "");
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    int i;
    for (i = 0; i < NITERS; i++) {
        char in[32], want[32];
        const char *params[1];
        pgsess_error *err = NULL;
        pgsess_results *r;
        long n = (long)w->id * 100000L + i;
        int32_t pid;
        int k;

        snprintf(in, sizeof in, "%ld", n);
        snprintf(want, sizeof want, "%ld", n * 2);
        params[0] = in;
        r = pgsess_query(w->s, "SELECT $1::int * 2", 1, params, &err);
        if (r == NULL) {
            note_failure(w, "query failed", err);
            pgsess_error_free(err);
            continue;
        }
        if (pgsess_results_nrows(r) != 1 || pgsess_results_value(r, 0, 0) == NULL ||
            strcmp(pgsess_results_value(r, 0, 0), want) != 0) {
            char msg[128];
            snprintf(msg, sizeof msg, "wrong answer for %s: got %s, want %s", in,
                     pgsess_results_value(r, 0, 0) ? pgsess_results_value(r, 0, 0) : "NULL", want);
            note_failure(w, msg, NULL);
        } else {
            w->ok++;
        }
        pid = pgsess_results_backend_pid(r);
        for (k = 0; k < w->npids && w->pids[k] != pid; k++)
            ;
        if (k == w->npids && w->npids < MAX_PIDS)
            w->pids[w->npids++] = pid;
        pgsess_results_free(r);
    }
    return NULL;
}

static void test_many_threads(const char *url)
{
    pgsess_options *opts = pgsess_options_new();
    pgsess_error *err = NULL;
    pgsess_session *s;
    pthread_t th[NTHREADS];
    struct worker w[NTHREADS];
    int32_t all[MAX_PIDS];
    int nall = 0, i, j, k, total_ok = 0, total_failed = 0;

    CHECK_INTEQ(pgsess_options_set_db_url(opts, url), PGSESS_OK);
    CHECK_INTEQ(pgsess_options_set_pool_max_size(opts, POOL_SIZE), PGSESS_OK);
    /* generous: under valgrind 8 threads contend for 4 connections */
    CHECK_INTEQ(pgsess_options_set_checkout_timeout_ms(opts, 60000), PGSESS_OK);
    s = pgsess_open("threads_db_url_only", opts, &err);
    pgsess_options_free(opts);
    if (!CHECK(s != NULL)) {
        print_err(__FILE__, __LINE__, "open", err);
        pgsess_error_free(err);
        return;
    }

    memset(w, 0, sizeof w);
    for (i = 0; i < NTHREADS; i++) {
        w[i].s = s;
        w[i].id = i;
        CHECK(pthread_create(&th[i], NULL, worker_main, &w[i]) == 0);
    }
    for (i = 0; i < NTHREADS; i++)
        CHECK(pthread_join(th[i], NULL) == 0);

    for (i = 0; i < NTHREADS; i++) {
        total_ok += w[i].ok;
        total_failed += w[i].failed;
        if (w[i].first_failure[0])
            fprintf(stderr, "  %s (%d failures in that thread)\n", w[i].first_failure, w[i].failed);
        for (j = 0; j < w[i].npids; j++) {
            for (k = 0; k < nall && all[k] != w[i].pids[j]; k++)
                ;
            if (k == nall && nall < MAX_PIDS)
                all[nall++] = w[i].pids[j];
        }
    }
    CHECK_INTEQ(total_ok, NTHREADS * NITERS);
    CHECK_INTEQ(total_failed, 0);
    /* never more connections than the pool allows */
    CHECK(nall >= 1 && nall <= POOL_SIZE);
    printf("threads: %d queries ok over %d backend connection(s)\n", total_ok, nall);
    CHECK(pgsess_validate(s));
    pgsess_close(s);
}

static void test_exhaustion(const char *url)
{
    pgsess_options *opts = pgsess_options_new();
    pgsess_error *err = NULL;
    pgsess_session *s;
    pgsess_results *r1, *r2, *r3, *r4;
    pgsess_tx *tx;
    double t0, elapsed;

    CHECK_INTEQ(pgsess_options_set_db_url(opts, url), PGSESS_OK);
    CHECK_INTEQ(pgsess_options_set_pool_max_size(opts, 2), PGSESS_OK);
    CHECK_INTEQ(pgsess_options_set_checkout_timeout_ms(opts, 1500), PGSESS_OK);
    s = pgsess_open("threads_db_url_only", opts, &err);
    pgsess_options_free(opts);
    if (!CHECK(s != NULL)) {
        print_err(__FILE__, __LINE__, "open", err);
        pgsess_error_free(err);
        return;
    }

    r1 = Q(s, "SELECT 1");
    r2 = Q(s, "SELECT 2");
    CHECK(pgsess_results_backend_pid(r1) != pgsess_results_backend_pid(r2));

    t0 = now_ms();
    r3 = pgsess_query(s, "SELECT 3", 0, NULL, &err);
    elapsed = now_ms() - t0;
    CHECK(r3 == NULL);
    CHECK(err != NULL);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_POOL_EXHAUSTED);
    CHECK_INTEQ(pgsess_error_category(err), PGSESS_OPERATIONAL_ERROR);
    CHECK(contains_ci(pgsess_error_message(err), "free"));
    if (!contains_ci(pgsess_error_message(err), "free"))
        print_err(__FILE__, __LINE__, "  exhaustion error", err);
    CHECK(elapsed >= 250.0);
    CHECK(elapsed < 10000.0);
    printf("exhaustion: failed after %.0f ms: %s\n", elapsed,
           pgsess_error_message(err) ? pgsess_error_message(err) : "NULL");
    pgsess_error_free(err);
    err = NULL;
    pgsess_results_free(r3);

    /* begin also needs a connection */
    tx = pgsess_begin(s, &err);
    CHECK(tx == NULL);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_POOL_EXHAUSTED);
    pgsess_error_free(err);
    err = NULL;
    pgsess_rollback(tx);

    /* freeing one result makes room */
    pgsess_results_free(r1);
    r4 = Q(s, "SELECT 4");
    CHECK_STREQ(pgsess_results_value(r4, 0, 0), "4");
    pgsess_results_free(r4);

    /* an open transaction holds its connection too */
    tx = pgsess_begin(s, &err);
    CHECK(tx != NULL);
    pgsess_error_free(err);
    err = NULL;
    r3 = pgsess_query(s, "SELECT 3", 0, NULL, &err);
    CHECK(r3 == NULL);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_POOL_EXHAUSTED);
    pgsess_error_free(err);
    err = NULL;
    pgsess_results_free(r3);
    pgsess_rollback(tx);
    r3 = Q(s, "SELECT 3");
    CHECK_STREQ(pgsess_results_value(r3, 0, 0), "3");
    pgsess_results_free(r3);

    pgsess_results_free(r2);
    pgsess_close(s);
}

struct delayed_free {
    pgsess_results *r;
    int delay_ms;
};

static void *free_later(void *arg)
{
    struct delayed_free *d = arg;
    struct timespec ts;
    ts.tv_sec = d->delay_ms / 1000;
    ts.tv_nsec = (long)(d->delay_ms % 1000) * 1000000L;
    nanosleep(&ts, NULL);
    pgsess_results_free(d->r);
    return NULL;
}

/* a waiter is woken when another thread frees a result within the timeout */
static void test_waiter_is_woken(const char *url)
{
    pgsess_options *opts = pgsess_options_new();
    pgsess_error *err = NULL;
    pgsess_session *s;
    pgsess_results *r;
    pthread_t th;
    struct delayed_free d;
    double t0, elapsed;

    CHECK_INTEQ(pgsess_options_set_db_url(opts, url), PGSESS_OK);
    CHECK_INTEQ(pgsess_options_set_pool_max_size(opts, 1), PGSESS_OK);
    CHECK_INTEQ(pgsess_options_set_checkout_timeout_ms(opts, 5000), PGSESS_OK);
    s = pgsess_open("threads_db_url_only", opts, &err);
    pgsess_options_free(opts);
    if (!CHECK(s != NULL)) {
        print_err(__FILE__, __LINE__, "open", err);
        pgsess_error_free(err);
        return;
    }
    d.r = Q(s, "SELECT 'held'");
    d.delay_ms = 200;
    t0 = now_ms();
    CHECK(pthread_create(&th, NULL, free_later, &d) == 0);
    r = Q(s, "SELECT 'after wait'");
    elapsed = now_ms() - t0;
    CHECK_STREQ(pgsess_results_value(r, 0, 0), "after wait");
    CHECK(elapsed >= 150.0);
    CHECK(elapsed < 4900.0);
    pgsess_results_free(r);
    CHECK(pthread_join(th, NULL) == 0);
    pgsess_close(s);
}

int main(void)
{
    const char *url = getenv("PGSQL_CTEST");
    if (url == NULL || url[0] == '\0') {
        fprintf(stderr, "PGSQL_CTEST is not set; export it to a PostgreSQL URI\n");
        return 2;
    }
    /* make sure only db_url can be the source */
    unsetenv("PGSQL_THREADS_DB_URL_ONLY");

    test_many_threads(url);
    test_exhaustion(url);
    test_waiter_is_woken(url);
    return CHECK_DONE();
}
