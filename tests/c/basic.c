/*
 * basic.c - the happy paths of the pgsess C API.
 * Needs env PGSQL_CTEST (a PostgreSQL URI); opens it as pgsess_open("ctest").
 */
#define _POSIX_C_SOURCE 200809L
#include <pgsess.h>
#include <stdbool.h>
#include <stdint.h>

#include "check.h"
#include "helpers.h"

#define OID_BOOL 16
#define OID_INT4 23
#define OID_TEXT 25

static void test_version_and_code_names(void)
{
    const pgsess_code codes[] = {
        PGSESS_OK, PGSESS_INTERFACE_ERROR, PGSESS_CONFIG_ERROR, PGSESS_OPERATIONAL_ERROR,
        PGSESS_POOL_EXHAUSTED, PGSESS_QUERY_CANCELED, PGSESS_TRANSACTION_ROLLBACK,
        PGSESS_PROGRAMMING_ERROR, PGSESS_INTEGRITY_ERROR, PGSESS_DATA_ERROR, PGSESS_INTERNAL_ERROR,
        PGSESS_NOT_SUPPORTED_ERROR, PGSESS_DATABASE_ERROR,
    };
    const size_t n = sizeof codes / sizeof codes[0];
    size_t i, j;
    const char *v = pgsess_version();

    CHECK(v != NULL && v[0] != '\0');
    if (v != NULL)
        CHECK(isdigit((unsigned char)v[0]) && strchr(v, '.') != NULL);
    CHECK_INTEQ(PGSESS_OK, 0);
    CHECK_INTEQ(PGSESS_DATABASE_ERROR, 12);
    for (i = 0; i < n; i++) {
        const char *a = pgsess_code_name(codes[i]);
        CHECK(a != NULL && a[0] != '\0');
        for (j = 0; j < i; j++) {
            const char *b = pgsess_code_name(codes[j]);
            CHECK(a == NULL || b == NULL || strcmp(a, b) != 0);
        }
    }
}

static void test_params_and_columns(pgsess_session *s)
{
    pgsess_results *r;
    const char *p41[] = {"41"};
    const char *pnull[] = {NULL};
    const char *pstr[] = {"h\xc3\xa9llo"}; /* "héllo": 6 bytes in UTF-8 */

    r = QP(s, "SELECT $1::int + 1", 1, p41);
    CHECK_INTEQ(pgsess_results_nrows(r), 1);
    CHECK_INTEQ(pgsess_results_ncols(r), 1);
    CHECK_STREQ(pgsess_results_value(r, 0, 0), "42");
    CHECK_INTEQ(pgsess_results_value_length(r, 0, 0), 2);
    CHECK(!pgsess_results_is_null(r, 0, 0));
    CHECK_INTEQ(pgsess_results_column_type(r, 0), OID_INT4);
    /* out of range */
    CHECK(pgsess_results_value(r, 1, 0) == NULL);
    CHECK(pgsess_results_value(r, 0, 1) == NULL);
    CHECK_INTEQ(pgsess_results_value_length(r, 1, 0), 0);
    CHECK_INTEQ(pgsess_results_value_length(r, 0, 7), 0);
    CHECK(pgsess_results_column_name(r, 1) == NULL);
    CHECK_INTEQ(pgsess_results_column_type(r, 1), 0);
    CHECK(pgsess_results_notice(r, 0) == NULL);
    CHECK_INTEQ(pgsess_results_notice_count(r), 0);
    pgsess_results_free(r);

    /* a NULL parameter is SQL NULL */
    r = QP(s, "SELECT $1::text AS t, $1::text IS NULL AS isnull", 1, pnull);
    CHECK_INTEQ(pgsess_results_nrows(r), 1);
    CHECK(pgsess_results_is_null(r, 0, 0));
    CHECK(pgsess_results_value(r, 0, 0) == NULL);
    CHECK_INTEQ(pgsess_results_value_length(r, 0, 0), 0);
    CHECK_STREQ(pgsess_results_value(r, 0, 1), "t");
    CHECK(!pgsess_results_is_null(r, 0, 1));
    CHECK_INTEQ(pgsess_results_column_type(r, 0), OID_TEXT);
    CHECK_INTEQ(pgsess_results_column_type(r, 1), OID_BOOL);
    pgsess_results_free(r);

    /* column names, types, index, byte lengths */
    r = QP(s, "SELECT 7::int4 AS a, $1::text AS b, true AS c, NULL::int4 AS \"Mixed Case\"", 1, pstr);
    CHECK_INTEQ(pgsess_results_ncols(r), 4);
    CHECK_STREQ(pgsess_results_column_name(r, 0), "a");
    CHECK_STREQ(pgsess_results_column_name(r, 1), "b");
    CHECK_STREQ(pgsess_results_column_name(r, 2), "c");
    CHECK_STREQ(pgsess_results_column_name(r, 3), "Mixed Case");
    CHECK_INTEQ(pgsess_results_column_type(r, 0), OID_INT4);
    CHECK_INTEQ(pgsess_results_column_type(r, 1), OID_TEXT);
    CHECK_INTEQ(pgsess_results_column_type(r, 2), OID_BOOL);
    CHECK_INTEQ(pgsess_results_column_type(r, 3), OID_INT4);
    CHECK_INTEQ(pgsess_results_column_index(r, "a"), 0);
    CHECK_INTEQ(pgsess_results_column_index(r, "b"), 1);
    CHECK_INTEQ(pgsess_results_column_index(r, "c"), 2);
    CHECK_INTEQ(pgsess_results_column_index(r, "Mixed Case"), 3);
    CHECK_INTEQ(pgsess_results_column_index(r, "nope"), -1);
    CHECK_INTEQ(pgsess_results_column_index(r, ""), -1);
    CHECK_STREQ(pgsess_results_value(r, 0, 0), "7");
    CHECK_STREQ(pgsess_results_value(r, 0, 1), "h\xc3\xa9llo");
    CHECK_INTEQ(pgsess_results_value_length(r, 0, 1), 6);
    CHECK_STREQ(pgsess_results_value(r, 0, 2), "t");
    CHECK(pgsess_results_is_null(r, 0, 3));
    pgsess_results_free(r);

    /* zero rows still describe their columns */
    r = Q(s, "SELECT 1 AS one WHERE false");
    CHECK_INTEQ(pgsess_results_nrows(r), 0);
    CHECK_INTEQ(pgsess_results_ncols(r), 1);
    CHECK_STREQ(pgsess_results_column_name(r, 0), "one");
    CHECK(pgsess_results_value(r, 0, 0) == NULL);
    pgsess_results_free(r);

    /* many rows */
    r = Q(s, "SELECT g, g::text || 'x' FROM generate_series(1, 1000) AS g");
    CHECK_INTEQ(pgsess_results_nrows(r), 1000);
    CHECK_STREQ(pgsess_results_value(r, 999, 0), "1000");
    CHECK_STREQ(pgsess_results_value(r, 499, 1), "500x");
    pgsess_results_free(r);
}

static void test_rows_affected_and_multistatement(pgsess_session *s)
{
    char table[96], sql[512];
    pgsess_results *r;
    const char *pv[] = {"two"};

    unique_name(table, sizeof table, "basic");
    snprintf(sql, sizeof sql, "CREATE TABLE %s (id int PRIMARY KEY, v text)", table);
    EXEC(s, sql);

    snprintf(sql, sizeof sql, "INSERT INTO %s VALUES (1, 'a'), (2, 'b'), (3, 'c')", table);
    r = Q(s, sql);
    CHECK_INTEQ(pgsess_results_rows_affected(r), 3);
    CHECK_INTEQ(pgsess_results_nrows(r), 0);
    CHECK_INTEQ(pgsess_results_ncols(r), 0);
    pgsess_results_free(r);

    snprintf(sql, sizeof sql, "UPDATE %s SET v = $1 WHERE id >= 2", table);
    r = QP(s, sql, 1, pv);
    CHECK_INTEQ(pgsess_results_rows_affected(r), 2);
    pgsess_results_free(r);

    snprintf(sql, sizeof sql, "UPDATE %s SET v = 'none' WHERE id > 100", table);
    r = Q(s, sql);
    CHECK_INTEQ(pgsess_results_rows_affected(r), 0);
    pgsess_results_free(r);

    snprintf(sql, sizeof sql, "SELECT v FROM %s WHERE id = 3", table);
    r = Q(s, sql);
    CHECK_STREQ(pgsess_results_value(r, 0, 0), "two");
    pgsess_results_free(r);

    snprintf(sql, sizeof sql, "DELETE FROM %s WHERE id = 1", table);
    r = Q(s, sql);
    CHECK_INTEQ(pgsess_results_rows_affected(r), 1);
    pgsess_results_free(r);

    /* a parameterless multi-statement string returns the last statement's rows */
    snprintf(sql, sizeof sql,
             "INSERT INTO %s VALUES (10, 'x'); SELECT 1 AS first; SELECT id, v FROM %s ORDER BY id",
             table, table);
    r = Q(s, sql);
    CHECK_INTEQ(pgsess_results_nrows(r), 3);
    CHECK_INTEQ(pgsess_results_ncols(r), 2);
    CHECK_STREQ(pgsess_results_column_name(r, 0), "id");
    CHECK_STREQ(pgsess_results_value(r, 0, 0), "2");
    CHECK_STREQ(pgsess_results_value(r, 2, 0), "10");
    CHECK_STREQ(pgsess_results_value(r, 2, 1), "x");
    pgsess_results_free(r);

    snprintf(sql, sizeof sql, "SELECT 1; UPDATE %s SET v = 'y'", table);
    r = Q(s, sql);
    CHECK_INTEQ(pgsess_results_ncols(r), 0);
    CHECK_INTEQ(pgsess_results_rows_affected(r), 3);
    pgsess_results_free(r);

    snprintf(sql, sizeof sql, "DROP TABLE %s", table);
    EXEC(s, sql);
}

static void test_callproc(pgsess_session *s)
{
    pgsess_error *err = NULL;
    pgsess_results *r;
    const char *abc[] = {"ABC"};
    const char *nul[] = {NULL};
    const char *xy[] = {"x", "y; DROP"};
    char *pid;

    r = pgsess_callproc(s, "pg_catalog.lower", 1, abc, &err);
    CHECK(r != NULL && err == NULL);
    if (r == NULL)
        print_err(__FILE__, __LINE__, "callproc lower", err);
    pgsess_error_free(err);
    err = NULL;
    CHECK_INTEQ(pgsess_results_nrows(r), 1);
    CHECK_STREQ(pgsess_results_value(r, 0, 0), "abc");
    pgsess_results_free(r);

    r = pgsess_callproc(s, "lower", 1, nul, &err);
    CHECK(r != NULL);
    if (r == NULL)
        print_err(__FILE__, __LINE__, "callproc lower(NULL)", err);
    pgsess_error_free(err);
    err = NULL;
    CHECK(pgsess_results_is_null(r, 0, 0));
    pgsess_results_free(r);

    /* no arguments (args may be NULL when nargs == 0) */
    r = pgsess_callproc(s, "pg_backend_pid", 0, NULL, &err);
    CHECK(r != NULL);
    if (r == NULL)
        print_err(__FILE__, __LINE__, "callproc pg_backend_pid", err);
    pgsess_error_free(err);
    err = NULL;
    CHECK(pgsess_results_value(r, 0, 0) != NULL && atol(pgsess_results_value(r, 0, 0)) > 0);
    CHECK_INTEQ(atol(pgsess_results_value(r, 0, 0) ? pgsess_results_value(r, 0, 0) : "0"),
                pgsess_results_backend_pid(r));
    pgsess_results_free(r);

    /* a name that needs quoting; the arguments are data, never SQL */
    EXEC(s, "CREATE OR REPLACE FUNCTION \"Odd Name\"(a text, b text) RETURNS text "
            "LANGUAGE sql AS $$ SELECT a || '-' || b $$");
    r = pgsess_callproc(s, "Odd Name", 2, xy, &err);
    CHECK(r != NULL);
    if (r == NULL)
        print_err(__FILE__, __LINE__, "callproc \"Odd Name\"", err);
    pgsess_error_free(err);
    err = NULL;
    CHECK_STREQ(pgsess_results_value(r, 0, 0), "x-y; DROP");
    pgsess_results_free(r);
    EXEC(s, "DROP FUNCTION \"Odd Name\"(text, text)");

    /* an unknown function is a server error, not a crash */
    r = pgsess_callproc(s, "pgsess_no_such_function_xyz", 1, abc, &err);
    CHECK(r == NULL);
    CHECK(err != NULL);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_PROGRAMMING_ERROR);
    CHECK_STREQ(pgsess_error_sqlstate(err), "42883");
    pgsess_error_free(err);

    pid = SCALAR(s, "SELECT 1");
    CHECK_STREQ(pid, "1");
    free(pid);
}

static void test_notices(pgsess_session *s)
{
    pgsess_results *r;
    char *all;

    r = Q(s, "DO $$BEGIN RAISE NOTICE 'hello'; END$$");
    CHECK_INTEQ(pgsess_results_notice_count(r), 1);
    CHECK_STREQ(pgsess_results_notice(r, 0), "NOTICE:  hello\n");
    CHECK(pgsess_results_notice(r, 1) == NULL);
    pgsess_results_free(r);

    all = pgsess_notices(s);
    CHECK(all != NULL);
    CHECK_CONTAINS(all, "NOTICE:  hello\n");
    pgsess_string_free(all);

    /* a statement without notices reports none */
    r = Q(s, "SELECT 1");
    CHECK_INTEQ(pgsess_results_notice_count(r), 0);
    pgsess_results_free(r);

    /* the session keeps the last 50, oldest first */
    r = Q(s, "DO $$BEGIN FOR i IN 1..60 LOOP RAISE NOTICE 'n%', i; END LOOP; END$$");
    CHECK(pgsess_results_notice_count(r) >= 50);
    CHECK_STREQ(pgsess_results_notice(r, pgsess_results_notice_count(r) - 1), "NOTICE:  n60\n");
    pgsess_results_free(r);
    all = pgsess_notices(s);
    CHECK(all != NULL);
    if (all != NULL) {
        size_t lines = 0;
        const char *c;
        for (c = all; *c; c++)
            lines += (*c == '\n');
        CHECK_INTEQ(lines, 50);
        CHECK(strncmp(all, "NOTICE:  n11\n", 13) == 0);
        CHECK(strlen(all) >= 13 && strcmp(all + strlen(all) - 13, "NOTICE:  n60\n") == 0);
        CHECK(strstr(all, "NOTICE:  n10\n") == NULL);
        CHECK(strstr(all, "hello") == NULL);
    }
    pgsess_string_free(all);

    /* other severities keep libpq's prefix */
    r = Q(s, "DO $$BEGIN RAISE WARNING 'careful'; END$$");
    CHECK_INTEQ(pgsess_results_notice_count(r), 1);
    CHECK_STREQ(pgsess_results_notice(r, 0), "WARNING:  careful\n");
    pgsess_results_free(r);
}

static void test_session_properties(pgsess_session *s)
{
    pgsess_error *err = NULL;
    pgsess_results *r;
    const char *id, *url = getenv("PGSQL_CTEST");
    pgsess_code c;

    CHECK_STREQ(pgsess_encoding(s), "UTF8");
    c = pgsess_set_encoding(s, "utf-8", &err);
    CHECK_INTEQ(c, PGSESS_OK);
    CHECK(err == NULL);
    pgsess_error_free(err);
    err = NULL;
    c = pgsess_set_encoding(s, "UTF8", &err);
    CHECK_INTEQ(c, PGSESS_OK);
    pgsess_error_free(err);
    err = NULL;
    c = pgsess_set_encoding(s, "LATIN1", &err);
    CHECK_INTEQ(c, PGSESS_NOT_SUPPORTED_ERROR);
    CHECK(err != NULL);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_NOT_SUPPORTED_ERROR);
    CHECK(pgsess_error_message(err) != NULL && pgsess_error_message(err)[0] != '\0');
    pgsess_error_free(err);
    err = NULL;
    CHECK_STREQ(pgsess_encoding(s), "UTF8");

    CHECK(pgsess_validate(s));

    id = pgsess_pool_id(s);
    CHECK(id != NULL && id[0] != '\0');
    /* if the URI carries a password, the pool id must not */
    if (id != NULL && url != NULL) {
        const char *scheme = strstr(url, "://");
        const char *at = scheme ? strchr(scheme + 3, '@') : NULL;
        const char *colon = scheme ? strchr(scheme + 3, ':') : NULL;
        if (at != NULL && colon != NULL && colon < at && at - colon > 1) {
            char pw[256];
            size_t n = (size_t)(at - colon - 1);
            if (n < sizeof pw) {
                memcpy(pw, colon + 1, n);
                pw[n] = '\0';
                CHECK(strstr(id, pw) == NULL);
            }
        }
    }

    r = Q(s, "SELECT pg_backend_pid()");
    CHECK(pgsess_backend_pid(s) > 0);
    CHECK(pgsess_results_backend_pid(r) > 0);
    CHECK_INTEQ(pgsess_backend_pid(s), pgsess_results_backend_pid(r));
    CHECK_INTEQ(atol(pgsess_results_value(r, 0, 0) ? pgsess_results_value(r, 0, 0) : "0"),
                pgsess_results_backend_pid(r));
    pgsess_results_free(r);
}

/* The db_url option overrides the environment, and a password in it never
 * shows up in the pool id. */
static void test_db_url_option(void)
{
    const char *url = getenv("PGSQL_CTEST");
    pgsess_options *opts = pgsess_options_new();
    pgsess_error *err = NULL;
    pgsess_session *s;
    pgsess_results *r;
    char with_pw[1024];
    const char *scheme = strstr(url, "://");

    CHECK(opts != NULL);
    CHECK_INTEQ(pgsess_options_set_db_url(opts, url), PGSESS_OK);
    unsetenv("PGSQL_PGSESS_BASIC_UNSET");
    s = pgsess_open("pgsess_basic_unset", opts, &err);
    CHECK(s != NULL);
    if (s == NULL)
        print_err(__FILE__, __LINE__, "open with db_url", err);
    pgsess_error_free(err);
    err = NULL;
    r = Q(s, "SELECT 'via url'");
    CHECK_STREQ(pgsess_results_value(r, 0, 0), "via url");
    pgsess_results_free(r);
    pgsess_close(s);

    /* pool id must not leak a password. Insert one if the URI has none; a
     * trust/peer-authenticated server ignores it. */
    if (scheme != NULL && strlen(url) + 32 < sizeof with_pw) {
        const char *rest = scheme + 3;
        const char *at = strchr(rest, '@');
        const char *slash = strchr(rest, '/');
        const char *query = strchr(rest, '?');
        size_t prefix = (size_t)(rest - url);
        int has_user = at != NULL && (slash == NULL || at < slash) && (query == NULL || at < query);
        const char *colon = strchr(rest, ':');
        int has_pw = has_user && colon != NULL && colon < at;
        if (!has_pw) {
            if (has_user) {
                size_t ulen = (size_t)(at - rest);
                snprintf(with_pw, sizeof with_pw, "%.*s%.*s:Zq9SecretPw%s", (int)prefix, url, (int)ulen,
                         rest, at);
            } else {
                snprintf(with_pw, sizeof with_pw, "%.*spostgres:Zq9SecretPw@%s", (int)prefix, url, rest);
            }
            CHECK_INTEQ(pgsess_options_set_db_url(opts, with_pw), PGSESS_OK);
            s = pgsess_open("pgsess_basic_unset", opts, &err);
            if (s != NULL) {
                const char *id = pgsess_pool_id(s);
                CHECK(id != NULL && id[0] != '\0');
                CHECK(id == NULL || strstr(id, "Zq9SecretPw") == NULL);
                if (id != NULL && strstr(id, "Zq9SecretPw") != NULL)
                    fprintf(stderr, "    pool id: %s\n", id);
            } else {
                /* opening may connect eagerly and fail authentication; then the
                 * error message must not leak it either */
                const char *m = pgsess_error_message(err);
                CHECK(m == NULL || strstr(m, "Zq9SecretPw") == NULL);
            }
            pgsess_error_free(err);
            err = NULL;
            pgsess_close(s);
        }
    }
    pgsess_options_free(opts);

    /* NULL options mean defaults */
    s = pgsess_open("ctest", NULL, &err);
    CHECK(s != NULL);
    if (s == NULL)
        print_err(__FILE__, __LINE__, "open with NULL opts", err);
    pgsess_error_free(err);
    r = Q(s, "SELECT 2");
    CHECK_STREQ(pgsess_results_value(r, 0, 0), "2");
    pgsess_results_free(r);
    pgsess_close(s);
}

int main(void)
{
    pgsess_options *opts;
    pgsess_session *s;

    test_version_and_code_names();

    opts = pgsess_options_new();
    CHECK(opts != NULL);
    s = open_ctest(opts);
    pgsess_options_free(opts); /* the session must not depend on the options object */

    test_params_and_columns(s);
    test_rows_affected_and_multistatement(s);
    test_callproc(s);
    test_notices(s);
    test_session_properties(s);
    pgsess_close(s);

    test_db_url_option();

    return CHECK_DONE();
}
