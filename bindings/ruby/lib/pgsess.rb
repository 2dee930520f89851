# frozen_string_literal: true

# Ruby binding of libpgsess: pooled PostgreSQL sessions configured from environment variables,
# a port of Python's sprockets.clients.postgresql.
#
#   require "pgsess"
#   PGSess::Session.open("foo") do |session|            # reads PGSQL_FOO
#     session.query("SELECT $1::int + 1 AS n", 41) { |r| r.first["n"] }   # => 42
#   end
#
# The shared library is loaded from $PGSESS_LIB, else from `pkg-config --variable=libdir pgsess`,
# else by the name "pgsess".
module PGSess
end

require_relative "pgsess/version"
require_relative "pgsess/native" # before errors: the codes are read from the library
require_relative "pgsess/errors"
require_relative "pgsess/arrays"
require_relative "pgsess/params"
require_relative "pgsess/accel"
require_relative "pgsess/results"
require_relative "pgsess/copy"
require_relative "pgsess/notification"
require_relative "pgsess/session"
require_relative "pgsess/transaction"
require_relative "pgsess/pool"

module PGSess
  # The C library's version, e.g. "0.1.0".
  def self.library_version
    Native.pgsess_version
  end
end
