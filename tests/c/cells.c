/*
 * cells.c - reading a result in blocks, as the Go and Ruby bindings do: pgsess_results_cells
 * (pointers and lengths of many rows per call), pgsess_results_column_cells (one column's) and
 * pgsess_results_copy_cells (the bytes of many rows copied back to back, whole rows only,
 * SIZE_MAX for NULL), checked cell for cell against pgsess_results_value; a buffer too small for
 * the first row; the end; NULL arguments.
 * Needs env PGSQL_CTEST (a PostgreSQL URI); opens it as pgsess_open("ctest").
 */
#define _POSIX_C_SOURCE 200809L
#include <pgsess.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "helpers.h"

#define ROWS 1000
#define COLS 3

int main(void)
{
    pgsess_session *s = open_ctest(NULL);
    pgsess_results *r = Q(s, "SELECT g, CASE WHEN g % 7 = 0 THEN NULL ELSE repeat('x', g % 50) || g END, "
                             "'\xc3\xa9' || g FROM generate_series(1, 1000) g");
    CHECK_INTEQ(pgsess_results_nrows(r), ROWS);
    CHECK_INTEQ(pgsess_results_ncols(r), COLS);

    /* pgsess_results_cells: blocks of 64 rows. */
    const char *values[64 * COLS];
    size_t lengths[64 * COLS];
    int cell_mismatches = 0;
    for (size_t first = 0; first < ROWS; first += 64) {
        size_t k = pgsess_results_cells(r, first, 64, values, lengths);
        CHECK_INTEQ(k, first + 64 <= ROWS ? 64 : ROWS - first);
        for (size_t i = 0; i < k * COLS; i++) {
            const char *want = pgsess_results_value(r, first + i / COLS, i % COLS);
            if (values[i] != want || (want && lengths[i] != strlen(want)))
                cell_mismatches++;
        }
    }
    CHECK_INTEQ(cell_mismatches, 0);
    CHECK_INTEQ(pgsess_results_cells(r, ROWS, 64, values, lengths), 0);
    CHECK_INTEQ(pgsess_results_cells(NULL, 0, 64, values, lengths), 0);
    CHECK_INTEQ(pgsess_results_cells(r, 0, 64, NULL, lengths), 0);

    /* pgsess_results_column_cells: one column, blocks of 64 rows from an odd start. */
    int column_mismatches = 0;
    for (size_t col = 0; col < COLS; col++) {
        for (size_t first = 3; first < ROWS; first += 64) {
            size_t k = pgsess_results_column_cells(r, col, first, 64, values, lengths);
            CHECK_INTEQ(k, first + 64 <= ROWS ? 64 : ROWS - first);
            for (size_t i = 0; i < k; i++) {
                const char *want = pgsess_results_value(r, first + i, col);
                if (values[i] != want || (want ? lengths[i] != strlen(want) : lengths[i] != 0))
                    column_mismatches++;
            }
        }
    }
    CHECK_INTEQ(column_mismatches, 0);
    CHECK_INTEQ(pgsess_results_column_cells(r, 1, 990, 64, values, NULL), 10);
    CHECK_INTEQ(pgsess_results_column_cells(r, 1, ROWS, 64, values, lengths), 0);
    CHECK_INTEQ(pgsess_results_column_cells(r, COLS, 0, 64, values, lengths), 0);
    CHECK_INTEQ(pgsess_results_column_cells(r, 0, SIZE_MAX, SIZE_MAX, values, lengths), 0);
    CHECK_INTEQ(pgsess_results_column_cells(NULL, 0, 0, 64, values, lengths), 0);
    CHECK_INTEQ(pgsess_results_column_cells(r, 0, 0, 64, NULL, lengths), 0);

    /* pgsess_results_copy_cells: whole rows into a 4 KiB buffer, block after block. */
    char buf[4096];
    size_t bytes = 7;
    CHECK_INTEQ(pgsess_results_copy_cells(r, 0, 64, buf, 2, lengths, &bytes), 0);
    CHECK_INTEQ(bytes, 1 + 1 + 4); /* row 1: "1", "x1", "é1" (é is 2 bytes) */
    size_t row = 0, blocks = 0;
    int copy_mismatches = 0;
    while (row < ROWS) {
        size_t k = pgsess_results_copy_cells(r, row, 64, buf, sizeof buf, lengths, &bytes);
        if (!CHECK(k > 0))
            break;
        size_t at = 0;
        for (size_t i = 0; i < k * COLS; i++) {
            const char *want = pgsess_results_value(r, row + i / COLS, i % COLS);
            if (want == NULL) {
                copy_mismatches += lengths[i] != SIZE_MAX;
                continue;
            }
            if (lengths[i] != strlen(want) || memcmp(buf + at, want, lengths[i]) != 0)
                copy_mismatches++;
            at += lengths[i];
        }
        copy_mismatches += at != bytes;
        row += k;
        blocks++;
    }
    CHECK_INTEQ(copy_mismatches, 0);
    CHECK_INTEQ(row, ROWS);
    CHECK(blocks > ROWS / 64); /* the 4 KiB buffer, not the 64 rows, ended some blocks */
    CHECK_INTEQ(pgsess_results_copy_cells(r, ROWS, 64, buf, sizeof buf, lengths, &bytes), 0);
    CHECK_INTEQ(bytes, 0);
    CHECK_INTEQ(pgsess_results_copy_cells(NULL, 0, 64, buf, sizeof buf, lengths, &bytes), 0);
    CHECK_INTEQ(pgsess_results_copy_cells(r, 0, 64, NULL, sizeof buf, lengths, &bytes), 0);
    CHECK_INTEQ(pgsess_results_copy_cells(r, 0, 64, buf, sizeof buf, NULL, &bytes), 0);
    CHECK_INTEQ(pgsess_results_copy_cells(r, 0, 64, buf, sizeof buf, lengths, NULL), 0);
    CHECK_INTEQ(pgsess_results_copy_cells(r, 0, SIZE_MAX, buf, sizeof buf, lengths, &bytes), 0);

    pgsess_results_free(r);
    pgsess_close(s);
    return CHECK_DONE();
}
