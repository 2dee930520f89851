/*
 * pgsess demo: what `make demo` runs.
 *
 * Each numbered step prints what it shows:
 *   1. opening the session "demo" (URI from PGSQL_DEMO) on a pool of up to 4 connections;
 *   2. a table and three rows inserted with text parameters (a NULL parameter is SQL NULL);
 *   3. a transaction, pinned to one connection until it commits;
 *   4. the rows read back, each column with its type OID and that type's name;
 *   5. callproc, which quotes the function's name instead of splicing it into SQL;
 *   6. a notice the server raised, which comes with the statement's results;
 *   7. what a failing statement reports: code, SQLSTATE, message and detail;
 *   8. the free contract: results hold their connection until pgsess_results_free, shown on a
 *      second session with a pool of 1;
 *   9. the session's last notices.
 *
 * Build: cc demo.c $(pkg-config --cflags --libs pgsess)
 */
#include <pgsess.h>
#include <stdio.h>
#include <stdlib.h>

/* Print an error: its code, its DB-API category when that says more than the code (the category
   of PGSESS_INTEGRITY_ERROR is PGSESS_INTEGRITY_ERROR itself), the SQLSTATE, the server's message
   and detail. */
static void print_error(FILE *out, const pgsess_error *err) {
    pgsess_code code = pgsess_error_code(err), category = pgsess_error_category(err);
    fprintf(out, "   %s", pgsess_code_name(code));
    if (category != code) fprintf(out, " (category %s)", pgsess_code_name(category));
    if (pgsess_error_sqlstate(err)) fprintf(out, ", SQLSTATE %s", pgsess_error_sqlstate(err));
    fprintf(out, "\n   message: %s\n", pgsess_error_message(err));
    if (pgsess_error_detail(err)) fprintf(out, "   detail: %s\n", pgsess_error_detail(err));
}

static void die(const char *what, pgsess_error *err) {
    fprintf(stderr, "%s failed:\n", what);
    print_error(stderr, err);
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

/* The names of the built-in types this demo meets. Any other type's name is in pg_type:
   SELECT $1::regtype with the OID as the parameter. */
static const char *type_name(uint32_t oid) {
    switch (oid) {
    case 16: return "bool";
    case 20: return "int8";
    case 23: return "int4";
    case 25: return "text";
    case 701: return "float8";
    case 1184: return "timestamptz";
    case 1700: return "numeric";
    default: return "?";
    }
}

static void print_results(const pgsess_results *r) {
    size_t ncols = pgsess_results_ncols(r), nrows = pgsess_results_nrows(r);
    for (size_t c = 0; c < ncols; c++) {
        uint32_t oid = pgsess_results_column_type(r, c);
        printf("%s%s %s (oid %u)", c ? " | " : "   ", pgsess_results_column_name(r, c), type_name(oid), oid);
    }
    printf("\n");
    for (size_t row = 0; row < nrows; row++) {
        for (size_t c = 0; c < ncols; c++) {
            const char *v = pgsess_results_value(r, row, c);
            printf("%s%s", c ? " | " : "   ", v ? v : "NULL");
        }
        printf("\n");
    }
}

int main(void) {
    pgsess_error *err = NULL;
    printf("pgsess %s\n", pgsess_version());

    printf("\n1. Open the session \"demo\" (its URI comes from PGSQL_DEMO) on a pool of up to 4 connections:\n");
    pgsess_options *opts = pgsess_options_new();
    pgsess_options_set_pool_max_size(opts, 4);
    pgsess_session *s = pgsess_open("demo", opts, &err);
    pgsess_options_free(opts);
    if (!s) die("pgsess_open(\"demo\") (reads PGSQL_DEMO)", err);
    printf("   pool %s, backend pid %d, encoding %s\n", pgsess_pool_id(s), pgsess_backend_pid(s),
           pgsess_encoding(s));

    printf("\n2. Create a table and insert three rows; parameters are text, NULL is SQL NULL, and the server\n"
           "   infers each type:\n");
    run(s, "DROP TABLE IF EXISTS pgsess_demo", 0, NULL);
    run(s, "CREATE TABLE pgsess_demo (id serial PRIMARY KEY, name text NOT NULL, score numeric, "
           "seen timestamptz DEFAULT now())", 0, NULL);
    const char *rows[][2] = {{"ada", "97.5"}, {"brian", NULL}, {"straße", "88"}};
    for (size_t i = 0; i < 3; i++) {
        pgsess_results *r = pgsess_query(s, "INSERT INTO pgsess_demo (name, score) VALUES ($1, $2)",
                                         2, rows[i], &err);
        if (!r) die("INSERT", err);
        printf("   $1 = '%s', $2 = %s%s%s: command tag %s\n", rows[i][0], rows[i][1] ? "'" : "",
               rows[i][1] ? rows[i][1] : "NULL", rows[i][1] ? "'" : "", pgsess_results_status(r));
        pgsess_results_free(r);
    }

    printf("\n3. A transaction holds one connection until it commits or rolls back:\n");
    pgsess_tx *tx = pgsess_begin(s, &err);
    if (!tx) die("BEGIN", err);
    const char *bump[] = {"10"};
    pgsess_results *r = pgsess_tx_query(tx, "UPDATE pgsess_demo SET score = score + $1 WHERE score IS NOT NULL",
                                        1, bump, &err);
    if (!r) die("UPDATE", err);
    printf("   UPDATE ... SET score = score + 10: %llu rows updated, on backend %d\n",
           (unsigned long long)pgsess_results_rows_affected(r), pgsess_results_backend_pid(r));
    pgsess_results_free(r);
    if (pgsess_commit(tx, &err) != PGSESS_OK) die("COMMIT", err);
    printf("   committed\n");

    printf("\n4. Read the rows back: each column's name, its type's name and OID, then the values as the\n"
           "   server's text (NULL is shown as NULL):\n");
    r = pgsess_query(s, "SELECT id, name, score, score IS NULL AS missing FROM pgsess_demo ORDER BY id", 0, NULL,
                     &err);
    if (!r) die("SELECT", err);
    print_results(r);
    printf("   %zu rows; column \"score\" is at index %lld\n", pgsess_results_nrows(r),
           (long long)pgsess_results_column_index(r, "score"));
    pgsess_results_free(r);

    printf("\n5. callproc runs SELECT * FROM \"public\".\"pgsess_demo_above\"($1): the name is quoted, never\n"
           "   spliced into SQL. The rows scoring above 100:\n");
    run(s, "CREATE OR REPLACE FUNCTION pgsess_demo_above(min_score numeric) "
           "RETURNS TABLE (name text, score numeric) LANGUAGE sql AS "
           "$$ SELECT name, score FROM pgsess_demo WHERE score > min_score ORDER BY score $$", 0, NULL);
    const char *args[] = {"100"};
    r = pgsess_callproc(s, "public.pgsess_demo_above", 1, args, &err);
    if (!r) die("callproc public.pgsess_demo_above", err);
    print_results(r);
    pgsess_results_free(r);
    run(s, "DROP FUNCTION pgsess_demo_above(numeric)", 0, NULL);

    printf("\n6. A notice the server raises comes with the statement's results:\n");
    r = pgsess_query(s, "DO $$BEGIN RAISE NOTICE 'hello from the server'; END$$", 0, NULL, &err);
    if (!r) die("DO", err);
    printf("   %s", pgsess_results_notice(r, 0));
    pgsess_results_free(r);

    printf("\n7. A failing statement (id 1 exists already) reports a code, the SQLSTATE and the server's\n"
           "   message and detail:\n");
    const char *dup[] = {"1", "dup"};
    r = pgsess_query(s, "INSERT INTO pgsess_demo (id, name) VALUES ($1, $2)", 2, dup, &err);
    if (r || !err) {
        fprintf(stderr, "expected a unique violation\n");
        return 1;
    }
    print_error(stdout, err);
    pgsess_error_free(err);
    err = NULL;

    printf("\n8. Results hold their connection until pgsess_results_free. A second session on the same\n"
           "   database, with a pool of 1 connection and a 300 ms checkout timeout:\n");
    pgsess_options *small = pgsess_options_new();
    pgsess_options_set_pool_max_size(small, 1);
    pgsess_options_set_checkout_timeout_ms(small, 300);
    pgsess_session *one = pgsess_open("demo", small, &err);
    pgsess_options_free(small);
    if (!one) die("pgsess_open (pool of 1)", err);
    printf("   pool %s: other options, so a pool of its own\n", pgsess_pool_id(one));
    pgsess_results *held = pgsess_query(one, "SELECT 1", 0, NULL, &err);
    if (!held) die("SELECT 1", err);
    printf("   SELECT 1 -> %s; its results are not freed yet, so they hold the only connection\n",
           pgsess_results_value(held, 0, 0));
    r = pgsess_query(one, "SELECT 2", 0, NULL, &err);
    if (r || !err) {
        fprintf(stderr, "expected pool exhaustion\n");
        return 1;
    }
    printf("   SELECT 2 waits 300 ms, then fails with an error that explains the pool's state:\n");
    print_error(stdout, err);
    pgsess_error_free(err);
    err = NULL;
    pgsess_results_free(held);
    r = pgsess_query(one, "SELECT 2", 0, NULL, &err);
    if (!r) die("SELECT 2 after free", err);
    printf("   after pgsess_results_free of SELECT 1's results: SELECT 2 -> %s\n", pgsess_results_value(r, 0, 0));
    pgsess_results_free(r);
    pgsess_close(one);

    run(s, "DROP TABLE pgsess_demo", 0, NULL);
    printf("\n9. The session keeps its last 50 notices (pgsess_notices):\n");
    char *notices = pgsess_notices(s); /* each in libpq's form ("NOTICE:  ...\n"), oldest first */
    for (const char *c = notices; *c; c++) printf("%s%c", c == notices || c[-1] == '\n' ? "   " : "", *c);
    pgsess_string_free(notices);
    pgsess_close(s);
    printf("\ndemo finished\n");
    return 0;
}
