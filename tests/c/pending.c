/*
 * pending.c - a statement sent with pgsess_send_query_params and read after the
 * caller waited for the socket itself (poll(2) here, as an event loop or Go's
 * netpoller does): text and binary results, with and without the statement
 * cache, errors, a cancel and the statement timeout while pending, abandoning
 * one (its connection is closed, the next statement runs), a pinned session's
 * state, and a duplicate of the socket made O_NONBLOCK while blocking
 * statements (a large parameter, a large result) go on working; and
 * pgsess_results_summary, what a binding reads of a result in one call; a
 * stream sent the same way (pgsess_send_query_stream), each chunk waited for
 * with pgsess_stream_fd and pgsess_stream_poll; and a statement staged
 * (pgsess_stage_query_params / _stream), sent by pgsess_pending_send once the
 * caller's wait is armed, or by the first poll or finish, or freed unsent.
 * Needs env PGSQL_CTEST (a PostgreSQL URI); opens it as pgsess_open("ctest").
 */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <pgsess.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "helpers.h"

/* Wait for the answer as a caller's event loop would; returns how many times
 * the socket was found readable. */
static int wait_answer(pgsess_pending *p)
{
    int wakeups = 0;
    uint64_t serial = 0;
    int fd = pgsess_pending_fd(p, &serial);
    CHECK(fd >= 0 && serial > 0);
    while (pgsess_pending_poll(p) == 0) {
        struct pollfd pfd = {fd, POLLIN, 0};
        long ms = (long)pgsess_pending_wait_ms(p);
        int n = poll(&pfd, 1, ms < 0 ? 10000 : (int)ms);
        if (n == 0)
            break; /* the statement timeout passed: finish enforces it */
        wakeups++;
    }
    return wakeups;
}

static pgsess_pending *send1(pgsess_session *s, const char *sql, const char *arg, int format)
{
    pgsess_error *err = NULL;
    const char *values[] = {arg};
    pgsess_pending *p = pgsess_send_query_params(s, sql, arg ? 1 : 0, NULL, values, NULL, NULL, format, &err);
    if (p == NULL)
        print_err(__FILE__, __LINE__, "pgsess_send_query_params", err);
    pgsess_error_free(err);
    return p;
}

static void round_trips(pgsess_session *s, int cache)
{
    pgsess_error *err = NULL;
    int i;
    for (i = 0; i < 5; i++) {
        char arg[16];
        pgsess_pending *p;
        pgsess_results *r;
        int32_t v = -1;
        snprintf(arg, sizeof arg, "%d", i);
        p = send1(s, "SELECT $1::int4 + 1 AS n", arg, i % 2);
        CHECK(p != NULL);
        if (p == NULL)
            return;
        wait_answer(p);
        CHECK_INTEQ(pgsess_pending_poll(p), 1);
        r = pgsess_pending_finish(p, &err);
        CHECK(r != NULL && err == NULL);
        if (r == NULL) {
            print_err(__FILE__, __LINE__, "finish", err);
            pgsess_error_free(err);
            err = NULL;
            continue;
        }
        CHECK_INTEQ(pgsess_results_column_format(r, 0), i % 2);
        {
            pgsess_results_info sum;
            pgsess_column_info cols[2];
            memset(cols, 0, sizeof cols);
            CHECK_INTEQ(pgsess_results_summary(r, &sum, cols, 2), PGSESS_OK);
            CHECK(sum.nrows == 1 && sum.ncols == 1 && sum.rows_affected == 1 && sum.count == 1);
            CHECK(sum.backend_pid == pgsess_results_backend_pid(r) && sum.notice_count == 0);
            CHECK_STREQ(sum.status, "SELECT 1");
            CHECK_STREQ(cols[0].name, "n");
            CHECK(cols[0].type_oid == 23 && cols[0].typmod == -1 && cols[0].format == i % 2);
            CHECK(cols[1].name == NULL); /* beyond ncols: untouched */
            CHECK_INTEQ(pgsess_results_summary(r, NULL, NULL, 0), PGSESS_INTERFACE_ERROR);
            CHECK_INTEQ(pgsess_results_summary(r, &sum, NULL, 1), PGSESS_INTERFACE_ERROR);
            CHECK_INTEQ(pgsess_results_summary(NULL, &sum, NULL, 0), PGSESS_INTERFACE_ERROR);
        }
        CHECK_INTEQ(pgsess_results_get_int32(r, 0, 0, &v), PGSESS_OK);
        CHECK_INTEQ(v, i + 1);
        CHECK_STREQ(pgsess_results_status(r), "SELECT 1");
        pgsess_results_free(r);
    }
    (void)cache;
}

/* Staged statements: nothing is sent until pgsess_pending_send (or the first
 * poll, or finish); the socket comes with the staging call. */
static void staged(pgsess_session *s, pgsess_session *cached)
{
    pgsess_session *both[] = {s, cached};
    pgsess_error *err = NULL;
    pgsess_pending_socket sock;
    pgsess_pending *p;
    pgsess_results *r;
    uint64_t serial = 0;
    const char *sql = "SELECT $1::int4 + 1";
    const char *values[] = {"41"};
    const char *div = "SELECT 1/$1::int4";
    const char *zero[] = {"0"};
    char *v;
    int k, i, sent;

    for (k = 0; k < 2; k++) {
        for (i = 0; i < 3; i++) {
            memset(&sock, 0xff, sizeof sock);
            p = pgsess_stage_query_params(both[k], sql, strlen(sql), 1, NULL, values, NULL, NULL, i == 2, &sock,
                                          &err);
            CHECK(p != NULL && err == NULL);
            if (p == NULL)
                continue;
            CHECK(sock.fd >= 0 && sock.fd == pgsess_pending_fd(p, &serial) && sock.serial == serial);
            CHECK_INTEQ(sock.wait_ms, 1500); /* the whole statement timeout: nothing sent yet */
            {
                /* Nothing was sent: the server has nothing to answer. */
                struct pollfd pfd = {sock.fd, POLLIN, 0};
                CHECK_INTEQ(poll(&pfd, 1, 50), 0);
            }
            /* 1: the write took long enough (a slow or shared CPU, valgrind) for the
             * answer to come meanwhile, and it was read. */
            sent = pgsess_pending_send(p);
            CHECK(sent == 0 || sent == 1);
            CHECK_INTEQ(pgsess_pending_send(p), sent); /* sent already: nothing more */
            CHECK(pgsess_pending_wait_ms(p) <= 1500);
            CHECK(wait_answer(p) >= 0);
            r = pgsess_pending_finish(p, &err);
            CHECK(r != NULL);
            CHECK_INTEQ(r ? pgsess_results_column_format(r, 0) : -1, i == 2);
            if (i < 2)
                CHECK_STREQ(r ? pgsess_results_value(r, 0, 0) : NULL, "42");
            pgsess_results_free(r);
        }
        /* Never sent by the caller: the first poll sends it, then reads. */
        p = pgsess_stage_query_params(both[k], sql, strlen(sql), 1, NULL, values, NULL, NULL, 0, NULL, &err);
        CHECK(p != NULL);
        CHECK(wait_answer(p) >= 0);
        r = pgsess_pending_finish(p, &err);
        CHECK_STREQ(r ? pgsess_results_value(r, 0, 0) : NULL, "42");
        pgsess_results_free(r);
        /* Neither sent nor polled: finish sends it and waits. */
        p = pgsess_stage_query_params(both[k], sql, strlen(sql), 1, NULL, values, NULL, NULL, 0, NULL, &err);
        r = pgsess_pending_finish(p, &err);
        CHECK_STREQ(r ? pgsess_results_value(r, 0, 0) : NULL, "42");
        pgsess_results_free(r);
        /* Freed unsent: its connection is closed, the next statement runs on another. */
        p = pgsess_stage_query_params(both[k], sql, strlen(sql), 1, NULL, values, NULL, NULL, 0, NULL, &err);
        CHECK(p != NULL);
        pgsess_pending_free(p);
        v = SCALAR(both[k], "SELECT 'after a staged statement freed'");
        CHECK_STREQ(v, "after a staged statement freed");
        free(v);
        /* The server's error comes from finish, as for a statement sent at once. */
        p = pgsess_stage_query_params(both[k], div, strlen(div), 1, NULL, zero, NULL, NULL, 0, &sock, &err);
        CHECK(p != NULL);
        CHECK(pgsess_pending_send(p) >= 0);
        wait_answer(p);
        CHECK(pgsess_pending_finish(p, &err) == NULL && err != NULL);
        CHECK_STREQ(err ? pgsess_error_sqlstate(err) : NULL, "22012");
        pgsess_error_free(err);
        err = NULL;
    }
    /* The SQL is given by its length: what follows is not read, a zero byte inside is refused. */
    p = pgsess_stage_query_params(s, "SELECT $1::int4 + 1 garbage", strlen(sql), 1, NULL, values, NULL, NULL, 0,
                                  NULL, &err);
    r = p ? pgsess_pending_finish(p, &err) : NULL;
    CHECK_STREQ(r ? pgsess_results_value(r, 0, 0) : NULL, "42");
    pgsess_results_free(r);
    CHECK(pgsess_stage_query_params(s, "SELECT 1\0 2", 10, 0, NULL, NULL, NULL, NULL, 0, NULL, &err) == NULL);
    CHECK_CONTAINS(err ? pgsess_error_message(err) : NULL, "zero byte at offset 8");
    pgsess_error_free(err);
    err = NULL;
    CHECK(pgsess_stage_query_params(s, NULL, 0, 0, NULL, NULL, NULL, NULL, 0, NULL, &err) == NULL && err != NULL);
    pgsess_error_free(err);
    err = NULL;
    CHECK(pgsess_stage_query_params(NULL, sql, strlen(sql), 0, NULL, NULL, NULL, NULL, 0, NULL, &err) == NULL);
    pgsess_error_free(err);
    err = NULL;
    CHECK_INTEQ(pgsess_pending_send(NULL), -1);
    /* A stream staged: sent once armed, each chunk then waited for as before. */
    {
        const char *ssql = "SELECT i FROM generate_series(1, $1::int4) i";
        const char *n[] = {"25"};
        pgsess_stream *st;
        int rows = 0;
        p = pgsess_stage_query_stream(cached, ssql, strlen(ssql), 1, n, 10, true, &sock, &err);
        CHECK(p != NULL && sock.fd >= 0);
        CHECK(p != NULL && pgsess_pending_send(p) >= 0);
        CHECK(p == NULL || wait_answer(p) >= 0);
        st = p ? pgsess_pending_finish_stream(p, &err) : NULL;
        CHECK(st != NULL);
        while (st && (r = pgsess_stream_next(st, &err)) != NULL) {
            rows += (int)pgsess_results_nrows(r);
            pgsess_results_free(r);
        }
        CHECK(err == NULL);
        CHECK_INTEQ(rows, 25);
        pgsess_stream_free(st);
    }
}

int main(void)
{
    pgsess_options *opts = pgsess_options_new();
    pgsess_session *s, *cached, *pin;
    pgsess_error *err = NULL;
    pgsess_results *r;
    pgsess_pending *p;
    pgsess_stats st;
    uint64_t serial1 = 0, serial2 = 0;
    double t0;
    char *v;
    int dup_fd;

    CHECK_INTEQ(pgsess_options_set_pool_max_size(opts, 1), PGSESS_OK);
    CHECK_INTEQ(pgsess_options_set_statement_timeout_ms(opts, 1500), PGSESS_OK);
    CHECK_INTEQ(pgsess_options_set_checkout_timeout_ms(opts, 3000), PGSESS_OK);
    s = open_ctest(opts);
    CHECK_INTEQ(pgsess_options_set_statement_cache(opts, 8), PGSESS_OK);
    cached = open_ctest(opts);
    pgsess_options_free(opts);

    round_trips(s, 0);
    round_trips(cached, 1);

    /* The same connection keeps its serial; the pool of 1 gives it back each time. */
    p = send1(s, "SELECT $1", "a", 0);
    CHECK(pgsess_pending_fd(p, &serial1) >= 0);
    pgsess_results_free(pgsess_pending_finish(p, NULL));
    p = send1(s, "SELECT $1", "b", 0);
    CHECK(pgsess_pending_fd(p, &serial2) >= 0);
    CHECK(serial1 == serial2);
    /* finish without a wait first: it waits inside the library. */
    r = pgsess_pending_finish(p, &err);
    CHECK(r != NULL && err == NULL);
    CHECK_STREQ(r ? pgsess_results_value(r, 0, 0) : NULL, "b");
    /* While results hold the pool's one connection, a send waits and then says so. */
    p = pgsess_send_query_params(s, "SELECT 1", 0, NULL, NULL, NULL, NULL, 0, &err);
    CHECK(p == NULL && err != NULL);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_POOL_EXHAUSTED);
    pgsess_error_free(err);
    err = NULL;
    pgsess_results_free(r);

    /* The statement's error, from finish; the connection is reusable. */
    p = send1(s, "SELEC $1", "x", 0);
    CHECK(p != NULL);
    wait_answer(p);
    r = pgsess_pending_finish(p, &err);
    CHECK(r == NULL && err != NULL);
    CHECK_STREQ(pgsess_error_sqlstate(err), "42601");
    CHECK_STREQ(pgsess_error_field(err, 'P'), "1");
    pgsess_error_free(err);
    err = NULL;
    v = SCALAR(s, "SELECT 'still here'");
    CHECK_STREQ(v, "still here");
    free(v);

    /* What the send refuses: a result format other than 0 or 1, NULL arguments. */
    p = pgsess_send_query_params(s, "SELECT 1", 0, NULL, NULL, NULL, NULL, 2, &err);
    CHECK(p == NULL && err != NULL && pgsess_error_code(err) == PGSESS_INTERFACE_ERROR);
    pgsess_error_free(err);
    err = NULL;
    CHECK(pgsess_send_query_params(NULL, "SELECT 1", 0, NULL, NULL, NULL, NULL, 0, NULL) == NULL);
    CHECK(pgsess_pending_finish(NULL, &err) == NULL && err != NULL);
    pgsess_error_free(err);
    err = NULL;
    CHECK_INTEQ(pgsess_pending_poll(NULL), -1);
    CHECK_INTEQ(pgsess_pending_fd(NULL, NULL), -1);
    CHECK_INTEQ(pgsess_pending_wait_ms(NULL), -1);
    pgsess_pending_free(NULL);

    /* A cancel while pending ends it with 57014, long before its sleep would. */
    p = send1(s, "SELECT pg_sleep($1::float8)", "1.2", 0);
    CHECK(p != NULL);
    CHECK(pgsess_pending_wait_ms(p) > 0 && pgsess_pending_wait_ms(p) <= 1500);
    {
        struct timespec pause = {0, 100 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    t0 = now_ms();
    CHECK_INTEQ(pgsess_cancel(s), PGSESS_OK);
    wait_answer(p);
    r = pgsess_pending_finish(p, &err);
    CHECK(r == NULL && err != NULL);
    CHECK_STREQ(pgsess_error_sqlstate(err), "57014");
    CHECK(now_ms() - t0 < 1000);
    pgsess_error_free(err);
    err = NULL;

    /* The statement timeout (1.5 s) counts from the send: the wait ends at it and finish
     * cancels. */
    t0 = now_ms();
    p = send1(s, "SELECT pg_sleep($1::float8)", "5", 0);
    wait_answer(p);
    CHECK(now_ms() - t0 >= 1400);
    r = pgsess_pending_finish(p, &err);
    CHECK(r == NULL && err != NULL);
    CHECK_STREQ(pgsess_error_sqlstate(err), "57014");
    CHECK(now_ms() - t0 < 4000);
    pgsess_error_free(err);
    err = NULL;

    /* Abandoned: its connection is closed, not given back out of step. */
    p = send1(s, "SELECT pg_sleep($1::float8)", "0.3", 0);
    pgsess_pending_free(p);
    v = SCALAR(s, "SELECT 'next'");
    CHECK_STREQ(v, "next");
    free(v);
    CHECK_INTEQ(pgsess_pool_stats(s, &st), PGSESS_OK);
    CHECK(st.connects >= 2); /* the abandoned one's connection was replaced */

    /* A pinned session's statement: its SET stays on its connection. */
    pin = pgsess_pin(s, &err);
    CHECK(pin != NULL);
    EXEC(pin, "SET application_name = 'pending_c'");
    p = send1(pin, "SELECT current_setting($1)", "application_name", 0);
    /* While it is pending, another statement on the pinned connection is refused, not mixed up
     * with its reply. */
    r = pgsess_query(pin, "SELECT 1", 0, NULL, &err);
    CHECK(r == NULL && err != NULL);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_INTERFACE_ERROR);
    CHECK_CONTAINS(pgsess_error_message(err), "not finished");
    pgsess_error_free(err);
    err = NULL;
    wait_answer(p);
    r = pgsess_pending_finish(p, &err);
    CHECK_STREQ(r ? pgsess_results_value(r, 0, 0) : NULL, "pending_c");
    pgsess_results_free(r);
    /* A dup of the socket made O_NONBLOCK (what Go's binding does): blocking calls still work,
     * with a parameter larger than the socket buffer and a result larger than the read buffer. */
    p = send1(pin, "SELECT 1", NULL, 0);
    dup_fd = dup(pgsess_pending_fd(p, NULL));
    CHECK(dup_fd >= 0 && fcntl(dup_fd, F_SETFL, fcntl(dup_fd, F_GETFL) | O_NONBLOCK) == 0);
    wait_answer(p);
    pgsess_results_free(pgsess_pending_finish(p, NULL));
    {
        size_t big = 4 * 1024 * 1024;
        char *text = malloc(big + 1);
        const char *values[1];
        memset(text, 'x', big);
        text[big] = '\0';
        values[0] = text;
        r = pgsess_query(pin, "SELECT length($1)", 1, values, &err);
        CHECK(r != NULL && err == NULL);
        CHECK_STREQ(r ? pgsess_results_value(r, 0, 0) : NULL, "4194304");
        pgsess_results_free(r);
        free(text);
    }
    r = Q(pin, "SELECT repeat('y', 100) FROM generate_series(1, 20000)");
    CHECK(r != NULL && pgsess_results_nrows(r) == 20000);
    pgsess_results_free(r);
    pgsess_close(pin);
    /* Closing the connection shuts the socket down: the duplicate reads end-of-file. */
    {
        char c;
        struct pollfd pfd = {dup_fd, POLLIN, 0};
        CHECK_INTEQ(pgsess_pool_drain(s, 1000, NULL), PGSESS_OK);
        CHECK(poll(&pfd, 1, 2000) == 1);
        CHECK(read(dup_fd, &c, 1) == 0);
    }
    close(dup_fd);

    /* A stream sent, its first chunk waited for, then each next chunk waited for too. */
    {
        const char *n[] = {"2500"};
        pgsess_stream *st;
        long rows = 0, chunks = 0;
        p = pgsess_send_query_stream(cached, "SELECT i FROM generate_series(1, $1::int) i", 1, n, 1000, true, &err);
        CHECK(p != NULL && err == NULL);
        CHECK(pgsess_pending_finish(p, &err) == NULL && err != NULL); /* a stream's: refused */
        CHECK_INTEQ(pgsess_error_code(err), PGSESS_INTERFACE_ERROR);
        pgsess_error_free(err);
        err = NULL;
        p = pgsess_send_query_stream(cached, "SELECT i FROM generate_series(1, $1::int) i", 1, n, 1000, true, &err);
        wait_answer(p);
        st = pgsess_pending_finish_stream(p, &err);
        CHECK(st != NULL && err == NULL);
        while (st != NULL) {
            uint64_t serial = 0;
            int fd = pgsess_stream_fd(st, &serial);
            CHECK(fd >= 0 && serial > 0);
            while (pgsess_stream_poll(st) == 0) {
                struct pollfd pfd = {fd, POLLIN, 0};
                CHECK(pgsess_stream_wait_ms(st) > 0);
                CHECK(poll(&pfd, 1, 10000) == 1);
            }
            r = pgsess_stream_next(st, &err);
            if (r == NULL)
                break;
            CHECK(pgsess_results_nrows(r) <= 1000);
            rows += (long)pgsess_results_nrows(r);
            chunks++;
            pgsess_results_free(r);
        }
        CHECK(err == NULL);
        CHECK_INTEQ(rows, 2500);
        CHECK_INTEQ(chunks, 3);
        CHECK_INTEQ(pgsess_stream_poll(st), 1); /* ended: next returns at once */
        pgsess_stream_free(st);
        CHECK_INTEQ(pgsess_stream_poll(NULL), -1);
        CHECK_INTEQ(pgsess_stream_fd(NULL, NULL), -1);
        /* A statement's pending finished as a stream: refused, consumed. */
        p = send1(cached, "SELECT $1", "x", 0);
        CHECK(pgsess_pending_finish_stream(p, &err) == NULL && err != NULL);
        pgsess_error_free(err);
        err = NULL;
        CHECK(pgsess_send_query_stream(cached, "SELECT 1", 0, NULL, 0, false, &err) == NULL && err != NULL);
        pgsess_error_free(err);
        err = NULL;
        /* pgsess_cancel reaches a stream's statement while its caller waits for a chunk. */
        st = pgsess_query_stream(cached,
                                 "SELECT i, repeat('x', CASE WHEN i > 10 THEN 9000 ELSE 1 END), "
                                 "pg_sleep(CASE WHEN i > 10 THEN 0.5 ELSE 0 END) FROM generate_series(1, 20) i",
                                 0, NULL, 10, &err);
        CHECK(st != NULL);
        r = st ? pgsess_stream_next(st, &err) : NULL;
        CHECK(r != NULL && pgsess_results_nrows(r) == 10);
        pgsess_results_free(r);
        if (st) {
            int fd = pgsess_stream_fd(st, NULL);
            CHECK_INTEQ(pgsess_stream_poll(st), 0);
            t0 = now_ms();
            CHECK_INTEQ(pgsess_cancel(cached), PGSESS_OK);
            while (pgsess_stream_poll(st) == 0) {
                struct pollfd pfd = {fd, POLLIN, 0};
                if (poll(&pfd, 1, 10000) != 1)
                    break;
            }
            r = pgsess_stream_next(st, &err);
            CHECK(r == NULL && err != NULL);
            CHECK_STREQ(err ? pgsess_error_sqlstate(err) : NULL, "57014");
            CHECK(now_ms() - t0 < 2000);
            pgsess_error_free(err);
            err = NULL;
            pgsess_stream_free(st);
        }
        v = SCALAR(cached, "SELECT 'after the streams'");
        CHECK_STREQ(v, "after the streams");
        free(v);
    }

    staged(s, cached);

    pgsess_close(cached);
    pgsess_close(s);
    return CHECK_DONE();
}
