# frozen_string_literal: true

module PGSess
  # PGSess::Ext, the optional C accelerator (ext/pgsess_ext, built by `gem install` where a C
  # compiler and Ruby's headers are installed): it builds the values of a block of rows in C, as
  # the pg gem does. Without it, or with PGSESS_RUBY_PURE=1 in the environment, every row is
  # built in Ruby with the same values, only slower. PGSess.accelerated? says which runs.
  module Accel
    def self.load
      return false if ENV["PGSESS_RUBY_PURE"] == "1"

      begin
        require "pgsess/pgsess_ext"
      rescue LoadError
        return false
      end
      lib = Native.ffi_libraries.first
      Ext.setup(lib.find_function("pgsess_results_cells").address,
                lib.find_function("pgsess_results_get_epoch_micros").address)
      true
    end

    ENABLED = load
  end

  # Whether rows are built by the C accelerator (PGSess::Ext) rather than in Ruby.
  def self.accelerated?
    Accel::ENABLED
  end
end
