# frozen_string_literal: true

module PGSess
  # The fields of the server's error report, by the name of libpq's PG_DIAG_* code and its
  # letter (pgsess_error_field). Each is also a constant PGSess::PG_DIAG_* (the letter's Integer
  # code, as pg's PG::PG_DIAG_*), for Error#error_field.
  DIAG_FIELDS = {
    PG_DIAG_SEVERITY: "S", PG_DIAG_SEVERITY_NONLOCALIZED: "V", PG_DIAG_SQLSTATE: "C",
    PG_DIAG_MESSAGE_PRIMARY: "M", PG_DIAG_MESSAGE_DETAIL: "D", PG_DIAG_MESSAGE_HINT: "H",
    PG_DIAG_STATEMENT_POSITION: "P", PG_DIAG_INTERNAL_POSITION: "p", PG_DIAG_INTERNAL_QUERY: "q",
    PG_DIAG_CONTEXT: "W", PG_DIAG_SCHEMA_NAME: "s", PG_DIAG_TABLE_NAME: "t", PG_DIAG_COLUMN_NAME: "c",
    PG_DIAG_DATATYPE_NAME: "d", PG_DIAG_CONSTRAINT_NAME: "n", PG_DIAG_SOURCE_FILE: "F",
    PG_DIAG_SOURCE_LINE: "L", PG_DIAG_SOURCE_FUNCTION: "R"
  }.freeze
  DIAG_FIELDS.each { |name, letter| const_set(name, letter.ord) }

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

    # The letters of the server's error report fields (PGSess::DIAG_FIELDS): "S" severity, "V"
    # its non-localised form, "C" SQLSTATE, "M" message, "D" detail, "H" hint, "P" position, "p"
    # internal position, "q" internal query, "W" context, "s" schema, "t" table, "c" column, "d"
    # data type, "n" constraint, "F" file, "L" line, "R" routine.
    FIELDS = DIAG_FIELDS.values.freeze

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
    # pg's name on PG::Result (`e.result.result_error_field(PG::PG_DIAG_SQLSTATE)`).
    alias result_error_field error_field

    # pg's PG::Error#result, the failed PG::Result that carries the server's report: here the
    # error itself, which answers #error_field / #result_error_field as that result does; nil
    # when the server sent no report (errors the client raised), as pg's is nil without a
    # result. So pg code reading `e.result.error_field(PGSess::PG_DIAG_CONSTRAINT_NAME)` works.
    def result
      @fields.empty? ? nil : self
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

    # The class for an error with pgsess_code value `code` and SQLSTATE `sqlstate`: the
    # SQLSTATE's own class (ERROR_CLASSES), else its SQLSTATE class's ("23000" for "23xxx"),
    # as pg looks them up, but only when that is a subclass of the code's class (#class_for), so
    # `rescue PGSess::IntegrityError` catches whatever the library reports as an integrity
    # error; else the code's class.
    def self.class_for_sqlstate(code, category, sqlstate)
      klass = class_for(code, category)
      return klass unless sqlstate

      specific = ERROR_CLASSES[sqlstate] || ERROR_CLASSES["#{sqlstate[0, 2]}000"]
      specific && specific < klass ? specific : klass
    end

    # Build the Ruby exception for a native pgsess_error and free the native error.
    def self.from_native(err)
      code = Native.pgsess_error_code(err)
      category = Native.pgsess_error_category(err)
      message = Native.str(Native.pgsess_error_message(err))
      sqlstate = Native.str(Native.pgsess_error_sqlstate(err))
      class_for_sqlstate(code, category, sqlstate).new(
        message,
        code: code_symbol(code),
        category: code_symbol(category),
        sqlstate: sqlstate,
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

  # Per-SQLSTATE classes with pg's names (PG::UniqueViolation is PGSess::UniqueViolation),
  # generated from this one table: by the pgsess code the library reports these SQLSTATEs
  # with (PGSESS_INTEGRITY_ERROR for class 23, see pgsess.h), the SQLSTATE and its condition
  # name in PostgreSQL's errcodes.txt, camel-cased as pg does. Each class is a subclass of its
  # SQLSTATE class's class ("23000", IntegrityConstraintViolation) when the table has one, else
  # of the code's class, so `rescue PGSess::IntegrityError` still catches a UniqueViolation.
  # A SQLSTATE not listed raises its SQLSTATE class's class, else the code's class; and one the
  # library reports under a code whose class is not an ancestor of the listed class raises the
  # code's class (Error.class_for_sqlstate): the library's categories always win.
  SQLSTATE_NAMES = {
    data_error: {
      "22000" => :DataException, "22001" => :StringDataRightTruncation,
      "22003" => :NumericValueOutOfRange, "22007" => :InvalidDatetimeFormat,
      "22008" => :DatetimeFieldOverflow, "22012" => :DivisionByZero,
      "22023" => :InvalidParameterValue, "22P02" => :InvalidTextRepresentation
    },
    integrity_error: {
      "23000" => :IntegrityConstraintViolation, "23001" => :RestrictViolation,
      "23502" => :NotNullViolation, "23503" => :ForeignKeyViolation, "23505" => :UniqueViolation,
      "23514" => :CheckViolation, "23P01" => :ExclusionViolation
    },
    internal_error: {
      "25000" => :InvalidTransactionState, "25001" => :ActiveSqlTransaction,
      "25006" => :ReadOnlySqlTransaction, "25P01" => :NoActiveSqlTransaction,
      "25P02" => :InFailedSqlTransaction
    },
    transaction_rollback: {
      "40000" => :TransactionRollback, "40001" => :SerializationFailure,
      "40002" => :TransactionIntegrityConstraintViolation, "40P01" => :DeadlockDetected
    },
    programming_error: {
      "42000" => :SyntaxErrorOrAccessRuleViolation, "42501" => :InsufficientPrivilege,
      "42601" => :SyntaxError, "42703" => :UndefinedColumn, "42704" => :UndefinedObject,
      "42883" => :UndefinedFunction, "42P01" => :UndefinedTable, "42701" => :DuplicateColumn,
      "42P07" => :DuplicateTable, "42710" => :DuplicateObject
    },
    operational_error: {
      "08000" => :ConnectionException, "08001" => :SqlclientUnableToEstablishSqlconnection,
      "08003" => :ConnectionDoesNotExist, "08006" => :ConnectionFailure, "08P01" => :ProtocolViolation,
      "53000" => :InsufficientResources, "53100" => :DiskFull, "53200" => :OutOfMemory,
      "53300" => :TooManyConnections,
      "55000" => :ObjectNotInPrerequisiteState, "55006" => :ObjectInUse, "55P03" => :LockNotAvailable,
      "57000" => :OperatorIntervention, "57P01" => :AdminShutdown, "57P02" => :CrashShutdown,
      "57P03" => :CannotConnectNow
    },
    # 57014 is not under OperatorIntervention (57000) as in pg: the library reports it as
    # PGSESS_QUERY_CANCELED, so it is a QueryCanceledError.
    query_canceled: { "57014" => :QueryCanceled },
    not_supported_error: { "0A000" => :FeatureNotSupported }
  }.freeze

  class Error
    # SQLSTATE => its class, generated from PGSess::SQLSTATE_NAMES (pg's PG::ERROR_CLASSES).
    ERROR_CLASSES = SQLSTATE_NAMES.each_with_object({}) do |(code, states), classes|
      # A SQLSTATE class's own entry ("23000") first: the others of its class and code subclass it.
      states.sort_by { |sqlstate, _| sqlstate.end_with?("000") ? 0 : 1 }.each do |sqlstate, name|
        top = states.key?("#{sqlstate[0, 2]}000") && !sqlstate.end_with?("000")
        parent = top ? classes.fetch("#{sqlstate[0, 2]}000") : CLASSES.fetch(code)
        classes[sqlstate] = PGSess.const_set(name, Class.new(parent))
      end
    end.freeze
  end
end
