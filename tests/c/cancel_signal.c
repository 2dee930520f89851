/*
 * cancel_signal.c - pgsess_options_set_cancel_on_signal as a C program uses it: a libpq-era
 * timeout with setitimer()/SIGALRM and a handler that does nothing. The signal interrupts the
 * statement's wait, the library cancels it on the server, and the call fails with
 * PGSESS_QUERY_CANCELED long before pg_sleep(10) would end; the session goes on working.
 * Without the option the same signal is retried over and the statement completes.
 * Needs env PGSQL_CTEST (a PostgreSQL URI); opens it as pgsess_open("ctest").
 */
#define _POSIX_C_SOURCE 200809L
#include <pgsess.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/time.h>

#include "check.h"
#include "helpers.h"

static volatile sig_atomic_t alarms = 0;
static void on_alarm(int sig)
{
    (void)sig;
    alarms++;
}

static void arm(long ms)
{
    struct itimerval it;
    memset(&it, 0, sizeof it);
    it.it_value.tv_sec = ms / 1000;
    it.it_value.tv_usec = (ms % 1000) * 1000;
    setitimer(ITIMER_REAL, &it, NULL);
}

static pgsess_session *open_with(bool on)
{
    pgsess_options *o = pgsess_options_new();
    CHECK_INTEQ(pgsess_options_set_cancel_on_signal(o, on), PGSESS_OK);
    /* A pool of its own per setting (the option is not part of the pool key; the idle TTL is). */
    pgsess_options_set_pool_idle_ttl(o, on ? 61 : 62);
    pgsess_session *s = open_ctest(o);
    pgsess_options_free(o);
    return s;
}

int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);

    CHECK_INTEQ(pgsess_options_set_cancel_on_signal(NULL, true), PGSESS_INTERFACE_ERROR);

    pgsess_session *s = open_with(true);
    free(SCALAR(s, "SELECT 1"));
    double t0 = now_ms();
    arm(300);
    pgsess_error *err = NULL;
    pgsess_results *r = pgsess_query(s, "SELECT pg_sleep(10)", 0, NULL, &err);
    double took = now_ms() - t0;
    CHECK(r == NULL);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_QUERY_CANCELED);
    CHECK_STREQ(pgsess_error_sqlstate(err), "57014");
    CHECK(alarms == 1);
    /* valgrind slows everything; 10 s is the statement's own length. */
    CHECK(took < 5000);
    printf("cancelled on SIGALRM after %.0f ms (the alarm was at 300 ms)\n", took);
    pgsess_error_free(err);
    pgsess_results_free(r);
    char *v = SCALAR(s, "SELECT 'after'");
    CHECK_STREQ(v, "after");
    free(v);
    pgsess_close(s);

    s = open_with(false);
    free(SCALAR(s, "SELECT 1"));
    t0 = now_ms();
    arm(200);
    v = SCALAR(s, "SELECT pg_sleep(0.8)::text");
    took = now_ms() - t0;
    CHECK_STREQ(v, "");
    CHECK(took >= 750);
    CHECK(alarms == 2);
    free(v);
    pgsess_close(s);
    return CHECK_DONE();
}
