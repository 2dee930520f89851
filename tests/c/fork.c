/*
 * fork.c - fork() with the parent's threads querying throughout: each child (and a child of a
 * child, forked while the child's own threads query) works on connections of its own, opened
 * after fork(); the parent's results, connections and sessions keep working.
 * Needs env PGSQL_CTEST (a PostgreSQL URI).
 *
 * Every child's exit status is checked by its parent: nonzero for a failed check, 99 for memory
 * errors under valgrind (see end_child); under the sanitizers an error aborts the child with a
 * report that run-sanitizers.sh finds in the log. Children print only failures; the summary line
 * is the original process's.
 */
#define _POSIX_C_SOURCE 200809L
#include <pgsess.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/wait.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define HAVE_VALGRIND_H 1
#endif
#endif

#include "check.h"
#include "helpers.h"

/* Clang before 18 gives AddressSanitizer's allocator no fork handlers (added by
 * llvm/llvm-project#75290): a child forked while another thread is inside malloc finds the
 * allocator's lock held forever and hangs in its first allocation (seen here as children blocked
 * in SizeClassAllocator64::GetFromAllocator, one run in ten). That is the sanitizer's runtime, not
 * pgsess: glibc's malloc and valgrind's are fork-safe. So under ASan the load threads wait
 * between statements while fork() runs; under valgrind they query straight through it. */
#if defined(__SANITIZE_ADDRESS__)
#define FORK_PAUSES_LOAD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FORK_PAUSES_LOAD 1
#endif
#endif

#define PARENT_THREADS 2
#define CHILD_THREADS 2
#define ROUNDS 3
/* generous: under valgrind everything is 20-50 times slower */
#define CHILD_LIMIT_MS 240000.0

/* Threads querying one session until stopped. The counters are under `mu`, which only the
 * load's own threads and the thread that started it take, never across a fork(). */
struct load {
    pgsess_session *s;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    bool pause;  /* the threads are to wait between statements (see FORK_PAUSES_LOAD) */
    int waiting; /* threads waiting so */
    int ok;
    int failed;
    pthread_t th[4];
    int n;
};

static void *load_main(void *arg)
{
    struct load *l = arg;
    for (;;) {
        const char *params[1] = {"41"};
        pgsess_error *err = NULL;
        pgsess_results *r;
        bool good, first_failure = false, stop;
        pthread_mutex_lock(&l->mu);
        while (l->pause && !l->stop) {
            l->waiting++;
            pthread_cond_broadcast(&l->cv);
            pthread_cond_wait(&l->cv, &l->mu);
            l->waiting--;
        }
        stop = l->stop;
        pthread_mutex_unlock(&l->mu);
        if (stop)
            return NULL;
        r = pgsess_query(l->s, "SELECT $1::int + 1", 1, params, &err);
        good = r != NULL && pgsess_results_value(r, 0, 0) != NULL && strcmp(pgsess_results_value(r, 0, 0), "42") == 0;
        pthread_mutex_lock(&l->mu);
        if (good)
            l->ok++;
        else
            first_failure = l->failed++ == 0;
        pthread_mutex_unlock(&l->mu);
        if (first_failure)
            print_err(__FILE__, __LINE__, "a load statement failed", err);
        pgsess_results_free(r);
        pgsess_error_free(err);
    }
}

static int load_count(struct load *l, int *failed)
{
    int ok;
    pthread_mutex_lock(&l->mu);
    ok = l->ok;
    if (failed != NULL)
        *failed = l->failed;
    pthread_mutex_unlock(&l->mu);
    return ok;
}

static void load_start(struct load *l, pgsess_session *s, int n)
{
    int i;
    l->s = s;
    l->n = n;
    l->stop = false;
    l->pause = false;
    l->waiting = 0;
    l->ok = 0;
    l->failed = 0;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    for (i = 0; i < n; i++)
        CHECK(pthread_create(&l->th[i], NULL, load_main, l) == 0);
}

/* Wait until the load has run `more` further statements (or 60 s passed). */
static void load_progress(struct load *l, int more)
{
    int failed = 0;
    int target = load_count(l, NULL) + more;
    double t0 = now_ms();
    while (load_count(l, &failed) < target && failed == 0 && now_ms() - t0 < 60000.0) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

/* Stop and join; returns the statements that succeeded. */
static int load_finish(struct load *l)
{
    int i, ok, failed = 0;
    pthread_mutex_lock(&l->mu);
    l->stop = true;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    for (i = 0; i < l->n; i++)
        CHECK(pthread_join(l->th[i], NULL) == 0);
    ok = load_count(l, &failed);
    CHECK_INTEQ(failed, 0);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    return ok;
}

/* End a forked child with `code`, without a leak check. The child's heap still holds what the
 * parent's other threads owned (their thread handles, thread-local data, the closures they
 * run); nothing in the child refers to it since those threads do not exist here, so a leak
 * checker at the child's exit reports it as lost although the program leaked nothing. Under
 * valgrind, which follows a forked child, the child's memory errors become exit status 99 and
 * it ends with an exec, which valgrind does not follow (no --trace-children), so no leak check
 * runs; otherwise _exit skips LeakSanitizer's exit-time check (AddressSanitizer's and UBSan's
 * errors abort at once, with a report). */
static void end_child(int code)
{
    fflush(stdout);
    fflush(stderr);
#ifdef HAVE_VALGRIND_H
    if (RUNNING_ON_VALGRIND) {
        char cmd[32];
        if (VALGRIND_COUNT_ERRORS > 0)
            code = 99;
        snprintf(cmd, sizeof cmd, "exit %d", code);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    }
#endif
    _exit(code);
}

/* Under FORK_PAUSES_LOAD: hold the load's threads between statements (true), or let them go. */
static void load_hold(struct load *l, bool hold)
{
#ifdef FORK_PAUSES_LOAD
    pthread_mutex_lock(&l->mu);
    l->pause = hold;
    pthread_cond_broadcast(&l->cv);
    while (hold && l->waiting < l->n)
        pthread_cond_wait(&l->cv, &l->mu);
    pthread_mutex_unlock(&l->mu);
#else
    (void)l;
    (void)hold;
#endif
}

/* Fork while `load` runs, run `body(s, arg)` in the child and end the child with its result;
 * returns the child's exit status as seen by waitpid (-1 if it had to be killed). */
static int in_child(int (*body)(pgsess_session *, const char *), pgsess_session *s, const char *arg,
                    struct load *load)
{
    pid_t pid;
    double t0;
    fflush(stdout);
    fflush(stderr);
    load_hold(load, true);
    pid = fork();
    if (pid != 0)
        load_hold(load, false); /* in the child, the parent's load threads do not exist */
    if (pid < 0)
        return -2;
    if (pid == 0) {
        int code = body(s, arg);
        end_child(code != 0 ? code : (check_failed_ != 0 ? 1 : 0));
    }
    t0 = now_ms();
    for (;;) {
        int status = 0;
        pid_t r = waitpid(pid, &status, WNOHANG);
        struct timespec ts = {0, 20000000};
        if (r == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (now_ms() - t0 > CHILD_LIMIT_MS) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fprintf(stderr, "child %ld hung: killed\n", (long)pid);
            return -1;
        }
        nanosleep(&ts, NULL);
    }
}

/* True when this session's next connection was opened after `since` (a server timestamp): a
 * connection of this process's own, not one inherited. */
static bool opened_since(pgsess_session *s, const char *since)
{
    const char *params[1];
    pgsess_results *r;
    bool yes;
    params[0] = since;
    r = QP(s, "SELECT backend_start > $1::timestamptz FROM pg_stat_activity WHERE pid = pg_backend_pid()", 1, params);
    yes = r != NULL && pgsess_results_value(r, 0, 0) != NULL && strcmp(pgsess_results_value(r, 0, 0), "t") == 0;
    pgsess_results_free(r);
    return yes;
}

/* The parent's results, held across every fork. */
static pgsess_results *held;

static int grandchild(pgsess_session *s, const char *forked_at)
{
    CHECK(opened_since(s, forked_at));
    pgsess_close(s);
    return 0;
}

static int child(pgsess_session *s, const char *forked_at)
{
    struct load l;
    char *now;
    int status;
    /* The parent's results are readable here, and freeing them returns nothing to the parent's
     * pool and sends nothing on its connection. */
    CHECK_STREQ(pgsess_results_value(held, 0, 0), "held across fork");
    pgsess_results_free(held);
    held = NULL;
    /* The first calls in the child come from several threads at once. */
    load_start(&l, s, CHILD_THREADS);
    load_progress(&l, 20);
    CHECK(opened_since(s, forked_at));
    /* Fork again while this child's threads query. */
    now = SCALAR(s, "SELECT clock_timestamp()");
    status = in_child(grandchild, s, now, &l);
    CHECK_INTEQ(status, 0);
    free(now);
    load_progress(&l, 5);
    CHECK(load_finish(&l) >= 25);
    pgsess_close(s);
    return 0;
}

int main(void)
{
    pgsess_options *opts = pgsess_options_new();
    pgsess_session *s;
    pgsess_results *r;
    pgsess_stats st;
    struct load l;
    int32_t held_pid;
    int round;

    CHECK_INTEQ(pgsess_options_set_pool_max_size(opts, PARENT_THREADS + 1), PGSESS_OK);
    CHECK_INTEQ(pgsess_options_set_checkout_timeout_ms(opts, 60000), PGSESS_OK);
    s = open_ctest(opts);
    pgsess_options_free(opts);

    /* Results the parent holds across every fork (each child frees its copy). */
    held = Q(s, "SELECT 'held across fork'");
    held_pid = pgsess_results_backend_pid(held);
    load_start(&l, s, PARENT_THREADS);
    load_progress(&l, 10);

    for (round = 0; round < ROUNDS; round++) {
        char *now = SCALAR(s, "SELECT clock_timestamp()");
        int status = in_child(child, s, now, &l);
        if (!CHECK_INTEQ(status, 0))
            fprintf(stderr, "child %d failed\n", round);
        free(now);
        load_progress(&l, 5);
    }
    CHECK(load_finish(&l) >= 25);

    /* The parent's connections survived: the children sent nothing on them. */
    CHECK_STREQ(pgsess_results_value(held, 0, 0), "held across fork");
    pgsess_results_free(held);
    r = Q(s, "SELECT pg_backend_pid()");
    CHECK(r != NULL && pgsess_results_backend_pid(r) > 0);
    pgsess_results_free(r);
    CHECK_INTEQ(pgsess_pool_stats(s, &st), PGSESS_OK);
    CHECK_INTEQ(st.discarded_dead, 0);
    CHECK_INTEQ(st.in_use, 0);
    CHECK(st.open <= PARENT_THREADS + 1);
    printf("fork: %d rounds, parent's held connection (backend %d) intact, %u open\n", ROUNDS, (int)held_pid,
           st.open);
    pgsess_close(s);
    return CHECK_DONE();
}
