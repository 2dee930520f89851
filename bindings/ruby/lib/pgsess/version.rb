# frozen_string_literal: true

module PGSess
  # Version of the Ruby binding (tracks the C library's version).
  VERSION = "0.1.0"
end
