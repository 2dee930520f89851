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
      Ext.setup(FUNCTIONS.map { |f| lib.find_function("pgsess_results_#{f}").address })
      true
    end

    # The library functions Ext calls, in the order Ext.setup takes them (pgsess_results_*).
    FUNCTIONS = %w[cells get_epoch_micros nrows ncols column_name column_type column_format status count
                   rows_affected backend_pid].freeze

    # The statement functions Ext.statement may call (see Statements.accel_call).
    STATEMENTS = %i[pgsess_query pgsess_tx_query pgsess_callproc pgsess_tx_callproc].freeze

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

  # Whether rows are built by the C accelerator (PGSess::Ext) rather than in Ruby.
  def self.accelerated?
    Accel::ENABLED
  end
end
