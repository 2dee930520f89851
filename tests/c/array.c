/*
 * array.c - arrays in their text form: pgsess_array_split over what the server prints for arrays
 * of many types (each element compared with the server's own unnest() of the same array, the
 * dimensions with array_length()), and pgsess_array_literal sent back as a parameter (the
 * server's unnest() and array_dims() of it compared with the elements and shape given); room
 * too small, text that is not an array, NULL arguments.
 * Needs env PGSQL_CTEST (a PostgreSQL URI); opens it as pgsess_open("ctest").
 */
#define _POSIX_C_SOURCE 200809L
#include <pgsess.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "helpers.h"

/* Split `text` with room as the header says always suffices; returns the element count, or
 * (size_t)-1 on error. */
static size_t split(const char *text, char delim, char **buf, const char ***elems, size_t **lens, size_t *dims,
                    size_t *ndims)
{
    size_t len = strlen(text);
    size_t max = len / 2 + 1;
    *buf = malloc(len + 1);
    *elems = malloc(max * sizeof **elems);
    *lens = malloc(max * sizeof **lens);
    size_t n = 0;
    pgsess_error *err = NULL;
    pgsess_code c = pgsess_array_split(text, len, delim, *buf, len + 1, *elems, *lens, max, &n, dims, ndims, &err);
    if (c != PGSESS_OK) {
        print_err(__FILE__, __LINE__, text, err);
        pgsess_error_free(err);
        return (size_t)-1;
    }
    return n;
}

/* The array expression `expr`: split its text and compare with unnest() and array_length(). */
static void check_against_server(pgsess_session *s, const char *expr, char delim)
{
    char sql[1024];
    snprintf(sql, sizeof sql, "SELECT (%s)::text", expr);
    pgsess_results *r = Q(s, sql);
    const char *text = r ? pgsess_results_value(r, 0, 0) : NULL;
    if (!CHECK(text != NULL)) {
        pgsess_results_free(r);
        return;
    }
    char *buf;
    const char **elems;
    size_t *lens, dims[6], ndims = 9;
    size_t n = split(text, delim, &buf, &elems, &lens, dims, &ndims);
    snprintf(sql, sizeof sql, "SELECT v FROM unnest(%s) WITH ORDINALITY AS t(v, i) ORDER BY i", expr);
    pgsess_results *u = Q(s, sql);
    if (CHECK(n != (size_t)-1) && u != NULL) {
        if (!CHECK_INTEQ(n, pgsess_results_nrows(u)))
            fprintf(stderr, "    for %s = %s\n", expr, text);
        for (size_t i = 0; i < n && i < pgsess_results_nrows(u); i++) {
            const char *want = pgsess_results_value(u, i, 0);
            if (!CHECK_STREQ(elems[i], want))
                fprintf(stderr, "    element %zu of %s = %s\n", i + 1, expr, text);
            if (want)
                CHECK_INTEQ(lens[i], strlen(want));
        }
        snprintf(sql, sizeof sql, "SELECT coalesce(array_ndims(%s), 0)", expr);
        pgsess_results *d = Q(s, sql);
        int64_t want_ndims = -1;
        if (d && pgsess_results_get_int64(d, 0, 0, &want_ndims) == PGSESS_OK)
            CHECK_INTEQ(ndims, want_ndims);
        pgsess_results_free(d);
        for (size_t k = 0; k < ndims && k < 6; k++) {
            snprintf(sql, sizeof sql, "SELECT array_length(%s, %zu)", expr, k + 1);
            pgsess_results *l = Q(s, sql);
            int64_t want = -1;
            if (l && pgsess_results_get_int64(l, 0, 0, &want) == PGSESS_OK)
                CHECK_INTEQ(dims[k], want);
            pgsess_results_free(l);
        }
    }
    pgsess_results_free(u);
    pgsess_results_free(r);
    free(buf);
    free(elems);
    free(lens);
}

int main(void)
{
    pgsess_session *s = open_ctest(NULL);

    /* What the server prints, type by type. */
    static const char *exprs[] = {
        "ARRAY[1, 2, NULL, -4]::int4[]",
        "ARRAY[9223372036854775807, -9223372036854775808]::int8[]",
        "ARRAY[1.5, 'NaN', '-Infinity']::float8[]",
        "ARRAY[true, false, NULL]",
        "ARRAY['a b', 'c\"d', 'e\\f', '', 'NULL', 'null', NULL, ' x ', '{}', ',', 'é✓']::text[]",
        "ARRAY['x', 'y']::varchar(3)[]",
        "ARRAY['ab']::char(4)[]",
        "ARRAY[123.450, 'NaN']::numeric[]",
        "ARRAY['2024-02-29', 'infinity']::date[]",
        "ARRAY['2024-02-29 12:34:56.5+01']::timestamptz[]",
        "ARRAY['\\x00ff'::bytea, NULL]",
        "ARRAY['{\"a\": [1, \"b,c\"]}'::jsonb]",
        "ARRAY['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11']::uuid[]",
        "ARRAY[ROW(1, 'a b')::record]::text[]",
        "'{{1,2,3},{4,5,6}}'::int[]",
        "'{{{1},{2}},{{3},{4}}}'::int[]",
        "'[0:1]={5,6}'::int[]",
        "'[-1:0][2:3]={{1,2},{3,4}}'::int[]",
        "'{}'::int[]",
        "ARRAY[]::text[]",
        "ARRAY['{\"x\": 1}'::json]",
        "ARRAY['1 day 02:00'::interval]",
        "ARRAY['(1,2)'::point, NULL]",
    };
    for (size_t i = 0; i < sizeof exprs / sizeof exprs[0]; i++)
        check_against_server(s, exprs[i], ',');
    /* box, the built-in type whose delimiter is ';'. */
    check_against_server(s, "ARRAY['(1,2),(0,0)'::box, '(3,4),(1,1)'::box]", ';');

    /* Literal -> parameter -> the server's own view of it. */
    const char *el[] = { "1", "a \"b\"", "c\\d", "", "NULL", NULL, " x ", "{,}", "é" };
    size_t ll[9];
    for (int i = 0; i < 9; i++)
        ll[i] = el[i] ? strlen(el[i]) : 0;
    pgsess_error *err = NULL;
    char *lit = pgsess_array_literal(el, ll, 9, NULL, 0, &err);
    if (CHECK(lit != NULL)) {
        const char *p[] = { lit };
        pgsess_results *u = QP(s, "SELECT v FROM unnest($1::text[]) WITH ORDINALITY AS t(v, i) ORDER BY i", 1, p);
        if (u && CHECK_INTEQ(pgsess_results_nrows(u), 9))
            for (size_t i = 0; i < 9; i++)
                CHECK_STREQ(pgsess_results_value(u, i, 0), el[i]);
        pgsess_results_free(u);
        pgsess_string_free(lit);
    }
    const char *grid[] = { "1", "2", NULL, "4", "5", "6" };
    size_t gl[] = { 1, 1, 0, 1, 1, 1 };
    size_t gd[] = { 2, 3 };
    lit = pgsess_array_literal(grid, gl, 6, gd, 2, &err);
    if (CHECK(lit != NULL)) {
        CHECK_STREQ(lit, "{{\"1\",\"2\",NULL},{\"4\",\"5\",\"6\"}}");
        const char *p[] = { lit };
        pgsess_results *d = QP(s, "SELECT array_dims($1::int[]), ($1::int[])[2][3]", 1, p);
        if (d) {
            CHECK_STREQ(pgsess_results_value(d, 0, 0), "[1:2][1:3]");
            CHECK_STREQ(pgsess_results_value(d, 0, 1), "6");
        }
        pgsess_results_free(d);
        pgsess_string_free(lit);
    }
    lit = pgsess_array_literal(NULL, NULL, 0, NULL, 0, &err);
    CHECK_STREQ(lit, "{}");
    pgsess_string_free(lit);

    /* Misuse and bad input: refused with an error, never a crash. */
    size_t wrong[] = { 4, 2 };
    CHECK(pgsess_array_literal(grid, gl, 6, wrong, 2, &err) == NULL);
    CHECK_INTEQ(pgsess_error_code(err), PGSESS_INTERFACE_ERROR);
    pgsess_error_free(err);
    err = NULL;
    const char *nul[] = { "a\0b" };
    size_t nl[] = { 3 };
    CHECK(pgsess_array_literal(nul, nl, 1, NULL, 0, &err) == NULL);
    pgsess_error_free(err);
    err = NULL;
    const char *bad[] = { "\xff" };
    size_t bl[] = { 1 };
    CHECK(pgsess_array_literal(bad, bl, 1, NULL, 0, &err) == NULL);
    pgsess_error_free(err);
    err = NULL;
    CHECK(pgsess_array_literal(NULL, NULL, 2, NULL, 0, NULL) == NULL);

    char buf[64];
    const char *elems[8];
    size_t lens[8], dims[6], n = 99, nd = 99;
    const char *t = "{1,22,333}";
    CHECK_INTEQ(pgsess_array_split(t, strlen(t), ',', buf, 4, elems, lens, 8, &n, dims, &nd, &err),
                PGSESS_INTERFACE_ERROR);
    CHECK_INTEQ(n, 3); /* the count it needs, though the buffer is too small */
    pgsess_error_free(err);
    err = NULL;
    CHECK_INTEQ(pgsess_array_split(t, strlen(t), ',', buf, sizeof buf, elems, lens, 2, &n, dims, &nd, &err),
                PGSESS_INTERFACE_ERROR);
    CHECK_INTEQ(n, 3);
    pgsess_error_free(err);
    err = NULL;
    CHECK_INTEQ(pgsess_array_split(t, strlen(t), ',', buf, sizeof buf, elems, lens, 8, &n, NULL, &nd, NULL),
                PGSESS_OK);
    CHECK_INTEQ(nd, 1);
    const char *junk[] = { "", "1,2", "{1,2", "{{1,2},{3}}", "{\"a}", "{1}x", "{a\\" };
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        CHECK_INTEQ(pgsess_array_split(junk[i], strlen(junk[i]), ',', buf, sizeof buf, elems, lens, 8, &n, dims, &nd,
                                       &err),
                    PGSESS_DATA_ERROR);
        if (err)
            CHECK(strstr(pgsess_error_message(err), "not an array") != NULL);
        pgsess_error_free(err);
        err = NULL;
    }
    /* Only `len` bytes are read: a prefix that is an array. */
    CHECK_INTEQ(pgsess_array_split("{7}garbage", 3, ',', buf, sizeof buf, elems, lens, 8, &n, dims, &nd, NULL),
                PGSESS_OK);
    CHECK_INTEQ(n, 1);
    CHECK_INTEQ(pgsess_array_split(NULL, 0, ',', buf, sizeof buf, elems, lens, 8, &n, dims, &nd, NULL),
                PGSESS_INTERFACE_ERROR);
    CHECK_INTEQ(pgsess_array_split(t, strlen(t), ',', NULL, 0, elems, lens, 8, &n, dims, &nd, NULL),
                PGSESS_INTERFACE_ERROR);

    pgsess_close(s);
    return CHECK_DONE();
}
