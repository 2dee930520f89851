/*
 * error_fields.c - every PG_DIAG_* field of pgsess_error_field against libpq's
 * PQresultErrorField for the same statement on the same server, and the notice
 * callback (pgsess_options_set_notice_callback) against libpq's notice receiver.
 * Needs env PGSQL_CTEST (a PostgreSQL URI); opens it as pgsess_open("ctest") and
 * with PQconnectdb.
 * pkg-config: libpq
 */
#define _POSIX_C_SOURCE 200809L
#include <pgsess.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "check.h"
#include "helpers.h"

/* Every field code libpq knows (postgres_ext.h's PG_DIAG_*), in protocol order. */
static const char FIELD_CODES[] = {
    PG_DIAG_SEVERITY, PG_DIAG_SEVERITY_NONLOCALIZED, PG_DIAG_SQLSTATE, PG_DIAG_MESSAGE_PRIMARY,
    PG_DIAG_MESSAGE_DETAIL, PG_DIAG_MESSAGE_HINT, PG_DIAG_STATEMENT_POSITION,
    PG_DIAG_INTERNAL_POSITION, PG_DIAG_INTERNAL_QUERY, PG_DIAG_CONTEXT, PG_DIAG_SCHEMA_NAME,
    PG_DIAG_TABLE_NAME, PG_DIAG_COLUMN_NAME, PG_DIAG_DATATYPE_NAME, PG_DIAG_CONSTRAINT_NAME,
    PG_DIAG_SOURCE_FILE, PG_DIAG_SOURCE_LINE, PG_DIAG_SOURCE_FUNCTION, 0};

static PGconn *pq;

static PGconn *pq_connect(void)
{
    PGconn *c = PQconnectdb(getenv("PGSQL_CTEST"));
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "libpq cannot connect: %s", PQerrorMessage(c));
        PQfinish(c);
        check_count_(0);
        exit(check_done_());
    }
    return c;
}

/* CHECK that every field of `err` equals libpq's for `res`, byte for byte (NULL when absent),
 * and that each code in `present` is there (so the comparison is not of two NULLs). */
static void compare_fields_(const char *what, const pgsess_error *err, const PGresult *res, const char *present,
                            const char *file, int line)
{
    const char *c;
    if (!check_record_(err != NULL && res != NULL, file, line, what))
        return;
    for (c = FIELD_CODES; *c; c++) {
        const char *mine = pgsess_error_field(err, *c);
        const char *theirs = PQresultErrorField(res, *c);
        int ok = (mine == NULL && theirs == NULL) || (mine != NULL && theirs != NULL && strcmp(mine, theirs) == 0);
        check_count_(ok);
        if (!ok) {
            fflush(stdout);
            fprintf(stderr, "%s:%d: %s: field '%c': pgsess %s%s%s, libpq %s%s%s\n", file, line, what, *c,
                    mine ? "\"" : "", mine ? mine : "NULL", mine ? "\"" : "", theirs ? "\"" : "",
                    theirs ? theirs : "NULL", theirs ? "\"" : "");
        }
    }
    for (c = present; *c; c++) {
        int ok = pgsess_error_field(err, *c) != NULL;
        check_count_(ok);
        if (!ok)
            fprintf(stderr, "%s:%d: %s: field '%c' is missing\n", file, line, what, *c);
    }
    /* The named accessors agree with the fields. */
    CHECK_STREQ(pgsess_error_sqlstate(err), PQresultErrorField(res, PG_DIAG_SQLSTATE));
    CHECK_STREQ(pgsess_error_detail(err), PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL));
    CHECK_STREQ(pgsess_error_hint(err), PQresultErrorField(res, PG_DIAG_MESSAGE_HINT));
    CHECK_STREQ(pgsess_error_message(err), PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));
}
#define COMPARE_FIELDS(what, err, res, present) compare_fields_((what), (err), (res), (present), __FILE__, __LINE__)

/* Run `sql` (with `n` text parameters) on both and compare the errors' fields. */
static void same_error_(pgsess_session *s, const char *sql, int n, const char *const *params, const char *present,
                        const char *file, int line)
{
    pgsess_error *err = NULL;
    pgsess_results *r = pgsess_query(s, sql, (size_t)n, params, &err);
    PGresult *res = n == 0 ? PQexec(pq, sql) : PQexecParams(pq, sql, n, NULL, params, NULL, NULL, 0);
    check_record_(r == NULL, file, line, sql);
    check_record_(PQresultStatus(res) == PGRES_FATAL_ERROR, file, line, sql);
    compare_fields_(sql, err, res, present, file, line);
    pgsess_results_free(r);
    pgsess_error_free(err);
    PQclear(res);
}
#define SAME_ERROR(s, sql, present) same_error_((s), (sql), 0, NULL, (present), __FILE__, __LINE__)
#define SAME_ERROR_P(s, sql, n, p, present) same_error_((s), (sql), (n), (p), (present), __FILE__, __LINE__)

static void test_server_errors(pgsess_session *s)
{
    char parent[80], child[80], ranges[80], sql[1024];
    unique_name(parent, sizeof parent, "ef_parent");
    unique_name(child, sizeof child, "ef_child");
    unique_name(ranges, sizeof ranges, "ef_ranges");
    snprintf(sql, sizeof sql,
             "CREATE TABLE %s (id int PRIMARY KEY, n int NOT NULL CONSTRAINT n_small CHECK (n < 100));"
             "CREATE TABLE %s (id int REFERENCES %s (id));"
             "CREATE TABLE %s (r int4range, EXCLUDE USING gist (r WITH &&));"
             "INSERT INTO %s VALUES (1, 1); INSERT INTO %s VALUES ('[1,5)')",
             parent, child, parent, ranges, parent, ranges);
    EXEC(s, sql);

    snprintf(sql, sizeof sql, "INSERT INTO %s VALUES (1, 1)", parent);
    SAME_ERROR(s, sql, "SVCMDstnFLR"); /* unique violation */
    snprintf(sql, sizeof sql, "INSERT INTO %s VALUES (2)", child);
    SAME_ERROR(s, sql, "SVCMDstnFLR"); /* foreign key violation */
    snprintf(sql, sizeof sql, "INSERT INTO %s VALUES (3, NULL)", parent);
    SAME_ERROR(s, sql, "SVCMDstcFLR"); /* not-null violation */
    snprintf(sql, sizeof sql, "INSERT INTO %s VALUES (3, 200)", parent);
    SAME_ERROR(s, sql, "SVCMDstnFLR"); /* check violation */
    snprintf(sql, sizeof sql, "INSERT INTO %s VALUES ('[2,3)')", ranges);
    SAME_ERROR(s, sql, "SVCMDstnFLR"); /* exclusion violation */
    snprintf(sql, sizeof sql, "SELECT 1 FROM %s WHERE id = = 1", parent);
    SAME_ERROR(s, sql, "SVCMPFLR"); /* syntax error with a position */
    SAME_ERROR(s, "SELECT 'abc'::integer", "SVCMPFLR"); /* invalid input syntax for type integer */
    {
        const char *p[] = {"abc"};
        SAME_ERROR_P(s, "SELECT $1::int", 1, p, "SVCMWFLR"); /* the same, as a parameter */
    }
    SAME_ERROR(s, "DO $$ BEGIN PERFORM 1/0; END $$", "SVCMWFLR"); /* PL/pgSQL, with context */
    /* A syntax error inside an EXECUTE'd string: internal query and position. */
    SAME_ERROR(s, "DO $$ BEGIN EXECUTE 'SELEC 1'; END $$", "SVCMpqWFLR");
    snprintf(sql, sizeof sql, "DO $$ BEGIN EXECUTE 'SELECT nosuchcolumn FROM %s'; END $$", parent);
    SAME_ERROR(s, sql, "SVCMpqWFLR");
    SAME_ERROR(s,
               "DO $$ BEGIN RAISE EXCEPTION 'custom %', 42 USING ERRCODE = 'P0042', SCHEMA = 'sch', "
               "TABLE = 'tbl', COLUMN = 'col', DATATYPE = 'typ', CONSTRAINT = 'con', DETAIL = 'det', "
               "HINT = 'hin'; END $$",
               "SVCMDHWstcdnFLR");
    /* Empty fields are empty strings, not NULL, in both. */
    SAME_ERROR(s, "DO $$ BEGIN RAISE EXCEPTION USING MESSAGE = '', DETAIL = '', HINT = ''; END $$", "SVCMDH");
    SAME_ERROR(s, "SELECT 1; SELECT 1/0; SELECT 2", "SVCMFLR"); /* the failing one of several */

    snprintf(sql, sizeof sql, "DROP TABLE %s, %s, %s", child, parent, ranges);
    EXEC(s, sql);
}

/* PGSQL_CTEST with its database replaced by `db` (into buf). */
static void uri_with_db(char *buf, size_t len, const char *db)
{
    const char *uri = getenv("PGSQL_CTEST");
    const char *query = strchr(uri, '?');
    const char *slash = strrchr(uri, '/');
    size_t keep = (size_t)(slash - uri) + 1;
    snprintf(buf, len, "%.*s%s%s", (int)keep, uri, db, query ? query : "");
}

/* What pgsess gives where libpq has no result: a failed connection, a client-side error. */
static void test_client_errors(void)
{
    pgsess_error *err = NULL;
    pgsess_options *o = pgsess_options_new();
    pgsess_session *s;
    const char *c;
    PGconn *bad;
    PGresult *res;
    char uri[1024];

    /* Nothing listens: a client-side error, every field NULL, as libpq's own errors have none
     * (PQexec on the failed connection returns no result). The client's SQLSTATE is given by
     * pgsess_error_sqlstate. */
    pgsess_options_set_db_url(o, "postgresql://pgsess@127.0.0.1:1/none?connect_timeout=2");
    s = pgsess_open("x", o, &err);
    CHECK(s == NULL && err != NULL);
    for (c = FIELD_CODES; *c; c++)
        CHECK(pgsess_error_field(err, *c) == NULL);
    CHECK_STREQ(pgsess_error_sqlstate(err), "08001");
    bad = PQconnectdb("postgresql://pgsess@127.0.0.1:1/none?connect_timeout=2");
    CHECK(PQstatus(bad) == CONNECTION_BAD);
    res = PQexec(bad, "SELECT 1");
    CHECK(PQresultErrorField(res, PG_DIAG_SQLSTATE) == NULL);
    PQclear(res);
    PQfinish(bad);
    pgsess_error_free(err);
    pgsess_close(s);

    /* A server that refuses the connection (no such database): libpq has only the text of
     * PQerrorMessage; pgsess gives the server's report field by field. */
    uri_with_db(uri, sizeof uri, "pgsess_ctest_no_such_db");
    pgsess_options_set_db_url(o, uri);
    err = NULL;
    s = pgsess_open("x", o, &err);
    CHECK(s == NULL && err != NULL);
    CHECK_STREQ(pgsess_error_field(err, PG_DIAG_SEVERITY_NONLOCALIZED), "FATAL");
    CHECK_STREQ(pgsess_error_field(err, PG_DIAG_SQLSTATE), "3D000");
    CHECK_STREQ(pgsess_error_field(err, PG_DIAG_MESSAGE_PRIMARY),
                "database \"pgsess_ctest_no_such_db\" does not exist");
    CHECK(pgsess_error_field(err, PG_DIAG_SOURCE_FILE) != NULL);
    bad = PQconnectdb(uri);
    CHECK(PQstatus(bad) == CONNECTION_BAD);
    {
        char want[256];
        snprintf(want, sizeof want, "%s:  %s", pgsess_error_field(err, PG_DIAG_SEVERITY),
                 pgsess_error_field(err, PG_DIAG_MESSAGE_PRIMARY));
        CHECK_CONTAINS(PQerrorMessage(bad), want);
    }
    PQfinish(bad);
    pgsess_error_free(err);
    pgsess_close(s);
    pgsess_options_free(o);

    CHECK(pgsess_error_field(NULL, 'M') == NULL);
}

/* ---- the notice callback ---- */

#define MAX_NOTICES 16
struct notice_copy {
    char *fields[sizeof FIELD_CODES];
    pthread_t thread;
    pgsess_code code;
};
struct notices {
    int n;
    struct notice_copy list[MAX_NOTICES];
};

static char *dup_or_null(const char *v)
{
    char *out;
    if (v == NULL)
        return NULL;
    out = malloc(strlen(v) + 1);
    if (out != NULL)
        strcpy(out, v);
    return out;
}

static void collect_notice(const pgsess_error *notice, void *user_data)
{
    struct notices *into = user_data;
    struct notice_copy *copy;
    size_t i;
    if (into->n >= MAX_NOTICES)
        return;
    copy = &into->list[into->n++];
    for (i = 0; FIELD_CODES[i]; i++)
        copy->fields[i] = dup_or_null(pgsess_error_field(notice, FIELD_CODES[i]));
    copy->thread = pthread_self();
    copy->code = pgsess_error_code(notice);
}

/* Another function with the same behaviour: a different callback for the pool key. */
static void collect_notice_too(const pgsess_error *notice, void *user_data)
{
    collect_notice(notice, user_data);
}

static void notices_clear(struct notices *n)
{
    int i;
    size_t f;
    for (i = 0; i < n->n; i++)
        for (f = 0; FIELD_CODES[f]; f++)
            free(n->list[i].fields[f]);
    n->n = 0;
}

static const char *notice_field(const struct notices *n, int i, char code)
{
    size_t f;
    for (f = 0; FIELD_CODES[f]; f++)
        if (FIELD_CODES[f] == code)
            return n->list[i].fields[f];
    return NULL;
}

/* The index of the first notice with message `m`, or -1. */
static int find_notice(const struct notices *n, const char *m)
{
    int i;
    for (i = 0; i < n->n; i++) {
        const char *v = notice_field(n, i, PG_DIAG_MESSAGE_PRIMARY);
        if (v != NULL && strcmp(v, m) == 0)
            return i;
    }
    return -1;
}

/* libpq's notice receiver: the same copies from PQresultErrorField. */
static struct notices pq_notices;
static void pq_receiver(void *arg, const PGresult *res)
{
    struct notice_copy *copy;
    size_t i;
    (void)arg;
    if (pq_notices.n >= MAX_NOTICES)
        return;
    copy = &pq_notices.list[pq_notices.n++];
    for (i = 0; FIELD_CODES[i]; i++)
        copy->fields[i] = dup_or_null(PQresultErrorField(res, FIELD_CODES[i]));
    copy->thread = pthread_self();
}

static const char *NOTICE_SQL =
    "DO $$ BEGIN RAISE NOTICE 'first %', 1; "
    "RAISE WARNING 'second' USING DETAIL = 'the detail', HINT = 'the hint'; END $$";

struct run_args {
    pgsess_session *s;
    const char *sql;
    int ok;
};

static void *run_in_thread(void *arg)
{
    struct run_args *a = arg;
    pgsess_error *err = NULL;
    pgsess_results *r = pgsess_query(a->s, a->sql, 0, NULL, &err);
    a->ok = r != NULL;
    pgsess_results_free(r);
    pgsess_error_free(err);
    return NULL;
}

static pgsess_session *open_with_callback(pgsess_notice_callback cb, void *user_data, bool pinned)
{
    pgsess_options *o = pgsess_options_new();
    pgsess_session *s;
    CHECK_INTEQ(pgsess_options_set_notice_callback(o, cb, user_data), PGSESS_OK);
    pgsess_options_set_pinned(o, pinned);
    s = open_ctest(o);
    pgsess_options_free(o);
    return s;
}

static void test_notices(void)
{
    struct notices got = {0};
    pgsess_session *s = open_with_callback(collect_notice, &got, false);
    pgsess_results *r;
    int i;
    size_t f;

    /* Both notices, in order, with every field as libpq's notice receiver sees them, on the
     * thread that ran the statement, before pgsess_query returned; still kept with the results. */
    r = Q(s, NOTICE_SQL);
    PQsetNoticeReceiver(pq, pq_receiver, NULL);
    PQclear(PQexec(pq, NOTICE_SQL));
    CHECK_INTEQ(got.n, 2);
    CHECK_INTEQ(pq_notices.n, 2);
    for (i = 0; i < got.n && i < pq_notices.n; i++) {
        for (f = 0; FIELD_CODES[f]; f++)
            CHECK_STREQ(got.list[i].fields[f], pq_notices.list[i].fields[f]);
        CHECK(pthread_equal(got.list[i].thread, pthread_self()));
    }
    if (got.n == 2) {
        CHECK_STREQ(notice_field(&got, 0, PG_DIAG_SEVERITY_NONLOCALIZED), "NOTICE");
        CHECK_STREQ(notice_field(&got, 0, PG_DIAG_SQLSTATE), "00000");
        CHECK_STREQ(notice_field(&got, 0, PG_DIAG_MESSAGE_PRIMARY), "first 1");
        CHECK_STREQ(notice_field(&got, 0, PG_DIAG_MESSAGE_DETAIL), NULL);
        CHECK_CONTAINS(notice_field(&got, 0, PG_DIAG_CONTEXT), "PL/pgSQL function inline_code_block");
        CHECK_STREQ(notice_field(&got, 1, PG_DIAG_SEVERITY_NONLOCALIZED), "WARNING");
        CHECK_STREQ(notice_field(&got, 1, PG_DIAG_SQLSTATE), "01000");
        CHECK_STREQ(notice_field(&got, 1, PG_DIAG_MESSAGE_PRIMARY), "second");
        CHECK_STREQ(notice_field(&got, 1, PG_DIAG_MESSAGE_DETAIL), "the detail");
        CHECK_STREQ(notice_field(&got, 1, PG_DIAG_MESSAGE_HINT), "the hint");
        CHECK_INTEQ(got.list[1].code, PGSESS_DATABASE_ERROR);
    }
    CHECK_INTEQ(pgsess_results_notice_count(r), 2);
    CHECK_STREQ(pgsess_results_notice(r, 0), "NOTICE:  first 1\n");
    pgsess_results_free(r);
    notices_clear(&got);
    notices_clear(&pq_notices);

    /* Another thread's statement: delivered on that thread. */
    {
        pthread_t t;
        struct run_args a = {s, "DO $$ BEGIN RAISE NOTICE 'from a thread'; END $$", 0};
        pthread_create(&t, NULL, run_in_thread, &a);
        pthread_join(t, NULL);
        CHECK(a.ok);
        CHECK_INTEQ(got.n, 1);
        if (got.n == 1) {
            CHECK(pthread_equal(got.list[0].thread, t));
            CHECK(!pthread_equal(got.list[0].thread, pthread_self()));
            CHECK_STREQ(notice_field(&got, 0, PG_DIAG_MESSAGE_PRIMARY), "from a thread");
        }
        notices_clear(&got);
    }

    /* A failing statement delivers the notices raised before its error; INFO goes to the client
     * whatever client_min_messages says; a ROLLBACK outside a transaction warns. */
    {
        pgsess_error *err = NULL;
        r = pgsess_query(s, "DO $$ BEGIN RAISE INFO 'before'; RAISE EXCEPTION 'boom'; END $$", 0, NULL, &err);
        CHECK(r == NULL && err != NULL);
        CHECK_STREQ(pgsess_error_message(err), "boom");
        CHECK_INTEQ(got.n, 1);
        if (got.n == 1)
            CHECK_STREQ(notice_field(&got, 0, PG_DIAG_SEVERITY_NONLOCALIZED), "INFO");
        pgsess_error_free(err);
        notices_clear(&got);
        EXEC(s, "ROLLBACK");
        CHECK_INTEQ(got.n, 1);
        if (got.n == 1) {
            CHECK_STREQ(notice_field(&got, 0, PG_DIAG_SQLSTATE), "25P01");
            CHECK_STREQ(notice_field(&got, 0, PG_DIAG_MESSAGE_PRIMARY), "there is no transaction in progress");
        }
        notices_clear(&got);
    }

    /* In a transaction, with LOG and DEBUG let through by client_min_messages. */
    {
        pgsess_tx *tx = BEGIN(s);
        TXEXEC(tx, "SET LOCAL client_min_messages = debug1");
        TXEXEC(tx, "DO $$ BEGIN RAISE LOG 'a log'; RAISE DEBUG 'a debug'; END $$");
        CHECK(pgsess_commit(tx, NULL) == PGSESS_OK);
        /* client_min_messages = debug1 may let the server's own DEBUG messages through too. */
        i = find_notice(&got, "a log");
        CHECK(i >= 0 && i < find_notice(&got, "a debug"));
        if (i >= 0)
            CHECK_STREQ(notice_field(&got, i, PG_DIAG_SEVERITY_NONLOCALIZED), "LOG");
        i = find_notice(&got, "a debug");
        if (CHECK(i >= 0))
            CHECK_STREQ(notice_field(&got, i, PG_DIAG_SEVERITY_NONLOCALIZED), "DEBUG");
        notices_clear(&got);
    }
    pgsess_close(s);

    /* A pinned session's statements too. */
    s = open_with_callback(collect_notice, &got, true);
    EXEC(s, "DO $$ BEGIN RAISE NOTICE 'pinned'; END $$");
    CHECK_INTEQ(got.n, 1);
    notices_clear(&got);
    pgsess_close(s);
}

/* The callback and its user data are part of the pool key. */
static void test_pool_key(void)
{
    struct notices a = {0}, b = {0};
    pgsess_session *plain = open_ctest(NULL);
    pgsess_session *s1 = open_with_callback(collect_notice, &a, false);
    pgsess_session *s1_again = open_with_callback(collect_notice, &a, false);
    pgsess_session *s2 = open_with_callback(collect_notice_too, &a, false);
    pgsess_session *s3 = open_with_callback(collect_notice, &b, false);
    pgsess_session *off = open_with_callback(NULL, &a, false);
    pgsess_options *o = pgsess_options_new();
    pgsess_session *s_off;
    pgsess_stats st1, st2;

    CHECK_STREQ(pgsess_pool_id(s1), pgsess_pool_id(s1_again));
    CHECK(strcmp(pgsess_pool_id(s1), pgsess_pool_id(plain)) != 0);
    CHECK(strcmp(pgsess_pool_id(s1), pgsess_pool_id(s2)) != 0);
    CHECK(strcmp(pgsess_pool_id(s1), pgsess_pool_id(s3)) != 0);
    CHECK(strcmp(pgsess_pool_id(s2), pgsess_pool_id(s3)) != 0);
    CHECK_STREQ(pgsess_pool_id(off), pgsess_pool_id(plain)); /* a NULL callback is none */
    /* Set, then turned off again: no callback. */
    pgsess_options_set_notice_callback(o, collect_notice, &a);
    pgsess_options_set_notice_callback(o, NULL, NULL);
    s_off = open_ctest(o);
    CHECK_STREQ(pgsess_pool_id(s_off), pgsess_pool_id(plain));
    CHECK_INTEQ(pgsess_options_set_notice_callback(NULL, collect_notice, &a), PGSESS_INTERFACE_ERROR);
    pgsess_options_free(o);

    /* Each pool delivers to its own callback and user data only. */
    EXEC(s1, "DO $$ BEGIN RAISE NOTICE 'to a'; END $$");
    EXEC(s3, "DO $$ BEGIN RAISE NOTICE 'to b'; END $$");
    EXEC(plain, "DO $$ BEGIN RAISE NOTICE 'to nobody'; END $$");
    EXEC(s_off, "DO $$ BEGIN RAISE NOTICE 'to nobody'; END $$");
    CHECK_INTEQ(a.n, 1);
    CHECK_INTEQ(b.n, 1);
    if (a.n == 1 && b.n == 1) {
        CHECK_STREQ(notice_field(&a, 0, PG_DIAG_MESSAGE_PRIMARY), "to a");
        CHECK_STREQ(notice_field(&b, 0, PG_DIAG_MESSAGE_PRIMARY), "to b");
    }
    /* Separate pools: separate connections. */
    CHECK(pgsess_pool_stats(s1, &st1) == PGSESS_OK && pgsess_pool_stats(s3, &st2) == PGSESS_OK);
    CHECK(st1.connects >= 1 && st2.connects >= 1);
    notices_clear(&a);
    notices_clear(&b);

    pgsess_close(plain);
    pgsess_close(s1);
    pgsess_close(s1_again);
    pgsess_close(s2);
    pgsess_close(s3);
    pgsess_close(off);
    pgsess_close(s_off);
}

int main(void)
{
    pgsess_session *s = open_ctest(NULL);
    pq = pq_connect();
    test_server_errors(s);
    test_client_errors();
    test_notices();
    test_pool_key();
    pgsess_close(s);
    PQfinish(pq);
    return CHECK_DONE();
}
