/*
 * Values API through the C ABI: typed getters and their distinct codes, row-at-a-time access,
 * JSON and the seed's Results members, PQexecParams-shaped parameters (binary bytea with zero
 * bytes, declared types), and streaming a result far larger than its chunk.
 */
#define _POSIX_C_SOURCE 200809L
#include <pgsess.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "helpers.h"

static void typed_getters(pgsess_session *s) {
    pgsess_results *r = Q(s, "SELECT 42::int2, 9000000000::int8, 2.5::float8, 12.25::numeric, true, "
                             "'\\x00ff00'::bytea, 'txt'::text, NULL::int4, "
                             "'2000-01-01 02:00:00.5+02'::timestamptz, 1e400::numeric");
    if (!r) return;
    int64_t i = -1;
    double d = -1;
    bool b = false;
    CHECK_INTEQ(pgsess_results_get_int64(r, 0, 0, &i), PGSESS_OK);
    CHECK_INTEQ(i, 42);
    CHECK_INTEQ(pgsess_results_get_int64(r, 0, 1, &i), PGSESS_OK);
    CHECK(i == 9000000000LL);
    CHECK_INTEQ(pgsess_results_get_double(r, 0, 2, &d), PGSESS_OK);
    CHECK(d == 2.5);
    CHECK_INTEQ(pgsess_results_get_double(r, 0, 3, &d), PGSESS_OK);
    CHECK(d == 12.25);
    CHECK_INTEQ(pgsess_results_get_bool(r, 0, 4, &b), PGSESS_OK);
    CHECK(b);
    size_t len = 99;
    const uint8_t *bytes = pgsess_results_get_bytes(r, 0, 5, &len);
    CHECK(bytes != NULL && len == 3 && bytes[0] == 0 && bytes[1] == 0xff && bytes[2] == 0);
    bytes = pgsess_results_get_bytes(r, 0, 6, &len);
    CHECK(bytes != NULL && len == 3 && memcmp(bytes, "txt", 3) == 0);
    CHECK_INTEQ(pgsess_results_get_epoch_micros(r, 0, 8, &i), PGSESS_OK);
    CHECK(i == 946684800500000LL);

    /* Refusals are distinct codes and leave *out untouched. */
    i = 7;
    CHECK_INTEQ(pgsess_results_get_int64(r, 0, 7, &i), PGSESS_NULL_VALUE);
    CHECK_INTEQ(pgsess_results_get_int64(r, 0, 6, &i), PGSESS_TYPE_MISMATCH);
    CHECK_INTEQ(pgsess_results_get_int64(r, 5, 0, &i), PGSESS_OUT_OF_RANGE);
    CHECK_INTEQ(pgsess_results_get_int64(r, 0, 50, &i), PGSESS_OUT_OF_RANGE);
    CHECK_INTEQ(pgsess_results_get_double(r, 0, 9, &d), PGSESS_VALUE_OVERFLOW);
    CHECK_INTEQ(i, 7);
    CHECK_INTEQ(pgsess_results_get_int64(NULL, 0, 0, &i), PGSESS_INTERFACE_ERROR);
    CHECK_INTEQ(pgsess_results_get_int64(r, 0, 0, NULL), PGSESS_INTERFACE_ERROR);
    len = 5;
    CHECK(pgsess_results_get_bytes(r, 0, 7, &len) == NULL && len == 5);
    CHECK_STREQ(pgsess_code_name(PGSESS_VALUE_OVERFLOW), "PGSESS_VALUE_OVERFLOW");
    pgsess_results_free(r);
}

static void rows_json_and_seed_members(pgsess_session *s) {
    pgsess_results *r = Q(s, "SELECT i AS n, 'v' || i AS s, NULL::text AS z FROM generate_series(1, 3) i");
    if (!r) return;
    const char *vals[3];
    size_t lens[3];
    CHECK_INTEQ(pgsess_results_row(r, 1, vals, lens, 3), 3);
    CHECK_STREQ(vals[0], "2");
    CHECK_STREQ(vals[1], "v2");
    CHECK(vals[2] == NULL && lens[2] == 0 && lens[1] == 2);
    CHECK_INTEQ(pgsess_results_row(r, 0, vals, NULL, 2), 2);
    CHECK_INTEQ(pgsess_results_row(r, 3, vals, lens, 3), 0);
    CHECK_INTEQ(pgsess_results_row(r, 0, NULL, lens, 3), 0);

    char *json = pgsess_results_json(r);
    CHECK_STREQ(json, "[{\"n\":1,\"s\":\"v1\",\"z\":null},{\"n\":2,\"s\":\"v2\",\"z\":null},{\"n\":3,\"s\":\"v3\",\"z\":null}]");
    pgsess_string_free(json);
    char *row = pgsess_results_row_json(r, 2);
    CHECK_STREQ(row, "{\"n\":3,\"s\":\"v3\",\"z\":null}");
    pgsess_string_free(row);
    CHECK(pgsess_results_row_json(r, 3) == NULL);
    pgsess_error *err = NULL;
    CHECK(pgsess_results_as_dict(r, &err) == NULL);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_INTERFACE_ERROR);
    CHECK_CONTAINS(pgsess_error_message(err), "exactly one row");
    pgsess_error_free(err);
    CHECK_STREQ(pgsess_results_status(r), "SELECT 3");
    CHECK_INTEQ(pgsess_results_count(r), 3);
    CHECK_CONTAINS(pgsess_results_query(r), "generate_series(1, 3)");
    pgsess_results_free(r);

    r = Q(s, "SELECT true AS ok, '{\"a\": 1}'::jsonb AS doc");
    if (!r) return;
    char *dict = pgsess_results_as_dict(r, &err);
    CHECK_STREQ(dict, "{\"ok\":true,\"doc\":{\"a\": 1}}");
    pgsess_string_free(dict);
    char *items = pgsess_results_items(r);
    CHECK_STREQ(items, "[{\"ok\":true,\"doc\":{\"a\": 1}}]");
    pgsess_string_free(items);
    pgsess_results_free(r);

    r = Q(s, "SET application_name = 'values_c'");
    CHECK_STREQ(pgsess_results_status(r), "SET");
    CHECK_INTEQ(pgsess_results_count(r), -1);
    pgsess_results_free(r);
}

static void binary_params(pgsess_session *s) {
    static const char blob[] = {0, 'a', 0, (char)0xff, 0};
    const uint32_t types[] = {17, 20};
    const char *values[] = {blob, "41"};
    const int32_t lengths[] = {5, 0};
    const int32_t formats[] = {1, 0};
    pgsess_error *err = NULL;
    pgsess_results *r = pgsess_query_params(s, "SELECT $1, length($1), pg_typeof($2)::text, $2 + 1", 2, types,
                                            values, lengths, formats, &err);
    CHECK(r != NULL);
    if (!r) { print_err(__FILE__, __LINE__, "query_params", err); pgsess_error_free(err); return; }
    size_t len = 0;
    const uint8_t *back = pgsess_results_get_bytes(r, 0, 0, &len);
    CHECK(back && len == 5 && memcmp(back, blob, 5) == 0);
    CHECK_STREQ(pgsess_results_value(r, 0, 0), "\\x006100ff00");
    CHECK_STREQ(pgsess_results_value(r, 0, 1), "5");
    CHECK_STREQ(pgsess_results_value(r, 0, 2), "bigint");
    CHECK_STREQ(pgsess_results_value(r, 0, 3), "42");
    pgsess_results_free(r);
    /* Binary without lengths is refused before anything is sent. */
    r = pgsess_query_params(s, "SELECT $1", 1, NULL, values, NULL, formats, &err);
    CHECK(r == NULL && pgsess_error_code(err) == PGSESS_INTERFACE_ERROR);
    pgsess_error_free(err);
}

static void streaming(pgsess_session *s) {
    pgsess_error *err = NULL;
    const char *n[] = {"100000"};
    pgsess_stream *st = pgsess_query_stream(s, "SELECT i, md5(i::text) FROM generate_series(1, $1::int) i", 1, n, 3000, &err);
    CHECK(st != NULL);
    if (!st) { print_err(__FILE__, __LINE__, "stream", err); pgsess_error_free(err); return; }
    long long seen = 0, chunks = 0, bad = 0;
    pgsess_results *part;
    while ((part = pgsess_stream_next(st, &err)) != NULL) {
        size_t rows = pgsess_results_nrows(part);
        if (rows > 3000) bad++;
        for (size_t i = 0; i < rows; i++) {
            int64_t v = 0;
            seen++;
            if (pgsess_results_get_int64(part, i, 0, &v) != PGSESS_OK || v != seen) bad++;
        }
        chunks++;
        pgsess_results_free(part);
    }
    CHECK(err == NULL);
    CHECK_INTEQ(seen, 100000);
    CHECK_INTEQ(chunks, 34);
    CHECK_INTEQ(bad, 0);
    CHECK(pgsess_stream_next(st, &err) == NULL && err == NULL);
    pgsess_stream_free(st);

    /* Freed early: the connection is reused at once (the session has a pool of one). */
    st = pgsess_query_stream(s, "SELECT generate_series(1, 1000000)", 0, NULL, 10, &err);
    part = pgsess_stream_next(st, &err);
    CHECK_INTEQ(pgsess_results_nrows(part), 10);
    pgsess_results_free(part);
    pgsess_stream_free(st);
    char *v = SCALAR(s, "SELECT 'reused'");
    CHECK_STREQ(v, "reused");
    free(v);
    CHECK(pgsess_query_stream(s, "SELECT 1", 0, NULL, 0, &err) == NULL);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_INTERFACE_ERROR);
    pgsess_error_free(err);
    CHECK(pgsess_stream_next(NULL, &err) == NULL && pgsess_error_code(err) == PGSESS_INTERFACE_ERROR);
    pgsess_error_free(err);
    pgsess_stream_free(NULL);
}

int main(void) {
    pgsess_options *o = pgsess_options_new();
    pgsess_options_set_pool_max_size(o, 1);
    pgsess_session *s = open_ctest(o);
    pgsess_options_free(o);
    if (!s) return 1;
    typed_getters(s);
    rows_json_and_seed_members(s);
    binary_params(s);
    streaming(s);
    pgsess_close(s);
    return CHECK_DONE();
}
