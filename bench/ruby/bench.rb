# frozen_string_literal: true

# The Ruby binding side by side with the pg gem (Debian's ruby-pg: libpq underneath), one
# connection each, same server, one process, interleaved round by round (bench/ruby.sh runs it;
# `make bench` calls that). Workloads, as issue 19 states them:
#   roundtrip  exec_params("SELECT $1::int4", [i]) and read the value
#   typed      200,000 rows of (int8, text, float8, timestamptz, bool) read as Ruby values
#              (pg with PG::BasicTypeMapForResults, pgsess's own conversion)
#   strings    200,000 rows of 5 text columns read row by row as Strings (each_row)
# Each round runs every workload for both; the summary gives pgsess/pg as min/median/max.
require "pg"
require "pgsess"

uri = ENV.fetch("PGSQL_BENCH")
rounds = Integer(ENV.fetch("PGSESS_RBBENCH_ROUNDS", "5"))
roundtrips = Integer(ENV.fetch("PGSESS_RBBENCH_ROUNDTRIPS", "5000"))

TYPED = "SELECT g::int8, 'row ' || g, g * 0.5::float8, timestamptz '2024-01-01' + g * interval '1 s', g % 2 = 0 " \
        "FROM generate_series(1, 200000) g"
STRINGS = "SELECT 'a' || g, 'bb' || g, 'ccc' || g, 'dddd' || g, 'eeeee' || g FROM generate_series(1, 200000) g"

s = PGSess::Session.open("rbbench", db_url: uri, pool_max_size: 1)
pg = PG.connect(uri)
pg_typed = PG.connect(uri)
pg_typed.type_map_for_results = PG::BasicTypeMapForResults.new(pg_typed)

def clock = Process.clock_gettime(Process::CLOCK_MONOTONIC)

drivers = {
  "pgsess" => {
    roundtrip: lambda { |n|
      n.times { |i| s.exec_params("SELECT $1::int4", [i]) { |r| raise "wrong" unless r.getvalue(0, 0) == i } }
    },
    typed: -> { s.exec(TYPED) { |r| raise "rows" unless r.values.size == 200_000 } },
    strings: -> { s.exec(STRINGS) { |r| n = 0; r.each_row { |row| n += row.size }; raise "cells" unless n == 1_000_000 } }
  },
  "pg" => {
    roundtrip: lambda { |n|
      n.times { |i| pg.exec_params("SELECT $1::int4", [i]) { |r| raise "wrong" unless r.getvalue(0, 0) == i.to_s } }
    },
    typed: -> { pg_typed.exec(TYPED) { |r| raise "rows" unless r.values.size == 200_000 } },
    strings: -> { pg.exec(STRINGS) { |r| n = 0; r.each_row { |row| n += row.size }; raise "cells" unless n == 1_000_000 } }
  }
}

per_op = { roundtrip: roundtrips, typed: 200_000, strings: 200_000 }
times = Hash.new { |h, k| h[k] = Hash.new { |hh, kk| hh[kk] = [] } }
drivers.each_value { |d| d[:roundtrip].call(100) } # warm-up
rounds.times do |round|
  order = round.even? ? drivers.keys : drivers.keys.reverse
  %i[roundtrip typed strings].each do |w|
    order.each do |name|
      GC.start
      t = clock
      w == :roundtrip ? drivers[name][w].call(roundtrips) : drivers[name][w].call
      ns = (clock - t) * 1e9 / per_op[w]
      times[w][name] << ns
      printf("round %d  %-9s %-7s %10.1f ns/%s\n", round + 1, w, name, ns, w == :roundtrip ? "statement" : "row")
    end
  end
end
puts
puts "pgsess / pg per round (min / median / max), lower is faster:"
%i[roundtrip typed strings].each do |w|
  r = times[w]["pgsess"].zip(times[w]["pg"]).map { |a, b| a / b }.sort
  printf("  %-9s %.2f / %.2f / %.2f   (pg median %.0f ns)\n", w, r.first, r[r.size / 2], r.last,
         times[w]["pg"].sort[times[w]["pg"].size / 2])
end
