/*
 * pgsess.hpp: a header-only C++17 layer over the pgsess C ABI (pgsess.h).
 *
 *     pgsess::Session s("foo");                        // reads PGSQL_FOO
 *     auto r = s.query("SELECT $1::int + 1 AS n", 41);  // parameters are sent as text
 *     for (auto row : r)
 *         std::cout << row["n"].value_or("NULL") << "\n";  // "42", exactly as libpq's PQgetvalue
 *     // r's destructor frees the results and returns the pooled connection
 *
 * Rules for the whole header:
 * - Every failure throws pgsess::Error (a std::runtime_error carrying the library's code,
 *   category, SQLSTATE, detail, hint and context). Bad row/column indexes throw std::out_of_range. No
 *   function returns an error code.
 * - Session, Results, Transaction and Copy each own one C handle (except the non-owning Session
 *   view that Transaction::session() returns). They are move-only: copying is deleted, moving
 *   transfers the handle and leaves the source empty. An empty (default-constructed
 *   or moved-from) object is safe to destroy and to assign to; calls that need the handle throw
 *   pgsess::Error with PGSESS_INTERFACE_ERROR (as the C API reports a NULL handle), and the
 *   read-only accessors of an empty Results report zero rows and columns.
 * - std::string_view values returned by Results and Row point into the results buffer: they stay
 *   valid while the owning Results object (or any Results it was moved into) is alive.
 *   `for (auto row : s.query(...))` is fine (the temporary Results lives for the whole loop), but
 *   `for (auto n : s.query(...).notices())` is not: keep the Results in a variable.
 *   The view Copy::read() returns is valid until the next call on that Copy.
 * - Threading follows the C API: a Session may be used by any number of threads at once (except
 *   that destroying or assigning to it must not race with other calls on it; a transaction's
 *   session is used as its Transaction is, by one thread at a time); a Results may be
 *   read by any number of threads at once; a Transaction and a Copy are used by one thread at a
 *   time; an Error is immutable. pgsess::Options and pgsess::Notification are plain values.
 *
 * Requires C++17 and linking with the pgsess library (pkg-config pgsess, or the CMake target
 * pgsess::pgsess).
 */
#ifndef PGSESS_HPP
#define PGSESS_HPP

#include <pgsess.h>

#include <array>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace pgsess {

/** A pgsess result code (PGSESS_OK, PGSESS_DATA_ERROR, ...). */
using Code = pgsess_code;

/** What a pool undoes before a connection goes to its next user (PGSESS_RESET_DIRTY,
 *  PGSESS_RESET_ALWAYS, PGSESS_RESET_NEVER; see Options::reset). */
using Reset = pgsess_reset;

/** The library version, e.g. "0.1.0" (a static string). Any thread. */
inline std::string_view version() noexcept { return pgsess_version(); }

/** The name of a code as written in pgsess.h, e.g. "PGSESS_POOL_EXHAUSTED" (a static string). */
inline std::string_view code_name(Code code) noexcept { return pgsess_code_name(code); }

/** The DB-API category of a code (pgsess_code_category), e.g. PGSESS_OPERATIONAL_ERROR for
 *  PGSESS_POOL_EXHAUSTED and PGSESS_INTERNAL_ERROR for PGSESS_PANIC; the same as
 *  Error::category() of an error with that code. */
inline Code code_category(Code code) noexcept { return pgsess_code_category(code); }

/**
 * A failure reported by pgsess. what() is the library's message (never contains a password).
 *
 * Thrown by every member of this header that can fail. Immutable and cheap to copy (the fields
 * are shared); any number of threads may read one.
 */
class Error : public std::runtime_error {
public:
    /** Build an error from its parts: `message` becomes what(); the SQLSTATE, DETAIL, HINT and
     *  CONTEXT fields are optional. This header throws these itself; callers rarely need to. */
    Error(Code code, Code category, const std::string &message,
          std::optional<std::string> sqlstate = std::nullopt,
          std::optional<std::string> detail = std::nullopt,
          std::optional<std::string> hint = std::nullopt,
          std::optional<std::string> context = std::nullopt)
        : std::runtime_error(message),
          info_(std::make_shared<Info>(Info{code, category, std::move(sqlstate), std::move(detail),
                                            std::move(hint), std::move(context)})) {}

    /** The error's code, e.g. PGSESS_DATA_ERROR. */
    Code code() const noexcept { return info_->code; }
    /** The DB-API category of the code (see pgsess_error_category), e.g. PGSESS_OPERATIONAL_ERROR
     *  for PGSESS_POOL_EXHAUSTED. */
    Code category() const noexcept { return info_->category; }
    /** pgsess::code_name(code()), e.g. "PGSESS_DATA_ERROR". */
    std::string_view code_name() const noexcept { return pgsess_code_name(info_->code); }
    /** The five-character SQLSTATE (the server's, or the standard one for a client-side failure);
     *  nullopt when there is none (pool exhaustion, configuration and interface errors). */
    const std::optional<std::string> &sqlstate() const noexcept { return info_->sqlstate; }
    /** The server's DETAIL field, or nullopt. */
    const std::optional<std::string> &detail() const noexcept { return info_->detail; }
    /** The server's HINT field, or nullopt. */
    const std::optional<std::string> &hint() const noexcept { return info_->hint; }
    /** The server's CONTEXT field (pgsess_error_field 'W'; for a bad row of a COPY, its line,
     *  e.g. "COPY t, line 15000, column id: \"x\""), or nullopt. */
    const std::optional<std::string> &context() const noexcept { return info_->context; }

private:
    struct Info {
        Code code;
        Code category;
        std::optional<std::string> sqlstate;
        std::optional<std::string> detail;
        std::optional<std::string> hint;
        std::optional<std::string> context;
    };
    // Shared so that copying an Error (as throwing and catching by value do) never throws.
    std::shared_ptr<const Info> info_;
};

/// @cond INTERNAL
// Implementation details, hidden from the Doxygen reference (not part of the public API).
namespace impl {

struct ErrorDeleter {
    void operator()(pgsess_error *e) const noexcept { pgsess_error_free(e); }
};
struct OptionsDeleter {
    void operator()(pgsess_options *o) const noexcept { pgsess_options_free(o); }
};
struct StringDeleter {
    void operator()(char *s) const noexcept { pgsess_string_free(s); }
};
struct NotificationDeleter {
    void operator()(pgsess_notification *n) const noexcept { pgsess_notification_free(n); }
};

inline std::optional<std::string> opt_string(const char *s) {
    if (s == nullptr)
        return std::nullopt;
    return std::string(s);
}

/* Convert a C error object into pgsess::Error, free it, and throw. `what` names the call, for the
 * (never expected) case of a failure without an error object. */
[[noreturn]] inline void throw_error(pgsess_error *raw, const char *what) {
    std::unique_ptr<pgsess_error, ErrorDeleter> err(raw); // freed however we leave
    if (!err) {
        throw Error(PGSESS_INTERFACE_ERROR, PGSESS_INTERFACE_ERROR,
                    std::string("pgsess: ") + what + " failed without an error object");
    }
    const char *message = pgsess_error_message(err.get());
    throw Error(pgsess_error_code(err.get()), pgsess_error_category(err.get()),
                message != nullptr ? message : "", opt_string(pgsess_error_sqlstate(err.get())),
                opt_string(pgsess_error_detail(err.get())), opt_string(pgsess_error_hint(err.get())),
                opt_string(pgsess_error_field(err.get(), 'W')));
}

/* An error this header raises itself, categorised as the library categorises its own. */
[[noreturn]] inline void throw_code(Code code, const std::string &message) {
    throw Error(code, code_category(code), message);
}

inline void check_no_nul(std::string_view s, const char *what) {
    if (s.find('\0') != std::string_view::npos)
        throw_code(PGSESS_INTERFACE_ERROR, std::string("pgsess: ") + what + " contains a NUL byte");
}

template <class T>
inline constexpr bool is_char_type_v =
    std::is_same_v<T, char> || std::is_same_v<T, wchar_t> || std::is_same_v<T, char16_t> ||
    std::is_same_v<T, char32_t>
#if defined(__cpp_char8_t)
    || std::is_same_v<T, char8_t>
#endif
    ;

/* Integers sent as decimal text. bool and the character types are excluded (bool is sent as
 * "true"/"false"; a char is refused at compile time rather than sent as its code). signed char and
 * unsigned char (std::int8_t, std::uint8_t) count as integers. */
template <class T>
inline constexpr bool is_integer_param_v =
    std::is_integral_v<T> && !std::is_same_v<T, bool> && !is_char_type_v<T>;

/* A NUL-terminated string for the C API: borrowed when the argument already is one, else copied. */
class CString {
public:
    CString(const char *s) : ptr_(s) { // NOLINT(google-explicit-constructor): implicit on purpose
        if (s == nullptr)
            throw_code(PGSESS_INTERFACE_ERROR, "pgsess: NULL string argument");
    }
    CString(const std::string &s) : ptr_(s.c_str()) { check_no_nul(s, "a string argument"); }
    CString(std::string_view s) : owned_(s), ptr_(nullptr) { check_no_nul(s, "a string argument"); }
    const char *c_str() const noexcept { return ptr_ != nullptr ? ptr_ : owned_.c_str(); }

private:
    std::string owned_;
    const char *ptr_;
};

} // namespace impl
/// @endcond

/**
 * Bytes to send as a binary parameter (for bytea: zero bytes and any other byte travel as they
 * are, with no text encoding). Borrows the bytes: they must outlive the call it is passed to.
 */
class Bytes {
public:
    /** `size` bytes at `data` (which may be NULL when `size` is 0). */
    Bytes(const void *data, std::size_t size) noexcept : data_(static_cast<const char *>(data)), size_(size) {}
    /** The bytes of `s` (a std::string converts too). */
    explicit Bytes(std::string_view s) noexcept : data_(s.data()), size_(s.size()) {}
    /** The bytes of `v`. */
    explicit Bytes(const std::vector<std::uint8_t> &v) noexcept : Bytes(v.data(), v.size()) {}

    /** The first byte (NULL or dangling when empty). */
    const char *data() const noexcept { return data_; }
    /** The number of bytes. */
    std::size_t size() const noexcept { return size_; }

private:
    const char *data_;
    std::size_t size_;
};

/**
 * One statement parameter (`$1`, `$2`, ...; the server infers each type), sent as text, or in
 * binary format for pgsess::Bytes.
 *
 * Built implicitly from:
 * - std::nullopt, nullptr or an empty std::optional: SQL NULL;
 * - const char * (NULL is SQL NULL), std::string, std::string_view: the text itself (a
 *   string_view is copied, since the C API needs NUL-terminated strings; a string with an
 *   embedded NUL byte throws Error PGSESS_INTERFACE_ERROR);
 * - integers (any integral type except bool and the character types): decimal text via
 *   std::to_chars;
 * - bool: "true" or "false";
 * - pgsess::Bytes: the bytes themselves, as a binary parameter (the statement then goes through
 *   the library's PQexecParams-shaped call, pgsess_query_params or pgsess_callproc_params; more
 *   than INT32_MAX bytes throws Error PGSESS_INTERFACE_ERROR);
 * - std::optional<T> of any of these.
 *
 * A Param borrows a `const char *`, an lvalue std::string or the bytes of a Bytes: it is meant to
 * live only for the call it is passed to.
 */
class Param {
public:
    /** SQL NULL. */
    Param(std::nullopt_t) noexcept {}
    /** SQL NULL. */
    Param(std::nullptr_t) noexcept {}
    /** The text `s`, borrowed (not copied); a NULL pointer is SQL NULL. */
    Param(const char *s) noexcept : borrowed_(s), null_(s == nullptr) {}
    /** The text of `s`, borrowed (not copied): `s` must outlive this Param. Throws Error
     *  PGSESS_INTERFACE_ERROR when `s` contains a NUL byte. */
    Param(const std::string &s) : borrowed_(s.c_str()), null_(false) { impl::check_no_nul(s, "a parameter"); }
    /** The text of `s`, moved into this Param (owned). Throws Error PGSESS_INTERFACE_ERROR when
     *  `s` contains a NUL byte. */
    Param(std::string &&s) : owned_(std::move(s)), null_(false), is_owned_(true) {
        impl::check_no_nul(owned_, "a parameter");
    }
    /** The text of `s`, copied into this Param (owned). Throws Error PGSESS_INTERFACE_ERROR when
     *  `s` contains a NUL byte. */
    Param(std::string_view s) : owned_(s), null_(false), is_owned_(true) { impl::check_no_nul(s, "a parameter"); }

    /** An integer (any integral type except bool and the character types), as decimal text
     *  (std::to_chars, owned). */
    template <class T, std::enable_if_t<impl::is_integer_param_v<T>, int> = 0>
    Param(T value) : null_(false), is_owned_(true) {
        std::array<char, 48> buf{};
        auto res = std::to_chars(buf.data(), buf.data() + buf.size(), value);
        owned_.assign(buf.data(), static_cast<std::size_t>(res.ptr - buf.data()));
    }

    /** A bool, as the text "true" or "false". */
    template <class T, std::enable_if_t<std::is_same_v<T, bool>, int> = 0>
    Param(T value) noexcept : borrowed_(value ? "true" : "false"), null_(false) {}

    /** The bytes of `bytes`, borrowed, as a binary parameter. Throws Error PGSESS_INTERFACE_ERROR
     *  for more than INT32_MAX bytes (the protocol's limit). */
    Param(const Bytes &bytes)
        : borrowed_(bytes.size() != 0 ? bytes.data() : ""), null_(false), binary_(true), size_(bytes.size()) {
        if (bytes.size() > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()))
            impl::throw_code(PGSESS_INTERFACE_ERROR, "pgsess: a binary parameter of " +
                                                         std::to_string(bytes.size()) + " bytes is too long");
    }

    /** SQL NULL when `value` is empty, else Param(*value) (so a contained std::string is
     *  borrowed). */
    template <class T, std::enable_if_t<std::is_constructible_v<Param, const T &>, int> = 0>
    Param(const std::optional<T> &value) : Param(value ? Param(*value) : Param(std::nullopt)) {}

    /** SQL NULL when `value` is empty, else Param(std::move(*value)). */
    template <class T, std::enable_if_t<std::is_constructible_v<Param, T &&>, int> = 0>
    Param(std::optional<T> &&value)
        : Param(value ? Param(std::move(*value)) : Param(std::nullopt)) {}

    /** True for SQL NULL. */
    bool is_null() const noexcept { return null_; }
    /** True for a binary parameter (built from pgsess::Bytes). */
    bool is_binary() const noexcept { return binary_; }
    /** The NUL-terminated text; for a binary parameter its first byte (size() bytes, not
     *  NUL-terminated); nullptr for SQL NULL. Valid while this Param is. */
    const char *c_str() const noexcept {
        if (null_)
            return nullptr;
        return is_owned_ ? owned_.c_str() : borrowed_;
    }
    /** The number of bytes of a binary parameter (0 for text and SQL NULL: text is
     *  NUL-terminated). */
    std::size_t size() const noexcept { return size_; }

private:
    std::string owned_;
    const char *borrowed_ = nullptr;
    bool null_ = true;
    bool is_owned_ = false;
    bool binary_ = false;
    std::size_t size_ = 0;
};

/** True when every type in Args converts to pgsess::Param (constrains the variadic overloads). */
template <class... Args>
inline constexpr bool are_params_v = std::conjunction_v<std::is_constructible<Param, Args &&>...>;

class Results;

/**
 * One row of a Results: a lightweight view (a results handle and a row index), cheap to copy.
 * Valid while the Results it came from (or any Results that was moved from it) is alive.
 */
class Row {
public:
    /** A view of row `index` of `results` (borrowed, not owned). The index is not checked until a
     *  value is read. */
    Row(const pgsess_results *results, std::size_t index) noexcept : results_(results), index_(index) {}

    /** The row's index in its Results. */
    std::size_t index() const noexcept { return index_; }
    /** The number of columns. */
    std::size_t size() const noexcept { return pgsess_results_ncols(results_); }

    /** The value in column `col` as the server's text; nullopt for SQL NULL.
     *  Throws std::out_of_range when `col >= size()` (or the row is out of range). */
    std::optional<std::string_view> operator[](std::size_t col) const;
    /** The value in the first column named exactly `name` (case-sensitive); nullopt for SQL NULL.
     *  Throws std::out_of_range when no column has that name. */
    std::optional<std::string_view> operator[](std::string_view name) const;

private:
    void check_row() const;

    const pgsess_results *results_;
    std::size_t index_;
};

/**
 * The buffered result of one statement; owns a pgsess_results handle.
 *
 * Ownership: move-only. The destructor (or reset()) calls pgsess_results_free, which returns the
 * pooled connection the results hold: free results promptly, or later statements wait and finally
 * fail with PGSESS_POOL_EXHAUSTED. Results stay valid after their Session is destroyed.
 *
 * Threading: read-only; any number of threads may read one Results at once (but not while it is
 * being destroyed, reset or assigned to).
 */
class Results {
public:
    /** An input iterator over the rows; dereferences to a Row by value. */
    class iterator {
    public:
        /** An input iterator. */
        using iterator_category = std::input_iterator_tag;
        /** The element type: a Row view. */
        using value_type = Row;
        /** The distance type between two iterators. */
        using difference_type = std::ptrdiff_t;
        /** No pointer type: there is no operator->. */
        using pointer = void;
        /** Dereferencing yields a Row by value. */
        using reference = Row;

        /** An iterator with no results handle, at row 0. */
        iterator() noexcept = default;
        /** An iterator at row `index` of `results` (borrowed, not owned). */
        iterator(const pgsess_results *results, std::size_t index) noexcept : results_(results), index_(index) {}
        /** The current row, as a Row view. */
        Row operator*() const noexcept { return Row(results_, index_); }
        /** Advance to the next row. */
        iterator &operator++() noexcept {
            ++index_;
            return *this;
        }
        /** Advance to the next row; returns the iterator as it was before. */
        iterator operator++(int) noexcept {
            iterator old = *this;
            ++index_;
            return old;
        }
        /** Equal when both refer to the same results handle and row index. */
        friend bool operator==(const iterator &a, const iterator &b) noexcept {
            return a.results_ == b.results_ && a.index_ == b.index_;
        }
        /** The negation of operator==. */
        friend bool operator!=(const iterator &a, const iterator &b) noexcept { return !(a == b); }

    private:
        const pgsess_results *results_ = nullptr;
        std::size_t index_ = 0;
    };
    /** The same as iterator (rows are read-only views). */
    using const_iterator = iterator;

    /** An empty Results (no handle, no rows). */
    Results() noexcept = default;
    /** Take ownership of a handle from the C API (NULL gives an empty Results). */
    explicit Results(pgsess_results *handle) noexcept : h_(handle) {}
    /** Frees the results (pgsess_results_free); does nothing when empty. */
    ~Results() { pgsess_results_free(h_); }

    /** Not copyable (move-only). */
    Results(const Results &) = delete;
    /** Not copyable (move-only). */
    Results &operator=(const Results &) = delete;
    /** Takes other's handle; other is left empty. */
    Results(Results &&other) noexcept : h_(std::exchange(other.h_, nullptr)) {}
    /** Frees the results held so far, then takes other's; other is left empty. */
    Results &operator=(Results &&other) noexcept {
        if (this != &other)
            pgsess_results_free(std::exchange(h_, std::exchange(other.h_, nullptr)));
        return *this;
    }

    /** Free the results now (returning the pooled connection); the object becomes empty. */
    void reset() noexcept { pgsess_results_free(std::exchange(h_, nullptr)); }
    /** Give up ownership: the caller must pgsess_results_free the returned handle. */
    pgsess_results *release() noexcept { return std::exchange(h_, nullptr); }
    /** The C handle (still owned by this object), or NULL when empty. */
    pgsess_results *get() const noexcept { return h_; }
    /** True unless empty. */
    explicit operator bool() const noexcept { return h_ != nullptr; }

    /** Number of rows (0 for a command without rows, or when empty). */
    std::size_t rows() const noexcept { return pgsess_results_nrows(h_); }
    /** Number of columns (0 for a command without rows, or when empty). */
    std::size_t columns() const noexcept { return pgsess_results_ncols(h_); }
    /** Whether there are no rows. */
    bool empty() const noexcept { return rows() == 0; }

    /** Name of column `col`. Throws std::out_of_range when `col >= columns()`. */
    std::string_view column_name(std::size_t col) const {
        const char *name = pgsess_results_column_name(h_, col);
        if (name == nullptr)
            throw std::out_of_range("pgsess::Results::column_name: column " + std::to_string(col) +
                                    " out of range (" + std::to_string(columns()) + " columns)");
        return name;
    }
    /** Type OID of column `col` (as PQftype: 23 int4, 25 text, ...). Throws std::out_of_range when
     *  `col >= columns()`. */
    std::uint32_t column_type(std::size_t col) const {
        check_col(col, "column_type");
        return pgsess_results_column_type(h_, col);
    }
    /** Index of the first column named exactly `name` (case-sensitive), or nullopt. */
    std::optional<std::size_t> column_index(std::string_view name) const noexcept {
        return find_column(h_, name);
    }

    /** The value at (`row`, `col`) as the server's text, exactly as libpq's PQgetvalue gives it;
     *  nullopt for SQL NULL. Throws std::out_of_range for an index out of range. */
    std::optional<std::string_view> value(std::size_t row, std::size_t col) const {
        check_row(row);
        check_col(col, "value");
        return cell(h_, row, col);
    }
    /** The value at (`row`, column named `name`); see Row::operator[](std::string_view). */
    std::optional<std::string_view> value(std::size_t row, std::string_view name) const {
        check_row(row);
        return Row(h_, row)[name];
    }
    /** Whether the value at (`row`, `col`) is SQL NULL. Throws std::out_of_range for an index out
     *  of range. */
    bool is_null(std::size_t row, std::size_t col) const {
        check_row(row);
        check_col(col, "is_null");
        return pgsess_results_is_null(h_, row, col);
    }

    /** Row `row`. Throws std::out_of_range when `row >= rows()`. */
    Row row(std::size_t row) const {
        check_row(row);
        return Row(h_, row);
    }
    /** Row `row`, unchecked until a value is read (reading a value from a row out of range throws
     *  std::out_of_range). */
    Row operator[](std::size_t row) const noexcept { return Row(h_, row); }

    /** Iterator at the first row. */
    iterator begin() const noexcept { return iterator(h_, 0); }
    /** Iterator past the last row (at index rows()). */
    iterator end() const noexcept { return iterator(h_, rows()); }

    /** Rows affected, as libpq's PQcmdTuples reads the command tag (INSERT, UPDATE, DELETE, MERGE,
     *  SELECT, MOVE, FETCH, COPY; any other command 0). */
    std::uint64_t rows_affected() const noexcept { return pgsess_results_rows_affected(h_); }
    /** Backend process id of the connection that ran the statement (0 when empty). */
    std::int32_t backend_pid() const noexcept { return pgsess_results_backend_pid(h_); }
    /** The notices the statement raised, in libpq's form ("NOTICE:  text\n"). */
    std::vector<std::string_view> notices() const {
        std::vector<std::string_view> out;
        const std::size_t n = pgsess_results_notice_count(h_);
        out.reserve(n);
        for (std::size_t i = 0; i < n; ++i) {
            const char *notice = pgsess_results_notice(h_, i);
            if (notice != nullptr)
                out.emplace_back(notice);
        }
        return out;
    }

private:
    friend class Row;

    static std::optional<std::size_t> find_column(const pgsess_results *h, std::string_view name) noexcept {
        const std::size_t n = pgsess_results_ncols(h);
        for (std::size_t c = 0; c < n; ++c) {
            const char *col = pgsess_results_column_name(h, c);
            if (col != nullptr && name == col)
                return c;
        }
        return std::nullopt;
    }
    static std::optional<std::string_view> cell(const pgsess_results *h, std::size_t row, std::size_t col) noexcept {
        const char *v = pgsess_results_value(h, row, col);
        if (v == nullptr)
            return std::nullopt;
        return std::string_view(v, pgsess_results_value_length(h, row, col));
    }
    void check_row(std::size_t row) const {
        if (row >= rows())
            throw std::out_of_range("pgsess::Results: row " + std::to_string(row) + " out of range (" +
                                    std::to_string(rows()) + " rows)");
    }
    void check_col(std::size_t col, const char *what) const {
        if (col >= columns())
            throw std::out_of_range(std::string("pgsess::Results::") + what + ": column " +
                                    std::to_string(col) + " out of range (" + std::to_string(columns()) +
                                    " columns)");
    }

    pgsess_results *h_ = nullptr;
};

inline void Row::check_row() const {
    const std::size_t n = pgsess_results_nrows(results_);
    if (index_ >= n)
        throw std::out_of_range("pgsess::Row: row " + std::to_string(index_) + " out of range (" +
                                std::to_string(n) + " rows)");
}

inline std::optional<std::string_view> Row::operator[](std::size_t col) const {
    check_row();
    const std::size_t n = size();
    if (col >= n)
        throw std::out_of_range("pgsess::Row: column " + std::to_string(col) + " out of range (" +
                                std::to_string(n) + " columns)");
    return Results::cell(results_, index_, col);
}

inline std::optional<std::string_view> Row::operator[](std::string_view name) const {
    check_row();
    const std::optional<std::size_t> col = Results::find_column(results_, name);
    if (!col)
        throw std::out_of_range("pgsess::Row: no column named \"" + std::string(name) + "\"");
    return Results::cell(results_, index_, *col);
}

/// @cond INTERNAL
namespace impl {

/* The two C functions of one kind of statement on a Handle (pgsess_session or pgsess_tx): the one
 * taking text parameters and the PQexecParams-shaped one, used when a parameter is binary. */
template <class Handle>
struct Calls {
    pgsess_results *(*text)(Handle *, const char *, std::size_t, const char *const *, pgsess_error **);
    pgsess_results *(*typed)(Handle *, const char *, std::size_t, const std::uint32_t *, const char *const *,
                             const std::int32_t *, const std::int32_t *, pgsess_error **);
    const char *what;
};

inline constexpr Calls<pgsess_session> kQuery{pgsess_query, pgsess_query_params, "pgsess_query"};
inline constexpr Calls<pgsess_session> kCallproc{pgsess_callproc, pgsess_callproc_params, "pgsess_callproc"};
inline constexpr Calls<pgsess_tx> kTxQuery{pgsess_tx_query, pgsess_tx_query_params, "pgsess_tx_query"};
inline constexpr Calls<pgsess_tx> kTxCallproc{pgsess_tx_callproc, pgsess_tx_callproc_params,
                                              "pgsess_tx_callproc"};

/* Wrap what a C call returned: Results, or the error thrown. */
inline Results take_results(pgsess_results *r, pgsess_error *err, const char *what) {
    if (r == nullptr)
        throw_error(err, what);
    pgsess_error_free(err); // NULL on success; freed anyway in case
    return Results(r);
}

template <class Handle>
Results run_text(const Calls<Handle> &calls, Handle *handle, const char *sql, std::size_t n,
                 const char *const *values) {
    pgsess_error *err = nullptr;
    pgsess_results *r = calls.text(handle, sql, n, n != 0 ? values : nullptr, &err);
    return take_results(r, err, calls.what);
}

template <class Handle, class... Args>
Results run_variadic(const Calls<Handle> &calls, Handle *handle, const CString &sql, Args &&...args) {
    constexpr std::size_t n = sizeof...(Args);
    const std::array<Param, n> params{Param(std::forward<Args>(args))...};
    std::array<const char *, n> values{};
    std::array<std::int32_t, n> lengths{};
    std::array<std::int32_t, n> formats{};
    bool binary = false;
    for (std::size_t i = 0; i < n; ++i) {
        values[i] = params[i].c_str();
        if (params[i].is_binary()) {
            binary = true;
            lengths[i] = static_cast<std::int32_t>(params[i].size()); // checked by Param
            formats[i] = 1;
        }
    }
    if (!binary)
        return run_text(calls, handle, sql.c_str(), n, values.data());
    pgsess_error *err = nullptr;
    pgsess_results *r =
        calls.typed(handle, sql.c_str(), n, nullptr, values.data(), lengths.data(), formats.data(), &err);
    return take_results(r, err, calls.what);
}

template <class Handle>
Results run_vector(const Calls<Handle> &calls, Handle *handle, const CString &sql,
                   const std::vector<std::optional<std::string>> &params) {
    std::vector<const char *> ptrs;
    ptrs.reserve(params.size());
    for (const auto &p : params) {
        if (p)
            check_no_nul(*p, "a parameter");
        ptrs.push_back(p ? p->c_str() : nullptr);
    }
    return run_text(calls, handle, sql.c_str(), ptrs.size(), ptrs.data());
}

} // namespace impl
/// @endcond

class Session;

/**
 * A transaction: one pooled connection pinned from Session::begin() until commit() or rollback().
 *
 * Ownership: move-only; owns a pgsess_tx handle. A Transaction destroyed (or assigned to) while
 * still open is rolled back (pgsess_rollback). After commit() or rollback() it is empty; further
 * query(), callproc() or commit() calls throw Error PGSESS_INTERFACE_ERROR. Results from query()
 * and callproc() share the transaction's connection, which returns to the pool once the
 * transaction has ended and all of them are freed.
 *
 * Threading: one thread at a time.
 */
class Transaction {
public:
    /** An empty (ended) transaction. */
    Transaction() noexcept = default;
    /** Take ownership of a handle from pgsess_begin (NULL gives an empty Transaction). */
    explicit Transaction(pgsess_tx *handle) noexcept : h_(handle) {}
    /** Rolls back when still open. */
    ~Transaction() { pgsess_rollback(h_); }

    /** Not copyable (move-only). */
    Transaction(const Transaction &) = delete;
    /** Not copyable (move-only). */
    Transaction &operator=(const Transaction &) = delete;
    /** Takes other's handle; other is left empty (ended). */
    Transaction(Transaction &&other) noexcept : h_(std::exchange(other.h_, nullptr)) {}
    /** Rolls back the transaction held so far (if open), then takes other's. */
    Transaction &operator=(Transaction &&other) noexcept {
        if (this != &other)
            pgsess_rollback(std::exchange(h_, std::exchange(other.h_, nullptr)));
        return *this;
    }

    /** Run a statement in the transaction; parameters as for Session::query. After a failed
     *  statement the server refuses further statements (SQLSTATE 25P02) until rollback. */
    template <class... Args, std::enable_if_t<are_params_v<Args...>, int> = 0>
    Results query(const impl::CString &sql, Args &&...params) {
        check_active("query");
        return impl::run_variadic(impl::kTxQuery, h_, sql, std::forward<Args>(params)...);
    }
    /** Run a statement with a vector of parameters (nullopt is SQL NULL). */
    Results query(const impl::CString &sql, const std::vector<std::optional<std::string>> &params) {
        check_active("query");
        return impl::run_vector(impl::kTxQuery, h_, sql, params);
    }

    /** Session::callproc() inside the transaction (pgsess_tx_callproc): the call's effects are
     *  committed or rolled back with the transaction. */
    template <class... Args, std::enable_if_t<are_params_v<Args...>, int> = 0>
    Results callproc(const impl::CString &name, Args &&...args) {
        check_active("callproc");
        return impl::run_variadic(impl::kTxCallproc, h_, name, std::forward<Args>(args)...);
    }
    /** callproc() with a vector of arguments (nullopt is SQL NULL). */
    Results callproc(const impl::CString &name, const std::vector<std::optional<std::string>> &args) {
        check_active("callproc");
        return impl::run_vector(impl::kTxCallproc, h_, name, args);
    }

    /** Commit. The transaction is ended (and empty) afterwards in every case, even when this
     *  throws. Throws Error PGSESS_TRANSACTION_ROLLBACK when a statement in the transaction failed
     *  (the server rolled back instead). */
    void commit() {
        check_active("commit");
        pgsess_error *err = nullptr;
        if (pgsess_commit(std::exchange(h_, nullptr), &err) != PGSESS_OK)
            impl::throw_error(err, "pgsess_commit");
        pgsess_error_free(err);
    }
    /** Roll back now; the transaction becomes empty. Does nothing when already ended. */
    void rollback() noexcept { pgsess_rollback(std::exchange(h_, nullptr)); }

    /**
     * The transaction's session (pgsess_tx_session): every Session call on it (query(),
     * callproc(), ...) runs inside this transaction, on its connection, and is committed or
     * rolled back with it, so code written against a Session can take part in the transaction.
     * A non-owning view: its destructor never closes anything (Session::owns_handle() is false),
     * and it is valid only until this transaction ends (commit(), rollback(), destruction or
     * assignment); using it afterwards is undefined behaviour, as for a dangling pointer. Each
     * call returns a view of the same C session. begin() on it throws Error
     * PGSESS_INTERFACE_ERROR (use SAVEPOINT). One thread at a time, as the Transaction. Throws
     * Error PGSESS_INTERFACE_ERROR when the transaction has ended.
     */
    Session session();

    /** True while the transaction is open (not yet committed, rolled back or moved from). */
    bool active() const noexcept { return h_ != nullptr; }
    /** The same as active(). */
    explicit operator bool() const noexcept { return active(); }
    /** The C handle (still owned by this object), or NULL when ended. */
    pgsess_tx *get() const noexcept { return h_; }
    /** Give up ownership: the caller must end the returned handle with pgsess_commit or
     *  pgsess_rollback. */
    pgsess_tx *release() noexcept { return std::exchange(h_, nullptr); }

private:
    void check_active(const char *what) const {
        if (h_ == nullptr)
            impl::throw_code(PGSESS_INTERFACE_ERROR, std::string("pgsess::Transaction::") + what +
                                                         ": the transaction has ended (committed, rolled "
                                                         "back or moved from)");
    }

    pgsess_tx *h_ = nullptr;
};

/**
 * A COPY in progress, from Session::copy_in() (COPY ... FROM STDIN: write() the rows, then
 * finish()) or Session::copy_out() (COPY ... TO STDOUT: read() until nullopt, then finish() if
 * the row count is wanted). Text, CSV and binary data pass through byte for byte.
 *
 * Ownership: move-only; owns a pgsess_copy handle, which holds its connection until finish() (or
 * until destroyed): on a pooled session that is one pooled connection; on a pinned or
 * transaction's session, that session's connection, whose other statements throw Error
 * PGSESS_INTERFACE_ERROR meanwhile. Destroying (or assigning to, or reset()) a Copy that was not
 * finished aborts it: a COPY FROM sends CopyFail, so none of its rows are committed; a COPY TO not
 * read to the end is cancelled.
 *
 * Threading: one thread at a time.
 */
class Copy {
public:
    /** An empty Copy (every call throws Error PGSESS_INTERFACE_ERROR). */
    Copy() noexcept = default;
    /** Take ownership of a handle from pgsess_copy_in or pgsess_copy_out (NULL gives an empty
     *  Copy). */
    explicit Copy(pgsess_copy *handle) noexcept : h_(handle) {}
    /** Frees the handle (pgsess_copy_free), aborting the copy when it was not finished. */
    ~Copy() { pgsess_copy_free(h_); }

    /** Not copyable (move-only). */
    Copy(const Copy &) = delete;
    /** Not copyable (move-only). */
    Copy &operator=(const Copy &) = delete;
    /** Takes other's handle; other is left empty. */
    Copy(Copy &&other) noexcept : h_(std::exchange(other.h_, nullptr)) {}
    /** Frees (and so aborts, when unfinished) the copy held so far, then takes other's. */
    Copy &operator=(Copy &&other) noexcept {
        if (this != &other)
            pgsess_copy_free(std::exchange(h_, std::exchange(other.h_, nullptr)));
        return *this;
    }

    /**
     * COPY FROM: send `data` (any bytes; rows may be split across calls anyhow). Buffered and
     * flushed in large chunks, so a server error about an earlier row (a bad row: SQLSTATE such as
     * 22P02, with the row's line number) is thrown by a later write() or by finish(); the copy is
     * then over and later calls throw Error PGSESS_INTERFACE_ERROR. An empty `data` sends nothing.
     */
    void write(std::string_view data) {
        check_open("write");
        pgsess_error *err = nullptr;
        if (pgsess_copy_write(h_, data.empty() ? nullptr : data.data(), data.size(), &err) != PGSESS_OK)
            impl::throw_error(err, "pgsess_copy_write");
        pgsess_error_free(err);
    }

    /**
     * COPY TO: the next CopyData message (for text and CSV, one row with its newline), or nullopt
     * at the end. The view is valid until the next call on this Copy (read(), finish(),
     * destruction, assignment). Throws Error on failure (a server error during the COPY, a lost
     * connection).
     */
    std::optional<std::string_view> read() {
        check_open("read");
        pgsess_error *err = nullptr;
        std::size_t len = 0;
        const void *data = pgsess_copy_read(h_, &len, &err);
        if (data == nullptr) {
            if (err != nullptr)
                impl::throw_error(err, "pgsess_copy_read");
            return std::nullopt;
        }
        return std::string_view(static_cast<const char *>(data), len);
    }

    /**
     * COPY TO: every CopyData message the library has buffered (waiting for one when none is),
     * their data joined into one piece, or nullopt at the end: the same bytes as read() gives,
     * typically 64 KiB or more per call. Valid until the next call on this Copy; may be mixed with
     * read(). Throws Error as read() does.
     */
    std::optional<std::string_view> read_chunk() {
        check_open("read_chunk");
        pgsess_error *err = nullptr;
        std::size_t len = 0;
        const void *data = pgsess_copy_read_chunk(h_, &len, &err);
        if (data == nullptr) {
            if (err != nullptr)
                impl::throw_error(err, "pgsess_copy_read_chunk");
            return std::nullopt;
        }
        return std::string_view(static_cast<const char *>(data), len);
    }

    /**
     * Abort now (libpq: PQputCopyEnd with an error message): a COPY FROM fails on the server with
     * "COPY from stdin failed: <why>" (nothing of it is kept; inside a transaction the
     * transaction fails too); a COPY TO has its rest discarded. Nothing to do once the copy has
     * ended. Throws Error when the COPY had already failed (that failure, e.g. a bad row) or the
     * connection was lost. The object stays (empty it with reset(), or let it be destroyed).
     */
    void abort(const impl::CString &why) { abort_with(why.c_str()); }
    /** abort() with the library's default reason. */
    void abort() { abort_with(nullptr); }

    /** True for a COPY FROM STDIN (write() it), false for a COPY TO STDOUT (read() it) and when
     *  empty. */
    bool is_in() const noexcept { return pgsess_copy_is_in(h_); }

    /**
     * End the copy and return the number of rows copied: for COPY FROM, sends CopyDone and waits
     * for the server's verdict (throws Error for a bad row not yet reported); for COPY TO, call it
     * after read() returned nullopt. Returns the connection to the pool (or to its pinned
     * session); the handle itself is freed when this Copy is destroyed.
     */
    std::uint64_t finish() {
        check_open("finish");
        pgsess_error *err = nullptr;
        const std::uint64_t n = pgsess_copy_finish(h_, &err);
        if (n == std::numeric_limits<std::uint64_t>::max())
            impl::throw_error(err, "pgsess_copy_finish");
        pgsess_error_free(err);
        return n;
    }

    /** Free the handle now (aborting an unfinished copy); the object becomes empty. */
    void reset() noexcept { pgsess_copy_free(std::exchange(h_, nullptr)); }
    /** Give up ownership: the caller must pgsess_copy_free the returned handle. */
    pgsess_copy *release() noexcept { return std::exchange(h_, nullptr); }
    /** The C handle (still owned by this object), or NULL when empty. */
    pgsess_copy *get() const noexcept { return h_; }
    /** True unless empty. */
    explicit operator bool() const noexcept { return h_ != nullptr; }

private:
    void abort_with(const char *why) {
        check_open("abort");
        pgsess_error *err = nullptr;
        if (pgsess_copy_abort(h_, why, &err) != PGSESS_OK)
            impl::throw_error(err, "pgsess_copy_abort");
        pgsess_error_free(err);
    }
    void check_open(const char *what) const {
        if (h_ == nullptr)
            impl::throw_code(PGSESS_INTERFACE_ERROR, std::string("pgsess::Copy::") + what +
                                                         ": the copy is empty (default-constructed, moved "
                                                         "from or reset)");
    }

    pgsess_copy *h_ = nullptr;
};

/**
 * One notification (NOTIFY / pg_notify) delivered to a listening Session, or a gap marker. A plain
 * value (copied out of the library's object).
 */
struct Notification {
    /** The channel, exactly as it was listened to (case and quotes kept). */
    std::string channel;
    /** The payload ("" when none was given, and for a gap marker). */
    std::string payload;
    /** Backend process id of the session that sent it (0 for a gap marker). */
    std::int32_t pid = 0;
    /** True for a gap marker: notifications on `channel` may have been lost (the listener's
     *  connection was lost and has been re-established, or the session's queue overflowed). */
    bool gap = false;
};

/**
 * Options for opening a Session. A plain value; an unset member keeps the library default.
 * Sessions whose URI and pool options are equal share one process-wide pool.
 */
struct Options {
    /** A PostgreSQL URI to use instead of the PGSQL_* environment variable. */
    std::optional<std::string> db_url;
    /** The most connections the pool may hold open (1 to 10000; default 25). */
    std::optional<std::uint32_t> pool_max_size;
    /** Seconds after which an idle connection is closed (default 60; 0 keeps them open). */
    std::optional<std::uint32_t> pool_idle_ttl;
    /** How long a statement waits for a pooled connection, in milliseconds (default 5000;
     *  at least 1). */
    std::optional<std::uint32_t> checkout_timeout_ms;
    /** How the pool resets a connection before its next user (default PGSESS_RESET_DIRTY:
     *  DISCARD ALL only after a statement that may have changed session state; PGSESS_RESET_ALWAYS:
     *  after every use; PGSESS_RESET_NEVER: only an open transaction is rolled back, so settings
     *  pass from one user to the next). Part of the pool key: sessions with different modes use
     *  different pools. A value that is not a mode makes the Session constructor throw Error
     *  PGSESS_INTERFACE_ERROR. */
    std::optional<Reset> reset;
    /** Open a pinned session (as Session::pin() gives): one connection held for the session's
     *  life. Not part of the pool key: pinned and pooled sessions of one URI share a pool. */
    bool pinned = false;
    /** Seconds after which a connection is closed when next idle, each connection's limit
     *  within +-10% of it (default 3600; 0: no limit). */
    std::optional<std::uint32_t> pool_max_lifetime;
    /** Idle connections kept open: opened when the pool is created, re-opened in the background
     *  (default 0; at most 10000, a value above pool_max_size keeps pool_max_size). */
    std::optional<std::uint32_t> pool_min_idle;
    /** Milliseconds of idleness after which a connection gets a round trip before it is handed
     *  out (default 30000; 0: never). */
    std::optional<std::uint32_t> pool_health_check_ms;
    /** Asked for the password of each new connection (pgsess_options_set_password_callback:
     *  rotated passwords, IAM tokens); nullptr (the default) for none. The function and
     *  password_user_data are part of the pool key; the callback runs on library threads too, must
     *  be thread-safe, must not throw, and user_data must outlive every session using it. */
    pgsess_password_callback password_callback = nullptr;
    /** Passed to password_callback as it is. */
    void *password_user_data = nullptr;
    /** A signal interrupting a statement's wait for its answer cancels the statement
     *  (pgsess_options_set_cancel_on_signal): for alarm()-style timeouts. Default false. */
    bool cancel_on_signal = false;
};

/**
 * Check a connection string or a session name the way Session's constructor reads it, without
 * connecting (pgsess_config_check): service files and password files are looked up, every value
 * checked. Throws Error (PGSESS_CONFIG_ERROR, PGSESS_NOT_SUPPORTED_ERROR) saying what is wrong;
 * the message never contains a password.
 */
inline void config_check(std::string_view uri_or_conninfo) {
    const impl::CString arg(uri_or_conninfo);
    pgsess_error *err = nullptr;
    if (pgsess_config_check(arg.c_str(), &err) != PGSESS_OK)
        impl::throw_error(err, "pgsess_config_check");
    pgsess_error_free(err);
}

/**
 * A session on a process-wide connection pool; owns a pgsess_session handle.
 *
 * A pooled session (the default) checks out a connection per statement, so session state (SET,
 * temporary tables, ...) does not carry from one statement to the next. A pinned session (pin(),
 * or Options::pinned) holds one connection for its life: state carries over as on one libpq
 * connection, and BEGIN ... COMMIT sent as separate query() calls is one transaction. A
 * transaction's session (Transaction::session()) runs every call inside that transaction.
 *
 * Ownership: move-only. The destructor calls pgsess_close; Results and Transactions obtained from
 * the session stay valid and keep their connections until they are destroyed. The exception is a
 * non-owning view (Transaction::session(), Session::borrow()): its destructor closes nothing.
 *
 * Threading: thread-safe; any number of threads may call query(), callproc(), begin() and the
 * accessors at once (each statement checks out its own pooled connection; on a pinned session
 * they take turns on its one connection). Destroying, moving from or assigning to a Session must
 * not race with other calls on it.
 */
class Session {
public:
    /** An empty session (every statement throws PGSESS_INTERFACE_ERROR). */
    Session() noexcept = default;

    /**
     * Open the session named `name`: the URI comes from options.db_url when set, else from the
     * environment variable "PGSQL_" + name upper-cased (an empty name reads PGSQL). Throws Error:
     * PGSESS_CONFIG_ERROR for a missing variable, a malformed URI or an option out of range;
     * a connection error when this creates the pool and its first connection fails.
     */
    explicit Session(std::string_view name, const Options &options = Options{}) {
        const impl::CString cname(name);
        std::unique_ptr<pgsess_options, impl::OptionsDeleter> opts(pgsess_options_new());
        if (!opts)
            impl::throw_code(PGSESS_INTERFACE_ERROR, "pgsess_options_new failed");
        if (options.db_url)
            set_option(pgsess_options_set_db_url(opts.get(), impl::CString(*options.db_url).c_str()),
                       "db_url", "(URI)");
        if (options.pool_max_size)
            set_option(pgsess_options_set_pool_max_size(opts.get(), *options.pool_max_size),
                       "pool_max_size", std::to_string(*options.pool_max_size));
        if (options.pool_idle_ttl)
            set_option(pgsess_options_set_pool_idle_ttl(opts.get(), *options.pool_idle_ttl),
                       "pool_idle_ttl", std::to_string(*options.pool_idle_ttl));
        if (options.checkout_timeout_ms)
            set_option(pgsess_options_set_checkout_timeout_ms(opts.get(), *options.checkout_timeout_ms),
                       "checkout_timeout_ms", std::to_string(*options.checkout_timeout_ms));
        if (options.reset)
            set_option(pgsess_options_set_reset(opts.get(), *options.reset), "reset",
                       std::to_string(static_cast<int>(*options.reset)));
        if (options.pinned)
            set_option(pgsess_options_set_pinned(opts.get(), true), "pinned", "true");
        if (options.pool_max_lifetime)
            set_option(pgsess_options_set_pool_max_lifetime(opts.get(), *options.pool_max_lifetime),
                       "pool_max_lifetime", std::to_string(*options.pool_max_lifetime));
        if (options.pool_min_idle)
            set_option(pgsess_options_set_pool_min_idle(opts.get(), *options.pool_min_idle), "pool_min_idle",
                       std::to_string(*options.pool_min_idle));
        if (options.pool_health_check_ms)
            set_option(pgsess_options_set_pool_health_check_ms(opts.get(), *options.pool_health_check_ms),
                       "pool_health_check_ms", std::to_string(*options.pool_health_check_ms));
        if (options.cancel_on_signal)
            set_option(pgsess_options_set_cancel_on_signal(opts.get(), true), "cancel_on_signal", "true");
        if (options.password_callback)
            set_option(pgsess_options_set_password_callback(opts.get(), options.password_callback,
                                                            options.password_user_data),
                       "password_callback", "(function)");
        pgsess_error *err = nullptr;
        h_ = pgsess_open(cname.c_str(), opts.get(), &err);
        if (h_ == nullptr)
            impl::throw_error(err, "pgsess_open");
        pgsess_error_free(err);
    }

    /** Take ownership of a handle from pgsess_open or pgsess_pin (NULL gives an empty Session). */
    explicit Session(pgsess_session *handle) noexcept : h_(handle) {}
    /** A non-owning view of a session owned elsewhere (such as pgsess_tx_session's): calls work
     *  as on any Session, but neither the destructor nor assignment ever closes `handle`, which
     *  must outlive the view. NULL gives an empty Session. */
    static Session borrow(pgsess_session *handle) noexcept {
        Session view(handle);
        view.owned_ = false;
        return view;
    }
    /** Closes the session (pgsess_close) when it owns it; does nothing when empty or a view. */
    ~Session() { close_owned(); }

    /** Not copyable (move-only). */
    Session(const Session &) = delete;
    /** Not copyable (move-only). */
    Session &operator=(const Session &) = delete;
    /** Takes other's handle (and whether it owns it); other is left empty. */
    Session(Session &&other) noexcept
        : h_(std::exchange(other.h_, nullptr)), owned_(std::exchange(other.owned_, true)) {}
    /** Closes the session held so far (when owned), then takes other's. */
    Session &operator=(Session &&other) noexcept {
        if (this != &other) {
            close_owned();
            h_ = std::exchange(other.h_, nullptr);
            owned_ = std::exchange(other.owned_, true);
        }
        return *this;
    }

    /**
     * Run `sql` with parameters `$1..$n` (see pgsess::Param for what converts: strings, integers,
     * bool, std::nullopt for SQL NULL, std::optional of those). With no parameters the string may
     * hold several statements; the last one's result is returned. Waits up to the checkout
     * timeout for a pooled connection; the returned Results hold it until destroyed.
     * Throws Error on failure.
     */
    template <class... Args, std::enable_if_t<are_params_v<Args...>, int> = 0>
    Results query(const impl::CString &sql, Args &&...params) {
        check_open("query");
        return impl::run_variadic(impl::kQuery, h_, sql, std::forward<Args>(params)...);
    }
    /** Run `sql` with a vector of parameters (nullopt is SQL NULL). */
    Results query(const impl::CString &sql, const std::vector<std::optional<std::string>> &params) {
        check_open("query");
        return impl::run_vector(impl::kQuery, h_, sql, params);
    }

    /** `SELECT * FROM name($1, ...)`; `name` may be schema-qualified and each part is quoted as an
     *  identifier (so it is case-sensitive). Arguments and results as for query(). */
    template <class... Args, std::enable_if_t<are_params_v<Args...>, int> = 0>
    Results callproc(const impl::CString &name, Args &&...args) {
        check_open("callproc");
        return impl::run_variadic(impl::kCallproc, h_, name, std::forward<Args>(args)...);
    }
    /** callproc() with a vector of arguments (nullopt is SQL NULL). */
    Results callproc(const impl::CString &name, const std::vector<std::optional<std::string>> &args) {
        check_open("callproc");
        return impl::run_vector(impl::kCallproc, h_, name, args);
    }

    /** Begin a transaction (checks out and pins one pooled connection). Throws Error on failure. */
    Transaction begin() {
        check_open("begin");
        pgsess_error *err = nullptr;
        pgsess_tx *tx = pgsess_begin(h_, &err);
        if (tx == nullptr)
            impl::throw_error(err, "pgsess_begin");
        pgsess_error_free(err);
        return Transaction(tx);
    }

    /**
     * A new pinned session on this session's pool (pgsess_pin): it checks out one connection now
     * (waiting up to the checkout timeout; Error PGSESS_POOL_EXHAUSTED when none comes free) and
     * holds it until destroyed, so SET, temporary tables, PREPARE, lastval() and BEGIN ... COMMIT
     * sent as separate query() calls behave as on one libpq connection. Its Results share that
     * connection. If the connection dies, the statement in flight throws Error
     * PGSESS_OPERATIONAL_ERROR saying the session's state was lost, and the next runs on a new
     * connection. Destroying it returns the connection to the pool (once its Results are gone
     * too), reset as Options::reset says. This session is unchanged.
     */
    Session pin() {
        check_open("pin");
        pgsess_error *err = nullptr;
        pgsess_session *pinned = pgsess_pin(h_, &err);
        if (pinned == nullptr)
            impl::throw_error(err, "pgsess_pin");
        pgsess_error_free(err);
        return Session(pinned);
    }
    /**
     * Start `sql`, a COPY ... FROM STDIN (one statement; text, CSV or binary format), and return
     * the Copy to write() its rows to and finish(). Works on pooled, pinned and transaction's
     * sessions (Transaction::session(): the rows are committed or rolled back with the
     * transaction). Throws Error: PGSESS_INTERFACE_ERROR when `sql` is not a COPY FROM STDIN, or
     * while another copy holds this pinned session's connection; the server's error (e.g.
     * PGSESS_PROGRAMMING_ERROR 42P01, no such table); PGSESS_POOL_EXHAUSTED.
     */
    Copy copy_in(const impl::CString &sql) {
        check_open("copy_in");
        pgsess_error *err = nullptr;
        pgsess_copy *c = pgsess_copy_in(h_, sql.c_str(), &err);
        if (c == nullptr)
            impl::throw_error(err, "pgsess_copy_in");
        pgsess_error_free(err);
        return Copy(c);
    }
    /** Start `sql`, a COPY ... TO STDOUT, and return the Copy to read() it from. Throws as
     *  copy_in() does (PGSESS_INTERFACE_ERROR when `sql` is not a COPY TO STDOUT). */
    Copy copy_out(const impl::CString &sql) {
        check_open("copy_out");
        pgsess_error *err = nullptr;
        pgsess_copy *c = pgsess_copy_out(h_, sql.c_str(), &err);
        if (c == nullptr)
            impl::throw_error(err, "pgsess_copy_out");
        pgsess_error_free(err);
        return Copy(c);
    }

    /** Start `sql`, a COPY of either direction, as the server takes it (for SQL this code did not
     *  write): Copy::is_in() says which. Throws Error PGSESS_INTERFACE_ERROR when `sql` is no COPY
     *  FROM STDIN or TO STDOUT; otherwise as copy_in(). */
    Copy copy_start(const impl::CString &sql) {
        check_open("copy_start");
        pgsess_error *err = nullptr;
        pgsess_copy *c = pgsess_copy_start(h_, sql.c_str(), &err);
        if (c == nullptr)
            impl::throw_error(err, "pgsess_copy_start");
        pgsess_error_free(err);
        return Copy(c);
    }

    /**
     * Listen on `channel` (quoted as an identifier, so case and quotes are kept) through the
     * session's own listener connection, opened on first use and not counted against
     * pool_max_size. When that connection is lost it is re-established with backoff, listens
     * again, and delivers one gap marker (Notification::gap) per channel. Throws Error on failure.
     */
    void listen(const impl::CString &channel) {
        check_open("listen");
        pgsess_error *err = nullptr;
        if (pgsess_listen(h_, channel.c_str(), &err) != PGSESS_OK)
            impl::throw_error(err, "pgsess_listen");
        pgsess_error_free(err);
    }
    /** Stop listening on `channel` (nothing to do when not listening). Throws Error on failure. */
    void unlisten(const impl::CString &channel) {
        check_open("unlisten");
        pgsess_error *err = nullptr;
        if (pgsess_unlisten(h_, channel.c_str(), &err) != PGSESS_OK)
            impl::throw_error(err, "pgsess_unlisten");
        pgsess_error_free(err);
    }
    /**
     * The next notification, in arrival order, waiting up to `timeout` (0: do not wait; negative:
     * wait for ever; more than INT32_MAX ms is INT32_MAX ms); nullopt when none came in time. Also
     * delivers what a pinned session's own `LISTEN x` (run with query()) receives. Any thread.
     * Throws Error on failure (PGSESS_INTERFACE_ERROR when empty).
     */
    std::optional<Notification> next_notification(std::chrono::milliseconds timeout) {
        check_open("next_notification");
        const auto ms = timeout.count();
        const std::int32_t t = ms < 0 ? -1
                               : ms > std::numeric_limits<std::int32_t>::max()
                                   ? std::numeric_limits<std::int32_t>::max()
                                   : static_cast<std::int32_t>(ms);
        pgsess_error *err = nullptr;
        std::unique_ptr<pgsess_notification, impl::NotificationDeleter> n(pgsess_notification_next(h_, t, &err));
        if (!n) {
            if (err != nullptr)
                impl::throw_error(err, "pgsess_notification_next");
            return std::nullopt;
        }
        pgsess_error_free(err);
        Notification out;
        const char *channel = pgsess_notification_channel(n.get());
        const char *payload = pgsess_notification_payload(n.get());
        out.channel = channel != nullptr ? channel : "";
        out.payload = payload != nullptr ? payload : "";
        out.pid = pgsess_notification_pid(n.get());
        out.gap = pgsess_notification_is_gap(n.get());
        return out;
    }
    /** Make every next_notification() waiting on this session right now return nullopt at once
     *  (a notification already queued still goes to the next caller): for cancelling a wait, and
     *  before destroying the session, which must not race with waiters. Nothing when empty. Any
     *  thread. */
    void notification_wake() noexcept { pgsess_notification_wake(h_); }
    /** A descriptor that is readable while a notification is ready (an eventfd owned by the
     *  session), for epoll/poll loops: when it is, call next_notification(0ms). Do not read or
     *  close it. -1 when empty. */
    int notification_fd() const noexcept { return pgsess_notification_fd(h_); }

    /** Whether the session holds one connection for its life: from pin(), Options::pinned, or a
     *  transaction's session. False when empty. */
    bool is_pinned() const noexcept { return pgsess_is_pinned(h_); }
    /** How many pinned sessions hold a connection of this session's pool now (0 when empty). */
    std::uint64_t pinned_sessions() const noexcept { return pgsess_pool_pinned_sessions(h_); }

    /** Backend process id that ran this session's latest statement (see pgsess_backend_pid);
     *  0 before any, or when empty. */
    std::int32_t backend_pid() const noexcept { return pgsess_backend_pid(h_); }
    /** The pool's state and counters (pgsess_pool_stats_v2): sizes, waits with their histogram,
     *  connections closed by lifetime, health check and drain. Throws Error when empty. */
    pgsess_stats_v2 pool_stats() const {
        check_open("pool_stats");
        pgsess_stats_v2 st{};
        const pgsess_code code = pgsess_pool_stats_v2(h_, &st, sizeof st);
        if (code != PGSESS_OK)
            impl::throw_code(static_cast<Code>(code), "pgsess_pool_stats_v2 failed");
        return st;
    }
    /** pool_stats() in Prometheus' text exposition format, labelled with the pool id
     *  (pgsess_pool_stats_text). Throws Error when empty. */
    std::string pool_stats_text() const {
        check_open("pool_stats_text");
        char *text = pgsess_pool_stats_text(h_);
        if (text == nullptr)
            impl::throw_code(PGSESS_INTERFACE_ERROR, "pgsess_pool_stats_text failed");
        std::string out(text);
        pgsess_string_free(text);
        return out;
    }
    /** Stop handing out connections of this session's pool, wait up to timeout_ms for those in
     *  use, close them all (pgsess_pool_drain: graceful shutdown, credential rotation). Throws
     *  Error (PGSESS_POOL_EXHAUSTED when connections were still in use at the timeout). */
    void pool_drain(std::uint32_t timeout_ms) {
        check_open("pool_drain");
        pgsess_error *err = nullptr;
        if (pgsess_pool_drain(h_, timeout_ms, &err) != PGSESS_OK)
            impl::throw_error(err, "pgsess_pool_drain");
        pgsess_error_free(err);
    }
    /** Change the pool's pool_max_size for every session on it (pgsess_pool_resize, 1 to 10000).
     *  Throws Error (PGSESS_CONFIG_ERROR out of range). */
    void pool_resize(std::uint32_t max_size) {
        check_open("pool_resize");
        pgsess_error *err = nullptr;
        if (pgsess_pool_resize(h_, max_size, &err) != PGSESS_OK)
            impl::throw_error(err, "pgsess_pool_resize");
        pgsess_error_free(err);
    }
    /** The pool's id (a salted hash; never reveals the password); "" when empty. */
    std::string pool_id() const {
        const char *id = pgsess_pool_id(h_);
        return id != nullptr ? std::string(id) : std::string();
    }
    /** The client encoding: always "UTF8"; "" when empty. */
    std::string encoding() const {
        const char *e = pgsess_encoding(h_);
        return e != nullptr ? std::string(e) : std::string();
    }
    /** Accepts UTF8 under any spelling and changes nothing; throws Error
     *  PGSESS_NOT_SUPPORTED_ERROR for any other encoding. */
    void set_encoding(const impl::CString &name) {
        check_open("set_encoding");
        pgsess_error *err = nullptr;
        if (pgsess_set_encoding(h_, name.c_str(), &err) != PGSESS_OK)
            impl::throw_error(err, "pgsess_set_encoding");
        pgsess_error_free(err);
    }
    /** Whether the session can get a connection and run SELECT 1 (waits up to the checkout
     *  timeout); false when empty. */
    bool validate() noexcept { return pgsess_validate(h_); }
    /** The session's last 50 notices, oldest first, each whole in libpq's form: its severity
     *  line ("NOTICE:  text\n", as the server wrote it under its lc_messages) and its DETAIL: and
     *  HINT: lines (pgsess_notice). Empty when the session is. Other threads' statements may add
     *  notices (dropping the oldest) while this reads them. */
    std::vector<std::string> notices() const {
        std::vector<std::string> out;
        const std::size_t n = pgsess_notice_count(h_);
        out.reserve(n);
        for (std::size_t i = 0; i < n; ++i) {
            std::unique_ptr<char, impl::StringDeleter> notice(pgsess_notice(h_, i));
            if (!notice)
                break; // the list shrank meanwhile
            out.emplace_back(notice.get());
        }
        return out;
    }

    /** True unless empty. */
    explicit operator bool() const noexcept { return h_ != nullptr; }
    /** Whether the destructor closes the handle: false for a view (borrow(),
     *  Transaction::session()). */
    bool owns_handle() const noexcept { return owned_; }
    /** The C handle (still owned by this object, unless it is a view), or NULL when empty. */
    pgsess_session *get() const noexcept { return h_; }
    /** Give up the handle; the object becomes empty. The caller must pgsess_close it when this
     *  Session owned it (owns_handle()). */
    pgsess_session *release() noexcept {
        owned_ = true;
        return std::exchange(h_, nullptr);
    }

private:
    void close_owned() noexcept {
        if (owned_)
            pgsess_close(h_);
    }
    void check_open(const char *what) const {
        if (h_ == nullptr)
            impl::throw_code(PGSESS_INTERFACE_ERROR, std::string("pgsess::Session::") + what +
                                                         ": the session is empty (default-constructed or "
                                                         "moved from)");
    }
    static void set_option(Code code, const char *option, const std::string &value) {
        if (code != PGSESS_OK)
            impl::throw_code(code, std::string("pgsess: option ") + option + " = " + value + " rejected (" +
                                       pgsess_code_name(code) + ")");
    }

    pgsess_session *h_ = nullptr;
    bool owned_ = true; // false for a view: the destructor must not close h_
};

inline Session Transaction::session() {
    check_active("session");
    return Session::borrow(pgsess_tx_session(h_));
}

} // namespace pgsess

#endif /* PGSESS_HPP */
