# frozen_string_literal: true

require_relative "lib/pgsess/version"

Gem::Specification.new do |spec|
  spec.name = "pgsess"
  spec.version = PGSess::VERSION
  spec.summary = "Pooled PostgreSQL sessions configured from PGSQL_* environment variables"
  spec.description = <<~DESC
    Ruby binding (through the ffi gem) of libpgsess, a C-ABI library that ports Python's
    sprockets.clients.postgresql: PGSess::Session.open("foo") reads PGSQL_FOO, statements run
    on a process-wide connection pool, rows come back as hashes typed by column, and errors
    map to the DB-API exception hierarchy. Needs libpgsess installed (found through
    PGSESS_LIB, pkg-config or the dynamic linker's path). A small C extension, built when
    Ruby's headers and a compiler are there, builds rows in C at the pg gem's speed.
  DESC
  spec.authors = ["pgsess developers"]
  spec.licenses = ["MIT", "Apache-2.0"]
  spec.files = Dir.chdir(__dir__) { Dir["lib/**/*.rb"] + Dir["ext/**/*.{c,rb}"] + ["README.md"] }
  # The optional C accelerator (PGSess::Ext); installs without it where it cannot be built.
  spec.extensions = ["ext/pgsess_ext/extconf.rb"]
  spec.test_files = Dir.chdir(__dir__) { Dir["test/**/*.rb"] }
  spec.require_paths = ["lib"]
  spec.required_ruby_version = ">= 2.7"
  spec.requirements << "libpgsess 0.1 (the C library)"
  spec.add_runtime_dependency "bigdecimal", ">= 1.4", "< 5"
  spec.add_runtime_dependency "ffi", "~> 1.12"
  spec.add_development_dependency "minitest", "~> 5.0"
end
