# frozen_string_literal: true

# Tests of the Sequel adapter (lib/sequel/adapters/pgsess.rb) against a real server:
# PGSQL_RBSEQUEL holds its URI (the session "rbsequel", Sequel.connect("pgsess://rbsequel")).
#   PGSQL_RBSEQUEL=postgresql://... PGSESS_LIB=/prefix/lib/libpgsess.so ruby -Ilib test/test_sequel.rb
# Needs Sequel (Debian: ruby-sequel).

require "minitest/autorun"
require "tmpdir"
require "sequel"
require "pgsess"

Sequel.extension :migration, :pg_array_ops

class TestSequelAdapter < Minitest::Test
  def setup
    flunk "PGSQL_RBSEQUEL is not set (a PostgreSQL URI)" if ENV["PGSQL_RBSEQUEL"].to_s.empty?
    @db = Sequel.connect("pgsess://rbsequel?pool_max_size=10", max_connections: 8)
    @table = :"sq_#{Process.pid}_#{name.delete_prefix('test_')[0, 40]}"
  end

  def teardown
    @db&.drop_table?(@table)
    @db&.disconnect
  end

  def test_connects_by_name_url_and_options
    assert_equal :pgsess, @db.adapter_scheme
    assert_equal :postgres, @db.database_type
    assert_equal 42, @db.get(Sequel.lit("41 + 1"))
    Sequel.connect(adapter: :pgsess, db_url: ENV.fetch("PGSQL_RBSEQUEL")) do |db|
      assert_equal "ok", db.get(Sequel.lit("'ok'::text"))
      assert_operator db.server_version, :>=, 90_500
    end
    # Sequel's connection settings are on each connection.
    assert_equal "on", @db.get(Sequel.lit("current_setting('standard_conforming_strings')"))
    assert_equal "ISO, MDY", @db.get(Sequel.lit("current_setting('DateStyle')"))
  end

  def test_migrations_and_schema
    Dir.mktmpdir do |dir|
      File.write(File.join(dir, "001_create.rb"), <<~RUBY)
        Sequel.migration do
          change do
            create_table(:#{@table}) do
              primary_key :id
              String :name, null: false, unique: true
              Integer :qty, default: 0
            end
          end
        end
      RUBY
      File.write(File.join(dir, "002_add.rb"), <<~RUBY)
        Sequel.migration do
          up { add_column :#{@table}, :note, String }
          down { drop_column :#{@table}, :note }
        end
      RUBY
      table = :"#{@table}_migrations"
      Sequel::Migrator.run(@db, dir, table: table)
      assert_equal %i[id name qty note], @db.schema(@table).map(&:first)
      assert_equal :id, @db.primary_key(@table).to_sym
      assert_equal 2, @db[table].get(:version)
      Sequel::Migrator.run(@db, dir, table: table, target: 1)
      assert_equal %i[id name qty], @db.schema(@table).map(&:first)
      @db.drop_table(table)
    end
  end

  def items
    @db.create_table!(@table) do
      primary_key :id
      String :name, null: false, unique: true
      Integer :qty, default: 0
      column :tags, "text[]"
      column :doc, :jsonb
      File :data
      DateTime :at
      Date :day
      BigDecimal :price, size: [10, 2]
      TrueClass :ok
    end
    @db[@table]
  end

  def test_crud_and_types
    ds = items
    at = Time.at(Time.now.to_i, 123_456, :usec)
    id = ds.insert(name: "a", qty: 1, data: Sequel.blob("\x00\xff\\'".b), at: at, day: Date.new(2024, 2, 29),
                   price: BigDecimal("12.34"), ok: true)
    assert_kind_of Integer, id
    row = ds.where(id: id).first
    assert_equal "a", row[:name]
    assert_equal 1, row[:qty]
    assert_equal "\x00\xff\\'".b, row[:data]
    assert_kind_of Sequel::SQL::Blob, row[:data]
    assert_equal at, row[:at]
    assert_equal Date.new(2024, 2, 29), row[:day]
    assert_equal BigDecimal("12.34"), row[:price]
    assert_equal true, row[:ok]
    assert_nil row[:tags]
    assert_equal 1, ds.where(id: id).update(qty: Sequel[:qty] + 1)
    assert_equal 2, ds.where(id: id).get(:qty)
    assert_equal "it's \u2713", ds.where(id: id).get(Sequel.cast("it's \u2713", String))
    assert_equal 1, ds.where(id: id).delete
    assert_equal 0, ds.count
  end

  def test_returning_and_upsert
    ds = items
    rows = ds.returning(:id, :name).insert(name: "b", qty: 2)
    assert_equal [{ id: rows[0][:id], name: "b" }], rows
    ds.insert_conflict(target: :name, update: { qty: Sequel[@table][:qty] + Sequel[:excluded][:qty] }).insert(name: "b", qty: 5)
    assert_equal 7, ds.where(name: "b").get(:qty)
    assert_nil ds.insert_conflict.insert(name: "b", qty: 9)
    assert_equal 1, ds.count
    assert_equal [%w[b 70]], ds.returning(:name, Sequel.cast(Sequel[:qty] * 10, String)).update(qty: 7).map(&:values)
    assert_equal [{ name: "b" }], ds.returning(:name).delete
  end

  def test_nested_transactions_and_savepoints
    ds = items
    @db.transaction do
      ds.insert(name: "outer")
      @db.transaction(savepoint: true) do
        ds.insert(name: "inner, rolled back")
        raise Sequel::Rollback
      end
      @db.transaction(savepoint: true) do
        ds.insert(name: "inner, kept")
        @db.transaction(savepoint: true) { ds.insert(name: "innermost") }
      end
      assert @db.in_transaction?
    end
    assert_equal ["inner, kept", "innermost", "outer"], ds.order(:name).select_map(:name)
    assert_raises(RuntimeError) do
      @db.transaction do
        ds.insert(name: "lost")
        raise "boom"
      end
    end
    assert_equal 0, ds.where(name: "lost").count
    # A failed statement inside a savepoint leaves the outer transaction usable.
    @db.transaction do
      assert_raises(Sequel::UniqueConstraintViolation) do
        @db.transaction(savepoint: true) { ds.insert(name: "outer") }
      end
      ds.insert(name: "after the failed savepoint")
    end
    assert_equal 1, ds.where(name: "after the failed savepoint").count
    # Isolation levels as Sequel's postgres adapter sets them.
    @db.transaction(isolation: :serializable) do
      assert_equal "serializable", @db.get(Sequel.lit("current_setting('transaction_isolation')"))
    end
  end

  def test_errors_are_sequel_classes_with_the_server_fields
    ds = items
    ds.insert(name: "dup")
    e = assert_raises(Sequel::UniqueConstraintViolation) { ds.insert(name: "dup") }
    assert_kind_of PGSess::UniqueViolation, e.wrapped_exception
    info = @db.error_info(e)
    assert_equal "#{@table}_name_key", info[:constraint]
    assert_equal @table.to_s, info[:table]
    assert_equal "23505", info[:sql_state]
    assert_equal "ERROR", info[:severity]
    assert_raises(Sequel::NotNullConstraintViolation) { ds.insert(name: nil) }
    e = assert_raises(Sequel::DatabaseError) { @db.run("SELEC 1") }
    assert_equal "42601", e.wrapped_exception.sqlstate
    assert_equal "1", @db.error_info(e)[:statement_position]
    assert_raises(Sequel::DatabaseError) { @db.get(Sequel.lit("1/0")) }
  end

  def test_copy_into_and_copy_table
    ds = items
    @db.copy_into(@table, columns: %i[name qty], data: "x\t1\ny\t2\n")
    @db.copy_into(@table, columns: %i[name qty], format: :csv, data: ["z,3\n", "w,4\n"])
    rows = [["v", 5], ["u", 6]]
    @db.copy_into(@table, columns: %i[name qty]) { (r = rows.shift) && "#{r.join("\t")}\n" }
    assert_equal 6, ds.count
    out = @db.copy_table(ds.select(:name, :qty).order(:qty))
    assert_equal "x\t1\ny\t2\nz\t3\nw\t4\nv\t5\nu\t6\n", out
    seen = []
    assert_nil(@db.copy_table(ds.select(:name).order(:qty), format: :csv) { |line| seen << line })
    assert_equal %W[x\n y\n z\n w\n v\n u\n], seen
    # An exception while copying in aborts the copy: none of its rows are kept.
    assert_raises(RuntimeError) do
      @db.copy_into(@table, columns: %i[name qty]) { raise "no more data" }
    end
    e = assert_raises(Sequel::DatabaseError) { @db.copy_into(@table, columns: %i[name qty], data: "a\tnot a number\n") }
    assert_equal "22P02", e.wrapped_exception.sqlstate
    assert_equal 6, ds.count
    assert_equal 1, @db.get(Sequel.lit("1")) # the connection is usable after both
  end

  def test_listen_and_notify
    channel = "sq_chan_#{Process.pid}"
    notifier = Thread.new do
      sleep 0.2
      @db.notify(channel, payload: "hello")
    end
    got = nil
    assert_equal channel, @db.listen(channel, timeout: 5) { |c, pid, payload| got = [c, pid, payload] }
    notifier.join
    assert_equal channel, got[0]
    assert_kind_of Integer, got[1]
    assert_equal "hello", got[2]
    assert_nil @db.listen(channel, timeout: 0.1)
    # :loop with :after_listen: notifications sent once it listens, until the block throws.
    payloads = []
    @db.listen(channel, loop: true, timeout: 5,
                        after_listen: proc { 3.times { |i| @db.notify(channel, payload: i.to_s) } }) do |_, _, payload|
      payloads << payload
      throw :stop if payloads.size == 3
    end
    assert_equal %w[0 1 2], payloads
  end

  def test_arrays_and_json
    @db.extension :pg_array, :pg_json
    ds = items
    ds.insert(name: "arr", tags: Sequel.pg_array(["a", "b c", nil, "d\"e"]), doc: Sequel.pg_jsonb("k" => [1, 2.5, nil], "s" => "x"))
    row = ds.where(name: "arr").first
    assert_equal ["a", "b c", nil, "d\"e"], row[:tags].to_a
    assert_equal({ "k" => [1, 2.5, nil], "s" => "x" }, row[:doc].to_h)
    assert_equal 1, ds.where(Sequel.pg_array_op(:tags).contains(Sequel.pg_array(["b c"]))).count
    assert_equal [1, 2, 3], @db.get(Sequel.lit("ARRAY[1,2,3]::int[]")).to_a
    # As bound variables too.
    found = ds.where(tags: :$t).call(:select, t: Sequel.pg_array(["a", "b c", nil, "d\"e"]))
    assert_equal ["arr"], found.map { |r| r[:name] }
    ds.where(name: "arr").call(:update, { t: Sequel.pg_array(%w[q r]) }, tags: :$t)
    assert_equal %w[q r], ds.where(name: "arr").get(:tags).to_a
  end

  def test_prepared_statements_and_bound_variables
    ds = items
    ds.import(%i[name qty], (1..20).map { |i| ["n#{i}", i] })
    ps = ds.where(name: :$n).prepare(:select, :"sq_by_name_#{Process.pid}")
    5.times { |i| assert_equal i + 1, ps.call(n: "n#{i + 1}").first[:qty] }
    assert_equal [7], ds.where(qty: :$q).call(:select, q: 7).map { |r| r[:qty] }
    ins = ds.prepare(:insert, :"sq_ins_#{Process.pid}", name: :$name, qty: :$qty)
    ins.call(name: "prepared", qty: 99)
    assert_equal 99, ds.where(name: "prepared").get(:qty)
    assert_equal 2, ds.where(qty: 1..2).call(:select).size
  end

  def test_eight_threads_share_the_database
    ds = items
    ds.insert(name: "counter", qty: 0)
    threads = Array.new(8) do |t|
      Thread.new do
        25.times do |i|
          @db.transaction do
            ds.where(name: "counter").update(qty: Sequel[:qty] + 1)
            ds.insert(name: "t#{t}-#{i}", qty: t)
          end
        end
      end
    end
    threads.each(&:join)
    assert_equal 200, ds.where(name: "counter").get(:qty)
    assert_equal 201, ds.count
    assert_operator @db.pool.size, :<=, 8
  end

  def test_a_lost_connection_is_dropped_and_the_next_query_works
    pid = @db.synchronize { |conn| conn.session.backend_pid }
    Sequel.connect(adapter: :pgsess, db_url: ENV.fetch("PGSQL_RBSEQUEL")) do |other|
      assert other.get(Sequel.lit("pg_terminate_backend(?)", pid))
    end
    sleep 0.1
    # One thread reuses the connection it last released: the one whose backend is gone.
    e = assert_raises(Sequel::DatabaseDisconnectError) { @db.run("SELECT 1") }
    assert_kind_of PGSess::Error, e.wrapped_exception
    assert_equal 1, @db.get(Sequel.lit("1"))
    refute_equal pid, @db.synchronize { |conn| conn.session.backend_pid }
  end

  def test_more_sequel_connections_than_the_pgsess_pool_fail_with_a_connection_error
    Sequel.connect("pgsess://rbsequel?pool_max_size=1&checkout_timeout_ms=200", max_connections: 2,
                                                                               pool_timeout: 5) do |db|
      held = Queue.new
      done = Queue.new
      t = Thread.new { db.synchronize { held << true; done.pop } }
      held.pop
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      e = assert_raises(Sequel::DatabaseConnectionError) { db.get(Sequel.lit("1")) }
      assert_operator Process.clock_gettime(Process::CLOCK_MONOTONIC) - started, :<, 3
      assert_match(/exhausted/, e.message)
      done << true
      t.join
      assert_equal 1, db.get(Sequel.lit("1"))
    end
  end

  def test_disconnect_returns_the_connections_and_reconnects
    @db.get(Sequel.lit("1"))
    root = @db.instance_variable_get(:@root)
    @db.disconnect
    assert root.closed?
    assert_equal 0, @db.pool.size
    assert_equal 2, @db.get(Sequel.lit("2"))
  end
end
