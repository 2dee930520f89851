# frozen_string_literal: true

module PGSess
  # Root of the hierarchy, as psycopg2's Error (seed-semantics 3.6).
  #
  # Every error carries:
  # - `code`: a Symbol naming the pgsess_code (`:data_error`, `:pool_exhausted`, ...), or the
  #   Integer for a code this binding does not know;
  # - `category`: the DB-API category as a Symbol (`:operational_error` for `:pool_exhausted`);
  # - `sqlstate`, `detail`, `hint`: the server's fields (nil when there are none).
  class Error < StandardError
    # pgsess_code value => Symbol.
    CODES = {
      0 => :ok,
      1 => :interface_error,
      2 => :config_error,
      3 => :operational_error,
      4 => :pool_exhausted,
      5 => :query_canceled,
      6 => :transaction_rollback,
      7 => :programming_error,
      8 => :integrity_error,
      9 => :data_error,
      10 => :internal_error,
      11 => :not_supported_error,
      12 => :database_error,
      13 => :null_value,
      14 => :type_mismatch,
      15 => :out_of_range,
      16 => :value_overflow
    }.freeze

    attr_reader :code, :category, :sqlstate, :detail, :hint

    def initialize(message = nil, code: nil, category: nil, sqlstate: nil, detail: nil, hint: nil)
      super(message)
      @code = code
      @category = category || code
      @sqlstate = sqlstate
      @detail = detail
      @hint = hint
    end

    # Symbol for a pgsess_code value (the Integer itself when unknown).
    def self.code_symbol(value)
      CODES.fetch(value, value)
    end

    # The exception class for a code (falling back to the category, then to Error).
    def self.class_for(code, category = nil)
      CLASSES[code] || CLASSES[category] || Error
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
        hint: Native.str(Native.pgsess_error_hint(err))
      )
    ensure
      Native.pgsess_error_free(err)
    end
  end

  # Misuse of the API: closed session, freed results, bad arguments.
  class InterfaceError < Error; end
  # Missing PGSQL_* variable, bad URI, unsupported parameter or option.
  class ConfigError < InterfaceError; end

  # Errors reported by (or about) the database.
  class DatabaseError < Error; end
  # SQLSTATE class 22.
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
  # SQLSTATE 57014 (statement_timeout, cancel).
  class QueryCanceledError < OperationalError; end
  # SQLSTATE class 40; a commit that rolled back.
  class TransactionRollbackError < OperationalError; end
  # Every pooled connection stayed held for the whole checkout timeout.
  class PoolExhaustedError < OperationalError; end

  class Error
    # pgsess_code value => exception class.
    CLASSES = {
      1 => InterfaceError,
      2 => ConfigError,
      3 => OperationalError,
      4 => PoolExhaustedError,
      5 => QueryCanceledError,
      6 => TransactionRollbackError,
      7 => ProgrammingError,
      8 => IntegrityError,
      9 => DataError,
      10 => InternalError,
      11 => NotSupportedError,
      12 => DatabaseError,
      13 => InterfaceError, # NULL value asked of a typed getter
      14 => InterfaceError, # type mismatch
      15 => InterfaceError, # index out of range
      16 => DataError       # value overflow
    }.freeze
  end
end
