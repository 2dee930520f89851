/*
 * notify.c - LISTEN/NOTIFY through the C API (pgsess_listen, pgsess_notification_*): delivery
 * with channel, payload and sender pid; channel names kept exactly; timeouts; a pinned session's
 * own LISTEN; UNLISTEN; an epoll loop on pgsess_notification_fd; 2,000 notifications from 4
 * threads, each received once and in order; a gap marker per channel after the listener's
 * connection is killed, and delivery again after it.
 * Needs env PGSQL_CTEST (a PostgreSQL URI); opens it as pgsess_open("ctest").
 */
#define _POSIX_C_SOURCE 200809L
#include <pgsess.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "check.h"
#include "helpers.h"

static char sfx[48]; /* unique to this run: appended to every channel name */

/* A channel name: `base` + "_" + this run's suffix (at most 63 bytes, PostgreSQL's limit). */
static void chan(char *buf, size_t len, const char *base)
{
    snprintf(buf, len, "%s_%s", base, sfx);
}

static pgsess_session *open_pool(uint32_t max)
{
    pgsess_options *opts = pgsess_options_new();
    pgsess_session *s;
    CHECK_INTEQ(pgsess_options_set_pool_max_size(opts, max), PGSESS_OK);
    CHECK_INTEQ(pgsess_options_set_checkout_timeout_ms(opts, 5000), PGSESS_OK);
    s = open_ctest(opts);
    pgsess_options_free(opts);
    return s;
}

static void listen_(pgsess_session *s, const char *channel, const char *file, int line)
{
    pgsess_error *err = NULL;
    pgsess_code rc = pgsess_listen(s, channel, &err);
    if (!check_count_(rc == PGSESS_OK && err == NULL)) {
        fflush(stdout);
        fprintf(stderr, "%s:%d: CHECK failed: pgsess_listen(%s) succeeds\n", file, line, channel);
        print_err(file, line, "  error", err);
    }
    pgsess_error_free(err);
}
#define LISTEN(s, ch) listen_((s), (ch), __FILE__, __LINE__)

static void unlisten_(pgsess_session *s, const char *channel, const char *file, int line)
{
    pgsess_error *err = NULL;
    pgsess_code rc = pgsess_unlisten(s, channel, &err);
    if (!check_count_(rc == PGSESS_OK && err == NULL)) {
        fflush(stdout);
        fprintf(stderr, "%s:%d: CHECK failed: pgsess_unlisten(%s) succeeds\n", file, line, channel);
        print_err(file, line, "  error", err);
    }
    pgsess_error_free(err);
}
#define UNLISTEN(s, ch) unlisten_((s), (ch), __FILE__, __LINE__)

/* NOTIFY `channel` with `payload` through `sender` (pg_notify: the channel is taken as it is).
 * Returns the backend pid that sent it (0 on failure, with a failed check). */
static int32_t send_(pgsess_session *sender, const char *channel, const char *payload, const char *file, int line)
{
    const char *p[] = {channel, payload};
    pgsess_results *r = q_(sender, "SELECT pg_notify($1, $2)", 2, p, file, line);
    int32_t pid = pgsess_results_backend_pid(r);
    pgsess_results_free(r);
    return pid;
}
#define SEND(s, ch, payload) send_((s), (ch), (payload), __FILE__, __LINE__)

/* The next notification of `s` within `timeout_ms` (NULL on timeout); CHECKs no error. */
static pgsess_notification *next_(pgsess_session *s, int32_t timeout_ms, const char *file, int line)
{
    pgsess_error *err = NULL;
    pgsess_notification *n = pgsess_notification_next(s, timeout_ms, &err);
    if (!check_count_(err == NULL)) {
        fflush(stdout);
        fprintf(stderr, "%s:%d: CHECK failed: pgsess_notification_next(%d) without an error\n", file, line,
                (int)timeout_ms);
        print_err(file, line, "  error", err);
    }
    pgsess_error_free(err);
    return n;
}
#define NEXT(s, ms) next_((s), (ms), __FILE__, __LINE__)

/* CHECK that the next notification (within `timeout_ms`) is `payload` on `channel` from `pid`
 * (0: any pid > 0), not a gap marker. */
static void expect_(pgsess_session *s, int32_t timeout_ms, const char *channel, const char *payload, int32_t pid,
                    const char *file, int line)
{
    pgsess_notification *n = next_(s, timeout_ms, file, line);
    const char *c, *p;
    int ok;
    if (!check_count_(n != NULL)) {
        fflush(stdout);
        fprintf(stderr, "%s:%d: CHECK failed: notification \"%s\" on %s arrives within %d ms\n", file, line, payload,
                channel, (int)timeout_ms);
        return;
    }
    c = pgsess_notification_channel(n);
    p = pgsess_notification_payload(n);
    ok = c != NULL && strcmp(c, channel) == 0 && p != NULL && strcmp(p, payload) == 0 &&
         !pgsess_notification_is_gap(n) &&
         (pid != 0 ? pgsess_notification_pid(n) == pid : pgsess_notification_pid(n) > 0);
    if (!check_count_(ok)) {
        fflush(stdout);
        fprintf(stderr,
                "%s:%d: CHECK failed: notification is \"%s\" on %s from pid %d\n"
                "    got: \"%.80s\" on %s from pid %d%s\n",
                file, line, payload, channel, (int)pid, p ? p : "NULL", c ? c : "NULL",
                (int)pgsess_notification_pid(n), pgsess_notification_is_gap(n) ? " (a gap marker)" : "");
    }
    pgsess_notification_free(n);
}
#define EXPECT(s, ms, ch, payload, pid) expect_((s), (ms), (ch), (payload), (pid), __FILE__, __LINE__)

/* CHECK that nothing arrives within `timeout_ms`. */
static void expect_none_(pgsess_session *s, int32_t timeout_ms, const char *file, int line)
{
    pgsess_notification *n = next_(s, timeout_ms, file, line);
    if (!check_count_(n == NULL)) {
        const char *c = pgsess_notification_channel(n), *p = pgsess_notification_payload(n);
        fflush(stdout);
        fprintf(stderr, "%s:%d: CHECK failed: no notification within %d ms; got \"%.80s\" on %s%s\n", file, line,
                (int)timeout_ms, p ? p : "NULL", c ? c : "NULL", pgsess_notification_is_gap(n) ? " (gap)" : "");
    }
    pgsess_notification_free(n);
}
#define EXPECT_NONE(s, ms) expect_none_((s), (ms), __FILE__, __LINE__)

static void test_misuse(pgsess_session *s)
{
    pgsess_error *err = NULL;

    CHECK_INTEQ(pgsess_listen(NULL, "x", &err), PGSESS_INTERFACE_ERROR);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_INTERFACE_ERROR);
    pgsess_error_free(err);
    CHECK_INTEQ(pgsess_listen(s, NULL, &err), PGSESS_INTERFACE_ERROR);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_INTERFACE_ERROR);
    pgsess_error_free(err);
    CHECK_INTEQ(pgsess_listen(NULL, NULL, NULL), PGSESS_INTERFACE_ERROR);
    CHECK_INTEQ(pgsess_unlisten(NULL, "x", &err), PGSESS_INTERFACE_ERROR);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_INTERFACE_ERROR);
    pgsess_error_free(err);
    CHECK_INTEQ(pgsess_unlisten(s, NULL, &err), PGSESS_INTERFACE_ERROR);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_INTERFACE_ERROR);
    pgsess_error_free(err);
    CHECK_INTEQ(pgsess_unlisten(NULL, NULL, NULL), PGSESS_INTERFACE_ERROR);
    CHECK(pgsess_notification_next(NULL, 0, &err) == NULL);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_INTERFACE_ERROR);
    pgsess_error_free(err);
    CHECK(pgsess_notification_next(NULL, 100, NULL) == NULL);
    CHECK_INTEQ(pgsess_notification_fd(NULL), -1);
    CHECK(pgsess_notification_channel(NULL) == NULL);
    CHECK(pgsess_notification_payload(NULL) == NULL);
    CHECK_INTEQ(pgsess_notification_pid(NULL), 0);
    CHECK(!pgsess_notification_is_gap(NULL));
    pgsess_notification_free(NULL);

    /* An empty channel name is not an identifier. */
    err = NULL;
    CHECK(pgsess_listen(s, "", &err) != PGSESS_OK);
    CHECK(err != NULL);
    pgsess_error_free(err);
}

/* A notification arrives with its channel, payload and the sender's backend pid; payloads are kept
 * byte for byte (quotes, UTF-8, newlines, empty, 7,999 bytes); listening twice delivers once. */
static void test_basic(pgsess_session *s, pgsess_session *sender)
{
    char ch[96], big[8000];
    int32_t pid;
    const char *odd = "it's \"quoted\", stra\xc3\x9f" "e \xe2\x9c\x93\nand a second line\\";

    chan(ch, sizeof ch, "basic");
    LISTEN(s, ch);
    pid = SEND(sender, ch, "hello");
    CHECK(pid > 0);
    EXPECT(s, 5000, ch, "hello", pid);
    EXPECT_NONE(s, 0);

    pid = SEND(sender, ch, odd);
    EXPECT(s, 5000, ch, odd, pid);
    pid = SEND(sender, ch, "");
    EXPECT(s, 5000, ch, "", pid);
    memset(big, 'p', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    pid = SEND(sender, ch, big);
    EXPECT(s, 5000, ch, big, pid);

    /* Listening again changes nothing: one notification, one delivery. */
    LISTEN(s, ch);
    pid = SEND(sender, ch, "once");
    EXPECT(s, 5000, ch, "once", pid);
    EXPECT_NONE(s, 300);

    /* Notifications wait in the queue until taken, in order. */
    SEND(sender, ch, "q1");
    SEND(sender, ch, "q2");
    SEND(sender, ch, "q3");
    EXPECT(s, 5000, ch, "q1", 0);
    EXPECT(s, 5000, ch, "q2", 0);
    EXPECT(s, 5000, ch, "q3", 0);
    UNLISTEN(s, ch);
}

/* Channel names are quoted as identifiers: case, quotes and spaces are kept, and a name that
 * differs only in case is another channel. */
static void test_channel_names(pgsess_session *s, pgsess_session *sender)
{
    char mixed[96], lower[96], quoted[96], inject[96];
    size_t i;

    chan(mixed, sizeof mixed, "MixedCase");
    chan(quoted, sizeof quoted, "with \"quotes\" and spaces");
    chan(inject, sizeof inject, "x\"; SELECT 1; --");
    snprintf(lower, sizeof lower, "%s", mixed);
    for (i = 0; lower[i] != '\0'; i++)
        lower[i] = (char)tolower((unsigned char)lower[i]);

    LISTEN(s, mixed);
    LISTEN(s, quoted);
    LISTEN(s, inject);
    SEND(sender, lower, "to the lower-case channel");
    SEND(sender, mixed, "mixed");
    EXPECT(s, 5000, mixed, "mixed", 0);
    SEND(sender, quoted, "quoted");
    EXPECT(s, 5000, quoted, "quoted", 0);
    SEND(sender, inject, "inject");
    EXPECT(s, 5000, inject, "inject", 0);
    EXPECT_NONE(s, 200);
    UNLISTEN(s, mixed);
    UNLISTEN(s, quoted);
    UNLISTEN(s, inject);
}

struct delayed_send {
    pgsess_session *sender;
    const char *channel;
    int delay_ms;
};

static void *delayed_send_main(void *arg)
{
    struct delayed_send *d = arg;
    struct timespec ts = {d->delay_ms / 1000, (long)(d->delay_ms % 1000) * 1000000L};
    pgsess_error *err = NULL;
    const char *p[] = {d->channel, "late"};
    nanosleep(&ts, NULL);
    pgsess_results_free(pgsess_query(d->sender, "SELECT pg_notify($1, $2)", 2, p, &err));
    pgsess_error_free(err);
    return NULL;
}

/* 0 does not wait (NULL, err NULL); a timeout waits about that long; -1 waits until one comes. */
static void test_timeouts(pgsess_session *s, pgsess_session *sender)
{
    char ch[96];
    pgsess_error *err = NULL;
    pgsess_notification *n;
    pgsess_session *never;
    pthread_t th;
    struct delayed_send d;
    double t0, waited;

    chan(ch, sizeof ch, "timeouts");
    LISTEN(s, ch);
    t0 = now_ms();
    n = pgsess_notification_next(s, 0, &err);
    waited = now_ms() - t0;
    CHECK(n == NULL);
    CHECK(err == NULL);
    CHECK(waited < 1000);
    pgsess_notification_free(n);

    t0 = now_ms();
    n = NEXT(s, 300);
    waited = now_ms() - t0;
    CHECK(n == NULL);
    if (!CHECK(waited >= 250 && waited < 5000))
        fprintf(stderr, "    next(300) returned after %.0f ms\n", waited);
    pgsess_notification_free(n);

    /* -1: until a notification comes (sent 300 ms later by another thread). */
    d.sender = sender;
    d.channel = ch;
    d.delay_ms = 300;
    CHECK(pthread_create(&th, NULL, delayed_send_main, &d) == 0);
    t0 = now_ms();
    n = NEXT(s, -1);
    waited = now_ms() - t0;
    CHECK(n != NULL && strcmp(pgsess_notification_payload(n), "late") == 0);
    CHECK(waited >= 250);
    pgsess_notification_free(n);
    CHECK(pthread_join(th, NULL) == 0);
    UNLISTEN(s, ch);

    /* A session that never listened: nothing, no error. */
    never = open_ctest(NULL);
    err = NULL;
    n = pgsess_notification_next(never, 0, &err);
    CHECK(n == NULL);
    CHECK(err == NULL);
    pgsess_notification_free(n);
    pgsess_close(never);
}

/* A pinned session's own `LISTEN x` (pgsess_query) delivers through pgsess_notification_next on
 * that session: notifications from others while it is idle, and its own during a statement. Its
 * LISTEN is reset when the connection goes back to the pool. */
static void test_pinned_listen(pgsess_session *sender)
{
    pgsess_session *one = open_pool(1);
    pgsess_session *p;
    pgsess_error *err = NULL;
    pgsess_results *r;
    char ch[96], sql[160];
    int32_t pid, own;
    char *v;

    chan(ch, sizeof ch, "pinned");
    p = pgsess_pin(one, &err);
    CHECK(p != NULL);
    pgsess_error_free(err);
    err = NULL;
    if (p == NULL) {
        pgsess_close(one);
        return;
    }
    snprintf(sql, sizeof sql, "LISTEN %s", ch);
    EXEC(p, sql);
    pid = SEND(sender, ch, "while idle");
    EXPECT(p, 5000, ch, "while idle", pid);

    snprintf(sql, sizeof sql, "SELECT pg_notify('%s', 'own')", ch);
    r = Q(p, sql);
    own = pgsess_results_backend_pid(r);
    pgsess_results_free(r);
    CHECK(own > 0 && own != pid);
    EXPECT(p, 5000, ch, "own", own);

    /* One arriving while the session runs a statement of its own. */
    pid = SEND(sender, ch, "before a statement");
    r = Q(p, "SELECT pg_sleep(0.1)");
    pgsess_results_free(r);
    EXPECT(p, 5000, ch, "before a statement", pid);

    snprintf(sql, sizeof sql, "UNLISTEN %s", ch);
    EXEC(p, sql);
    SEND(sender, ch, "after unlisten");
    EXPECT_NONE(p, 300);

    snprintf(sql, sizeof sql, "LISTEN %s", ch);
    EXEC(p, sql);
    pgsess_close(p);
    /* The pool's one connection again, as a pooled statement: not listening any more. */
    v = SCALAR(one, "SELECT count(*) FROM pg_listening_channels()");
    CHECK_STREQ(v, "0");
    free(v);
    pgsess_close(one);
}

/* After pgsess_unlisten nothing more arrives on that channel (a later one on another channel
 * does, proving the first was not just late). */
static void test_unlisten(pgsess_session *s, pgsess_session *sender)
{
    char ch[96], other[96], never[96];

    chan(ch, sizeof ch, "unlisten");
    chan(other, sizeof other, "unlisten_other");
    chan(never, sizeof never, "never_listened");
    LISTEN(s, ch);
    LISTEN(s, other);
    SEND(sender, ch, "one");
    EXPECT(s, 5000, ch, "one", 0);
    UNLISTEN(s, ch);
    SEND(sender, ch, "two");
    SEND(sender, other, "marker");
    EXPECT(s, 5000, other, "marker", 0);
    EXPECT_NONE(s, 300);
    UNLISTEN(s, other);
    UNLISTEN(s, never); /* not listening: nothing to do, not an error */
}

/* pgsess_notification_fd in an epoll loop: readable while a notification is ready, not once all
 * are taken. */
static void test_epoll(pgsess_session *sender)
{
    pgsess_session *es = open_ctest(NULL);
    struct epoll_event ev, got[4];
    struct pollfd pfd;
    char ch[96];
    int fd, ep, i, received;
    struct timespec settle = {1, 0};

    chan(ch, sizeof ch, "epoll");
    LISTEN(es, ch);
    fd = pgsess_notification_fd(es);
    CHECK(fd >= 0);
    CHECK_INTEQ(pgsess_notification_fd(es), fd);
    ep = epoll_create1(0);
    CHECK(ep >= 0);
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0);
    CHECK_INTEQ(epoll_wait(ep, got, 4, 0), 0);

    SEND(sender, ch, "wake");
    i = epoll_wait(ep, got, 4, 5000);
    CHECK_INTEQ(i, 1);
    CHECK(i == 1 && got[0].data.fd == fd && (got[0].events & EPOLLIN));
    EXPECT(es, 0, ch, "wake", 0);
    EXPECT_NONE(es, 0);
    CHECK_INTEQ(epoll_wait(ep, got, 4, 0), 0);
    pfd.fd = fd;
    pfd.events = POLLIN;
    pfd.revents = 0;
    CHECK_INTEQ(poll(&pfd, 1, 0), 0);

    /* Three, taken as the loop wakes. */
    SEND(sender, ch, "a");
    SEND(sender, ch, "b");
    SEND(sender, ch, "c");
    received = 0;
    for (i = 0; i < 10 && received < 3; i++) {
        pgsess_notification *n;
        if (!CHECK_INTEQ(epoll_wait(ep, got, 4, 5000), 1))
            break;
        while ((n = NEXT(es, 0)) != NULL) {
            const char *want[] = {"a", "b", "c"};
            CHECK(received < 3 && strcmp(pgsess_notification_payload(n), want[received]) == 0);
            received++;
            pgsess_notification_free(n);
        }
    }
    CHECK_INTEQ(received, 3);
    CHECK_INTEQ(epoll_wait(ep, got, 4, 0), 0);

    /* Two ready: still readable after the first is taken, not after the second. */
    SEND(sender, ch, "x");
    SEND(sender, ch, "y");
    CHECK_INTEQ(epoll_wait(ep, got, 4, 5000), 1);
    nanosleep(&settle, NULL);
    EXPECT(es, 0, ch, "x", 0);
    CHECK_INTEQ(poll(&pfd, 1, 0), 1);
    EXPECT(es, 0, ch, "y", 0);
    CHECK_INTEQ(poll(&pfd, 1, 0), 0);
    CHECK_INTEQ(epoll_wait(ep, got, 4, 0), 0);

    close(ep);
    pgsess_close(es);
}

#define NSENDERS 4
#define PER_SENDER 500

struct sender_thread {
    pgsess_session *s;
    const char *channel;
    int id;
    int failed;
};

static void *sender_main(void *arg)
{
    struct sender_thread *t = arg;
    int i;
    for (i = 0; i < PER_SENDER; i++) {
        char payload[32];
        const char *p[2];
        pgsess_error *err = NULL;
        pgsess_results *r;
        snprintf(payload, sizeof payload, "T%d %d", t->id, i);
        p[0] = t->channel;
        p[1] = payload;
        r = pgsess_query(t->s, "SELECT pg_notify($1, $2)", 2, p, &err);
        if (r == NULL) {
            if (t->failed++ == 0)
                print_err(__FILE__, __LINE__, "sender thread", err);
        }
        pgsess_results_free(r);
        pgsess_error_free(err);
    }
    return NULL;
}

/* 2,000 notifications from 4 threads, received while they are sent: each exactly once, and each
 * thread's in the order it sent them. */
static void test_threads(pgsess_session *sender)
{
    pgsess_session *s = open_ctest(NULL);
    pthread_t th[NSENDERS];
    struct sender_thread t[NSENDERS];
    int next_seq[NSENDERS];
    int i, received = 0, out_of_order = 0, foreign = 0, failed = 0;
    char ch[96];
    double t0 = now_ms();

    chan(ch, sizeof ch, "threads");
    LISTEN(s, ch);
    memset(next_seq, 0, sizeof next_seq);
    for (i = 0; i < NSENDERS; i++) {
        t[i].s = sender;
        t[i].channel = ch;
        t[i].id = i;
        t[i].failed = 0;
        CHECK(pthread_create(&th[i], NULL, sender_main, &t[i]) == 0);
    }
    while (received < NSENDERS * PER_SENDER) {
        pgsess_notification *n = NEXT(s, 30000);
        int id = -1, seq = -1;
        const char *c, *p;
        if (n == NULL)
            break;
        c = pgsess_notification_channel(n);
        p = pgsess_notification_payload(n);
        if (c == NULL || strcmp(c, ch) != 0 || p == NULL || sscanf(p, "T%d %d", &id, &seq) != 2 || id < 0 ||
            id >= NSENDERS || pgsess_notification_is_gap(n) || pgsess_notification_pid(n) <= 0) {
            if (foreign++ == 0)
                fprintf(stderr, "unexpected notification: %s on %s\n", p ? p : "NULL", c ? c : "NULL");
        } else {
            if (seq != next_seq[id] && out_of_order++ == 0)
                fprintf(stderr, "sender %d: got %d, expected %d\n", id, seq, next_seq[id]);
            next_seq[id] = seq + 1;
            received++;
        }
        pgsess_notification_free(n);
    }
    for (i = 0; i < NSENDERS; i++) {
        CHECK(pthread_join(th[i], NULL) == 0);
        failed += t[i].failed;
    }
    CHECK_INTEQ(failed, 0);
    CHECK_INTEQ(received, NSENDERS * PER_SENDER);
    CHECK_INTEQ(out_of_order, 0);
    CHECK_INTEQ(foreign, 0);
    for (i = 0; i < NSENDERS; i++)
        CHECK_INTEQ(next_seq[i], PER_SENDER);
    EXPECT_NONE(s, 300);
    printf("threads: %d notifications from %d threads in %.0f ms\n", received, NSENDERS, now_ms() - t0);
    pgsess_close(s);
}

/* The listener's connection is killed: after it reconnects, one gap marker per channel (payload
 * "", pid 0), then notifications arrive again. */
static void test_gap(pgsess_session *sender)
{
    pgsess_session *gs = open_ctest(NULL);
    char a[96], b[96], like[96];
    const char *p[1];
    pgsess_results *r;
    int gaps_a = 0, gaps_b = 0, other = 0;
    double t0;

    chan(a, sizeof a, "gap_a");
    chan(b, sizeof b, "gap_b");
    LISTEN(gs, a);
    LISTEN(gs, b);
    SEND(sender, a, "before");
    EXPECT(gs, 5000, a, "before", 0);

    snprintf(like, sizeof like, "LISTEN%%gap_%%%s%%", sfx);
    p[0] = like;
    r = QP(sender,
           "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
           "WHERE query LIKE $1 AND pid <> pg_backend_pid()",
           1, p);
    if (!CHECK_STREQ(pgsess_results_value(r, 0, 0), "1"))
        fprintf(stderr, "    listener backends terminated: %s\n",
                pgsess_results_value(r, 0, 0) ? pgsess_results_value(r, 0, 0) : "NULL");
    pgsess_results_free(r);

    t0 = now_ms();
    while ((gaps_a == 0 || gaps_b == 0) && now_ms() - t0 < 15000) {
        int32_t left = (int32_t)(15000 - (now_ms() - t0));
        pgsess_notification *n = NEXT(gs, left > 0 ? left : 0);
        const char *c, *pl;
        if (n == NULL)
            break;
        c = pgsess_notification_channel(n);
        pl = pgsess_notification_payload(n);
        if (pgsess_notification_is_gap(n) && pl != NULL && pl[0] == '\0' && pgsess_notification_pid(n) == 0 &&
            c != NULL && strcmp(c, a) == 0)
            gaps_a++;
        else if (pgsess_notification_is_gap(n) && pl != NULL && pl[0] == '\0' && pgsess_notification_pid(n) == 0 &&
                 c != NULL && strcmp(c, b) == 0)
            gaps_b++;
        else {
            other++;
            fprintf(stderr, "gap test: unexpected %s \"%s\" on %s pid %d\n",
                    pgsess_notification_is_gap(n) ? "gap" : "notification", pl ? pl : "NULL", c ? c : "NULL",
                    (int)pgsess_notification_pid(n));
        }
        pgsess_notification_free(n);
    }
    printf("gap markers after %.0f ms\n", now_ms() - t0);
    CHECK_INTEQ(gaps_a, 1);
    CHECK_INTEQ(gaps_b, 1);
    CHECK_INTEQ(other, 0);

    /* Listening again: later notifications arrive, and no more gap markers. */
    SEND(sender, a, "after a");
    SEND(sender, b, "after b");
    EXPECT(gs, 5000, a, "after a", 0);
    EXPECT(gs, 5000, b, "after b", 0);
    EXPECT_NONE(gs, 300);
    pgsess_close(gs);
}

struct waiter {
    pgsess_session *s;
    int32_t timeout_ms;
    char payload[64];
    int got;      /* 1: a notification, 0: NULL */
    int errored;
    double waited_ms;
};

static void *waiter_main(void *arg)
{
    struct waiter *w = arg;
    pgsess_error *err = NULL;
    double t0 = now_ms();
    pgsess_notification *n = pgsess_notification_next(w->s, w->timeout_ms, &err);
    w->waited_ms = now_ms() - t0;
    w->errored = err != NULL;
    w->got = n != NULL;
    if (n != NULL)
        snprintf(w->payload, sizeof w->payload, "%s", pgsess_notification_payload(n));
    pgsess_notification_free(n);
    pgsess_error_free(err);
    return NULL;
}

/* Several threads waiting at once: each notification goes to one of them. pgsess_notification_wake
 * returns every waiter at once with NULL and no error; a notification already queued still goes
 * to the next caller. */
static void test_waiters_and_wake(pgsess_session *sender)
{
    pgsess_session *ws = open_ctest(NULL);
    pthread_t th[3];
    struct waiter w[3];
    char ch[96];
    int i, got = 0, errored = 0, distinct;
    struct timespec settle = {0, 300 * 1000 * 1000};
    double t0;

    chan(ch, sizeof ch, "waiters");
    LISTEN(ws, ch);
    pgsess_notification_wake(NULL);
    memset(w, 0, sizeof w);
    for (i = 0; i < 3; i++) {
        w[i].s = ws;
        w[i].timeout_ms = 20000;
        CHECK(pthread_create(&th[i], NULL, waiter_main, &w[i]) == 0);
    }
    nanosleep(&settle, NULL);
    SEND(sender, ch, "w1");
    SEND(sender, ch, "w2");
    SEND(sender, ch, "w3");
    for (i = 0; i < 3; i++) {
        CHECK(pthread_join(th[i], NULL) == 0);
        got += w[i].got;
        errored += w[i].errored;
    }
    CHECK_INTEQ(got, 3);
    CHECK_INTEQ(errored, 0);
    distinct = strcmp(w[0].payload, w[1].payload) != 0 && strcmp(w[0].payload, w[2].payload) != 0 &&
               strcmp(w[1].payload, w[2].payload) != 0;
    CHECK(distinct);

    /* Wake: three waiting for ever return at once, with nothing. */
    memset(w, 0, sizeof w);
    for (i = 0; i < 3; i++) {
        w[i].s = ws;
        w[i].timeout_ms = -1;
        CHECK(pthread_create(&th[i], NULL, waiter_main, &w[i]) == 0);
    }
    nanosleep(&settle, NULL);
    t0 = now_ms();
    pgsess_notification_wake(ws);
    for (i = 0; i < 3; i++) {
        CHECK(pthread_join(th[i], NULL) == 0);
        CHECK_INTEQ(w[i].got, 0);
        CHECK_INTEQ(w[i].errored, 0);
        CHECK(w[i].waited_ms >= 250);
    }
    CHECK(now_ms() - t0 < 5000);

    /* A wake with nobody waiting is not kept for the next waiter; a queued notification is still
     * returned after a wake. */
    pgsess_notification_wake(ws);
    EXPECT_NONE(ws, 200);
    SEND(sender, ch, "queued");
    {
        int fd = pgsess_notification_fd(ws);
        struct pollfd pfd;
        pfd.fd = fd;
        pfd.events = POLLIN;
        pfd.revents = 0;
        CHECK_INTEQ(poll(&pfd, 1, 5000), 1);
    }
    pgsess_notification_wake(ws);
    EXPECT(ws, 0, ch, "queued", 0);
    pgsess_close(ws);
}

/* Queued notifications stay after UNLISTEN; two sessions on one channel each get their own copy;
 * a session closed with notifications still queued frees them (valgrind/ASan check). */
static void test_queue_and_sessions(pgsess_session *sender)
{
    pgsess_session *a = open_ctest(NULL), *b = open_ctest(NULL), *c = open_ctest(NULL);
    char ch[96];
    struct timespec settle = {1, 0};

    chan(ch, sizeof ch, "queue");
    LISTEN(a, ch);
    LISTEN(b, ch);
    LISTEN(c, ch);
    SEND(sender, ch, "first");
    SEND(sender, ch, "second");
    nanosleep(&settle, NULL);
    UNLISTEN(a, ch);
    EXPECT(a, 0, ch, "first", 0);
    EXPECT(a, 0, ch, "second", 0);
    EXPECT_NONE(a, 0);
    EXPECT(b, 5000, ch, "first", 0);
    EXPECT(b, 5000, ch, "second", 0);
    pgsess_close(c); /* two still queued */
    pgsess_close(b);
    pgsess_close(a);
}

/* A pinned session's plain LISTEN also wakes pgsess_notification_fd while the session is idle. */
static void test_pinned_fd(pgsess_session *sender)
{
    pgsess_session *base = open_ctest(NULL);
    pgsess_session *p;
    pgsess_error *err = NULL;
    struct pollfd pfd;
    char ch[96], sql[160];
    int fd;

    p = pgsess_pin(base, &err);
    pgsess_error_free(err);
    if (!CHECK(p != NULL)) {
        pgsess_close(base);
        return;
    }
    chan(ch, sizeof ch, "pinnedfd");
    snprintf(sql, sizeof sql, "LISTEN %s", ch);
    EXEC(p, sql);
    fd = pgsess_notification_fd(p);
    CHECK(fd >= 0);
    pfd.fd = fd;
    pfd.events = POLLIN;
    pfd.revents = 0;
    CHECK_INTEQ(poll(&pfd, 1, 0), 0);
    SEND(sender, ch, "to the pinned fd");
    CHECK_INTEQ(poll(&pfd, 1, 5000), 1);
    EXPECT(p, 0, ch, "to the pinned fd", 0);
    CHECK_INTEQ(poll(&pfd, 1, 0), 0);
    /* Statements still work with the watcher reading the connection while idle. */
    {
        int i, ok = 0;
        for (i = 0; i < 50; i++) {
            char want[16], *v;
            snprintf(sql, sizeof sql, "SELECT %d", i);
            snprintf(want, sizeof want, "%d", i);
            v = SCALAR(p, sql);
            ok += v != NULL && strcmp(v, want) == 0;
            free(v);
        }
        CHECK_INTEQ(ok, 50);
    }
    SEND(sender, ch, "again");
    EXPECT(p, 5000, ch, "again", 0);
    pgsess_close(p);
    pgsess_close(base);
}

/* A plain LISTEN on a pooled session's connection does not outlive the statement's use of it (the
 * pool resets it); on a transaction's session, a plain LISTEN delivers and is reset after the
 * commit, and pgsess_listen's listener is closed with the transaction. */
static void test_pooled_and_transaction(pgsess_session *sender)
{
    pgsess_session *one = open_pool(1);
    pgsess_session *ts;
    pgsess_tx *tx;
    pgsess_error *err = NULL;
    char ch[96], ch2[96], sql[160], like[128], *v;
    const char *p[1];
    pgsess_results *r;

    chan(ch, sizeof ch, "pooled");
    snprintf(sql, sizeof sql, "LISTEN %s", ch);
    EXEC(one, sql);
    v = SCALAR(one, "SELECT count(*) FROM pg_listening_channels()");
    CHECK_STREQ(v, "0");
    free(v);
    SEND(sender, ch, "to nobody");
    EXPECT_NONE(one, 200);

    chan(ch, sizeof ch, "txplain");
    tx = BEGIN(one);
    if (tx == NULL) {
        pgsess_close(one);
        return;
    }
    ts = pgsess_tx_session(tx);
    snprintf(sql, sizeof sql, "LISTEN %s", ch);
    EXEC(ts, sql); /* takes effect at commit: nothing yet */
    snprintf(sql, sizeof sql, "SELECT pg_notify('%s', 'own, at commit')", ch);
    EXEC(ts, sql);
    CHECK_INTEQ(pgsess_commit(tx, &err), PGSESS_OK);
    pgsess_error_free(err);
    err = NULL;
    v = SCALAR(one, "SELECT count(*) FROM pg_listening_channels()");
    CHECK_STREQ(v, "0");
    free(v);

    chan(ch2, sizeof ch2, "txlistener");
    tx = BEGIN(one);
    if (tx == NULL) {
        pgsess_close(one);
        return;
    }
    ts = pgsess_tx_session(tx);
    LISTEN(ts, ch2);
    SEND(sender, ch2, "to the transaction's session");
    EXPECT(ts, 5000, ch2, "to the transaction's session", 0);
    CHECK_INTEQ(pgsess_commit(tx, &err), PGSESS_OK);
    pgsess_error_free(err);
    err = NULL;
    /* The listener is closed with the transaction (by its thread: allow it 5 s). */
    snprintf(like, sizeof like, "LISTEN%%%s%%", ch2);
    p[0] = like;
    {
        int i, gone = 0;
        struct timespec pause = {0, 100 * 1000 * 1000};
        for (i = 0; i < 50 && !gone; i++) {
            r = QP(sender, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE $1 AND pid <> pg_backend_pid()", 1,
                   p);
            gone = pgsess_results_value(r, 0, 0) != NULL && strcmp(pgsess_results_value(r, 0, 0), "0") == 0;
            pgsess_results_free(r);
            if (!gone)
                nanosleep(&pause, NULL);
        }
        CHECK(gone);
    }
    pgsess_close(one);
}

int main(void)
{
    pgsess_session *s, *sender;
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(sfx, sizeof sfx, "%ld_%ld", (long)getpid(), (long)(ts.tv_nsec / 1000));
    s = open_ctest(NULL);
    sender = open_ctest(NULL);

    test_misuse(s);
    test_basic(s, sender);
    test_channel_names(s, sender);
    test_timeouts(s, sender);
    test_pinned_listen(sender);
    test_unlisten(s, sender);
    test_epoll(sender);
    test_threads(sender);
    test_gap(sender);
    test_waiters_and_wake(sender);
    test_queue_and_sessions(sender);
    test_pinned_fd(sender);
    test_pooled_and_transaction(sender);

    pgsess_close(sender);
    pgsess_close(s);
    return CHECK_DONE();
}
