/*
 * pool_ops.c - the pool as operators run it, through the installed library: the lifetime,
 * min_idle and health-check options, pgsess_pool_stats_v2 (also as an older caller with a
 * shorter struct), pgsess_pool_stats_text, pgsess_pool_drain and pgsess_pool_resize.
 * Needs env PGSQL_CTEST (a PostgreSQL URI); opens it as pgsess_open("ctest").
 */
#define _POSIX_C_SOURCE 200809L
#include <pgsess.h>
#include <stddef.h>
#include <stdint.h>

#include "check.h"
#include "helpers.h"

/* What a caller compiled against the first version of the struct (up to min_idle) has. */
#define OLD_SIZE (offsetof(struct pgsess_stats_v2, min_idle) + sizeof(uint32_t))

int main(void)
{
    pgsess_options *opts = pgsess_options_new();
    pgsess_session *s;
    pgsess_stats_v2 st;
    pgsess_error *err = NULL;
    pgsess_results *held;
    char *text;
    char label[64];
    unsigned char *bytes;
    size_t i;
    int untouched;

    /* NULL options are refused like every other setter's. */
    CHECK_INTEQ(pgsess_options_set_pool_max_lifetime(NULL, 10), PGSESS_INTERFACE_ERROR);
    CHECK_INTEQ(pgsess_options_set_pool_min_idle(NULL, 1), PGSESS_INTERFACE_ERROR);
    CHECK_INTEQ(pgsess_options_set_pool_health_check_ms(NULL, 1), PGSESS_INTERFACE_ERROR);
    CHECK_INTEQ(pgsess_options_set_pool_min_idle(opts, 10001), PGSESS_CONFIG_ERROR);

    CHECK_INTEQ(pgsess_options_set_pool_max_size(opts, 4), PGSESS_OK);
    CHECK_INTEQ(pgsess_options_set_checkout_timeout_ms(opts, 1500), PGSESS_OK);
    CHECK_INTEQ(pgsess_options_set_pool_max_lifetime(opts, 600), PGSESS_OK);
    CHECK_INTEQ(pgsess_options_set_pool_min_idle(opts, 2), PGSESS_OK);
    CHECK_INTEQ(pgsess_options_set_pool_health_check_ms(opts, 5000), PGSESS_OK);
    s = open_ctest(opts);
    pgsess_options_free(opts);

    /* A warm pool: min_idle connections are open once pgsess_open returns. */
    memset(&st, 0, sizeof st);
    CHECK_INTEQ(pgsess_pool_stats_v2(s, &st, sizeof st), PGSESS_OK);
    CHECK_INTEQ((long long)st.size, (long long)sizeof st);
    CHECK_INTEQ(st.max_size, 4);
    CHECK_INTEQ(st.min_idle, 2);
    CHECK_INTEQ(st.open, 2);
    CHECK_INTEQ(st.idle, 2);
    CHECK(st.wait_count >= 1);

    /* An older caller's shorter struct gets what fits and nothing past it. */
    memset(&st, 0xAB, sizeof st);
    CHECK_INTEQ(pgsess_pool_stats_v2(s, &st, OLD_SIZE), PGSESS_OK);
    CHECK_INTEQ((long long)st.size, (long long)OLD_SIZE);
    CHECK_INTEQ(st.max_size, 4);
    CHECK_INTEQ(st.min_idle, 2);
    bytes = (unsigned char *)&st;
    untouched = 1;
    for (i = OLD_SIZE; i < sizeof st; i++)
        untouched &= bytes[i] == 0xAB;
    CHECK(untouched);
    CHECK_INTEQ(pgsess_pool_stats_v2(s, &st, 4), PGSESS_INTERFACE_ERROR);
    CHECK_INTEQ(pgsess_pool_stats_v2(s, NULL, sizeof st), PGSESS_INTERFACE_ERROR);
    CHECK_INTEQ(pgsess_pool_stats_v2(NULL, &st, sizeof st), PGSESS_INTERFACE_ERROR);

    /* The Prometheus text is labelled with the pool id. */
    EXEC(s, "SELECT 1");
    text = pgsess_pool_stats_text(s);
    CHECK(text != NULL);
    snprintf(label, sizeof label, "{pool=\"%s\"}", pgsess_pool_id(s));
    CHECK(text != NULL && strstr(text, label) != NULL);
    CHECK(text != NULL && strstr(text, "# TYPE pgsess_pool_checkout_wait_seconds histogram") != NULL);
    CHECK(text != NULL && strstr(text, "le=\"+Inf\"") != NULL);
    pgsess_string_free(text);
    CHECK(pgsess_pool_stats_text(NULL) == NULL);

    /* A drain waits for a connection in use; at its timeout it says so. */
    held = Q(s, "SELECT 1");
    CHECK_INTEQ(pgsess_pool_drain(s, 100, &err), PGSESS_POOL_EXHAUSTED);
    CHECK(err != NULL && contains_ci(pgsess_error_message(err), "still in use"));
    pgsess_error_free(err);
    err = NULL;
    pgsess_results_free(held);
    CHECK_INTEQ(pgsess_pool_drain(s, 1000, &err), PGSESS_OK);
    CHECK(err == NULL);
    CHECK_INTEQ(pgsess_pool_stats_v2(s, &st, sizeof st), PGSESS_OK);
    CHECK(st.closed_drained >= 2);
    /* And the pool is usable again. */
    EXEC(s, "SELECT 2");
    CHECK_INTEQ(pgsess_pool_drain(NULL, 10, &err), PGSESS_INTERFACE_ERROR);
    pgsess_error_free(err);
    err = NULL;

    /* Resize. */
    CHECK_INTEQ(pgsess_pool_resize(s, 0, &err), PGSESS_CONFIG_ERROR);
    pgsess_error_free(err);
    err = NULL;
    CHECK_INTEQ(pgsess_pool_resize(s, 3, &err), PGSESS_OK);
    CHECK_INTEQ(pgsess_pool_stats_v2(s, &st, sizeof st), PGSESS_OK);
    CHECK_INTEQ(st.max_size, 3);
    EXEC(s, "SELECT 3");

    pgsess_close(s);
    return CHECK_DONE();
}
