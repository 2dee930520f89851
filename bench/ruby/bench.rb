# frozen_string_literal: true

# The Ruby binding side by side with the pg gem (Debian's ruby-pg: libpq underneath), one
# connection each, same server, one process, interleaved round by round (bench/ruby.sh runs it;
# `make bench` calls that). Workloads, as issue 19 states them:
#   roundtrip  exec_params("SELECT $1::int4", [i]) and read the value
#   roundtrip_cached  the round trip on a session with a statement cache (see typed),
#              against the same pg side
#   typed      200,000 rows of (int8, text, float8, timestamptz, bool) read as Ruby values
#              (pg with PG::BasicTypeMapForResults, pgsess's own conversion) through exec on a
#              session with a statement cache (100 statements), so the typed
#              columns come in binary (typed_binary: true, the default); warmed once first
#   typed_text the same on a session without a statement cache: every column in text
#   typed_binary  the typed rows with pgsess's binary results (query_binary: the server skips
#              its text output, the same Ruby values), against the same pg side as typed
#   strings    200,000 rows of 5 text columns read row by row as Strings (each_row)
# and through Sequel, its pgsess adapter against its postgres adapter (pg underneath, without
# sequel_pg, which Debian packages apart), the same workloads as Sequel users write them:
#   sq_roundtrip  DB["SELECT CAST(? AS int4) AS v", i].get(:v)
#   sq_typed      DB[TYPED].all: 200,000 Hashes, values converted by Sequel's conversion procs
#   sq_strings    DB[STRINGS].each: 200,000 Hashes of 5 Strings
# Each round runs every workload for both; the summary gives pgsess/pg as min/median/max.
require "pg"
require "pgsess"
ENV["NO_SEQUEL_PG"] = "1" # Sequel's postgres adapter as ruby-sequel ships it, without the C sequel_pg
require "sequel"

uri = ENV.fetch("PGSQL_BENCH")
rounds = Integer(ENV.fetch("PGSESS_RBBENCH_ROUNDS", "5"))
roundtrips = Integer(ENV.fetch("PGSESS_RBBENCH_ROUNDTRIPS", "5000"))

TYPED = "SELECT g::int8 AS i, 'row ' || g AS t, g * 0.5::float8 AS f, timestamptz '2024-01-01' + g * interval '1 s' AS ts, " \
        "g % 2 = 0 AS b FROM generate_series(1, 200000) g"
STRINGS = "SELECT 'a' || g AS a, 'bb' || g AS b, 'ccc' || g AS c, 'dddd' || g AS d, 'eeeee' || g AS e " \
          "FROM generate_series(1, 200000) g"

s = PGSess::Session.open("rbbench", db_url: uri, pool_max_size: 1)
sc = PGSess::Session.open("rbbench_cached", db_url: uri, pool_max_size: 1, statement_cache: 100) # not 64: the Sequel adapter's pool (pinned)
pg = PG.connect(uri)
pg_typed = PG.connect(uri)
pg_typed.type_map_for_results = PG::BasicTypeMapForResults.new(pg_typed)
sq_pgsess = Sequel.connect(adapter: :pgsess, name: "rbbench_sequel", db_url: uri, max_connections: 1, pool_max_size: 1)
sq_pg = Sequel.connect(uri.sub(/\Apostgresql:/, "postgres:"), max_connections: 1)

puts "pgsess rows built #{PGSess.accelerated? ? 'by its C accelerator (PGSess::Ext)' : 'in pure Ruby'}"

def clock = Process.clock_gettime(Process::CLOCK_MONOTONIC)

drivers = {
  "pgsess" => {
    roundtrip: lambda { |n|
      n.times { |i| s.exec_params("SELECT $1::int4", [i]) { |r| raise "wrong" unless r.getvalue(0, 0) == i } }
    },
    roundtrip_cached: lambda { |n|
      n.times { |i| sc.exec_params("SELECT $1::int4", [i]) { |r| raise "wrong" unless r.getvalue(0, 0) == i } }
    },
    typed: -> { sc.exec(TYPED) { |r| raise "rows" unless r.values.size == 200_000 } },
    typed_text: -> { s.exec(TYPED) { |r| raise "rows" unless r.values.size == 200_000 } },
    typed_binary: -> { s.query_binary(TYPED) { |r| raise "rows" unless r.values.size == 200_000 } },
    strings: -> { s.exec(STRINGS) { |r| n = 0; r.each_row { |row| n += row.size }; raise "cells" unless n == 1_000_000 } }
  },
  "sequel-pgsess" => {
    sq_roundtrip: ->(n) { n.times { |i| raise "wrong" unless sq_pgsess["SELECT CAST(? AS int4) AS v", i].get(:v) == i } },
    sq_typed: -> { raise "rows" unless sq_pgsess[TYPED].all.size == 200_000 },
    sq_strings: -> { n = 0; sq_pgsess[STRINGS].each { |row| n += row.size }; raise "cells" unless n == 1_000_000 }
  },
  "sequel-postgres" => {
    sq_roundtrip: ->(n) { n.times { |i| raise "wrong" unless sq_pg["SELECT CAST(? AS int4) AS v", i].get(:v) == i } },
    sq_typed: -> { raise "rows" unless sq_pg[TYPED].all.size == 200_000 },
    sq_strings: -> { n = 0; sq_pg[STRINGS].each { |row| n += row.size }; raise "cells" unless n == 1_000_000 }
  },
  "pg" => {
    roundtrip: lambda { |n|
      n.times { |i| pg.exec_params("SELECT $1::int4", [i]) { |r| raise "wrong" unless r.getvalue(0, 0) == i.to_s } }
    },
    typed: -> { pg_typed.exec(TYPED) { |r| raise "rows" unless r.values.size == 200_000 } },
    typed_text: -> { pg_typed.exec(TYPED) { |r| raise "rows" unless r.values.size == 200_000 } },
    typed_binary: -> { pg_typed.exec(TYPED) { |r| raise "rows" unless r.values.size == 200_000 } },
    roundtrip_cached: lambda { |n|
      n.times { |i| pg.exec_params("SELECT $1::int4", [i]) { |r| raise "wrong" unless r.getvalue(0, 0) == i.to_s } }
    },
    strings: -> { pg.exec(STRINGS) { |r| n = 0; r.each_row { |row| n += row.size }; raise "cells" unless n == 1_000_000 } }
  }
}

# Each workload: the two drivers it compares, the count it is timed per.
WORKLOADS = {
  roundtrip: ["pgsess", "pg", roundtrips], roundtrip_cached: ["pgsess", "pg", roundtrips],
  typed: ["pgsess", "pg", 200_000], typed_text: ["pgsess", "pg", 200_000], typed_binary: ["pgsess", "pg", 200_000],
  strings: ["pgsess", "pg", 200_000],
  sq_roundtrip: ["sequel-pgsess", "sequel-postgres", roundtrips], sq_typed: ["sequel-pgsess", "sequel-postgres", 200_000],
  sq_strings: ["sequel-pgsess", "sequel-postgres", 200_000]
}.then { |all| (only = ENV["PGSESS_RBBENCH_ONLY"]) ? all.slice(*only.split(",").map(&:to_sym)) : all }.freeze
times = Hash.new { |h, k| h[k] = Hash.new { |hh, kk| hh[kk] = [] } }
drivers["pgsess"][:roundtrip].call(100) # warm-up
drivers["pgsess"][:roundtrip_cached].call(100)
drivers["pgsess"][:typed].call if WORKLOADS.key?(:typed) # prepares TYPED: its types are known from here on
drivers["pg"][:typed].call if WORKLOADS.key?(:typed)
drivers["pg"][:roundtrip].call(100)
drivers["sequel-pgsess"][:sq_roundtrip].call(100)
drivers["sequel-postgres"][:sq_roundtrip].call(100)
rounds.times do |round|
  WORKLOADS.each do |w, (ours, theirs, per)|
    (round.even? ? [ours, theirs] : [theirs, ours]).each do |name|
      GC.start
      t = clock
      w.to_s.include?("roundtrip") ? drivers[name][w].call(roundtrips) : drivers[name][w].call
      ns = (clock - t) * 1e9 / per
      times[w][name] << ns
      printf("round %d  %-12s %-15s %10.1f ns/%s\n", round + 1, w, name, ns, w.to_s.include?("roundtrip") ? "statement" : "row")
    end
  end
end
puts
puts "pgsess / pg and Sequel's pgsess / postgres adapter per round (min / median / max), lower is faster:"
WORKLOADS.each do |w, (ours, theirs, _)|
  r = times[w][ours].zip(times[w][theirs]).map { |a, b| a / b }.sort
  printf("  %-12s %.2f / %.2f / %.2f   (%s median %.0f ns)\n", w, r.first, r[r.size / 2], r.last, theirs,
         times[w][theirs].sort[times[w][theirs].size / 2])
end
