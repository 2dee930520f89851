#!/usr/bin/env ruby
# frozen_string_literal: true

# A short tour of the Ruby binding. Reads the URI from PGSQL_DEMO:
#   PGSQL_DEMO=postgresql://user:pass@host/db ruby -Ibindings/ruby/lib examples/ruby/demo.rb
# (PGSESS_LIB=/prefix/lib/libpgsess.so when libpgsess is not on pkg-config's or the linker's path.)

begin
  require "pgsess"
rescue LoadError
  $LOAD_PATH.unshift(File.expand_path("../../bindings/ruby/lib", __dir__))
  require "pgsess"
end

abort "demo.rb: set PGSQL_DEMO to a PostgreSQL URI" if ENV["PGSQL_DEMO"].to_s.empty?

PGSess::Session.open("demo", pool_max_size: 4) do |session|
  puts "libpgsess #{PGSess.library_version}, pool #{session.pool_id}"

  # Parameters are $1..$n; rows are hashes typed by column; the block frees the results.
  session.query("SELECT $1::int + 1 AS answer, $2::text AS greeting, now() AS at", 41, "héllo") do |r|
    row = r.first
    puts "answer=#{row['answer']} greeting=#{row['greeting']} at=#{row['at'].iso8601} (#{r.status})"
  end

  # A transaction commits at the end of its block and rolls back if the block raises.
  session.transaction do |tx|
    tx.query("CREATE TEMP TABLE demo_items (id serial, name text, price numeric, blob bytea)") {}
    tx.query("INSERT INTO demo_items (name, price, blob) VALUES ($1, $2, $3), ($4, $5, $6)",
             "tea", BigDecimal("2.50"), "\x00\x01\x02".b, "cake", nil, nil) do |r|
      puts "#{r.status}: #{r.count} rows"
    end
    tx.query("SELECT * FROM demo_items ORDER BY id") do |r|
      r.each { |item| puts "  #{item['id']} #{item['name']} price=#{item['price']&.to_s('F').inspect} blob=#{item['blob'].inspect}" }
    end
  end

  # callproc quotes the function name: SELECT * FROM "lower"($1)
  session.callproc("lower", "SHOUTING") { |r| puts "callproc lower: #{r[0]['lower']}" }

  # Errors map to the DB-API hierarchy and carry the SQLSTATE.
  begin
    session.query("SELECT 1 / 0")
  rescue PGSess::DataError => e
    puts "#{e.class} #{e.sqlstate}: #{e.message}"
  end

  # Network waits release the GVL: three 0.2 s sleeps on three threads take about 0.2 s.
  t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  3.times.map { Thread.new { session.query("SELECT pg_sleep(0.2)") {} } }.each(&:join)
  puts format("3 parallel pg_sleep(0.2): %.2f s", Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0)
end
