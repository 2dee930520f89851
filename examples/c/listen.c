/*
 * libpq's testlibpq2 ("Test of the asynchronous notification interface"), ported to pgsess.
 *
 *   listen [count]         listen on TBL2 until `count` (default 4) notifications arrived
 *   listen --send [count]  send them (or from psql: NOTIFY TBL2, 'hello')
 *
 * URI from PGSQL_DEMO.
 *
 * The port is line for line: PQconnectdb becomes a pinned session (one connection for the
 * session's life, as a libpq connection), LISTEN runs as a plain statement on it, PQsocket +
 * select() become pgsess_notification_fd + select(), and PQconsumeInput + PQnotifies become
 * pgsess_notification_next(session, 0, ...). Build: cc listen.c $(pkg-config --cflags --libs pgsess)
 */
#include <pgsess.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>

static void exit_nicely(pgsess_session *session, pgsess_error *err) {
    if (err) {
        fprintf(stderr, "%s\n", pgsess_error_message(err));
        pgsess_error_free(err);
    }
    pgsess_close(session);
    exit(1);
}

/* The other side: `count` notifications through an ordinary pooled session. */
static int send_notifications(int count) {
    pgsess_error *err = NULL;
    pgsess_session *session = pgsess_open("demo", NULL, &err);
    if (!session) exit_nicely(NULL, err);
    for (int i = 1; i <= count; i++) {
        char payload[32];
        snprintf(payload, sizeof payload, "hello %d", i);
        const char *params[] = {payload};
        pgsess_results *res = pgsess_query(session, "SELECT pg_notify('tbl2', $1)", 1, params, &err);
        if (!res) exit_nicely(session, err);
        pgsess_results_free(res);
    }
    pgsess_close(session);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--send") == 0) return send_notifications(argc > 2 ? atoi(argv[2]) : 4);
    int wanted = argc > 1 ? atoi(argv[1]) : 4;
    pgsess_error *err = NULL;

    /* PQconnectdb: a session holding one connection. */
    pgsess_options *opts = pgsess_options_new();
    pgsess_options_set_pinned(opts, true);
    pgsess_session *session = pgsess_open("demo", opts, &err);
    pgsess_options_free(opts);
    if (!session) exit_nicely(NULL, err);

    /* Issue LISTEN command to enable notifications from the rule's NOTIFY. */
    pgsess_results *res = pgsess_query(session, "LISTEN TBL2", 0, NULL, &err);
    if (!res) exit_nicely(session, err);
    pgsess_results_free(res);
    printf("listening on TBL2\n");
    fflush(stdout);

    /* Quit after `wanted` notifies are received. */
    int nnotifies = 0;
    while (nnotifies < wanted) {
        /* Sleep until something happens on the connection; select(2) waits for input. */
        int sock = pgsess_notification_fd(session);
        if (sock < 0) break;
        fd_set input_mask;
        FD_ZERO(&input_mask);
        FD_SET(sock, &input_mask);
        if (select(sock + 1, &input_mask, NULL, NULL, NULL) < 0) {
            perror("select() failed");
            exit_nicely(session, NULL);
        }

        /* Now check for input. */
        pgsess_notification *notify;
        while ((notify = pgsess_notification_next(session, 0, &err)) != NULL) {
            fprintf(stderr, "ASYNC NOTIFY of '%s' received from backend PID %d\n",
                    pgsess_notification_channel(notify), (int)pgsess_notification_pid(notify));
            printf("notification %d: \"%s\" %s\n", nnotifies + 1, pgsess_notification_channel(notify),
                   pgsess_notification_payload(notify));
            pgsess_notification_free(notify);
            nnotifies++;
        }
        if (err) exit_nicely(session, err);
    }

    fprintf(stderr, "Done.\n");
    pgsess_close(session);
    return 0;
}
