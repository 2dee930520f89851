/*
 * pgsess demo: what `make demo` runs.
 *
 * Opens the session "demo" (URI from PGSQL_DEMO), creates a table, inserts rows with parameters,
 * runs a transaction, reads values back with column names and types, calls a function, shows the
 * notices a statement raised and what a failing statement reports, and shows that a results
 * handle holds its pooled connection until it is freed.
 *
 * Build: cc demo.c $(pkg-config --cflags --libs pgsess)
 */
#include <pgsess.h>
#include <stdio.h>
#include <stdlib.h>

static void die(const char *what, pgsess_error *err) {
    fprintf(stderr, "%s failed: %s [%s, SQLSTATE %s]\n", what, pgsess_error_message(err),
            pgsess_code_name(pgsess_error_code(err)),
            pgsess_error_sqlstate(err) ? pgsess_error_sqlstate(err) : "none");
    pgsess_error_free(err);
    exit(1);
}

/* Run a statement and free its results at once (returning the connection to the pool). */
static void run(pgsess_session *s, const char *sql, size_t n, const char *const *params) {
    pgsess_error *err = NULL;
    pgsess_results *r = pgsess_query(s, sql, n, params, &err);
    if (!r) die(sql, err);
    pgsess_results_free(r);
}

static void print_results(const pgsess_results *r) {
    size_t ncols = pgsess_results_ncols(r), nrows = pgsess_results_nrows(r);
    for (size_t c = 0; c < ncols; c++)
        printf("%s%s(oid %u)", c ? " | " : "  ", pgsess_results_column_name(r, c),
               pgsess_results_column_type(r, c));
    printf("\n");
    for (size_t row = 0; row < nrows; row++) {
        for (size_t c = 0; c < ncols; c++) {
            const char *v = pgsess_results_value(r, row, c);
            printf("%s%s", c ? " | " : "  ", v ? v : "NULL");
        }
        printf("\n");
    }
}

int main(void) {
    pgsess_error *err = NULL;
    printf("pgsess %s\n", pgsess_version());

    pgsess_options *opts = pgsess_options_new();
    pgsess_options_set_pool_max_size(opts, 4);
    pgsess_session *s = pgsess_open("demo", opts, &err);
    pgsess_options_free(opts);
    if (!s) die("pgsess_open(\"demo\") (reads PGSQL_DEMO)", err);
    printf("opened session \"demo\": pool %s, backend pid %d, encoding %s\n", pgsess_pool_id(s),
           pgsess_backend_pid(s), pgsess_encoding(s));

    run(s, "DROP TABLE IF EXISTS pgsess_demo", 0, NULL);
    run(s, "CREATE TABLE pgsess_demo (id serial PRIMARY KEY, name text NOT NULL, score numeric, "
           "seen timestamptz DEFAULT now())", 0, NULL);

    /* Parameters are text; NULL is SQL NULL; the server infers each type. */
    const char *rows[][2] = {{"ada", "97.5"}, {"brian", NULL}, {"straße", "88"}};
    for (size_t i = 0; i < 3; i++) {
        pgsess_results *r = pgsess_query(s, "INSERT INTO pgsess_demo (name, score) VALUES ($1, $2)",
                                         2, rows[i], &err);
        if (!r) die("INSERT", err);
        printf("inserted %s: %llu row(s) affected\n", rows[i][0],
               (unsigned long long)pgsess_results_rows_affected(r));
        pgsess_results_free(r);
    }

    /* A transaction pins one connection until commit or rollback. */
    pgsess_tx *tx = pgsess_begin(s, &err);
    if (!tx) die("BEGIN", err);
    const char *bump[] = {"10"};
    pgsess_results *r = pgsess_tx_query(tx, "UPDATE pgsess_demo SET score = score + $1 WHERE score IS NOT NULL", 1, bump, &err);
    if (!r) die("UPDATE", err);
    printf("transaction updated %llu row(s) on backend %d\n",
           (unsigned long long)pgsess_results_rows_affected(r), pgsess_results_backend_pid(r));
    pgsess_results_free(r);
    if (pgsess_commit(tx, &err) != PGSESS_OK) die("COMMIT", err);

    r = pgsess_query(s, "SELECT id, name, score, score IS NULL AS missing FROM pgsess_demo ORDER BY id", 0, NULL, &err);
    if (!r) die("SELECT", err);
    printf("%zu rows:\n", pgsess_results_nrows(r));
    print_results(r);
    printf("column \"score\" is at index %lld\n", (long long)pgsess_results_column_index(r, "score"));
    pgsess_results_free(r);

    /* callproc runs SELECT * FROM name($1, ...), quoting the name: no SQL is spliced. */
    run(s, "CREATE OR REPLACE FUNCTION pgsess_demo_above(min_score numeric) "
           "RETURNS TABLE (name text, score numeric) LANGUAGE sql AS "
           "$$ SELECT name, score FROM pgsess_demo WHERE score > min_score ORDER BY score $$", 0, NULL);
    const char *args[] = {"100"};
    r = pgsess_callproc(s, "public.pgsess_demo_above", 1, args, &err);
    if (!r) die("callproc public.pgsess_demo_above", err);
    printf("callproc public.pgsess_demo_above(100):\n");
    print_results(r);
    pgsess_results_free(r);
    run(s, "DROP FUNCTION pgsess_demo_above(numeric)", 0, NULL);

    /* Notices raised by a statement travel with its results. */
    r = pgsess_query(s, "DO $$BEGIN RAISE NOTICE 'hello from the server'; END$$", 0, NULL, &err);
    if (!r) die("DO", err);
    printf("notice: %s", pgsess_results_notice(r, 0));
    pgsess_results_free(r);

    /* Errors carry a code, a DB-API category, the SQLSTATE and the server's detail. */
    const char *dup[] = {"1", "dup"};
    r = pgsess_query(s, "INSERT INTO pgsess_demo (id, name) VALUES ($1, $2)", 2, dup, &err);
    if (r || !err) { fprintf(stderr, "expected a unique violation\n"); return 1; }
    printf("duplicate key: %s, category %s, SQLSTATE %s\n  message: %s\n  detail: %s\n",
           pgsess_code_name(pgsess_error_code(err)), pgsess_code_name(pgsess_error_category(err)),
           pgsess_error_sqlstate(err), pgsess_error_message(err), pgsess_error_detail(err));
    pgsess_error_free(err);
    err = NULL;

    /* The free contract: results hold their connection. With a pool of 1, a second statement
       waits for the first results to be freed, then fails with an explained error. */
    pgsess_options *small = pgsess_options_new();
    pgsess_options_set_pool_max_size(small, 1);
    pgsess_options_set_checkout_timeout_ms(small, 300);
    pgsess_session *one = pgsess_open("demo", small, &err);
    pgsess_options_free(small);
    if (!one) die("pgsess_open (pool of 1)", err);
    pgsess_results *held = pgsess_query(one, "SELECT 1", 0, NULL, &err);
    if (!held) die("SELECT 1", err);
    r = pgsess_query(one, "SELECT 2", 0, NULL, &err);
    if (r || !err) { fprintf(stderr, "expected pool exhaustion\n"); return 1; }
    printf("while a result is held: %s\n  %s\n", pgsess_code_name(pgsess_error_code(err)), pgsess_error_message(err));
    pgsess_error_free(err);
    err = NULL;
    pgsess_results_free(held);
    r = pgsess_query(one, "SELECT 2", 0, NULL, &err);
    if (!r) die("SELECT 2 after free", err);
    printf("after pgsess_results_free: SELECT 2 -> %s\n", pgsess_results_value(r, 0, 0));
    pgsess_results_free(r);
    pgsess_close(one);

    run(s, "DROP TABLE pgsess_demo", 0, NULL);
    char *notices = pgsess_notices(s);
    printf("session notices:\n%s", notices);
    pgsess_string_free(notices);
    pgsess_close(s);
    printf("demo finished\n");
    return 0;
}
