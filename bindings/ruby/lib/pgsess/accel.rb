# frozen_string_literal: true

module PGSess
  # PGSess::Ext, the optional C accelerator (ext/pgsess_ext, built by `gem install` where a C
  # compiler and Ruby's headers are installed): it builds the values of a block of rows in C, as
  # the pg gem does, and reads a Results' metadata in one call. Without it, or with
  # PGSESS_RUBY_PURE=1 in the environment, the same is done in Ruby through ffi with the same
  # values, only slower. PGSess.accelerated? says which runs.
  module Accel
    def self.load
      return false if ENV["PGSESS_RUBY_PURE"] == "1"

      begin
        require "pgsess/pgsess_ext"
      rescue LoadError
        return false
      end
      lib = Native.ffi_libraries.first
      Ext.setup(FUNCTIONS.map { |f| lib.find_function(f).address })
      true
    end

    # The library functions Ext calls, in the order Ext.setup takes them.
    FUNCTIONS = (%w[cells get_epoch_micros nrows ncols column_name column_type column_format status count
                    rows_affected backend_pid free query].map { |f| "pgsess_results_#{f}" } +
                 %w[pgsess_error_free pgsess_results_value pgsess_results_value_length]).freeze

    # The statement functions Ext.statement may call (see Statements.accel_call).
    STATEMENTS = %i[pgsess_query pgsess_query_typed pgsess_tx_query pgsess_callproc pgsess_tx_callproc].freeze

    ENABLED = load
    ADDRESSES = if ENABLED
                  lib = Native.ffi_libraries.first
                  STATEMENTS.to_h { |f| [f, lib.find_function(f.to_s).address] }.freeze
                end

    # The address of the statement function `fn` (one of STATEMENTS) in the loaded library.
    def self.address(fn)
      ADDRESSES.fetch(fn)
    end
  end

  if Accel::ENABLED
    # What Ext's C calls back for: the errors it raises, and the one rule it caches.
    module Ext
      def self.raise_closed
        raise InterfaceError.new("session is closed", code: :interface_error)
      end

      def self.raise_freed(sql)
        raise InterfaceError.new("results already freed (#{sql.inspect})", code: :interface_error)
      end

      # Raise the PGSess::Error of the pgsess_error at `address` (freeing it).
      def self.raise_native(address)
        raise PGSess::Error.from_native(FFI::Pointer.new(address))
      end

      # The one-byte kind with which Ext converts a column of `type` in `format` (Results.ext_kind).
      def self.kind_for(type, format)
        Results.ext_kind(type, format)
      end

      # A session's handle (see Session::Handle, the pure-Ruby one): #use, #closed? and #detach
      # are C; ext/pgsess_ext/pgsess_ext.c says why.
      class SessionHandle
        # Close the session once the calls in flight on other threads have ended. Idempotent;
        # true when this call closed it.
        def close
          ptr = detach(true)
          Native.pgsess_close(ptr) if ptr
          !ptr.nil?
        end

        # Finalizer: the session is unreachable, so no call on it is in flight.
        def call(_object_id)
          ptr = detach(false)
          Native.pgsess_close(ptr) if ptr
        rescue StandardError
          nil
        end
      end
    end
  end

  # Whether rows are built by the C accelerator (PGSess::Ext) rather than in Ruby.
  def self.accelerated?
    Accel::ENABLED
  end
end
