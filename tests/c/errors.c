/*
 * errors.c - error codes, categories and fields; NULL/misuse handling.
 * Needs env PGSQL_CTEST (a PostgreSQL URI); opens it as pgsess_open("ctest").
 */
#define _POSIX_C_SOURCE 200809L
#include <pgsess.h>
#include <stdbool.h>
#include <stdint.h>

#include "check.h"
#include "helpers.h"

/* Run sql expecting failure; returns the error (caller frees). */
static pgsess_error *expect_fail_(pgsess_session *s, const char *sql, const char *file, int line)
{
    pgsess_error *err = NULL;
    pgsess_results *r = pgsess_query(s, sql, 0, NULL, &err);
    check_count_(r == NULL && err != NULL);
    if (r != NULL || err == NULL) {
        fflush(stdout);
        fprintf(stderr, "%s:%d: CHECK failed: query fails with an error: %s (results=%p err=%p)\n", file, line,
                sql, (void *)r, (void *)err);
    }
    pgsess_results_free(r);
    return err;
}
#define EXPECT_FAIL(s, sql) expect_fail_((s), (sql), __FILE__, __LINE__)

static void check_server_error_(const pgsess_error *err, pgsess_code code, pgsess_code category,
                                const char *sqlstate, const char *file, int line)
{
    int ok = err != NULL && pgsess_error_code(err) == code && pgsess_error_category(err) == category &&
             pgsess_error_sqlstate(err) != NULL && strcmp(pgsess_error_sqlstate(err), sqlstate) == 0 &&
             pgsess_error_message(err) != NULL && pgsess_error_message(err)[0] != '\0';
    check_count_(ok);
    if (!ok) {
        fflush(stdout);
        fprintf(stderr, "%s:%d: CHECK failed: error is code=%s category=%s sqlstate=%s\n", file, line,
                pgsess_code_name(code), pgsess_code_name(category), sqlstate);
        print_err(file, line, "  got", err);
    }
}
#define CHECK_SERVER_ERROR(err, code, cat, st) check_server_error_((err), (code), (cat), (st), __FILE__, __LINE__)

static void test_server_errors(pgsess_session *s)
{
    pgsess_error *err;
    char table[96], sql[512];
    pgsess_tx *tx;
    pgsess_results *r;
    char *v;

    /* syntax error */
    err = EXPECT_FAIL(s, "SELEC 1");
    CHECK_SERVER_ERROR(err, PGSESS_PROGRAMMING_ERROR, PGSESS_PROGRAMMING_ERROR, "42601");
    CHECK_CONTAINS(pgsess_error_message(err), "syntax error");
    pgsess_error_free(err);

    /* undefined table */
    err = EXPECT_FAIL(s, "SELECT * FROM pgsess_no_such_table_xyz");
    CHECK_SERVER_ERROR(err, PGSESS_PROGRAMMING_ERROR, PGSESS_PROGRAMMING_ERROR, "42P01");
    pgsess_error_free(err);

    /* division by zero */
    err = EXPECT_FAIL(s, "SELECT 1/0");
    CHECK_SERVER_ERROR(err, PGSESS_DATA_ERROR, PGSESS_DATA_ERROR, "22012");
    CHECK_CONTAINS(pgsess_error_message(err), "division by zero");
    pgsess_error_free(err);

    /* bad input for a parameter is a data error too */
    {
        const char *bad[] = {"not a number"};
        err = NULL;
        r = pgsess_query(s, "SELECT $1::int", 1, bad, &err);
        CHECK(r == NULL);
        CHECK_SERVER_ERROR(err, PGSESS_DATA_ERROR, PGSESS_DATA_ERROR, "22P02");
        pgsess_results_free(r);
        pgsess_error_free(err);
    }

    /* unique violation, with detail */
    unique_name(table, sizeof table, "errors");
    snprintf(sql, sizeof sql, "CREATE TABLE %s (id int PRIMARY KEY)", table);
    EXEC(s, sql);
    snprintf(sql, sizeof sql, "INSERT INTO %s VALUES (1)", table);
    EXEC(s, sql);
    err = EXPECT_FAIL(s, sql);
    CHECK_SERVER_ERROR(err, PGSESS_INTEGRITY_ERROR, PGSESS_INTEGRITY_ERROR, "23505");
    CHECK(pgsess_error_detail(err) != NULL);
    CHECK_CONTAINS(pgsess_error_detail(err), "already exists");
    pgsess_error_free(err);
    /* not-null violation */
    snprintf(sql, sizeof sql, "INSERT INTO %s VALUES (NULL)", table);
    err = EXPECT_FAIL(s, sql);
    CHECK_SERVER_ERROR(err, PGSESS_INTEGRITY_ERROR, PGSESS_INTEGRITY_ERROR, "23502");
    pgsess_error_free(err);
    snprintf(sql, sizeof sql, "DROP TABLE %s", table);
    EXEC(s, sql);

    /* statement timeout inside a transaction -> query canceled */
    err = NULL;
    tx = pgsess_begin(s, &err);
    CHECK(tx != NULL);
    if (tx == NULL)
        print_err(__FILE__, __LINE__, "begin", err);
    pgsess_error_free(err);
    TXEXEC(tx, "SET statement_timeout = 50");
    err = NULL;
    r = pgsess_tx_query(tx, "SELECT pg_sleep(1)", 0, NULL, &err);
    CHECK(r == NULL);
    CHECK_SERVER_ERROR(err, PGSESS_QUERY_CANCELED, PGSESS_OPERATIONAL_ERROR, "57014");
    pgsess_results_free(r);
    pgsess_error_free(err);
    pgsess_rollback(tx);
    /* the rolled-back SET does not leak into pooled connections */
    v = SCALAR(s, "SHOW statement_timeout");
    CHECK_STREQ(v, "0");
    free(v);
    r = Q(s, "SELECT pg_sleep(0.1), 'slept'");
    CHECK_STREQ(pgsess_results_value(r, 0, 1), "slept");
    pgsess_results_free(r);

    /* RAISE with HINT and DETAIL */
    err = EXPECT_FAIL(s, "DO $$BEGIN RAISE EXCEPTION 'boom %', 42 USING HINT = 'try again', "
                         "DETAIL = 'some detail'; END$$");
    CHECK(err != NULL && pgsess_error_code(err) != PGSESS_OK);
    CHECK_STREQ(pgsess_error_sqlstate(err), "P0001");
    CHECK_CONTAINS(pgsess_error_message(err), "boom 42");
    CHECK_STREQ(pgsess_error_hint(err), "try again");
    CHECK_STREQ(pgsess_error_detail(err), "some detail");
    pgsess_error_free(err);

    /* no hint/detail -> NULL */
    err = EXPECT_FAIL(s, "SELECT 1/0");
    CHECK(pgsess_error_hint(err) == NULL);
    CHECK(pgsess_error_detail(err) == NULL);
    pgsess_error_free(err);

    /* serialization failure -> transaction rollback (an operational error) */
    err = EXPECT_FAIL(s, "DO $$BEGIN RAISE EXCEPTION USING ERRCODE = '40001'; END$$");
    CHECK_SERVER_ERROR(err, PGSESS_TRANSACTION_ROLLBACK, PGSESS_OPERATIONAL_ERROR, "40001");
    pgsess_error_free(err);
    /* deadlock too */
    err = EXPECT_FAIL(s, "DO $$BEGIN RAISE EXCEPTION USING ERRCODE = '40P01'; END$$");
    CHECK_SERVER_ERROR(err, PGSESS_TRANSACTION_ROLLBACK, PGSESS_OPERATIONAL_ERROR, "40P01");
    pgsess_error_free(err);

    /* feature not supported (0A000) */
    err = EXPECT_FAIL(s, "DO $$BEGIN RAISE EXCEPTION USING ERRCODE = '0A000'; END$$");
    CHECK_SERVER_ERROR(err, PGSESS_NOT_SUPPORTED_ERROR, PGSESS_NOT_SUPPORTED_ERROR, "0A000");
    pgsess_error_free(err);

    /* after all these errors the session still works */
    v = SCALAR(s, "SELECT 'alive'");
    CHECK_STREQ(v, "alive");
    free(v);
    CHECK(pgsess_validate(s));
}

static void test_config_errors(void)
{
    pgsess_error *err = NULL;
    pgsess_session *s;
    pgsess_options *opts;

    unsetenv("PGSQL_NOSUCHDB_XYZ");
    s = pgsess_open("nosuchdb_xyz", NULL, &err);
    CHECK(s == NULL);
    CHECK(err != NULL);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_CONFIG_ERROR);
    CHECK_CONTAINS(pgsess_error_message(err), "PGSQL_NOSUCHDB_XYZ");
    CHECK(pgsess_error_sqlstate(err) == NULL);
    pgsess_close(s);
    pgsess_error_free(err);

    /* the same with options that carry no URL */
    err = NULL;
    opts = pgsess_options_new();
    s = pgsess_open("nosuchdb_xyz", opts, &err);
    CHECK(s == NULL);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_CONFIG_ERROR);
    CHECK_CONTAINS(pgsess_error_message(err), "PGSQL_NOSUCHDB_XYZ");
    pgsess_close(s);
    pgsess_error_free(err);
    pgsess_options_free(opts);

    /* an empty or malformed variable is a config error that names the
     * variable it came from (with several PGSQL_* variables, the user must
     * be told which one is wrong) */
    setenv("PGSQL_EMPTYDB_XYZ", "", 1);
    err = NULL;
    s = pgsess_open("emptydb_xyz", NULL, &err);
    CHECK(s == NULL);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_CONFIG_ERROR);
    CHECK_CONTAINS(pgsess_error_message(err), "PGSQL_EMPTYDB_XYZ");
    pgsess_close(s);
    pgsess_error_free(err);
    unsetenv("PGSQL_EMPTYDB_XYZ");
    setenv("PGSQL_BADURI_XYZ", "mysql://user@host/db", 1);
    err = NULL;
    s = pgsess_open("baduri_xyz", NULL, &err);
    CHECK(s == NULL);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_CONFIG_ERROR);
    CHECK_CONTAINS(pgsess_error_message(err), "PGSQL_BADURI_XYZ");
    pgsess_close(s);
    pgsess_error_free(err);
    unsetenv("PGSQL_BADURI_XYZ");

    /* NULL / empty dbname -> PGSQL */
    {
        char *saved = getenv("PGSQL") ? strdup(getenv("PGSQL")) : NULL;
        unsetenv("PGSQL");
        err = NULL;
        s = pgsess_open(NULL, NULL, &err);
        CHECK(s == NULL);
        CHECK_INTEQ(pgsess_error_code(err), PGSESS_CONFIG_ERROR);
        CHECK_CONTAINS(pgsess_error_message(err), "PGSQL");
        CHECK(pgsess_error_message(err) == NULL || strstr(pgsess_error_message(err), "PGSQL_") == NULL);
        pgsess_close(s);
        pgsess_error_free(err);
        err = NULL;
        s = pgsess_open("", NULL, &err);
        CHECK(s == NULL);
        CHECK_INTEQ(pgsess_error_code(err), PGSESS_CONFIG_ERROR);
        CHECK_CONTAINS(pgsess_error_message(err), "PGSQL");
        pgsess_close(s);
        pgsess_error_free(err);
        /* ... and an empty dbname does read PGSQL when it is set */
        setenv("PGSQL", getenv("PGSQL_CTEST"), 1);
        err = NULL;
        s = pgsess_open("", NULL, &err);
        CHECK(s != NULL);
        if (s == NULL)
            print_err(__FILE__, __LINE__, "open(\"\") with PGSQL set", err);
        pgsess_error_free(err);
        if (s != NULL) {
            char *v = SCALAR(s, "SELECT 'from PGSQL'");
            CHECK_STREQ(v, "from PGSQL");
            free(v);
        }
        pgsess_close(s);
        if (saved) {
            setenv("PGSQL", saved, 1);
            free(saved);
        } else {
            unsetenv("PGSQL");
        }
    }

    /* NULL err out-param on a failing open */
    s = pgsess_open("nosuchdb_xyz", NULL, NULL);
    CHECK(s == NULL);
}

static void test_misuse_and_nulls(pgsess_session *s)
{
    pgsess_error *err = NULL;
    pgsess_options *opts;
    pgsess_tx *tx;
    pgsess_results *r;
    const char *one[] = {"1"};

#define CHECK_IFACE(expr_is_failure)                                               \
    do {                                                                           \
        CHECK(expr_is_failure);                                                    \
        CHECK(err != NULL);                                                        \
        CHECK_INTEQ(pgsess_error_code(err), PGSESS_INTERFACE_ERROR);               \
        CHECK_INTEQ(pgsess_error_category(err), PGSESS_INTERFACE_ERROR);           \
        CHECK(pgsess_error_message(err) != NULL && pgsess_error_message(err)[0]);  \
        pgsess_error_free(err);                                                    \
        err = NULL;                                                                \
    } while (0)

    /* free functions accept NULL */
    pgsess_string_free(NULL);
    pgsess_options_free(NULL);
    pgsess_close(NULL);
    pgsess_results_free(NULL);
    pgsess_rollback(NULL);
    pgsess_error_free(NULL);

    /* options */
    CHECK_INTEQ(pgsess_options_set_db_url(NULL, "postgresql://x/y"), PGSESS_INTERFACE_ERROR);
    CHECK_INTEQ(pgsess_options_set_pool_max_size(NULL, 3), PGSESS_INTERFACE_ERROR);
    CHECK_INTEQ(pgsess_options_set_pool_idle_ttl(NULL, 3), PGSESS_INTERFACE_ERROR);
    CHECK_INTEQ(pgsess_options_set_checkout_timeout_ms(NULL, 3), PGSESS_INTERFACE_ERROR);
    opts = pgsess_options_new();
    CHECK(opts != NULL);
    CHECK_INTEQ(pgsess_options_set_pool_max_size(opts, 3), PGSESS_OK);
    CHECK_INTEQ(pgsess_options_set_pool_idle_ttl(opts, 60), PGSESS_OK);
    CHECK_INTEQ(pgsess_options_set_checkout_timeout_ms(opts, 1000), PGSESS_OK);
    CHECK_INTEQ(pgsess_options_set_db_url(opts, NULL), PGSESS_INTERFACE_ERROR);
    pgsess_options_free(opts);

    /* error accessors on NULL */
    CHECK_INTEQ(pgsess_error_code(NULL), PGSESS_INTERFACE_ERROR);
    CHECK_INTEQ(pgsess_error_category(NULL), PGSESS_INTERFACE_ERROR);
    CHECK(pgsess_error_message(NULL) == NULL);
    CHECK(pgsess_error_sqlstate(NULL) == NULL);
    CHECK(pgsess_error_detail(NULL) == NULL);
    CHECK(pgsess_error_hint(NULL) == NULL);

    /* session functions on NULL */
    CHECK_IFACE(pgsess_query(NULL, "SELECT 1", 0, NULL, &err) == NULL);
    CHECK_IFACE(pgsess_callproc(NULL, "lower", 1, one, &err) == NULL);
    CHECK_IFACE(pgsess_begin(NULL, &err) == NULL);
    CHECK_IFACE(pgsess_set_encoding(NULL, "UTF8", &err) == PGSESS_INTERFACE_ERROR);
    CHECK(pgsess_backend_pid(NULL) == 0);
    CHECK(pgsess_pool_id(NULL) == NULL);
    CHECK(pgsess_encoding(NULL) == NULL);
    CHECK(!pgsess_validate(NULL));
    CHECK(pgsess_notices(NULL) == NULL);

    /* NULL sql / name / params, invalid UTF-8 */
    CHECK_IFACE(pgsess_query(s, NULL, 0, NULL, &err) == NULL);
    CHECK_IFACE(pgsess_query(s, "SELECT $1::int", 1, NULL, &err) == NULL);
    CHECK_IFACE(pgsess_query(s, "SELECT '\xff\xfe'", 0, NULL, &err) == NULL);
    CHECK_IFACE(pgsess_callproc(s, NULL, 0, NULL, &err) == NULL);
    CHECK_IFACE(pgsess_callproc(s, "lower", 1, NULL, &err) == NULL);
    CHECK_IFACE(pgsess_set_encoding(s, NULL, &err) == PGSESS_INTERFACE_ERROR);

    /* NULL err out-param: failures still just return NULL / a code */
    CHECK(pgsess_query(NULL, "SELECT 1", 0, NULL, NULL) == NULL);
    CHECK(pgsess_query(s, NULL, 0, NULL, NULL) == NULL);
    CHECK(pgsess_query(s, "SELECT $1", 1, NULL, NULL) == NULL);
    CHECK(pgsess_query(s, "SELEC 1", 0, NULL, NULL) == NULL);
    CHECK(pgsess_query(s, "SELECT 1/0", 0, NULL, NULL) == NULL);
    CHECK(pgsess_callproc(NULL, "lower", 0, NULL, NULL) == NULL);
    CHECK(pgsess_begin(NULL, NULL) == NULL);
    CHECK(pgsess_tx_query(NULL, "SELECT 1", 0, NULL, NULL) == NULL);
    CHECK_INTEQ(pgsess_commit(NULL, NULL), PGSESS_INTERFACE_ERROR);
    CHECK_INTEQ(pgsess_set_encoding(s, "LATIN1", NULL), PGSESS_NOT_SUPPORTED_ERROR);
    CHECK_INTEQ(pgsess_set_encoding(NULL, "UTF8", NULL), PGSESS_INTERFACE_ERROR);
    r = pgsess_query(s, "SELECT 'ok without err'", 0, NULL, NULL);
    CHECK_STREQ(pgsess_results_value(r, 0, 0), "ok without err");
    pgsess_results_free(r);

    /* results accessors on NULL */
    CHECK_INTEQ(pgsess_results_nrows(NULL), 0);
    CHECK_INTEQ(pgsess_results_ncols(NULL), 0);
    CHECK(pgsess_results_column_name(NULL, 0) == NULL);
    CHECK_INTEQ(pgsess_results_column_type(NULL, 0), 0);
    CHECK_INTEQ(pgsess_results_column_index(NULL, "a"), -1);
    CHECK(pgsess_results_value(NULL, 0, 0) == NULL);
    CHECK_INTEQ(pgsess_results_value_length(NULL, 0, 0), 0);
    CHECK(!pgsess_results_is_null(NULL, 0, 0));
    CHECK_INTEQ(pgsess_results_rows_affected(NULL), 0);
    CHECK_INTEQ(pgsess_results_backend_pid(NULL), 0);
    CHECK_INTEQ(pgsess_results_notice_count(NULL), 0);
    CHECK(pgsess_results_notice(NULL, 0) == NULL);
    r = Q(s, "SELECT 1 AS a");
    CHECK_INTEQ(pgsess_results_column_index(r, NULL), -1);
    pgsess_results_free(r);

    /* tx functions on NULL */
    CHECK_IFACE(pgsess_tx_query(NULL, "SELECT 1", 0, NULL, &err) == NULL);
    CHECK_IFACE(pgsess_commit(NULL, &err) == PGSESS_INTERFACE_ERROR);
    tx = pgsess_begin(s, &err);
    CHECK(tx != NULL);
    pgsess_error_free(err);
    err = NULL;
    CHECK_IFACE(pgsess_tx_query(tx, NULL, 0, NULL, &err) == NULL);
    CHECK_IFACE(pgsess_tx_query(tx, "SELECT $1::int", 1, NULL, &err) == NULL);
    pgsess_rollback(tx);

    /* an err out-param is left NULL on success */
    err = NULL;
    r = pgsess_query(s, "SELECT 1", 0, NULL, &err);
    CHECK(r != NULL && err == NULL);
    pgsess_results_free(r);
    pgsess_error_free(err);
#undef CHECK_IFACE
}

int main(void)
{
    pgsess_options *opts = pgsess_options_new();
    pgsess_session *s = open_ctest(opts);

    pgsess_options_free(opts);
    test_server_errors(s);
    test_config_errors();
    test_misuse_and_nulls(s);
    pgsess_close(s);
    return CHECK_DONE();
}
