/*
 * binary.c - binary results as a C program gets them: pgsess_query_binary against libpq's
 * PQexecParams(..., resultFormat = 1) on the same server, value for value and byte for byte,
 * for every expression of the value-fidelity table (and a many-row result with binary and
 * text parameters); column formats; the typed getters on binary values; pgsess_results_get_text
 * and its refusals; the column getters against the per-value ones.
 * pkg-config: libpq
 * Needs env PGSQL_CTEST (a PostgreSQL URI); opens it as pgsess_open("ctest") and with PQconnectdb.
 */
#define _POSIX_C_SOURCE 200809L
#include <pgsess.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "check.h"
#include "helpers.h"

/* The fidelity table of tests/support/fidelity.rs, line for line (tests/binary.rs checks that
 * the two stay the same). */
static const char *const EXPRESSIONS[] = {
/* BEGIN FIDELITY TABLE */
    // integers and oid
    "0::int2",
    "(-32768)::int2",
    "32767::int2",
    "(-2147483648)::int4",
    "2147483647::int4",
    "(-9223372036854775808)::int8",
    "9223372036854775807::int8",
    "4294967295::oid",
    // floating point (extra_float_digits matters)
    "1.5::float4",
    "0.1::float4",
    "3.4028235e38::float4",
    "1e-45::float4",
    "'NaN'::float4",
    "'-Infinity'::float4",
    "'-0'::float4",
    "0.1::float8",
    "(1.0/3)::float8",
    "1e300::float8",
    "5e-324::float8",
    "'Infinity'::float8",
    "'-0'::float8",
    "123456789.123456789::float8",
    // numeric, money, bits
    "123456789012345678901234567890.000000000001::numeric",
    "'NaN'::numeric",
    "'Infinity'::numeric",
    "'-Infinity'::numeric",
    "(-0.00)::numeric(5,2)",
    "1e-20::numeric",
    "(2::numeric ^ 100)",
    "(1.0/3)::numeric",
    "12.34::money",
    "(-1234567.891)::money",
    "B'1010'::bit(4)",
    "B'101'::varbit",
    "B''::varbit",
    // booleans, text kinds
    "true",
    "false",
    "'héllo wörld ✓'::text",
    "''::text",
    "E'line1\\nline2\\ttab'::text",
    "'a\"b\\c''d'::varchar(10)",
    "'ab'::char(5)",
    "'pg_class'::name",
    "'a'::\"char\"",
    "'MiXeD Case'::citext",
    // bytea (bytea_output matters)
    "'\\x00ff10'::bytea",
    "''::bytea",
    "convert_to('quote''s \\ back', 'UTF8')",
    "decode('deadbeef', 'hex')",
    // date and time (DateStyle, TimeZone, IntervalStyle matter)
    "'2024-02-29'::date",
    "'4713-01-01 BC'::date",
    "'5874897-12-31'::date",
    "'infinity'::date",
    "'-infinity'::date",
    "'23:59:59.999999'::time",
    "'00:00'::time",
    "'12:34:56.789+05:30'::timetz",
    "'01:02:03-08'::timetz",
    "'2024-07-01 12:34:56.789'::timestamp",
    "'0044-03-15 12:00:00 BC'::timestamp",
    "'infinity'::timestamp",
    "'2024-07-01 12:34:56.789+02'::timestamptz",
    "'2024-01-15 03:00:00+00'::timestamptz",
    "'2024-03-10 07:30:00+00'::timestamptz",
    "'2024-11-03 06:30:00+00'::timestamptz",
    "'1900-01-01 00:00:00+00'::timestamptz",
    "'0100-06-01 12:00:00+00 BC'::timestamptz",
    "'-infinity'::timestamptz",
    "'294276-12-31 23:59:59+00'::timestamptz",
    "'1 year 2 mons 3 days 04:05:06.7'::interval",
    "'-1 day -00:00:01'::interval",
    "'1 year -1 month 2 days -3 hours'::interval",
    "'0'::interval",
    "'178000000 years'::interval",
    "'0.000001 seconds'::interval",
    "'-2 years -3 mons'::interval",
    // uuid, json
    "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid",
    "'{\"a\": [1, 2.50, null], \"b\": \"x\"}'::json",
    "'{\"a\": [1, 2.50, null], \"b\": \"x\", \"a\": 3}'::jsonb",
    "'[]'::jsonb",
    "'\"str\"'::jsonb",
    "'$.a[*] ? (@ > 1)'::jsonpath",
    // geometric
    "'(1.5,2)'::point",
    "'{1,-1,0}'::line",
    "'[(0,0),(1,1)]'::lseg",
    "'((0,0),(1,1))'::box",
    "'[(0,0),(1,1),(2,0)]'::path",
    "'((0,0),(1,1),(2,0))'::path",
    "'((0,0),(1,1),(2,0))'::polygon",
    "'<(0,0),1.5>'::circle",
    // network
    "'192.168.1.5/24'::inet",
    "'::ffff:1.2.3.4'::inet",
    "'2001:db8::1/64'::inet",
    "'10.0.0.0/8'::cidr",
    "'08:00:2b:01:02:03'::macaddr",
    "'08:00:2b:01:02:03:04:05'::macaddr8",
    // text search, xml, lsn, system types
    "'a fat cat sat on a mat'::tsvector",
    "to_tsvector('english', 'The Fat Rats')",
    "'fat & (rat | cat)'::tsquery",
    "'<a href=\"x\">t&amp;</a>'::xml",
    "'16/B374D848'::pg_lsn",
    "'pg_class'::regclass",
    "'int4'::regtype",
    "'now'::regproc",
    "'sum(int4)'::regprocedure",
    "'+(int4,int4)'::regoperator",
    "'pg_catalog'::regnamespace",
    "'postgres'::regrole",
    "'english'::regconfig",
    "'1 2 3'::int2vector",
    "'23 25'::oidvector",
    "'(1,2)'::tid",
    "'123'::xid",
    "'10:20:10,14,15'::pg_snapshot",
    "'=r/postgres'::aclitem",
    // arrays
    "ARRAY[1,2,NULL]::int4[]",
    "ARRAY[[1,2],[3,4]]",
    "'[0:2]={1,2,3}'::int[]",
    "'[-1:0][2:3]={{1,2},{3,4}}'::int[]",
    "ARRAY[[[1]],[[2]]]",
    "'{}'::int[]",
    "ARRAY['a b','c\"d',NULL,'','NULL','x,y','{z}','back\\slash']::text[]",
    "ARRAY[1.5,NULL,'NaN']::float8[]",
    "ARRAY['2024-01-01 00:00:00+00', '2024-07-01 00:00:00+00']::timestamptz[]",
    "ARRAY[true,false]",
    "ARRAY['\\x01ff'::bytea, NULL]",
    "ARRAY['((0,0),(1,1))'::box, '((2,2),(3,3))'::box]",
    "ARRAY['1 day'::interval]",
    "ARRAY['2024-02-29'::date]",
    "ARRAY[ROW(1,'a')]",
    "ARRAY['{\"k\": 1}'::jsonb]",
    "ARRAY['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid]",
    // ranges and multiranges
    "int4range(1, 10)",
    "'empty'::int4range",
    "int8range(NULL, 5)",
    "numrange(1.5, 2.5, '[]')",
    "daterange('2024-01-01', '2024-12-31')",
    "tsrange('2024-01-01 10:00', NULL)",
    "tstzrange('2024-01-01 10:00+00', '2024-06-01 10:00+00')",
    "'{[1,3), [5,7)}'::int4multirange",
    "'{}'::datemultirange",
    "'{[2024-01-01 00:00+00, 2024-02-01 00:00+00)}'::tstzmultirange",
    // composites, records, enums, domains
    "ROW(1, 'a b', NULL)",
    "ROW(1, ROW(2, 'x\"y'))",
    "ROW('2024-07-01 00:00+00'::timestamptz, '')",
    "('lbl', '2024-07-01 00:00+00')::fid_pair",
    "'happy'::fid_mood",
    "ARRAY['sad', 'ok']::fid_mood[]",
    "7::fid_posint",
    // contrib
    "'a=>1, b=>NULL, \"c d\"=>\"e,f\"'::hstore",
    "'Top.Science.Astronomy'::ltree",
    "'*.Science.*'::lquery",
/* END FIDELITY TABLE */
};

/* The types the table needs, as tests/support/fidelity.rs creates them. */
static void setup(pgsess_session *s)
{
    EXEC(s, "CREATE EXTENSION IF NOT EXISTS hstore; CREATE EXTENSION IF NOT EXISTS citext; "
            "CREATE EXTENSION IF NOT EXISTS ltree; "
            "DO $$BEGIN CREATE TYPE fid_mood AS ENUM ('sad', 'ok', 'happy'); "
            "EXCEPTION WHEN duplicate_object THEN NULL; END$$; "
            "DO $$BEGIN CREATE DOMAIN fid_posint AS int CHECK (VALUE > 0); "
            "EXCEPTION WHEN duplicate_object THEN NULL; END$$; "
            "DO $$BEGIN CREATE TYPE fid_pair AS (label text, at timestamptz); "
            "EXCEPTION WHEN duplicate_object THEN NULL; END$$;");
}

/* Whether pgsess's results equal libpq's binary result cell for cell: shape, types, formats,
 * NULLs, lengths and bytes, with a NUL after each pgsess value. Prints the first difference. */
static bool same_as_libpq(const pgsess_results *r, const PGresult *res, const char *what)
{
    size_t nrows = (size_t)PQntuples(res), ncols = (size_t)PQnfields(res), row, col;
    if (pgsess_results_nrows(r) != nrows || pgsess_results_ncols(r) != ncols) {
        fprintf(stderr, "%s: %zu x %zu, libpq %zu x %zu\n", what, pgsess_results_nrows(r),
                pgsess_results_ncols(r), nrows, ncols);
        return false;
    }
    for (col = 0; col < ncols; col++) {
        if (pgsess_results_column_type(r, col) != PQftype(res, (int)col) ||
            pgsess_results_column_format(r, col) != PQfformat(res, (int)col)) {
            fprintf(stderr, "%s: column %zu type %u format %d, libpq %u %d\n", what, col,
                    pgsess_results_column_type(r, col), pgsess_results_column_format(r, col),
                    PQftype(res, (int)col), PQfformat(res, (int)col));
            return false;
        }
    }
    for (row = 0; row < nrows; row++) {
        for (col = 0; col < ncols; col++) {
            const char *v = pgsess_results_value(r, row, col);
            size_t len = pgsess_results_value_length(r, row, col);
            bool null = PQgetisnull(res, (int)row, (int)col);
            size_t theirs = (size_t)PQgetlength(res, (int)row, (int)col);
            bool ok = null ? (v == NULL && pgsess_results_is_null(r, row, col))
                           : (v != NULL && len == theirs && memcmp(v, PQgetvalue(res, (int)row, (int)col), len) == 0 &&
                              v[len] == '\0' && !pgsess_results_is_null(r, row, col));
            if (!ok) {
                fprintf(stderr, "%s: cell (%zu, %zu): pgsess %zu bytes%s, libpq %zu bytes%s\n", what, row, col, len,
                        v ? "" : " (NULL)", theirs, null ? " (NULL)" : "");
                return false;
            }
        }
    }
    return true;
}

static void every_value_equals_libpq(pgsess_session *s, PGconn *pq)
{
    size_t n = sizeof EXPRESSIONS / sizeof EXPRESSIONS[0], i, compared = 0, refused = 0;
    char sql[512];
    for (i = 0; i < n; i++) {
        pgsess_error *err = NULL;
        snprintf(sql, sizeof sql, "SELECT %s", EXPRESSIONS[i]);
        PGresult *res = PQexecParams(pq, sql, 0, NULL, NULL, NULL, NULL, 1);
        pgsess_results *r = pgsess_query_binary(s, sql, 0, NULL, NULL, NULL, NULL, &err);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            /* A type without a binary output function (aclitem): refused alike. */
            const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
            if (!CHECK(r == NULL && err != NULL) || !CHECK_STREQ(pgsess_error_sqlstate(err), state))
                fprintf(stderr, "  for %s\n", sql);
            refused++;
        } else if (CHECK(r != NULL)) {
            if (!CHECK(same_as_libpq(r, res, EXPRESSIONS[i])))
                fprintf(stderr, "  for %s\n", sql);
            compared++;
        } else {
            print_err(__FILE__, __LINE__, sql, err);
        }
        pgsess_results_free(r);
        pgsess_error_free(err);
        PQclear(res);
    }
    CHECK(compared + refused == n && compared >= 150 && refused == 1);
    printf("binary: %zu values equal to libpq's binary bytes, %zu refused by the server alike\n", compared, refused);
}

/* Many rows and columns, NULLs, a binary bytea parameter holding zero bytes and a declared
 * int8 text parameter: the same cells as libpq's. */
static void many_rows_with_parameters(pgsess_session *s, PGconn *pq)
{
    const char *sql = "SELECT i, i * 1.5::float8, md5(i::text), NULLIF(i % 3, 0), $1::bytea, $2 + i, "
                      "(i || '.25')::numeric, '2000-01-01'::date + i, now() - now() "
                      "FROM generate_series(1, 500) i";
    static const char blob[] = {0, 1, 0, (char)0xff, '\\', 0};
    const char *values[2] = {blob, "40"};
    const int32_t lengths[2] = {(int32_t)sizeof blob, 0};
    const int32_t formats[2] = {1, 0};
    const uint32_t types[2] = {0, 20};
    const int lengths_pq[2] = {(int)sizeof blob, 0};
    const int formats_pq[2] = {1, 0};
    const Oid types_pq[2] = {0, 20};
    pgsess_error *err = NULL;
    pgsess_results *r = pgsess_query_binary(s, sql, 2, types, values, lengths, formats, &err);
    PGresult *res = PQexecParams(pq, sql, 2, types_pq, values, lengths_pq, formats_pq, 1);
    if (CHECK(r != NULL && PQresultStatus(res) == PGRES_TUPLES_OK))
        CHECK(same_as_libpq(r, res, "500 rows"));
    else
        print_err(__FILE__, __LINE__, "many rows", err);
    pgsess_results_free(r);
    pgsess_error_free(err);
    PQclear(res);
}

static void formats_and_getters(pgsess_session *s)
{
    pgsess_error *err = NULL;
    pgsess_results *t = Q(s, "SELECT 1::int4, 'x'::text");
    const char *sql = "SELECT 42::int2, 9000000000::int8, 2147483647::int8, 2.5::float4, 12.25::numeric, true, "
                      "'\\x00ff00'::bytea, 'txt'::text, NULL::int4, '2000-01-01 02:00:00.5+02'::timestamptz, "
                      "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, '1 day'::interval, 7::oid, "
                      "'-Infinity'::numeric, '{\"k\": [1, 2]}'::jsonb";
    pgsess_results *b = pgsess_query_binary(s, sql, 0, NULL, NULL, NULL, NULL, &err);
    if (!CHECK(t != NULL && b != NULL)) {
        print_err(__FILE__, __LINE__, "binary getters", err);
        pgsess_error_free(err);
        pgsess_results_free(t);
        pgsess_results_free(b);
        return;
    }
    /* Formats: 0 text, 1 binary, -1 out of range or NULL. */
    CHECK_INTEQ(pgsess_results_column_format(t, 0), 0);
    CHECK_INTEQ(pgsess_results_column_format(b, 0), 1);
    CHECK_INTEQ(pgsess_results_column_format(b, 14), 1);
    CHECK_INTEQ(pgsess_results_column_format(b, 15), -1);
    CHECK_INTEQ(pgsess_results_column_format(NULL, 0), -1);

    int64_t i64 = -1;
    int32_t i32 = -1;
    double d = -1;
    bool flag = false;
    CHECK(pgsess_results_get_int64(b, 0, 0, &i64) == PGSESS_OK && i64 == 42);
    CHECK(pgsess_results_get_int32(b, 0, 0, &i32) == PGSESS_OK && i32 == 42);
    CHECK(pgsess_results_get_int64(b, 0, 1, &i64) == PGSESS_OK && i64 == 9000000000LL);
    i32 = 5;
    CHECK_INTEQ(pgsess_results_get_int32(b, 0, 1, &i32), PGSESS_VALUE_OVERFLOW);
    CHECK_INTEQ(i32, 5);
    CHECK(pgsess_results_get_int32(b, 0, 2, &i32) == PGSESS_OK && i32 == 2147483647);
    CHECK(pgsess_results_get_int32(b, 0, 12, &i32) == PGSESS_OK && i32 == 7);
    CHECK(pgsess_results_get_int32(t, 0, 0, &i32) == PGSESS_OK && i32 == 1);
    CHECK(pgsess_results_get_double(b, 0, 3, &d) == PGSESS_OK && d == 2.5);
    CHECK(pgsess_results_get_double(b, 0, 4, &d) == PGSESS_OK && d == 12.25);
    CHECK(pgsess_results_get_double(b, 0, 13, &d) == PGSESS_OK && d < 0 && d * 0 != 0);
    CHECK(pgsess_results_get_bool(b, 0, 5, &flag) == PGSESS_OK && flag);
    size_t len = 99;
    const uint8_t *bytes = pgsess_results_get_bytes(b, 0, 6, &len);
    CHECK(bytes != NULL && len == 3 && bytes[0] == 0 && bytes[1] == 0xff && bytes[2] == 0);
    CHECK(pgsess_results_get_epoch_micros(b, 0, 9, &i64) == PGSESS_OK && i64 == 946684800500000LL);
    CHECK_INTEQ(pgsess_results_get_int64(b, 0, 8, &i64), PGSESS_NULL_VALUE);
    CHECK_INTEQ(pgsess_results_get_int64(b, 0, 7, &i64), PGSESS_TYPE_MISMATCH);

    /* uuid: 16 bytes, from binary and from text alike. */
    static const uint8_t want[16] = {0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8,
                                     0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11};
    uint8_t uuid[16];
    memset(uuid, 0, sizeof uuid);
    CHECK(pgsess_results_get_uuid(b, 0, 10, uuid) == PGSESS_OK && memcmp(uuid, want, 16) == 0);
    pgsess_results *tu = Q(s, "SELECT 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid");
    memset(uuid, 0, sizeof uuid);
    CHECK(pgsess_results_get_uuid(tu, 0, 0, uuid) == PGSESS_OK && memcmp(uuid, want, 16) == 0);
    pgsess_results_free(tu);
    memset(uuid, 7, sizeof uuid);
    CHECK_INTEQ(pgsess_results_get_uuid(b, 0, 7, uuid), PGSESS_TYPE_MISMATCH);
    CHECK(uuid[0] == 7 && uuid[15] == 7);
    CHECK_INTEQ(pgsess_results_get_uuid(b, 0, 10, NULL), PGSESS_INTERFACE_ERROR);

    /* get_text: the server's text, owned by the results, the same pointer each time. */
    const char *text = NULL, *again = NULL;
    CHECK(pgsess_results_get_text(b, 0, 1, &text, &err) == PGSESS_OK && err == NULL);
    CHECK_STREQ(text, "9000000000");
    CHECK(pgsess_results_get_text(b, 0, 1, &again, NULL) == PGSESS_OK && again == text);
    CHECK(pgsess_results_get_text(b, 0, 4, &text, NULL) == PGSESS_OK);
    CHECK_STREQ(text, "12.25");
    CHECK(pgsess_results_get_text(b, 0, 6, &text, NULL) == PGSESS_OK);
    CHECK_STREQ(text, "\\x00ff00");
    CHECK(pgsess_results_get_text(b, 0, 10, &text, NULL) == PGSESS_OK);
    CHECK_STREQ(text, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
    CHECK(pgsess_results_get_text(b, 0, 13, &text, NULL) == PGSESS_OK);
    CHECK_STREQ(text, "-Infinity");
    CHECK(pgsess_results_get_text(b, 0, 14, &text, NULL) == PGSESS_OK);
    CHECK_STREQ(text, "{\"k\": [1, 2]}");
    CHECK(pgsess_results_get_text(t, 0, 1, &text, NULL) == PGSESS_OK && text == pgsess_results_value(t, 0, 1));
    text = "untouched";
    CHECK_INTEQ(pgsess_results_get_text(b, 0, 11, &text, &err), PGSESS_NOT_SUPPORTED_ERROR);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_NOT_SUPPORTED_ERROR);
    CHECK_CONTAINS(pgsess_error_message(err), "pgsess_query_params");
    CHECK_STREQ(text, "untouched");
    pgsess_error_free(err);
    err = NULL;
    CHECK_INTEQ(pgsess_results_get_text(b, 0, 8, &text, &err), PGSESS_NULL_VALUE);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_NULL_VALUE);
    pgsess_error_free(err);
    err = NULL;
    CHECK_INTEQ(pgsess_results_get_text(b, 1, 0, &text, NULL), PGSESS_OUT_OF_RANGE);
    CHECK_INTEQ(pgsess_results_get_text(NULL, 0, 0, &text, NULL), PGSESS_INTERFACE_ERROR);
    CHECK_INTEQ(pgsess_results_get_text(b, 0, 0, NULL, NULL), PGSESS_INTERFACE_ERROR);
    CHECK_STREQ(text, "untouched");
    pgsess_results_free(t);
    pgsess_results_free(b);

    /* A statement error is an error; NULL arguments are refused. */
    CHECK(pgsess_query_binary(s, "SELECT 1/0", 0, NULL, NULL, NULL, NULL, &err) == NULL);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_DATA_ERROR);
    pgsess_error_free(err);
    err = NULL;
    CHECK(pgsess_query_binary(NULL, "SELECT 1", 0, NULL, NULL, NULL, NULL, &err) == NULL);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_INTERFACE_ERROR);
    pgsess_error_free(err);
}

/* The column getters give, for a block of rows, what the per-value getters give for each, in
 * either format, with NULLs; their errors, ranges and NULL arguments. */
static void column_getters(pgsess_session *s)
{
    const char *sql = "SELECT CASE WHEN g % 7 = 0 THEN NULL ELSE g * 3 END::int8 AS i, g * 0.25::float8 AS f, "
                      "g % 2 = 0 AS b, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 s' AS t, 'x' AS s "
                      "FROM generate_series(1, 1000) g";
    for (int binary = 0; binary < 2; binary++) {
        pgsess_error *err = NULL;
        pgsess_results *r = binary ? pgsess_query_binary(s, sql, 0, NULL, NULL, NULL, NULL, &err)
                                   : pgsess_query(s, sql, 0, NULL, &err);
        if (!CHECK(r != NULL)) {
            pgsess_error_free(err);
            return;
        }
        static int64_t ints[1000], micros[1000];
        static double floats[1000];
        static bool bools[1000], nulls[1000], bnulls[1000];
        size_t read = 7;
        CHECK_INTEQ(pgsess_results_get_int64_column(r, 0, 0, 1000, ints, nulls, &read), PGSESS_OK);
        CHECK_INTEQ(read, 1000);
        CHECK_INTEQ(pgsess_results_get_double_column(r, 1, 0, 1000, floats, NULL, NULL), PGSESS_OK);
        CHECK_INTEQ(pgsess_results_get_bool_column(r, 2, 0, 1000, bools, bnulls, NULL), PGSESS_OK);
        CHECK_INTEQ(pgsess_results_get_epoch_micros_column(r, 3, 0, 1000, micros, NULL, NULL), PGSESS_OK);
        int same = 1;
        for (size_t i = 0; i < 1000; i++) {
            int64_t iv = -1, us = 0;
            double f = 0;
            bool b = false;
            pgsess_code ic = pgsess_results_get_int64(r, i, 0, &iv);
            same &= ic == (nulls[i] ? PGSESS_NULL_VALUE : PGSESS_OK) && (nulls[i] ? ints[i] == 0 : ints[i] == iv);
            same &= pgsess_results_get_double(r, i, 1, &f) == PGSESS_OK && f == floats[i];
            same &= pgsess_results_get_bool(r, i, 2, &b) == PGSESS_OK && b == bools[i] && !bnulls[i];
            same &= pgsess_results_get_epoch_micros(r, i, 3, &us) == PGSESS_OK && us == micros[i];
        }
        CHECK(same);
        CHECK(nulls[6] && !nulls[5] && ints[5] == 18);
        /* A block from the middle; without nulls the first NULL (row 13) stops it. */
        CHECK_INTEQ(pgsess_results_get_int64_column(r, 0, 7, 10, ints, NULL, &read), PGSESS_NULL_VALUE);
        CHECK_INTEQ(read, 6);
        CHECK_INTEQ(ints[0], 24);
        /* A type the getter refuses: the per-value getter's code, nothing read. */
        CHECK_INTEQ(pgsess_results_get_int64_column(r, 4, 0, 10, ints, NULL, &read), PGSESS_TYPE_MISMATCH);
        CHECK_INTEQ(read, 0);
        /* Out of range, before anything is written. */
        ints[0] = 42;
        CHECK_INTEQ(pgsess_results_get_int64_column(r, 0, 995, 10, ints, NULL, &read), PGSESS_OUT_OF_RANGE);
        CHECK_INTEQ(pgsess_results_get_int64_column(r, 5, 0, 1, ints, NULL, &read), PGSESS_OUT_OF_RANGE);
        CHECK_INTEQ(pgsess_results_get_int64_column(r, 0, SIZE_MAX, 2, ints, NULL, &read), PGSESS_OUT_OF_RANGE);
        CHECK_INTEQ(pgsess_results_get_int64_column(r, 0, 1, SIZE_MAX, ints, NULL, &read), PGSESS_OUT_OF_RANGE);
        CHECK_INTEQ(ints[0], 42);
        CHECK_INTEQ(pgsess_results_get_int64_column(r, 0, 1000, 0, NULL, NULL, &read), PGSESS_OK);
        CHECK_INTEQ(pgsess_results_get_int64_column(r, 0, 0, 1, NULL, NULL, &read), PGSESS_INTERFACE_ERROR);
        CHECK_INTEQ(pgsess_results_get_int64_column(NULL, 0, 0, 1, ints, NULL, &read), PGSESS_INTERFACE_ERROR);
        CHECK_INTEQ(read, 0);
        pgsess_results_free(r);
    }
}

int main(void)
{
    pgsess_options *o = pgsess_options_new();
    /* formats_and_getters holds three results at once. */
    pgsess_options_set_pool_max_size(o, 3);
    pgsess_session *s = open_ctest(o);
    pgsess_options_free(o);
    PGconn *pq = PQconnectdb(getenv("PGSQL_CTEST"));
    if (!CHECK(PQstatus(pq) == CONNECTION_OK)) {
        fprintf(stderr, "libpq: %s", PQerrorMessage(pq));
        PQfinish(pq);
        pgsess_close(s);
        return CHECK_DONE();
    }
    setup(s);
    every_value_equals_libpq(s, pq);
    many_rows_with_parameters(s, pq);
    formats_and_getters(s);
    column_getters(s);
    PQfinish(pq);
    pgsess_close(s);
    return CHECK_DONE();
}
