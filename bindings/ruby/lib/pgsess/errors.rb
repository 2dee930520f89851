# frozen_string_literal: true

module PGSess
  # Root of the hierarchy, as psycopg2's Error (seed-semantics 3.6).
  #
  # Every error carries:
  # - `code`: a Symbol naming the pgsess_code (`:data_error`, `:pool_exhausted`, ...), or the
  #   Integer for a code the library does not know;
  # - `category`: the DB-API category as a Symbol (`:operational_error` for `:pool_exhausted`);
  # - `sqlstate`, `detail`, `hint`: the server's fields (nil when there are none);
  # - `context`: the server's CONTEXT field (for a COPY, the row: `COPY t, line 3, column id:
  #   "x"`), and #error_field for any other field of the server's report, as pg's
  #   PG::Result#error_field.
  #
  # Names and categories are the library's (pgsess_code_name, pgsess_code_category): the binding
  # keeps no table of its own.
  class Error < StandardError
    # pgsess_code value => Symbol: each code's name in pgsess.h without the prefix, downcased
    # (PGSESS_POOL_EXHAUSTED is :pool_exhausted). The codes are numbered from 0 without a gap
    # (new ones are only appended), so the list ends where pgsess_code_name knows no name.
    CODES = (0..255).each_with_object({}) do |value, codes|
      name = Native.pgsess_code_name(value)
      break codes if name == "PGSESS_UNKNOWN_CODE"

      codes[value] = name.delete_prefix("PGSESS_").downcase.to_sym
    end.freeze

    # Symbol => pgsess_code value.
    VALUES = CODES.invert.freeze

    # The fields of the server's error report, by libpq's PG_DIAG_* letter (pgsess_error_field):
    # "S" severity, "V" its non-localised form, "C" SQLSTATE, "M" message, "D" detail, "H" hint,
    # "P" position, "p" internal position, "q" internal query, "W" context, "s" schema, "t"
    # table, "c" column, "d" data type, "n" constraint, "F" file, "L" line, "R" routine.
    FIELDS = %w[S V C M D H P p q W s t c d n F L R].freeze

    attr_reader :code, :category, :sqlstate, :detail, :hint

    # `code` and `category` are Symbols (or Integers for unknown codes); the category defaults
    # to the library's for the code. `fields`: the server's fields by PG_DIAG_* letter.
    def initialize(message = nil, code: nil, category: nil, sqlstate: nil, detail: nil, hint: nil, fields: {})
      super(message)
      @code = code
      @category = category || Error.category_of(code)
      @sqlstate = sqlstate
      @detail = detail
      @hint = hint
      @fields = fields.freeze
    end

    # One field of the server's error report by its PG_DIAG_* letter (a one-character String, or
    # its Integer code as pg's PG::PG_DIAG_* constants): the server's text, or nil when it sent
    # none (and for errors the client raised: pool exhaustion, a lost connection).
    def error_field(field)
      @fields[field.is_a?(Integer) ? field.chr : field.to_s]
    end

    # The server's CONTEXT field ("W"): where the error happened; for a COPY, the row
    # (`COPY t, line 3, column id: "x"`). nil when there is none.
    def context
      @fields["W"]
    end

    # Symbol for a pgsess_code value (the Integer itself when unknown).
    def self.code_symbol(value)
      CODES.fetch(value, value)
    end

    # The DB-API category of a code (a Symbol or a pgsess_code value) as a Symbol, from
    # pgsess_code_category; nil for nil or a Symbol that names no code.
    def self.category_of(code)
      value = code.is_a?(Symbol) ? VALUES[code] : code
      return nil if value.nil?

      code_symbol(Native.pgsess_code_category(value))
    end

    # The exception class for a pgsess_code value: the code's own class, else its category's
    # (`category`, or the library's for the code), else Error.
    def self.class_for(code, category = nil)
      category ||= Native.pgsess_code_category(code)
      CLASSES[code_symbol(code)] || CLASSES[code_symbol(category)] || Error
    end

    # A subclass of the class of the code's category, for a code finer than its category: the
    # superclass is whatever pgsess_code_category says, never written down here.
    def self.subclass_for(code)
      Class.new(CLASSES.fetch(category_of(code)))
    end

    # Build the Ruby exception for a native pgsess_error and free the native error.
    def self.from_native(err)
      code = Native.pgsess_error_code(err)
      category = Native.pgsess_error_category(err)
      message = Native.str(Native.pgsess_error_message(err))
      class_for(code, category).new(
        message,
        code: code_symbol(code),
        category: code_symbol(category),
        sqlstate: Native.str(Native.pgsess_error_sqlstate(err)),
        detail: Native.str(Native.pgsess_error_detail(err)),
        hint: Native.str(Native.pgsess_error_hint(err)),
        fields: FIELDS.each_with_object({}) do |f, h|
          value = Native.str(Native.pgsess_error_field(err, f.ord))
          h[f] = value.freeze if value
        end
      )
    ensure
      Native.pgsess_error_free(err)
    end
  end

  # The DB-API classes (PEP 249), one per category.

  # Misuse of the API: closed session, freed results, bad arguments; typed getters asked for a
  # NULL, a mismatched type or an index out of range.
  class InterfaceError < Error; end
  # Errors reported by (or about) the database.
  class DatabaseError < Error; end
  # SQLSTATE class 22; a value that does not fit.
  class DataError < DatabaseError; end
  # Cannot connect, connection lost, SQLSTATE 08, 26-28, 34, 5x, HV.
  class OperationalError < DatabaseError; end
  # SQLSTATE class 23.
  class IntegrityError < DatabaseError; end
  # SQLSTATE 24, 25, 2B, 2D, 2F, 38, 39, 3B, F0, P0, XX.
  class InternalError < DatabaseError; end
  # SQLSTATE 20, 21, 3D, 3F, 42, 44; an empty statement.
  class ProgrammingError < DatabaseError; end
  # SQLSTATE 0A; a client encoding other than UTF8.
  class NotSupportedError < DatabaseError; end

  class Error
    # Category Symbol => its class; the classes of finer codes are added below.
    CLASSES = {
      interface_error: InterfaceError,
      database_error: DatabaseError,
      data_error: DataError,
      operational_error: OperationalError,
      integrity_error: IntegrityError,
      internal_error: InternalError,
      programming_error: ProgrammingError,
      not_supported_error: NotSupportedError
    }
  end

  # Classes for codes finer than their category, each a subclass of its category's class.

  # Missing PGSQL_* variable, bad URI, unsupported parameter or option.
  ConfigError = Error.subclass_for(:config_error)
  # SQLSTATE 57014: statement_timeout, a cancel request.
  QueryCanceledError = Error.subclass_for(:query_canceled)
  # SQLSTATE class 40; a commit that rolled back.
  TransactionRollbackError = Error.subclass_for(:transaction_rollback)
  # Every pooled connection stayed held for the whole checkout timeout.
  PoolExhaustedError = Error.subclass_for(:pool_exhausted)
  # A bug in pgsess: a panic caught at the C boundary. The call failed; the library goes on
  # working.
  PanicError = Error.subclass_for(:panic)

  class Error
    CLASSES.merge!(
      config_error: ConfigError,
      query_canceled: QueryCanceledError,
      transaction_rollback: TransactionRollbackError,
      pool_exhausted: PoolExhaustedError,
      panic: PanicError
    ).freeze
  end
end
