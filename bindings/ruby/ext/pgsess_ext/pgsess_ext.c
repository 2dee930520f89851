/*
 * pgsess_ext: the Ruby binding's optional accelerator (PGSess::Ext). It builds the Ruby values
 * of a block of rows in C, as the pg gem does, instead of one Ruby block call per cell: the
 * binding's per-row cost in pure Ruby is several times pg's, and a 200,000-row fetch is bound
 * by it.
 *
 * It converts only what is exact and cheap here: text, the text of int/float/bool columns,
 * timestamptz through the library's own parser (pgsess_results_get_epoch_micros), and binary
 * int2/int4/int8/oid/float8/bool/timestamptz. Every other cell, and every value these rules
 * would refuse (a binary value of the wrong size, a timestamp the getter does not parse), is
 * handed to the Ruby fallback that the binding passes in, so each conversion rule that can fail
 * or raise lives in Ruby (lib/pgsess/results.rb) and this file only repeats the ones that
 * cannot. test_pgsess.rb compares both paths cell by cell.
 *
 * It also reads a Results' metadata in one call (Ext.meta) instead of one foreign call per item.
 *
 * It does not link libpgsess: the binding passes the addresses of the library functions it
 * calls (from the library that ffi loaded), so the process never has two copies of the library.
 * The prototypes below are those of include/pgsess.h, which never change (new functions are
 * added instead).
 *
 * Every function runs with the GVL held and under the Results' lock (the binding calls it from
 * Handle#use), so the value pointers stay valid for the whole call. A Ruby exception raised by a
 * fallback or converter unwinds through here: nothing here is allocated outside Ruby's heap
 * (ALLOCV), so nothing leaks.
 */
#include <ruby.h>
#include <ruby/encoding.h>
#include <ruby/thread.h>

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

typedef size_t (*cells_fn)(const void *results, size_t first_row, size_t max_rows, const char **values,
                           size_t *lengths);
typedef int (*epoch_fn)(const void *results, size_t row, size_t col, int64_t *out);

typedef size_t (*size_fn)(const void *results);
typedef const char *(*str_fn)(const void *results);
typedef const char *(*col_str_fn)(const void *results, size_t col);
typedef uint32_t (*col_u32_fn)(const void *results, size_t col);
typedef int32_t (*col_i32_fn)(const void *results, size_t col);
typedef uint64_t (*u64_fn)(const void *results);
typedef int64_t (*i64_fn)(const void *results);
typedef int32_t (*i32_fn)(const void *results);

static cells_fn pgsess_cells;
static epoch_fn pgsess_epoch_micros;
/* The metadata calls Ext.meta makes, in Ext.setup's order after the two above. */
static size_fn pgsess_nrows;
static size_fn pgsess_ncols;
static col_str_fn pgsess_column_name;
static col_u32_fn pgsess_column_type;
static col_i32_fn pgsess_column_format;
static str_fn pgsess_status;
static i64_fn pgsess_count;
static u64_fn pgsess_rows_affected;
static i32_fn pgsess_backend_pid;
static ID id_call;
static VALUE float_infinity;
static VALUE float_neg_infinity;
/* Ext::UNCONVERTED: what Ext.value returns for a cell only the Ruby conversion can convert. */
static VALUE unconverted;

#define INFINITY_MICROS INT64_MAX
#define NEG_INFINITY_MICROS INT64_MIN
/* 2000-01-01 (the epoch of binary timestamps) in Unix microseconds. */
#define PG_EPOCH_MICROS INT64_C(946684800000000)

/* Column kinds, one byte per column in the kinds String (lib/pgsess/results.rb#ext_kinds). */
enum {
    K_TEXT = 'T',        /* UTF-8 String */
    K_BYTES = 'B',       /* binary String */
    K_INT = 'I',         /* text integer: Integer */
    K_FLOAT = 'F',       /* text float: Float (as String#to_f, NaN and ±Infinity named) */
    K_BOOL = 'L',        /* text bool: true for "t" */
    K_TIMESTAMPTZ = 'Z', /* text timestamptz: UTC Time or ±Float::INFINITY, via the library */
    K_BIN_INT2 = 'h',
    K_BIN_INT4 = 'i',
    K_BIN_INT8 = 'q',
    K_BIN_OID = 'u',
    K_BIN_FLOAT8 = 'd',
    K_BIN_BOOL = 'b',
    K_BIN_TIMESTAMPTZ = 'z',
    K_FALLBACK = 'X' /* fallback.call(row, col, the value's bytes as a binary String) */
};

static const void *results_ptr(VALUE address)
{
    const void *p = (const void *)(uintptr_t)NUM2ULL(address);
    if (p == NULL) {
        rb_raise(rb_eArgError, "pgsess_ext: NULL results");
    }
    return p;
}

static uint64_t be_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

static uint32_t be_u32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

/* A UTC Time for microseconds since 1970, as Time.at(micros.div(1e6), micros % 1e6, :usec).utc. */
static VALUE utc_time(int64_t micros)
{
    int64_t sec = micros / 1000000;
    int64_t usec = micros % 1000000;
    if (usec < 0) {
        usec += 1000000;
        sec -= 1;
    }
    struct timespec ts;
    ts.tv_sec = (time_t)sec;
    ts.tv_nsec = (long)(usec * 1000);
    return rb_time_timespec_new(&ts, INT_MAX - 1); /* INT_MAX - 1: UTC */
}

/* A text integer (the server's digits, NUL-terminated) as String#to_i gives it. */
static VALUE text_int(const char *p, size_t len)
{
    if (len > 0 && len <= 18) {
        size_t i = 0;
        int neg = 0;
        if (p[0] == '-') {
            neg = 1;
            i = 1;
        }
        int64_t v = 0;
        size_t digits = 0;
        for (; i < len && p[i] >= '0' && p[i] <= '9'; i++, digits++) {
            v = v * 10 + (p[i] - '0');
        }
        if (i == len && digits > 0) {
            return LL2NUM(neg ? -v : v);
        }
    }
    return rb_cstr2inum(p, 10);
}

static VALUE text_float(const char *p, size_t len)
{
    if (len == 3 && memcmp(p, "NaN", 3) == 0) {
        return DBL2NUM(nan(""));
    }
    if (len == 8 && memcmp(p, "Infinity", 8) == 0) {
        return float_infinity;
    }
    if (len == 9 && memcmp(p, "-Infinity", 9) == 0) {
        return float_neg_infinity;
    }
    return DBL2NUM(rb_cstr_to_dbl(p, 0));
}

static VALUE fallback_call(VALUE fallback, size_t row, size_t col, const char *p, size_t len)
{
    if (NIL_P(fallback)) {
        return unconverted;
    }
    return rb_funcall(fallback, id_call, 3, SIZET2NUM(row), SIZET2NUM(col), rb_str_new(p, (long)len));
}

/* The value of one non-NULL cell. */
static VALUE cell(const void *results, char kind, size_t row, size_t col, const char *p, size_t len,
                  VALUE fallback)
{
    const unsigned char *u = (const unsigned char *)p;
    switch (kind) {
    case K_TEXT:
        return rb_utf8_str_new(p, (long)len);
    case K_BYTES:
        return rb_str_new(p, (long)len);
    case K_INT:
        return text_int(p, len);
    case K_FLOAT:
        return text_float(p, len);
    case K_BOOL:
        return len > 0 && p[0] == 't' ? Qtrue : Qfalse;
    case K_TIMESTAMPTZ: {
        int64_t micros = 0;
        if (pgsess_epoch_micros(results, row, col, &micros) != 0) {
            break;
        }
        if (micros == INFINITY_MICROS) {
            return float_infinity;
        }
        if (micros == NEG_INFINITY_MICROS) {
            return float_neg_infinity;
        }
        return utc_time(micros);
    }
    case K_BIN_INT2:
        if (len == 2) {
            return INT2FIX((int16_t)(((uint16_t)u[0] << 8) | u[1]));
        }
        break;
    case K_BIN_INT4:
        if (len == 4) {
            return LONG2NUM((int32_t)be_u32(u));
        }
        break;
    case K_BIN_OID:
        if (len == 4) {
            return ULONG2NUM(be_u32(u));
        }
        break;
    case K_BIN_INT8:
        if (len == 8) {
            return LL2NUM((int64_t)be_u64(u));
        }
        break;
    case K_BIN_FLOAT8:
        if (len == 8) {
            uint64_t bits = be_u64(u);
            double d;
            memcpy(&d, &bits, sizeof d);
            return DBL2NUM(d);
        }
        break;
    case K_BIN_BOOL:
        if (len == 1) {
            return u[0] != 0 ? Qtrue : Qfalse;
        }
        break;
    case K_BIN_TIMESTAMPTZ:
        if (len == 8) {
            int64_t v = (int64_t)be_u64(u);
            if (v == INFINITY_MICROS) {
                return float_infinity;
            }
            if (v == NEG_INFINITY_MICROS) {
                return float_neg_infinity;
            }
            if (v <= INFINITY_MICROS - PG_EPOCH_MICROS) {
                return utc_time(v + PG_EPOCH_MICROS);
            }
        }
        break;
    default:
        break;
    }
    return fallback_call(fallback, row, col, p, len);
}

/* The value pointers and lengths of rows first...first + count (count * ncols cells). */
struct block {
    const char **values;
    size_t *lengths;
    VALUE values_buf;
    VALUE lengths_buf;
    size_t rows;
};

/* The cells of `count` rows of `ncols` columns (at least one per row); ArgumentError when that
 * does not fit a size_t. */
static size_t block_cells(size_t count, size_t ncols)
{
    size_t per_row = ncols ? ncols : 1;
    size_t n = count * per_row;
    if (count != 0 && n / count != per_row) {
        rb_raise(rb_eArgError, "pgsess_ext: %zu rows of %zu columns do not fit", count, ncols);
    }
    return n;
}

/* Fill `b` with the value pointers and lengths of rows first...first + count. A macro, not a
 * function: ALLOCV takes small buffers from the stack (alloca), which must be the frame of the
 * function that reads them. */
#define READ_BLOCK(b, results, first, count, ncols)                                                         \
    do {                                                                                                    \
        size_t n_ = block_cells((count), (ncols));                                                          \
        (b).values = ALLOCV_N(const char *, (b).values_buf, n_);                                            \
        (b).lengths = ALLOCV_N(size_t, (b).lengths_buf, n_);                                                \
        (b).rows = pgsess_cells((results), (first), (count), (b).values, (b).lengths);                      \
    } while (0)

static void release_block(struct block *b)
{
    ALLOCV_END(b->values_buf);
    ALLOCV_END(b->lengths_buf);
}

/*
 * Ext.rows(address, first, count, ncols, kinds, fallback) -> Array of Arrays
 * The rows first...first + count (fewer at the end of the results) of the results at
 * `address`, each an Array of its `ncols` values, column c converted as kinds.getbyte(c) says;
 * nil for NULL.
 */
static VALUE ext_rows(VALUE self, VALUE address, VALUE first_v, VALUE count_v, VALUE ncols_v, VALUE kinds,
                      VALUE fallback)
{
    (void)self;
    const void *results = results_ptr(address);
    size_t first = NUM2SIZET(first_v);
    size_t count = NUM2SIZET(count_v);
    size_t ncols = NUM2SIZET(ncols_v);
    StringValue(kinds);
    if ((size_t)RSTRING_LEN(kinds) != ncols) {
        rb_raise(rb_eArgError, "pgsess_ext: %zu kinds for %zu columns", (size_t)RSTRING_LEN(kinds), ncols);
    }
    struct block b;
    READ_BLOCK(b, results, first, count, ncols);
    /* Each row's values go to `cells` (on the stack, or in a buffer the GC marks: either way
     * seen by the GC if a fallback runs it), then into the row's Array in one copy. */
    VALUE cells_buf;
    VALUE *cells = ALLOCV_N(VALUE, cells_buf, ncols ? ncols : 1);
    VALUE rows = rb_ary_new_capa((long)b.rows);
    for (size_t r = 0; r < b.rows; r++) {
        const char *k = RSTRING_PTR(kinds); /* again per row: a fallback may run the GC */
        const char **values = b.values + r * ncols;
        const size_t *lengths = b.lengths + r * ncols;
        for (size_t c = 0; c < ncols; c++) {
            cells[c] = Qnil;
        }
        for (size_t c = 0; c < ncols; c++) {
            const char *p = values[c];
            if (p != NULL) {
                cells[c] = cell(results, k[c], first + r, c, p, lengths[c], fallback);
            }
        }
        rb_ary_push(rows, rb_ary_new_from_values((long)ncols, cells));
    }
    ALLOCV_END(cells_buf);
    release_block(&b);
    RB_GC_GUARD(kinds);
    return rows;
}

/*
 * Ext.value(address, row, col, ncols, kind) -> the value, nil for NULL, or Ext::UNCONVERTED
 * The cell at (`row`, `col`) of the results at `address` (both in range: the caller checks,
 * with pg's errors; `ncols` the results' columns), converted as Ext.rows converts a cell of
 * the one-byte String `kind`; a cell that
 * needs the Ruby conversion (kind 'X', or a value the C rules refuse) gives Ext::UNCONVERTED,
 * for the caller to convert in Ruby: for pg's getvalue in one call instead of three.
 */
static VALUE ext_value(VALUE self, VALUE address, VALUE row_v, VALUE col_v, VALUE ncols_v, VALUE kind)
{
    (void)self;
    const void *results = results_ptr(address);
    size_t row = NUM2SIZET(row_v);
    size_t col = NUM2SIZET(col_v);
    size_t ncols = NUM2SIZET(ncols_v);
    StringValue(kind);
    if (RSTRING_LEN(kind) != 1 || col >= ncols) {
        rb_raise(rb_eArgError, "pgsess_ext: column %zu of %zu, kind of %ld bytes", col, ncols, RSTRING_LEN(kind));
    }
    struct block b;
    READ_BLOCK(b, results, row, 1, ncols);
    VALUE v = Qnil;
    if (b.rows != 1) {
        release_block(&b);
        rb_raise(rb_eArgError, "pgsess_ext: row %zu out of range", row);
    }
    if (b.values[col] != NULL) {
        v = cell(results, RSTRING_PTR(kind)[0], row, col, b.values[col], b.lengths[col], Qnil);
    }
    release_block(&b);
    RB_GC_GUARD(kind);
    return v;
}

/*
 * Ext.hashes(address, first, count, ncols, binary, keys, convs) -> Array of Hashes
 * As Ext.rows, each row a Hash of keys[c] => the cell's text (a UTF-8 String; a binary String
 * where binary.getbyte(c) is 1) passed through convs[c].call when convs[c] is not nil; nil for
 * NULL.
 */
static VALUE ext_hashes(VALUE self, VALUE address, VALUE first_v, VALUE count_v, VALUE ncols_v, VALUE binary,
                        VALUE keys, VALUE convs)
{
    (void)self;
    const void *results = results_ptr(address);
    size_t first = NUM2SIZET(first_v);
    size_t count = NUM2SIZET(count_v);
    size_t ncols = NUM2SIZET(ncols_v);
    StringValue(binary);
    Check_Type(keys, T_ARRAY);
    Check_Type(convs, T_ARRAY);
    if ((size_t)RSTRING_LEN(binary) != ncols || (size_t)RARRAY_LEN(keys) != ncols ||
        (size_t)RARRAY_LEN(convs) != ncols) {
        rb_raise(rb_eArgError, "pgsess_ext: formats, keys and converters must have %zu entries", ncols);
    }
    struct block b;
    READ_BLOCK(b, results, first, count, ncols);
    VALUE rows = rb_ary_new_capa((long)b.rows);
    for (size_t r = 0; r < b.rows; r++) {
        VALUE row = rb_hash_new();
        rb_ary_push(rows, row);
        for (size_t c = 0; c < ncols; c++) {
            size_t i = r * ncols + c;
            const char *p = b.values[i];
            VALUE key = rb_ary_entry(keys, (long)c);
            if (p == NULL) {
                rb_hash_aset(row, key, Qnil);
                continue;
            }
            VALUE v = RSTRING_PTR(binary)[c] == 1 ? rb_str_new(p, (long)b.lengths[i])
                                                  : rb_utf8_str_new(p, (long)b.lengths[i]);
            VALUE conv = rb_ary_entry(convs, (long)c);
            rb_hash_aset(row, key, NIL_P(conv) ? v : rb_funcall(conv, id_call, 1, v));
        }
    }
    release_block(&b);
    RB_GC_GUARD(binary);
    RB_GC_GUARD(keys);
    RB_GC_GUARD(convs);
    return rows;
}

/* pgsess_query, pgsess_tx_query, pgsess_callproc and pgsess_tx_callproc: one shape. */
typedef void *(*statement_fn)(void *handle, const char *sql, size_t n, const char *const *params, void **err);

struct statement_call {
    statement_fn fn;
    void *handle;
    const char *sql;
    size_t n;
    const char **params;
    void *results;
    void *err;
};

static void *statement_nogvl(void *data)
{
    struct statement_call *call = data;
    call->results = call->fn(call->handle, call->sql, call->n, call->params, &call->err);
    return NULL;
}

/*
 * Ext.statement(fn_address, handle_address, sql, params) -> [results_address, error_address]
 * Calls `fn` (pgsess_query or one of its shape, at fn_address) on the handle with `sql` and
 * `params` (Strings or nil for SQL NULL, as the binding has checked them: UTF-8 without NUL),
 * copied first into memory of this call, with the GVL released as ffi's blocking calls release
 * it (RUBY_UBF_IO: an interrupt signals the thread, which the library's cancel-on-signal
 * option turns into a cancel). One of the two addresses is 0. For the round trip: the same
 * call through ffi costs a MemoryPointer per string, for the array and for the error.
 */
static VALUE ext_statement(VALUE self, VALUE fn_address, VALUE handle_address, VALUE sql, VALUE params)
{
    (void)self;
    statement_fn fn = (statement_fn)(uintptr_t)NUM2ULL(fn_address);
    void *handle = (void *)(uintptr_t)NUM2ULL(handle_address);
    if (fn == NULL || handle == NULL) {
        rb_raise(rb_eArgError, "pgsess_ext: NULL function or handle");
    }
    StringValue(sql);
    Check_Type(params, T_ARRAY);
    long n = RARRAY_LEN(params);
    size_t total = (size_t)RSTRING_LEN(sql) + 1;
    for (long i = 0; i < n; i++) {
        VALUE v = RARRAY_AREF(params, i);
        if (!NIL_P(v)) {
            Check_Type(v, T_STRING);
            total += (size_t)RSTRING_LEN(v) + 1;
        }
    }
    VALUE buf_v, params_v;
    char *buf = ALLOCV(buf_v, total);
    const char **ptrs = ALLOCV_N(const char *, params_v, n ? (size_t)n : 1);
    char *at = buf;
    memcpy(at, RSTRING_PTR(sql), (size_t)RSTRING_LEN(sql));
    at[RSTRING_LEN(sql)] = '\0';
    struct statement_call call = { fn, handle, at, (size_t)n, ptrs, NULL, NULL };
    at += RSTRING_LEN(sql) + 1;
    for (long i = 0; i < n; i++) {
        VALUE v = RARRAY_AREF(params, i);
        if (NIL_P(v)) {
            ptrs[i] = NULL;
            continue;
        }
        memcpy(at, RSTRING_PTR(v), (size_t)RSTRING_LEN(v));
        at[RSTRING_LEN(v)] = '\0';
        ptrs[i] = at;
        at += RSTRING_LEN(v) + 1;
    }
    rb_thread_call_without_gvl(statement_nogvl, &call, RUBY_UBF_IO, NULL);
    ALLOCV_END(buf_v);
    ALLOCV_END(params_v);
    RB_GC_GUARD(sql);
    RB_GC_GUARD(params);
    return rb_assoc_new(ULL2NUM((uintptr_t)call.results), ULL2NUM((uintptr_t)call.err));
}

/* A frozen UTF-8 String of a library string (nil for NULL). */
static VALUE frozen_str(const char *p)
{
    return p == NULL ? Qnil : rb_obj_freeze(rb_utf8_str_new_cstr(p));
}

/*
 * Ext.meta(address) -> [nrows, ncols, columns, types, formats, status, count, rows_affected,
 *                       backend_pid]
 * Everything Results reads once about the results at `address`, in one call instead of one
 * foreign call per item and per column: column names and the status as frozen UTF-8 Strings,
 * the three per-column Arrays frozen.
 */
static VALUE ext_meta(VALUE self, VALUE address)
{
    (void)self;
    if (pgsess_nrows == NULL) {
        rb_raise(rb_eRuntimeError, "pgsess_ext: Ext.setup was not called");
    }
    const void *results = results_ptr(address);
    size_t ncols = pgsess_ncols(results);
    VALUE names = rb_ary_new_capa((long)ncols);
    VALUE types = rb_ary_new_capa((long)ncols);
    VALUE formats = rb_ary_new_capa((long)ncols);
    for (size_t c = 0; c < ncols; c++) {
        rb_ary_push(names, frozen_str(pgsess_column_name(results, c)));
        rb_ary_push(types, ULONG2NUM(pgsess_column_type(results, c)));
        rb_ary_push(formats, INT2NUM(pgsess_column_format(results, c)));
    }
    VALUE out[9] = {
        SIZET2NUM(pgsess_nrows(results)),
        SIZET2NUM(ncols),
        rb_obj_freeze(names),
        rb_obj_freeze(types),
        rb_obj_freeze(formats),
        frozen_str(pgsess_status(results)),
        LL2NUM(pgsess_count(results)),
        ULL2NUM(pgsess_rows_affected(results)),
        INT2NUM(pgsess_backend_pid(results)),
    };
    return rb_ary_new_from_values(9, out);
}

/*
 * Ext.setup(addresses) -> nil
 * The addresses, in the library the binding loaded, of pgsess_results_cells,
 * pgsess_results_get_epoch_micros, then of the metadata calls of Ext.meta: nrows, ncols,
 * column_name, column_type, column_format, status, count, rows_affected, backend_pid (each
 * pgsess_results_*). Called once, before any other Ext function.
 */
static VALUE ext_setup(VALUE self, VALUE addresses)
{
    (void)self;
    Check_Type(addresses, T_ARRAY);
    if (RARRAY_LEN(addresses) != 11) {
        rb_raise(rb_eArgError, "pgsess_ext: Ext.setup takes 11 addresses, not %ld", RARRAY_LEN(addresses));
    }
    uintptr_t a[11];
    for (long i = 0; i < 11; i++) {
        a[i] = (uintptr_t)NUM2ULL(rb_ary_entry(addresses, i));
        if (a[i] == 0) {
            rb_raise(rb_eArgError, "pgsess_ext: library function %ld's address is NULL", i);
        }
    }
    pgsess_cells = (cells_fn)a[0];
    pgsess_epoch_micros = (epoch_fn)a[1];
    pgsess_nrows = (size_fn)a[2];
    pgsess_ncols = (size_fn)a[3];
    pgsess_column_name = (col_str_fn)a[4];
    pgsess_column_type = (col_u32_fn)a[5];
    pgsess_column_format = (col_i32_fn)a[6];
    pgsess_status = (str_fn)a[7];
    pgsess_count = (i64_fn)a[8];
    pgsess_rows_affected = (u64_fn)a[9];
    pgsess_backend_pid = (i32_fn)a[10];
    return Qnil;
}

static VALUE ext_ready(VALUE self)
{
    (void)self;
    return pgsess_cells != NULL && pgsess_epoch_micros != NULL ? Qtrue : Qfalse;
}

static VALUE ext_rows_checked(VALUE self, VALUE address, VALUE first, VALUE count, VALUE ncols, VALUE kinds,
                              VALUE fallback)
{
    if (pgsess_cells == NULL) {
        rb_raise(rb_eRuntimeError, "pgsess_ext: Ext.setup was not called");
    }
    return ext_rows(self, address, first, count, ncols, kinds, fallback);
}

static VALUE ext_value_checked(VALUE self, VALUE address, VALUE row, VALUE col, VALUE ncols, VALUE kind)
{
    if (pgsess_cells == NULL) {
        rb_raise(rb_eRuntimeError, "pgsess_ext: Ext.setup was not called");
    }
    return ext_value(self, address, row, col, ncols, kind);
}

static VALUE ext_hashes_checked(int argc, VALUE *argv, VALUE self)
{
    rb_check_arity(argc, 7, 7);
    if (pgsess_cells == NULL) {
        rb_raise(rb_eRuntimeError, "pgsess_ext: Ext.setup was not called");
    }
    return ext_hashes(self, argv[0], argv[1], argv[2], argv[3], argv[4], argv[5], argv[6]);
}

void Init_pgsess_ext(void)
{
    VALUE pgsess = rb_define_module("PGSess");
    VALUE ext = rb_define_module_under(pgsess, "Ext");
    id_call = rb_intern("call");
    float_infinity = DBL2NUM(HUGE_VAL);
    float_neg_infinity = DBL2NUM(-HUGE_VAL);
    rb_gc_register_mark_object(float_infinity);
    rb_gc_register_mark_object(float_neg_infinity);
    unconverted = rb_obj_freeze(rb_obj_alloc(rb_cObject));
    rb_define_const(ext, "UNCONVERTED", unconverted);
    rb_define_module_function(ext, "setup", ext_setup, 1);
    rb_define_module_function(ext, "meta", ext_meta, 1);
    rb_define_module_function(ext, "statement", ext_statement, 4);
    rb_define_module_function(ext, "ready?", ext_ready, 0);
    rb_define_module_function(ext, "rows", ext_rows_checked, 6);
    rb_define_module_function(ext, "hashes", ext_hashes_checked, -1);
    rb_define_module_function(ext, "value", ext_value_checked, 5);
}
