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
#include <ruby/debug.h>
#include <ruby/encoding.h>
#include <ruby/thread.h>

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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
typedef const char *(*cell_str_fn)(const void *results, size_t row, size_t col);
typedef size_t (*cell_size_fn)(const void *results, size_t row, size_t col);

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
/* One cell, for ResultsHandle#value (getvalue): pgsess_results_value and _value_length. */
static cell_str_fn pgsess_value;
static cell_size_fn pgsess_value_length;
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
    K_BIN_UUID = 'g', /* binary uuid: its text form, a UTF-8 String */
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

/* A UTF-8 String of the bytes: rb_utf8_str_new's, with the encoding set as a flag (the index
 * fits the inline bits) instead of through rb_enc_associate_index's checks, as pg sets it. */
static int utf8_index;

static VALUE utf8_str(const char *p, size_t len)
{
    VALUE s = rb_str_new(p, (long)len);
    RB_ENCODING_SET_INLINED(s, utf8_index);
    return s;
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
        return utf8_str(p, len);
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
    case K_BIN_UUID:
        if (len == 16) {
            static const char hex[] = "0123456789abcdef";
            char text[36];
            size_t at = 0;
            for (size_t i = 0; i < 16; i++) {
                if (i == 4 || i == 6 || i == 8 || i == 10) {
                    text[at++] = '-';
                }
                text[at++] = hex[u[i] >> 4];
                text[at++] = hex[u[i] & 15];
            }
            return utf8_str(text, sizeof text);
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
 * Ext.value(address, row, col, ncols, kind) -> the value, nil for NULL, or Ext::UNCONVERTED
 * The cell at (`row`, `col`) of the results at `address` (both in range: the caller checks,
 * with pg's errors; `ncols` the results' columns), converted as ResultsHandle#rows converts a cell of
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

/* The rows of Ext.hashes and ResultsHandle#hashes. `binary`: a String of one byte per column,
 * 1 for a binary one, or nil to read each column's format from the results. */
struct hashes_args {
    const void *results;
    size_t first;
    size_t count;
    size_t ncols;
    VALUE binary;
    VALUE keys;
    VALUE convs;
};

/* Yields each row when a block is given (returning their number), else returns their Array. */
static VALUE hashes_body(VALUE data)
{
    struct hashes_args *a = (struct hashes_args *)data;
    size_t ncols = a->ncols;
    if ((!NIL_P(a->binary) && (size_t)RSTRING_LEN(a->binary) != ncols) || (size_t)RARRAY_LEN(a->keys) != ncols ||
        (size_t)RARRAY_LEN(a->convs) != ncols) {
        rb_raise(rb_eArgError, "pgsess_ext: formats, keys and converters must have %zu entries", ncols);
    }
    struct block b;
    READ_BLOCK(b, a->results, a->first, a->count, ncols);
    int yield = rb_block_given_p();
    VALUE rows = yield ? Qnil : rb_ary_new_capa((long)b.rows);
    for (size_t r = 0; r < b.rows; r++) {
        VALUE row = rb_hash_new();
        for (size_t c = 0; c < ncols; c++) {
            size_t i = r * ncols + c;
            const char *p = b.values[i];
            VALUE key = rb_ary_entry(a->keys, (long)c);
            if (p == NULL) {
                rb_hash_aset(row, key, Qnil);
                continue;
            }
            int bin = NIL_P(a->binary) ? pgsess_column_format(a->results, c) == 1 : RSTRING_PTR(a->binary)[c] == 1;
            VALUE v = bin ? rb_str_new(p, (long)b.lengths[i]) : utf8_str(p, b.lengths[i]);
            VALUE conv = rb_ary_entry(a->convs, (long)c);
            rb_hash_aset(row, key, NIL_P(conv) ? v : rb_funcall(conv, id_call, 1, v));
        }
        if (yield) {
            rb_yield(row);
        } else {
            rb_ary_push(rows, row);
        }
    }
    release_block(&b);
    return yield ? SIZET2NUM(b.rows) : rows;
}

/*
 * Ext.hashes(address, first, count, ncols, binary, keys, convs) -> Array of Hashes
 * The rows first...first + count (fewer at the end) of the results at `address`, each a Hash of
 * keys[c] => the cell's text (a UTF-8 String; a binary String where binary.getbyte(c) is 1)
 * passed through convs[c].call when convs[c] is not nil; nil for NULL.
 */
static VALUE ext_hashes(VALUE self, VALUE address, VALUE first_v, VALUE count_v, VALUE ncols_v, VALUE binary,
                        VALUE keys, VALUE convs)
{
    (void)self;
    StringValue(binary);
    Check_Type(keys, T_ARRAY);
    Check_Type(convs, T_ARRAY);
    struct hashes_args a = { results_ptr(address), NUM2SIZET(first_v), NUM2SIZET(count_v), NUM2SIZET(ncols_v),
                             binary, keys, convs };
    VALUE rows = hashes_body((VALUE)&a);
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

/* ---------------------------------------------------------------------------------------------
 * Handles and the statement path (Ext::ResultsHandle, Ext::SessionHandle, Ext.query).
 *
 * In pure Ruby a round trip runs about 80 Ruby calls and makes 20 objects around the one
 * library call: a Mutex and a counter per session call, a Mutex, a finalizer and a metadata
 * Array per Results, an ffi pointer per handle. Here the session's in-flight count, the
 * statement, the Results object and, in the block form, its free on the way out (an ensure in
 * C) are one call, as pg's exec_params is. Everything below runs with the GVL held except the
 * library call itself, so the counters need no lock: no other Ruby thread runs between two C
 * statements that do not call back into Ruby.
 * ------------------------------------------------------------------------------------------- */

typedef void (*free_fn)(void *p);
static free_fn lib_results_free;
static str_fn lib_results_query;
static free_fn lib_error_free;
static VALUE m_ext;
static VALUE c_results_handle;
static VALUE c_session_handle;
static VALUE c_results; /* PGSess::Results, looked up at the first Ext.query */
static ID id_raise_closed, id_raise_freed, id_raise_native, id_kind_for, id_address, id_new;
static ID id_iv_sql, id_iv_handle, id_iv_nrows, id_iv_ncols, id_iv_columns, id_iv_types, id_iv_formats,
    id_iv_status, id_iv_count, id_iv_rows_affected, id_iv_backend_pid;

/* Results the garbage collector found unfreed, freed by a postponed job: the library's free
 * returns the connection to the pool (and may reset it on the wire), which must not run inside
 * the collector. Touched only with the GVL held. */
struct grave {
    void *ptr;
    struct grave *next;
};
static struct grave *graveyard;

static void reap(void *unused)
{
    (void)unused;
    while (graveyard != NULL) {
        struct grave *g = graveyard;
        graveyard = g->next;
        lib_results_free(g->ptr);
        free(g);
    }
}

/* `s` as Ruby's String#inspect writes a UTF-8 String, to stderr ("nil" for NULL). */
static void put_inspected(const char *s)
{
    if (s == NULL) {
        fputs("nil", stderr);
        return;
    }
    fputc('"', stderr);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", stderr); break;
        case '\\': fputs("\\\\", stderr); break;
        case '\n': fputs("\\n", stderr); break;
        case '\r': fputs("\\r", stderr); break;
        case '\t': fputs("\\t", stderr); break;
        case '\f': fputs("\\f", stderr); break;
        case '\v': fputs("\\v", stderr); break;
        case '\b': fputs("\\b", stderr); break;
        case '\a': fputs("\\a", stderr); break;
        case 0x1b: fputs("\\e", stderr); break;
        case '#':
            fputs(p[1] == '{' || p[1] == '$' || p[1] == '@' ? "\\#" : "#", stderr);
            break;
        default:
            if (*p < 0x20 || *p == 0x7f) {
                fprintf(stderr, "\\u%04X", (unsigned)*p);
            } else {
                fputc(*p, stderr);
            }
        }
    }
    fputc('"', stderr);
}

struct results_handle {
    void *ptr;        /* NULL once freed */
    long busy;        /* #use blocks running */
    int free_pending; /* #free while busy: freed when the last #use ends */
    VALUE pointer;    /* the FFI::Pointer of #to_ptr, made at its first call; Qnil until then */
    VALUE sql;        /* for the error of a use after free */
    /* #value's cache of what never changes in live results, filled at its first call. */
    size_t nrows, ncols;
    char *kinds; /* per column its kind (column_kind), ncols bytes; NULL until then */
};

static void rh_mark(void *p)
{
    struct results_handle *h = p;
    rb_gc_mark(h->pointer);
    rb_gc_mark(h->sql);
}

/* Garbage-collected while the results are live: they were handed out and never freed. Warn as
 * the pure-Ruby finalizer does (in C: nothing may call Ruby here) and free them soon after. */
static void rh_dfree(void *p)
{
    struct results_handle *h = p;
    if (h->ptr != NULL && lib_results_free != NULL) {
        fputs("pgsess: leaked PGSess::Results for SQL ", stderr);
        put_inspected(lib_results_query(h->ptr));
        fputs(": garbage-collected without #free; freeing it now (call #free or use the block form of #query)\n",
              stderr);
        struct grave *g = malloc(sizeof *g);
        if (g != NULL) { /* else the connection stays leased: nothing safe to do here */
            g->ptr = h->ptr;
            g->next = graveyard;
            graveyard = g;
            rb_postponed_job_register_one(0, reap, NULL);
        }
    }
    ruby_xfree(h->kinds);
    ruby_xfree(h);
}

static size_t rh_size(const void *p)
{
    (void)p;
    return sizeof(struct results_handle);
}

static const rb_data_type_t results_handle_type = {
    .wrap_struct_name = "PGSess::Ext::ResultsHandle",
    .function = { .dmark = rh_mark, .dfree = rh_dfree, .dsize = rh_size },
    .flags = RUBY_TYPED_FREE_IMMEDIATELY,
};

static VALUE rh_alloc(VALUE klass)
{
    struct results_handle *h;
    VALUE obj = TypedData_Make_Struct(klass, struct results_handle, &results_handle_type, h);
    h->pointer = Qnil;
    h->sql = Qnil;
    return obj;
}

static struct results_handle *rh_get(VALUE self)
{
    return rb_check_typeddata(self, &results_handle_type);
}

/* The live results of `self`, else InterfaceError (Ext.raise_freed) naming the SQL. */
static void *rh_live(VALUE self, struct results_handle *h)
{
    if (h->ptr == NULL || h->free_pending) {
        rb_funcall(m_ext, id_raise_freed, 1, h->sql);
    }
    return h->ptr;
}

static void rh_release(struct results_handle *h)
{
    void *p = h->ptr;
    h->ptr = NULL;
    h->free_pending = 0;
    if (p != NULL) {
        lib_results_free(p);
    }
}

/* ResultsHandle.new(pointer, sql): owns the results at the FFI::Pointer `pointer`. */
static VALUE rh_initialize(VALUE self, VALUE pointer, VALUE sql)
{
    struct results_handle *h = rh_get(self);
    if (lib_results_free == NULL) {
        rb_raise(rb_eRuntimeError, "pgsess_ext: Ext.setup was not called");
    }
    void *p = (void *)(uintptr_t)NUM2ULL(rb_funcall(pointer, id_address, 0));
    if (p == NULL) {
        rb_raise(rb_eArgError, "pgsess_ext: NULL results");
    }
    h->ptr = p;
    h->pointer = pointer;
    h->sql = sql;
    return self;
}

static VALUE rh_leave(VALUE self)
{
    struct results_handle *h = rh_get(self);
    h->busy--;
    if (h->busy == 0 && h->free_pending) {
        rh_release(h);
    }
    return Qnil;
}

/* use { |handle| ... }: yields the handle itself (it answers #address and #to_ptr, so ffi takes
 * it as the pointer), the results kept alive until the block ends even when another thread
 * frees them meanwhile; InterfaceError once freed. */
static VALUE rh_use(VALUE self)
{
    struct results_handle *h = rh_get(self);
    rh_live(self, h);
    h->busy++;
    return rb_ensure(rb_yield, self, rh_leave, self);
}

/* free -> true when this call freed (or, during a #use on another thread, will free when it
 * ends), false when already freed. */
static VALUE rh_free_m(VALUE self)
{
    struct results_handle *h = rh_get(self);
    if (h->ptr == NULL || h->free_pending) {
        return Qfalse;
    }
    if (h->busy > 0) {
        h->free_pending = 1;
    } else {
        rh_release(h);
    }
    return Qtrue;
}

static VALUE rh_freed_p(VALUE self)
{
    struct results_handle *h = rh_get(self);
    return h->ptr == NULL || h->free_pending ? Qtrue : Qfalse;
}

static VALUE rh_sql(VALUE self)
{
    return rh_get(self)->sql;
}

/* The results' address (inside #use). */
static VALUE rh_address(VALUE self)
{
    struct results_handle *h = rh_get(self);
    return ULL2NUM((uintptr_t)rh_live(self, h));
}

/* The results as an FFI::Pointer (inside #use), for ffi calls. */
static VALUE rh_to_ptr(VALUE self)
{
    struct results_handle *h = rh_get(self);
    void *p = rh_live(self, h);
    if (NIL_P(h->pointer)) {
        VALUE ffi_pointer = rb_path2class("FFI::Pointer");
        h->pointer = rb_funcall(ffi_pointer, id_new, 1, ULL2NUM((uintptr_t)p));
    }
    return h->pointer;
}

/* The kind (see the enum above) of a column of type `type` in format `format`, as
 * Ext.kind_for(type, format) (lib/pgsess/results.rb) says, remembered per (type, format): the
 * rule lives in Ruby, this is its cache. */
#define KIND_SLOTS 64
static struct {
    uint32_t type;
    int32_t format;
    char kind;
} kind_cache[KIND_SLOTS];

static char column_kind(const void *results, size_t col)
{
    uint32_t type = pgsess_column_type(results, col);
    int32_t format = pgsess_column_format(results, col);
    size_t slot = ((size_t)type * 2u + (format == 1)) % KIND_SLOTS;
    for (size_t k = 0; k < KIND_SLOTS; k++) {
        size_t i = (slot + k) % KIND_SLOTS;
        if (kind_cache[i].kind == 0) {
            VALUE s = rb_funcall(m_ext, id_kind_for, 2, UINT2NUM(type), INT2NUM(format));
            StringValue(s);
            char kind = RSTRING_LEN(s) == 1 ? RSTRING_PTR(s)[0] : K_FALLBACK;
            if (kind_cache[i].kind == 0) { /* (another thread may have filled it meanwhile) */
                kind_cache[i].type = type;
                kind_cache[i].format = format;
                kind_cache[i].kind = kind;
            }
            return kind;
        }
        if (kind_cache[i].type == type && kind_cache[i].format == format) {
            return kind_cache[i].kind;
        }
    }
    return K_FALLBACK; /* the cache is full: Ruby converts */
}

/*
 * value(row, col) -> the value, nil for NULL, or Ext::UNCONVERTED
 * pg's getvalue in one call: the cell converted as Results#getvalue converts it, or
 * Ext::UNCONVERTED when only Ruby can (a column of another type, a value the C rules refuse) or
 * `row`/`col` are not in range (Ruby raises pg's errors). InterfaceError once freed.
 */
static VALUE rh_value(VALUE self, VALUE row_v, VALUE col_v)
{
    struct results_handle *h = rh_get(self);
    const void *results = rh_live(self, h);
    if (!FIXNUM_P(row_v) || !FIXNUM_P(col_v)) {
        return unconverted;
    }
    if (h->kinds == NULL) {
        size_t ncols = pgsess_ncols(results);
        char *kinds = ruby_xmalloc(ncols ? ncols : 1);
        for (size_t c = 0; c < ncols; c++) {
            kinds[c] = column_kind(results, c); /* may run Ruby (Ext.kind_for), once per type */
        }
        results = rh_live(self, h); /* another thread may have freed them meanwhile */
        if (h->kinds == NULL) {
            h->nrows = pgsess_nrows(results);
            h->ncols = ncols;
            h->kinds = kinds;
        } else {
            ruby_xfree(kinds);
        }
    }
    long row = FIX2LONG(row_v);
    long col = FIX2LONG(col_v);
    size_t ncols = h->ncols;
    if (row < 0 || col < 0 || (size_t)row >= h->nrows || (size_t)col >= ncols) {
        return unconverted;
    }
    char kind = h->kinds[col];
    if (kind == K_FALLBACK) {
        return unconverted;
    }
    const char *p = pgsess_value(results, (size_t)row, (size_t)col); /* in range: NULL is SQL NULL */
    if (p == NULL) {
        return Qnil;
    }
    return cell(results, kind, (size_t)row, (size_t)col, p, pgsess_value_length(results, (size_t)row, (size_t)col),
                Qnil);
}

/*
 * Results#getvalue(row, col), installed by Ext.install(Results) over the Ruby method, which it
 * calls (as getvalue_ruby) for what ResultsHandle#value leaves to Ruby: pg's getvalue with no
 * Ruby frame between the caller and the cell.
 */
static ID id_getvalue_ruby;

static VALUE results_getvalue(VALUE self, VALUE row, VALUE col)
{
    VALUE handle = rb_ivar_get(self, id_iv_handle);
    if (rb_typeddata_is_kind_of(handle, &results_handle_type)) {
        VALUE v = rh_value(handle, row, col);
        if (v != unconverted) {
            return v;
        }
    }
    return rb_funcall(self, id_getvalue_ruby, 2, row, col);
}

/* Ext.install(results_class): Results#getvalue in C (results_getvalue). */
static VALUE ext_install(VALUE self, VALUE klass)
{
    (void)self;
    Check_Type(klass, T_CLASS);
    rb_define_method(klass, "getvalue", results_getvalue, 2);
    return Qnil;
}

/* The rows of one #rows call. */
struct rows_args {
    VALUE self;
    struct results_handle *h;
    VALUE kinds;
    VALUE fallback;
};

#define ROWS_BLOCK 256

static VALUE rows_body(VALUE data)
{
    struct rows_args *a = (struct rows_args *)data;
    const void *results = rh_live(a->self, a->h);
    size_t nrows = pgsess_nrows(results);
    size_t ncols = pgsess_ncols(results);
    if ((size_t)RSTRING_LEN(a->kinds) != ncols) {
        rb_raise(rb_eArgError, "pgsess_ext: %zu kinds for %zu columns", (size_t)RSTRING_LEN(a->kinds), ncols);
    }
    int yield = rb_block_given_p();
    VALUE all = yield ? Qnil : rb_ary_new_capa((long)nrows);
    size_t n = block_cells(ROWS_BLOCK, ncols);
    VALUE values_buf, lengths_buf, cells_buf;
    const char **values = ALLOCV_N(const char *, values_buf, n);
    size_t *lengths = ALLOCV_N(size_t, lengths_buf, n);
    VALUE *cells = ALLOCV_N(VALUE, cells_buf, ncols ? ncols : 1);
    size_t first = 0;
    while (first < nrows) {
        /* Again per block: the caller's block may have freed them (a clear inside each_row). */
        results = rh_live(a->self, a->h);
        size_t got = pgsess_cells(results, first, ROWS_BLOCK, values, lengths);
        if (got == 0) {
            break;
        }
        for (size_t r = 0; r < got; r++) {
            const char *k = RSTRING_PTR(a->kinds); /* again per row: Ruby code may run the GC */
            for (size_t c = 0; c < ncols; c++) {
                cells[c] = Qnil;
            }
            for (size_t c = 0; c < ncols; c++) {
                const char *p = values[r * ncols + c];
                if (p != NULL) {
                    cells[c] = cell(results, k[c], first + r, c, p, lengths[r * ncols + c], a->fallback);
                }
            }
            VALUE row = rb_ary_new_from_values((long)ncols, cells);
            if (yield) {
                rb_yield(row);
            } else {
                rb_ary_push(all, row);
            }
        }
        first += got;
    }
    ALLOCV_END(values_buf);
    ALLOCV_END(lengths_buf);
    ALLOCV_END(cells_buf);
    return yield ? SIZET2NUM(first) : all;
}

/*
 * rows(kinds, fallback) -> Array of Arrays
 * rows(kinds, fallback) { |row| ... } -> the number of rows yielded
 * Every row, each an Array of its values, column c converted as the kind kinds.getbyte(c) says
 * (see the enum; `fallback` for the cells only Ruby converts, or nil), read from the library
 * a block of rows at a time: pg's values and each_row in one call. The results stay live
 * until the call ends, even if the block frees them (#free is then deferred, and the rows after
 * the current block are not read: InterfaceError).
 */
static VALUE rh_rows(VALUE self, VALUE kinds, VALUE fallback)
{
    struct results_handle *h = rh_get(self);
    StringValue(kinds);
    rh_live(self, h);
    struct rows_args a = { self, h, kinds, fallback };
    h->busy++;
    VALUE out = rb_ensure(rows_body, (VALUE)&a, rh_leave, self);
    RB_GC_GUARD(kinds);
    RB_GC_GUARD(fallback);
    return out;
}

/*
 * hashes(first, count, keys, convs) -> Array of Hashes
 * hashes(first, count, keys, convs) { |hash| ... } -> the number of rows yielded
 * Ext.hashes on these results, each cell's format read here: rows first...first + count (fewer
 * at the end), each a Hash of keys[c] => the cell's text (a UTF-8 String; a binary String for a
 * binary column) passed through convs[c].call when convs[c] is not nil; nil for NULL. The
 * results stay live while the converters run, even if one frees them.
 */
static VALUE rh_hashes(VALUE self, VALUE first_v, VALUE count_v, VALUE keys, VALUE convs)
{
    struct results_handle *h = rh_get(self);
    Check_Type(keys, T_ARRAY);
    Check_Type(convs, T_ARRAY);
    const void *results = rh_live(self, h);
    struct hashes_args a = { results, NUM2SIZET(first_v), NUM2SIZET(count_v), pgsess_ncols(results), Qnil, keys,
                             convs };
    h->busy++;
    return rb_ensure(hashes_body, (VALUE)&a, rh_leave, self);
}

/* ----- sessions ----- */

struct session_handle {
    void *ptr;      /* NULL once closed */
    long inflight;  /* calls running (#use blocks, Ext.query) */
    VALUE pointer;  /* the FFI::Pointer #use yields */
    VALUE closers;  /* threads waiting in #detach for the calls to end (an Array), or Qnil */
};

static void sh_mark(void *p)
{
    struct session_handle *h = p;
    rb_gc_mark(h->pointer);
    rb_gc_mark(h->closers);
}

static size_t sh_size(const void *p)
{
    (void)p;
    return sizeof(struct session_handle);
}

static const rb_data_type_t session_handle_type = {
    .wrap_struct_name = "PGSess::Ext::SessionHandle",
    .function = { .dmark = sh_mark, .dfree = RUBY_TYPED_DEFAULT_FREE, .dsize = sh_size },
    .flags = RUBY_TYPED_FREE_IMMEDIATELY,
};

static VALUE sh_alloc(VALUE klass)
{
    struct session_handle *h;
    VALUE obj = TypedData_Make_Struct(klass, struct session_handle, &session_handle_type, h);
    h->pointer = Qnil;
    h->closers = Qnil;
    return obj;
}

static struct session_handle *sh_get(VALUE self)
{
    return rb_check_typeddata(self, &session_handle_type);
}

/* SessionHandle.new(pointer): owns the session at the FFI::Pointer `pointer`. */
static VALUE sh_initialize(VALUE self, VALUE pointer)
{
    struct session_handle *h = sh_get(self);
    void *p = (void *)(uintptr_t)NUM2ULL(rb_funcall(pointer, id_address, 0));
    if (p == NULL) {
        rb_raise(rb_eArgError, "pgsess_ext: NULL session");
    }
    h->ptr = p;
    h->pointer = pointer;
    return self;
}

static void sh_enter(struct session_handle *h)
{
    if (h->ptr == NULL) {
        rb_funcall(m_ext, id_raise_closed, 0);
    }
    h->inflight++;
}

static VALUE sh_leave(VALUE self)
{
    struct session_handle *h = sh_get(self);
    h->inflight--;
    if (h->inflight == 0 && !NIL_P(h->closers)) {
        VALUE closers = h->closers;
        h->closers = Qnil;
        for (long i = 0; i < RARRAY_LEN(closers); i++) {
            rb_thread_wakeup_alive(RARRAY_AREF(closers, i));
        }
    }
    return Qnil;
}

/* use { |pointer| ... }: yields the session's FFI::Pointer, counted as in flight (#detach waits
 * for it); InterfaceError once closed. */
static VALUE sh_use(VALUE self)
{
    struct session_handle *h = sh_get(self);
    sh_enter(h);
    return rb_ensure(rb_yield, h->pointer, sh_leave, self);
}

static VALUE sh_closed_p(VALUE self)
{
    return sh_get(self)->ptr == NULL ? Qtrue : Qfalse;
}

static VALUE sh_wait(VALUE self)
{
    struct session_handle *h = sh_get(self);
    while (h->inflight > 0) {
        if (NIL_P(h->closers)) {
            h->closers = rb_ary_new();
        }
        rb_ary_push(h->closers, rb_thread_current());
        rb_thread_sleep_forever(); /* woken by sh_leave (or spuriously: the loop checks) */
    }
    return Qnil;
}

/* detach(wait) -> the session's FFI::Pointer for the caller to close, or nil when already
 * closed. From now on #use and Ext.query raise InterfaceError; with `wait`, first waits for the
 * calls in flight on other threads to end. */
static VALUE sh_detach(VALUE self, VALUE wait)
{
    struct session_handle *h = sh_get(self);
    void *p = h->ptr;
    h->ptr = NULL;
    if (RTEST(wait)) {
        sh_wait(self);
    }
    return p == NULL ? Qnil : h->pointer;
}

/* ----- the statement ----- */

static VALUE check_ints(VALUE unused)
{
    (void)unused;
    rb_thread_check_ints();
    return Qnil;
}

/* Raise an interrupt (Thread#raise, Timeout, Thread#kill) that is pending, after calling
 * `cleanup(data)`; nothing when none is pending. */
static void raise_pending(void (*cleanup)(VALUE), VALUE data)
{
    int state = 0;
    rb_protect(check_ints, Qnil, &state);
    if (state) {
        cleanup(data);
        rb_jump_tag(state);
    }
}

static void leave_session(VALUE handle)
{
    sh_leave(handle);
}

static void free_error(VALUE address)
{
    lib_error_free((void *)(uintptr_t)NUM2ULL(address));
}

static void free_results(VALUE results_handle)
{
    rh_release(rh_get(results_handle));
}

/* A UTF-8 or US-ASCII String without NUL bytes: what the library takes as it is. */
static int plain_text(VALUE s)
{
    int enc = ENCODING_GET(s);
    return (enc == rb_utf8_encindex() || enc == rb_usascii_encindex()) &&
           memchr(RSTRING_PTR(s), '\0', (size_t)RSTRING_LEN(s)) == NULL;
}

struct query_call {
    statement_fn fn;
    void *handle;
    const char *sql;
    size_t n;
    const char **params;
    void *results;
    void *err;
    int done;
};

static void *query_nogvl(void *data)
{
    struct query_call *call = data;
    call->results = call->fn(call->handle, call->sql, call->n, call->params, &call->err);
    call->done = 1;
    return NULL;
}

/* A library string as a frozen, deduplicated UTF-8 String (Ruby's fstring table: no object made
 * when an equal one exists), nil for NULL. */
static VALUE interned_str(const char *p)
{
    return p == NULL ? Qnil : rb_enc_interned_str_cstr(p, rb_utf8_encoding());
}

/* The frozen [names, types, formats] Arrays of the last few distinct result shapes: a
 * statement run again gets the same three Arrays instead of three new ones. Touched only with
 * the GVL held; registered with the collector at init. */
#define SHAPE_SLOTS 8
static VALUE shape_cache[SHAPE_SLOTS];
static unsigned shape_next;

static int shape_matches(VALUE shape, const void *ptr, size_t ncols, const VALUE *names)
{
    if (NIL_P(shape)) {
        return 0;
    }
    VALUE n = RARRAY_AREF(shape, 0), t = RARRAY_AREF(shape, 1), f = RARRAY_AREF(shape, 2);
    if ((size_t)RARRAY_LEN(n) != ncols) {
        return 0;
    }
    for (size_t c = 0; c < ncols; c++) {
        if (RARRAY_AREF(n, (long)c) != names[c] ||
            NUM2ULONG(RARRAY_AREF(t, (long)c)) != (unsigned long)pgsess_column_type(ptr, c) ||
            NUM2INT(RARRAY_AREF(f, (long)c)) != (int)pgsess_column_format(ptr, c)) {
            return 0;
        }
    }
    return 1;
}

#define SHAPE_MAX_COLS 32

/* The [names, types, formats] of the results at `ptr`, frozen, from the cache when it has them. */
static VALUE result_shape(const void *ptr, size_t ncols)
{
    if (ncols <= SHAPE_MAX_COLS) {
        VALUE names[SHAPE_MAX_COLS]; /* on the stack: marked while this frame lives */
        for (size_t c = 0; c < ncols; c++) {
            names[c] = interned_str(pgsess_column_name(ptr, c));
        }
        for (unsigned k = 0; k < SHAPE_SLOTS; k++) {
            if (shape_matches(shape_cache[k], ptr, ncols, names)) {
                return shape_cache[k];
            }
        }
    }
    VALUE n = rb_ary_new_capa((long)ncols);
    VALUE t = rb_ary_new_capa((long)ncols);
    VALUE f = rb_ary_new_capa((long)ncols);
    for (size_t c = 0; c < ncols; c++) {
        rb_ary_push(n, interned_str(pgsess_column_name(ptr, c)));
        rb_ary_push(t, ULONG2NUM(pgsess_column_type(ptr, c)));
        rb_ary_push(f, INT2NUM(pgsess_column_format(ptr, c)));
    }
    VALUE shape = rb_obj_freeze(rb_ary_new_from_args(3, rb_obj_freeze(n), rb_obj_freeze(t), rb_obj_freeze(f)));
    if (ncols <= SHAPE_MAX_COLS) {
        shape_cache[shape_next] = shape;
        shape_next = (shape_next + 1) % SHAPE_SLOTS;
    }
    return shape;
}

/* The Results of `ptr`, owned by `rh`, with the instance variables Results#initialize sets
 * (the per-column Arrays frozen, and shared with earlier results of the same shape). */
static VALUE new_results(VALUE rh, const void *ptr, VALUE sql)
{
    if (NIL_P(c_results)) {
        c_results = rb_path2class("PGSess::Results");
        rb_gc_register_mark_object(c_results);
    }
    size_t ncols = pgsess_ncols(ptr);
    VALUE shape = result_shape(ptr, ncols);
    VALUE obj = rb_obj_alloc(c_results);
    rb_ivar_set(obj, id_iv_sql, sql);
    rb_ivar_set(obj, id_iv_handle, rh);
    rb_ivar_set(obj, id_iv_nrows, SIZET2NUM(pgsess_nrows(ptr)));
    rb_ivar_set(obj, id_iv_ncols, SIZET2NUM(ncols));
    rb_ivar_set(obj, id_iv_columns, RARRAY_AREF(shape, 0));
    rb_ivar_set(obj, id_iv_types, RARRAY_AREF(shape, 1));
    rb_ivar_set(obj, id_iv_formats, RARRAY_AREF(shape, 2));
    rb_ivar_set(obj, id_iv_status, interned_str(pgsess_status(ptr)));
    rb_ivar_set(obj, id_iv_count, LL2NUM(pgsess_count(ptr)));
    rb_ivar_set(obj, id_iv_rows_affected, ULL2NUM(pgsess_rows_affected(ptr)));
    rb_ivar_set(obj, id_iv_backend_pid, INT2NUM(pgsess_backend_pid(ptr)));
    return obj;
}

#define QUERY_MAX_PARAMS 16

/*
 * Ext.query(session_handle, fn_address, sql, params) [{ |results| ... }]
 *   -> Results, the block's value, or Ext::UNCONVERTED
 * Session#query in one call: `fn` (pgsess_query or one of its shape) on the session with `sql`
 * and `params` (an Array of nil, Integers and UTF-8 or US-ASCII Strings without NUL; up to 16),
 * the GVL released during the call as Ext.statement releases it. Without a block returns the
 * Results (freed with a leak warning if garbage-collected unfreed); with one yields them, frees
 * them when the block ends, even by an exception, and returns its value. An interrupt that
 * arrived during the call (Timeout, Thread#raise, Thread#kill: the library cancels the
 * statement on the signal) is raised once the call has returned, the results freed first. A
 * failed statement raises its PGSess::Error (Ext.raise_native). Ext::UNCONVERTED, before
 * anything is run, when `sql` or a parameter needs the Ruby path (Statements.run), which then
 * converts or raises as it always has.
 */
static VALUE ext_query(int argc, VALUE *argv, VALUE self)
{
    (void)self;
    rb_check_arity(argc, 4, 4);
    VALUE handle = argv[0];
    VALUE sql = argv[2];
    VALUE params = argv[3];
    struct session_handle *h = sh_get(handle);
    statement_fn fn = (statement_fn)(uintptr_t)NUM2ULL(argv[1]);
    if (fn == NULL || lib_results_free == NULL) {
        rb_raise(rb_eArgError, "pgsess_ext: NULL function, or Ext.setup was not called");
    }
    if (!RB_TYPE_P(sql, T_STRING) || !plain_text(sql) || !RB_TYPE_P(params, T_ARRAY) ||
        RARRAY_LEN(params) > QUERY_MAX_PARAMS) {
        return unconverted;
    }
    long n = RARRAY_LEN(params);
    VALUE texts[QUERY_MAX_PARAMS]; /* on the stack: marked while this frame lives */
    size_t total = (size_t)RSTRING_LEN(sql) + 1;
    for (long i = 0; i < n; i++) {
        VALUE v = RARRAY_AREF(params, i);
        if (NIL_P(v)) {
            texts[i] = Qnil;
            continue;
        }
        if (FIXNUM_P(v)) {
            v = rb_fix2str(v, 10);
        } else if (RB_TYPE_P(v, T_BIGNUM)) {
            v = rb_big2str(v, 10);
        } else if (!RB_TYPE_P(v, T_STRING) || !plain_text(v)) {
            return unconverted;
        }
        texts[i] = v;
        total += (size_t)RSTRING_LEN(v) + 1;
    }
    sh_enter(h);
    VALUE buf_v, ptrs_v;
    char *buf = ALLOCV(buf_v, total);
    const char **ptrs = ALLOCV_N(const char *, ptrs_v, n ? (size_t)n : 1);
    char *at = buf;
    memcpy(at, RSTRING_PTR(sql), (size_t)RSTRING_LEN(sql));
    at[RSTRING_LEN(sql)] = '\0';
    struct query_call call = { fn, h->ptr, at, (size_t)n, ptrs, NULL, NULL, 0 };
    at += RSTRING_LEN(sql) + 1;
    for (long i = 0; i < n; i++) {
        if (NIL_P(texts[i])) {
            ptrs[i] = NULL;
            continue;
        }
        memcpy(at, RSTRING_PTR(texts[i]), (size_t)RSTRING_LEN(texts[i]));
        at[RSTRING_LEN(texts[i])] = '\0';
        ptrs[i] = at;
        at += RSTRING_LEN(texts[i]) + 1;
    }
    /* _gvl2: no interrupt is checked when the call returns (it would unwind past the results);
     * one pending before the call starts returns without calling: raise it, else call again. */
    for (;;) {
        rb_thread_call_without_gvl2(query_nogvl, &call, RUBY_UBF_IO, NULL);
        if (call.done) {
            break;
        }
        raise_pending(leave_session, handle);
    }
    sh_leave(handle);
    ALLOCV_END(buf_v);
    ALLOCV_END(ptrs_v);
    RB_GC_GUARD(sql);
    RB_GC_GUARD(params);
    if (call.err != NULL) {
        VALUE address = ULL2NUM((uintptr_t)call.err);
        raise_pending(free_error, address);
        rb_funcall(m_ext, id_raise_native, 1, address); /* frees the error and raises */
        return Qnil;
    }
    if (call.results == NULL) {
        rb_raise(rb_eRuntimeError, "pgsess_ext: the library returned neither results nor an error");
    }
    VALUE rh = rh_alloc(c_results_handle);
    struct results_handle *r = rh_get(rh);
    r->ptr = call.results; /* from here the collector frees them if anything below raises */
    r->sql = sql;
    VALUE results = new_results(rh, call.results, sql);
    raise_pending(free_results, rh);
    if (!rb_block_given_p()) {
        return results;
    }
    return rb_ensure(rb_yield, results, rh_free_m, rh);
}

/*
 * Ext.setup(addresses) -> nil
 * The addresses, in the library the binding loaded, of pgsess_results_cells,
 * pgsess_results_get_epoch_micros, then of the metadata calls of Ext.meta: nrows, ncols,
 * column_name, column_type, column_format, status, count, rows_affected, backend_pid, free
 * and query (each pgsess_results_*), then pgsess_error_free, pgsess_results_value and
 * pgsess_results_value_length. Called once, before any other Ext function.
 */
static VALUE ext_setup(VALUE self, VALUE addresses)
{
    (void)self;
    Check_Type(addresses, T_ARRAY);
    if (RARRAY_LEN(addresses) != 16) {
        rb_raise(rb_eArgError, "pgsess_ext: Ext.setup takes 16 addresses, not %ld", RARRAY_LEN(addresses));
    }
    uintptr_t a[16];
    for (long i = 0; i < 16; i++) {
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
    lib_results_free = (free_fn)a[11];
    lib_results_query = (str_fn)a[12];
    lib_error_free = (free_fn)a[13];
    pgsess_value = (cell_str_fn)a[14];
    pgsess_value_length = (cell_size_fn)a[15];
    return Qnil;
}

static VALUE ext_ready(VALUE self)
{
    (void)self;
    return pgsess_cells != NULL && pgsess_epoch_micros != NULL ? Qtrue : Qfalse;
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
    utf8_index = rb_utf8_encindex();
    float_infinity = DBL2NUM(HUGE_VAL);
    float_neg_infinity = DBL2NUM(-HUGE_VAL);
    rb_gc_register_mark_object(float_infinity);
    rb_gc_register_mark_object(float_neg_infinity);
    unconverted = rb_obj_freeze(rb_obj_alloc(rb_cObject));
    rb_define_const(ext, "UNCONVERTED", unconverted);
    rb_define_module_function(ext, "setup", ext_setup, 1);
    rb_define_module_function(ext, "install", ext_install, 1);
    id_getvalue_ruby = rb_intern("getvalue_ruby");
    rb_define_module_function(ext, "meta", ext_meta, 1);
    rb_define_module_function(ext, "statement", ext_statement, 4);
    rb_define_module_function(ext, "ready?", ext_ready, 0);
    rb_define_module_function(ext, "hashes", ext_hashes_checked, -1);
    rb_define_module_function(ext, "value", ext_value_checked, 5);
    rb_define_module_function(ext, "query", ext_query, -1);

    m_ext = ext;
    c_results = Qnil;
    for (unsigned k = 0; k < SHAPE_SLOTS; k++) {
        shape_cache[k] = Qnil;
        rb_gc_register_address(&shape_cache[k]);
    }
    id_raise_closed = rb_intern("raise_closed");
    id_raise_freed = rb_intern("raise_freed");
    id_raise_native = rb_intern("raise_native");
    id_kind_for = rb_intern("kind_for");
    id_address = rb_intern("address");
    id_new = rb_intern("new");
    id_iv_sql = rb_intern("@sql");
    id_iv_handle = rb_intern("@handle");
    id_iv_nrows = rb_intern("@nrows");
    id_iv_ncols = rb_intern("@ncols");
    id_iv_columns = rb_intern("@columns");
    id_iv_types = rb_intern("@types");
    id_iv_formats = rb_intern("@formats");
    id_iv_status = rb_intern("@status");
    id_iv_count = rb_intern("@count");
    id_iv_rows_affected = rb_intern("@rows_affected");
    id_iv_backend_pid = rb_intern("@backend_pid");

    c_results_handle = rb_define_class_under(ext, "ResultsHandle", rb_cObject);
    rb_define_alloc_func(c_results_handle, rh_alloc);
    rb_define_method(c_results_handle, "initialize", rh_initialize, 2);
    rb_define_method(c_results_handle, "use", rh_use, 0);
    rb_define_method(c_results_handle, "free", rh_free_m, 0);
    rb_define_method(c_results_handle, "freed?", rh_freed_p, 0);
    rb_define_method(c_results_handle, "sql", rh_sql, 0);
    rb_define_method(c_results_handle, "address", rh_address, 0);
    rb_define_method(c_results_handle, "to_ptr", rh_to_ptr, 0);
    rb_define_method(c_results_handle, "value", rh_value, 2);
    rb_define_method(c_results_handle, "rows", rh_rows, 2);
    rb_define_method(c_results_handle, "hashes", rh_hashes, 4);

    c_session_handle = rb_define_class_under(ext, "SessionHandle", rb_cObject);
    rb_define_alloc_func(c_session_handle, sh_alloc);
    rb_define_method(c_session_handle, "initialize", sh_initialize, 1);
    rb_define_method(c_session_handle, "use", sh_use, 0);
    rb_define_method(c_session_handle, "closed?", sh_closed_p, 0);
    rb_define_method(c_session_handle, "detach", sh_detach, 1);
}
