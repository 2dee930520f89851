/*
 * password_callback.c - pgsess_options_set_password_callback (issue 16): the callback is asked
 * for each new connection with the host, port and user; -1 means the configured password; any
 * other negative value fails the connection attempt; the user data reaches it as given.
 * Needs env PGSQL_CTEST (a PostgreSQL URI with its password).
 */
#define _POSIX_C_SOURCE 200809L
#include <pgsess.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

struct seen {
    int calls;
    int answer;
    char user[64];
    uint16_t port;
    size_t size;
};

static int32_t ask(const char *host, uint16_t port, const char *user, char *password, size_t password_size,
                   void *user_data)
{
    struct seen *seen = user_data;
    seen->calls++;
    seen->port = port;
    seen->size = password_size;
    snprintf(seen->user, sizeof seen->user, "%s", user);
    (void) host;
    (void) password;
    return seen->answer;
}

int main(void)
{
    const char *uri = getenv("PGSQL_CTEST");
    if (uri == NULL) {
        fprintf(stderr, "password_callback: PGSQL_CTEST is not set\n");
        return 2;
    }
    struct seen seen = {0, -1, "", 0, 0};
    pgsess_error *err = NULL;
    pgsess_options *opts = pgsess_options_new();
    CHECK(pgsess_options_set_db_url(opts, uri) == PGSESS_OK);
    CHECK(pgsess_options_set_password_callback(opts, ask, &seen) == PGSESS_OK);
    pgsess_session *s = pgsess_open("ctest", opts, &err);
    CHECK(s != NULL);
    CHECK(seen.calls >= 1);
    CHECK(seen.user[0] != '\0');
    CHECK(seen.port > 0);
    CHECK(seen.size >= 4096);
    pgsess_close(s);

    /* A failing callback fails the connection: with other user data, another pool. */
    struct seen failing = {0, -2, "", 0, 0};
    CHECK(pgsess_options_set_password_callback(opts, ask, &failing) == PGSESS_OK);
    s = pgsess_open("ctest", opts, &err);
    CHECK(s == NULL);
    CHECK(failing.calls >= 1);
    CHECK(err != NULL && pgsess_error_code(err) == PGSESS_OPERATIONAL_ERROR);
    if (err != NULL)
        CHECK_CONTAINS(pgsess_error_message(err), "password callback");
    pgsess_error_free(err);
    pgsess_close(s);

    CHECK(pgsess_options_set_password_callback(NULL, ask, NULL) == PGSESS_INTERFACE_ERROR);
    CHECK(pgsess_options_set_password_callback(opts, NULL, NULL) == PGSESS_OK);
    pgsess_options_free(opts);
    return CHECK_DONE();
}
