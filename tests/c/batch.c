/*
 * Batches through the C ABI: many statements in one round trip, each with its own results or
 * error, owned by the batch results; NULL arguments refused.
 */
#define _POSIX_C_SOURCE 200809L
#include <pgsess.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "helpers.h"

int main(void) {
    pgsess_session *s = open_ctest(NULL);
    char table[64];
    unique_name(table, sizeof table, "batch");
    char sql[256];
    snprintf(sql, sizeof sql, "CREATE TABLE %s (id int PRIMARY KEY)", table);
    EXEC(s, sql);

    pgsess_batch *b = pgsess_batch_new();
    snprintf(sql, sizeof sql, "INSERT INTO %s VALUES ($1)", table);
    char ids[200][16];
    for (int i = 0; i < 200; i++) {
        snprintf(ids[i], sizeof ids[i], "%d", i == 100 ? 0 : i); /* 100 repeats id 0 */
        const char *p[] = {ids[i]};
        CHECK_INTEQ(pgsess_batch_add(b, sql, 1, p), PGSESS_OK);
    }
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
    CHECK_INTEQ(pgsess_batch_add(b, sql, 0, NULL), PGSESS_OK);
    CHECK_INTEQ(pgsess_batch_len(b), 201);

    pgsess_error *err = NULL;
    pgsess_batch_results *br = pgsess_batch_run(s, b, &err);
    CHECK(br != NULL && err == NULL);
    CHECK_INTEQ(pgsess_batch_results_count(br), 201);
    int ok = 0;
    for (size_t i = 0; i < 200; i++) {
        const pgsess_results *r = pgsess_batch_results_get(br, i);
        const pgsess_error *e = pgsess_batch_results_error(br, i);
        if (i == 100) {
            CHECK(r == NULL && e != NULL);
            CHECK_STREQ(pgsess_error_sqlstate(e), "23505");
            CHECK_INTEQ(pgsess_error_code(e), PGSESS_INTEGRITY_ERROR);
        } else if (r && !e && pgsess_results_rows_affected(r) == 1) {
            ok++;
        }
    }
    CHECK_INTEQ(ok, 199);
    CHECK_STREQ(pgsess_results_value(pgsess_batch_results_get(br, 200), 0, 0), "199");
    CHECK(pgsess_batch_results_get(br, 201) == NULL && pgsess_batch_results_error(br, 201) == NULL);
    pgsess_batch_results_free(br);

    /* Reusable; NULLs refused; frees accept NULL. */
    br = pgsess_batch_run(s, b, &err);
    CHECK(br != NULL);
    CHECK(pgsess_batch_results_error(br, 0) != NULL); /* ids exist now */
    pgsess_batch_results_free(br);
    CHECK(pgsess_batch_run(NULL, b, &err) == NULL && pgsess_error_code(err) == PGSESS_INTERFACE_ERROR);
    pgsess_error_free(err);
    CHECK(pgsess_batch_run(s, NULL, &err) == NULL && pgsess_error_code(err) == PGSESS_INTERFACE_ERROR);
    pgsess_error_free(err);
    CHECK_INTEQ(pgsess_batch_add(NULL, "SELECT 1", 0, NULL), PGSESS_INTERFACE_ERROR);
    CHECK_INTEQ(pgsess_batch_add(b, NULL, 0, NULL), PGSESS_INTERFACE_ERROR);
    CHECK_INTEQ(pgsess_batch_add(b, "SELECT $1", 1, NULL), PGSESS_INTERFACE_ERROR);
    CHECK_INTEQ(pgsess_batch_results_count(NULL), 0);
    pgsess_batch_results_free(NULL);
    pgsess_batch_free(NULL);
    pgsess_batch_free(b);

    snprintf(sql, sizeof sql, "DROP TABLE %s", table);
    EXEC(s, sql);
    pgsess_close(s);
    return CHECK_DONE();
}
