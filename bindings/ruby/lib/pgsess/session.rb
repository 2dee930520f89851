# frozen_string_literal: true

module PGSess
  # Helpers shared by Session and Transaction. Internal.
  module Statements # :nodoc:
    module_function

    # Run the block with asynchronous interrupts (Thread#raise, Timeout, Thread#kill) deferred
    # until it ends. A native call cannot be aborted anyway; deferring makes sure that the
    # handle it returns is wrapped (and so freed) before an interrupt unwinds the stack.
    def guarded(&block)
      Thread.handle_interrupt(DEFERRED, &block)
    end
    DEFERRED = { Object => :never }.freeze

    # Run the statement (the block returns its Results) with interrupts deferred, then:
    # - with `user_block`: yield the results to it, free them when it ends, return its value;
    # - without: return the results.
    # An interrupt (Timeout, Thread#raise) that arrived during the native call is raised once
    # the results are wrapped; they are freed then, never left to the garbage collector.
    def execute(user_block)
      results = nil
      completed = false
      begin
        Thread.handle_interrupt(DEFERRED) { results = yield } # #guarded, without a Proc made per call
        return user_block.call(results) if user_block

        completed = true
        results.leak_check!
      ensure
        results.free if results && (user_block || !completed)
      end
    end

    # Run `sql` with `params` through the native function `text` (text parameters), or `typed`
    # (its pgsess_*_query_params form) when a parameter is binary; returns the Results, without
    # their finalizer (#execute adds it when it hands them out). Call it inside #execute.
    def run(sql, params, handle, text, typed)
      sql = sql.to_s
      if Accel::ENABLED
        sql_text = Native.utf8(sql, "SQL") # checked first, as on the ffi path
        texts = Params.texts(params)
        return Results.new(accel_call(handle, text, sql_text, texts), sql, false) if texts
      end

      Results.new(native_call(handle, Native.cstring(sql, "SQL"), Params.new(params), text, typed), sql, false)
    end

    # The native function `fn` (pgsess_query or one of its shape) through PGSess::Ext.statement:
    # the same call as #native_call makes for text parameters, without an ffi MemoryPointer per
    # string, for the array and for the error. Returns the results pointer.
    def accel_call(handle, fn, first, texts)
      results, err = handle.use { |h| Ext.statement(Accel.address(fn), h.address, first, texts) }
      raise PGSess::Error.from_native(FFI::Pointer.new(err)) unless err.zero?

      FFI::Pointer.new(results)
    end

    # Run `sql` with `params` through pgsess_query_binary on the session of `handle` (a Handle or
    # TransactionHandle): every result column in binary. Call it inside #execute.
    def run_binary(sql, params, handle)
      sql = sql.to_s
      sql_ptr = Native.cstring(sql, "SQL")
      prm = Params.new(params)
      ptr = handle.use do |h|
        Native.checked do |e|
          Native.pgsess_query_binary(h, sql_ptr, prm.count, nil, prm.values_ptr, prm.lengths_ptr,
                                     prm.formats_ptr, e)
        end
      end
      Results.new(ptr, sql, false)
    end

    # Call the function `name` with `args` through `text` (pgsess_callproc or
    # pgsess_tx_callproc), or `typed` (their _params form) when an argument is binary: the
    # library quotes the name and builds the statement. Call it inside #execute.
    def callproc(name, args, handle, text, typed)
      if Accel::ENABLED
        name_text = Native.utf8(name.to_s, "function name")
        texts = Params.texts(args, "argument")
        return Results.new(accel_call(handle, text, name_text, texts), nil, false) if texts
      end

      name_ptr = Native.cstring(name.to_s, "function name")
      Results.new(native_call(handle, name_ptr, Params.new(args, "argument"), text, typed), nil, false)
    end

    # The native call shared by #run and #callproc; returns the results pointer.
    def native_call(handle, first, prm, text, typed)
      handle.use do |h|
        Native.checked do |e|
          if prm.binary?
            Native.public_send(typed, h, first, prm.count, nil, prm.values_ptr, prm.lengths_ptr,
                               prm.formats_ptr, e)
          else
            Native.public_send(text, h, first, prm.count, prm.values_ptr, e)
          end
        end
      end
    end
  end

  # pg's PG::Connection#exec and #exec_params, for Session and Transaction, in terms of their
  # #query and #query_binary: code written for pg runs on a session, a pinned session, a
  # transaction (pg's `conn.transaction { |conn| conn.exec(...) }`) or Transaction#session.
  module Exec
    # pg's exec: run `sql` (no parameters) as #query. Returns PGSess::Results; with a block,
    # yields them, clears them when the block ends (even on exception) and returns the block's
    # value, as pg.
    def exec(sql, &block)
      query(sql, &block)
    end
    alias async_exec exec

    # pg's exec_params: `params` is an Array of the values of $1..$n, each a value (converted
    # as by #query: see PGSess::Params) or, as in pg, a Hash `{ value:, format: }` (format 1
    # sends the value's bytes in binary, as a binary String does; 0 as text); a `type:` OID
    # other than 0 raises InterfaceError, as the server infers every type here (cast in the
    # SQL: `$1::int`). `result_format` 1 asks for binary results (#query_binary), 0 for text
    # (#query); either gives the same Ruby values. Results and block as for #exec.
    def exec_params(sql, params, result_format = 0, &block)
      if @query_fn && result_format == 0 # as Session#query does
        r = Ext.query(@handle, @query_fn, sql, params, &block)
        return r unless r.equal?(Ext::UNCONVERTED)
      end
      list = Array.try_convert(params)
      raise TypeError, "exec_params takes an Array of parameters, not #{params.class}" unless list

      values = list.any?(Hash) ? list.map { |param| Exec.pg_param(param) } : list
      case result_format
      when 0 then query(sql, *values, &block)
      when 1 then query_binary(sql, *values, &block)
      else raise ArgumentError, "result_format must be 0 (text) or 1 (binary), not #{result_format.inspect}"
      end
    end
    alias async_exec_params exec_params

    # One of pg's exec_params parameters as the value #query takes.
    def self.pg_param(param)
      return param unless param.is_a?(Hash)

      type = param[:type]
      unless type.nil? || type.zero?
        raise InterfaceError.new("parameter type OIDs are not supported (type: #{type}); cast in the SQL ($1::type)",
                                 code: :interface_error)
      end

      text = Params.text(param[:value])
      return text if text.nil?

      if param[:format] == 1
        text.b
      elsif text.encoding == Encoding::BINARY
        text.dup.force_encoding(Encoding::UTF_8)
      else
        text
      end
    end
  end

  # A session on a process-wide connection pool (the seed's Session / TornadoSession).
  #
  #   session = PGSess::Session.open("foo")          # reads PGSQL_FOO
  #   session.query("SELECT $1::int + 1 AS n", 41) { |r| r.first["n"] }   # => 42
  #   session.close
  #
  # A pooled session (the default) checks out a connection for each statement, and the pool
  # resets a connection before its next user (see the `reset:` option), so a SET or a temporary
  # table does not carry from one statement to the next. A pinned session (#pin, or
  # `pinned: true`) holds one connection for its life, so they do, as on one libpq connection:
  #
  #   session.pin do |pinned|                         # closed after the block
  #     pinned.query("SET search_path = app, public") {}
  #     pinned.query("SHOW search_path") { |r| r[0]["search_path"] }   # => "app, public"
  #   end
  #
  # A transaction's session (Transaction#session) runs every call inside the transaction.
  #
  # Thread-safe: any number of threads may use one session at once (each statement checks out
  # its own pooled connection; on a pinned session they take turns on its one connection).
  # #close waits for calls in flight on other threads.
  class Session
    include Exec

    # Owns the native handle and counts calls in flight, so that pgsess_close never races with
    # them. The finalizer holds this object, never the Session.
    class Handle # :nodoc:
      def initialize(ptr)
        @ptr = ptr
        @lock = Mutex.new
        @idle = ConditionVariable.new
        @inflight = 0
      end

      def use
        ptr = @lock.synchronize do
          raise InterfaceError.new("session is closed", code: :interface_error) unless @ptr

          @inflight += 1
          @ptr
        end
        begin
          yield ptr
        ensure
          @lock.synchronize do
            @inflight -= 1
            @idle.broadcast if @inflight.zero?
          end
        end
      end

      def closed?
        @ptr.nil?
      end

      def close
        ptr = @lock.synchronize do
          p = @ptr
          @ptr = nil # new calls fail from now on
          @idle.wait(@lock) while @inflight.positive?
          p
        end
        Native.pgsess_close(ptr) if ptr
        !ptr.nil?
      end

      # Finalizer: the session is unreachable, so no call on it is in flight.
      def call(_object_id)
        ptr = @ptr
        @ptr = nil
        Native.pgsess_close(ptr) if ptr
      rescue StandardError
        nil
      end
    end

    # The handle of a transaction's session (Transaction#session): calls go through the
    # transaction's handle, so they take turns with the transaction's own calls and raise
    # InterfaceError once it has ended. Closing it does nothing: it ends with the transaction.
    class TransactionHandle # :nodoc:
      def initialize(tx_handle, ptr)
        @tx_handle = tx_handle
        @ptr = ptr
      end

      def use
        @tx_handle.use { yield @ptr }
      end

      def closed?
        !@tx_handle.active?
      end

      def close
        false
      end
    end

    UINT32_MAX = 2**32 - 1

    # The `reset:` option's values, as pgsess_reset numbers them.
    RESET_MODES = { dirty: 0, always: 1, never: 2 }.freeze

    # The `isolation:` option's values (#begin, #transaction), as pgsess_isolation numbers them.
    ISOLATION_LEVELS = { default: 0, read_committed: 1, repeatable_read: 2, serializable: 3 }.freeze

    # Open a session named `name`: its PostgreSQL URI comes from `db_url` when given, else from
    # the environment variable "PGSQL_" + name upper-cased (nil or "" reads PGSQL).
    # Options left nil keep the library's defaults (pool_max_size 25, pool_idle_ttl 60 s,
    # checkout_timeout_ms 5000, reset :dirty).
    #
    # `reset:` says what the pool undoes before a connection goes to its next user: `:dirty`
    # (DISCARD ALL only after a statement that may have changed session state), `:always`
    # (after every use) or `:never` (only an open transaction is rolled back, so settings pass
    # from one user to the next). It is part of the pool key: sessions with different modes use
    # different pools. Anything else raises InterfaceError.
    #
    # `pinned: true` opens a pinned session (see #pin); pinned and pooled sessions of one URI
    # share a pool.
    #
    # `statement_cache: n` (0, the default, is off; at most 65,536) keeps up to n statements with
    # parameters prepared per pooled connection, so a statement run again is only bound and
    # executed, not parsed and planned again; the least recently used are closed. When a cached
    # plan goes stale (ALTER TABLE, a type dropped and created again) every connection of the
    # pool prepares it again, and outside a transaction the failed call is retried once, so the
    # caller sees no error. It is part of the pool key. Keep it off behind PgBouncer in
    # transaction mode unless PgBouncer tracks prepared statements (max_prepared_statements).
    #
    # `pool_max_lifetime:` (seconds, default 3600, 0 none) closes a connection that old when it
    # is next idle (each connection's limit within +-10%); `pool_min_idle:` (default 0) keeps
    # that many idle connections open, opened when the pool is created and re-opened in the
    # background; `pool_health_check_ms:` (default 30000, 0 never) gives a connection idle that
    # long a round trip before it is handed out. All three are part of the pool key.
    #
    # `cancel_on_interrupt:` (default true): an interrupt (Timeout.timeout, Thread#raise,
    # Thread#kill, Ctrl-C) arriving while a statement waits for the server cancels the statement
    # on the server, and the interrupt is raised as soon as the server has stopped it (not when
    # the statement would have ended); the session stays usable. false: the interrupt waits for
    # the statement's end, as before.
    #
    # `typed_binary:` (default true): with a statement cache, #query, #exec and #exec_params
    # (with text results) read the columns of the types faster to read in binary (integers,
    # float8, bool, bytea, date, timestamptz, uuid) in binary from a statement's second run on a
    # connection (pgsess_query_typed): the server skips their text output and the Ruby values
    # are the same. #exec of a string without parameters then runs on the extended protocol
    # when it holds one statement (no `;` but a trailing one, no `$`), so it is cached too. What
    # changes is only what #each_text_row, #each_text_hash and #column_formats show: such a
    # column's bytes and format 1. false keeps every column in text (the Sequel adapter, which
    # converts the text itself, opens its sessions so).
    #
    # `password_provider:` (a PGSess::PasswordProvider) is asked for the password of each new
    # connection (rotated passwords, cloud IAM tokens); sessions share a pool only with the same
    # provider object.
    #
    # With a block, yields the session, closes it when the block ends and returns the block's
    # value.
    def self.open(name = nil, db_url: nil, pool_max_size: nil, pool_idle_ttl: nil, checkout_timeout_ms: nil,
                  reset: nil, pinned: false, statement_cache: nil, pool_max_lifetime: nil, pool_min_idle: nil,
                  pool_health_check_ms: nil, password_provider: nil, cancel_on_interrupt: true,
                  typed_binary: true)
      session = new(name, db_url: db_url, pool_max_size: pool_max_size, pool_idle_ttl: pool_idle_ttl,
                          checkout_timeout_ms: checkout_timeout_ms, reset: reset, pinned: pinned,
                          statement_cache: statement_cache, pool_max_lifetime: pool_max_lifetime,
                          pool_min_idle: pool_min_idle, pool_health_check_ms: pool_health_check_ms,
                          password_provider: password_provider, cancel_on_interrupt: cancel_on_interrupt,
                          typed_binary: typed_binary)
      return session unless block_given?

      begin
        yield session
      ensure
        session.close
      end
    end

    # The name the session was opened with.
    attr_reader :name
    # The pool's id (the seed's `pid`): a hash that never reveals the password.
    attr_reader :pool_id

    # A Session over a handle that `handle` (a Handle or TransactionHandle) already holds.
    # Internal: used by #pin and Transaction#session.
    # The handle of the session at `ptr`: in C with the accelerator (Ext::SessionHandle), else
    # Handle. :nodoc:
    def self.new_handle(ptr)
      (Accel::ENABLED ? Ext::SessionHandle : Handle).new(ptr)
    end

    # The address of pgsess_query_typed (`typed_binary`) or pgsess_query when Ext.query can run
    # statements on `handle` (a session's own handle, with the accelerator), else nil: the Ruby
    # path (Statements). :nodoc:
    def self.query_fn(handle, typed_binary)
      return unless Accel::ENABLED && handle.instance_of?(Ext::SessionHandle)

      Accel.address(typed_binary ? :pgsess_query_typed : :pgsess_query)
    end

    def self.adopt(handle, name, typed_binary) # :nodoc:
      session = allocate
      session.send(:adopt, handle, name, typed_binary)
      session
    end

    # See Session.open.
    def initialize(name = nil, db_url: nil, pool_max_size: nil, pool_idle_ttl: nil, checkout_timeout_ms: nil,
                   reset: nil, pinned: false, statement_cache: nil, pool_max_lifetime: nil, pool_min_idle: nil,
                   pool_health_check_ms: nil, password_provider: nil, cancel_on_interrupt: true,
                   typed_binary: true)
      @name = name
      @typed_binary = typed_binary ? true : false
      name_ptr = name.nil? ? nil : Native.cstring(name, "session name")
      opts = Native.pgsess_options_new
      begin
        unless db_url.nil?
          code = Native.pgsess_options_set_db_url(opts, Native.cstring(db_url, "db_url"))
          option_failed("db_url", "(not shown)", code) unless code == Native::OK
        end
        set_uint32(opts, :pgsess_options_set_pool_max_size, "pool_max_size", pool_max_size)
        set_uint32(opts, :pgsess_options_set_pool_idle_ttl, "pool_idle_ttl", pool_idle_ttl)
        set_uint32(opts, :pgsess_options_set_checkout_timeout_ms, "checkout_timeout_ms", checkout_timeout_ms)
        set_reset(opts, reset) unless reset.nil?
        set_uint32(opts, :pgsess_options_set_statement_cache, "statement_cache", statement_cache)
        set_uint32(opts, :pgsess_options_set_pool_max_lifetime, "pool_max_lifetime", pool_max_lifetime)
        set_uint32(opts, :pgsess_options_set_pool_min_idle, "pool_min_idle", pool_min_idle)
        set_uint32(opts, :pgsess_options_set_pool_health_check_ms, "pool_health_check_ms", pool_health_check_ms)
        password_provider&.install(opts)
        # Timeout, Thread#raise and Thread#kill signal a thread blocked in the library until it
        # returns: with this the signal cancels the statement on the server, so the interrupt is
        # raised within milliseconds and the session stays usable.
        code = Native.pgsess_options_set_cancel_on_signal(opts, cancel_on_interrupt ? true : false)
        option_failed("cancel_on_interrupt", cancel_on_interrupt.inspect, code) unless code == Native::OK
        if pinned
          code = Native.pgsess_options_set_pinned(opts, true)
          option_failed("pinned", "true", code) unless code == Native::OK
        end
        Statements.guarded do
          ptr = Native.checked { |e| Native.pgsess_open(name_ptr, opts, e) }
          @handle = Session.new_handle(ptr)
          @query_fn = Session.query_fn(@handle, @typed_binary)
          ObjectSpace.define_finalizer(self, @handle)
        end
      ensure
        Native.pgsess_options_free(opts)
      end
      @pool_id = @handle.use { |s| Native.str(Native.pgsess_pool_id(s)) }.freeze
    end

    # Close the session (waits for calls in flight on other threads). Results and transactions
    # from it stay valid until freed. Idempotent; true when this call closed it.
    def close
      closed = @handle.close
      ObjectSpace.undefine_finalizer(self) if closed
      closed
    end

    def closed?
      @handle.closed?
    end

    # Run `sql` with parameters $1..$n (see PGSess::Params for the conversions; a binary String
    # is sent as binary). Returns PGSess::Results, which hold a pooled connection until freed.
    # With a block, yields the results, frees them when the block ends (even on exception) and
    # returns the block's value.
    def query(sql, *params, &block)
      if @query_fn # the whole statement in one C call when the accelerator can take its values
        r = Ext.query(@handle, @query_fn, sql, params, &block)
        return r unless r.equal?(Ext::UNCONVERTED)
      end
      text_fn = @typed_binary ? :pgsess_query_typed : :pgsess_query
      Statements.execute(block) { Statements.run(sql, params, @handle, text_fn, :pgsess_query_params) }
    end

    # #query with every result column in binary (pgsess_query_binary): the server skips its text
    # output and the rows are decoded from the binary values, giving the same Ruby values as
    # #query (integers, floats, bool, bytea, json/jsonb, timestamptz, date, uuid and the text
    # types decoded in Ruby; numeric and other types from the library's rendering of their
    # text, which raises NotSupportedError for types it does not render, such as interval and
    # arrays, or whose text depends on settings: a timestamp as text needs the ISO DateStyle, a
    # timestamptz past the year 294246 a UTC TimeZone). Prefer it for reading many rows of
    # numbers, times and bytea. Always one statement on the extended protocol, even without
    # parameters. Parameters, results and block as for #query.
    def query_binary(sql, *params, &block)
      Statements.execute(block) { Statements.run_binary(sql, params, @handle) }
    end

    # Call a function: `SELECT * FROM name($1, ...)`, the name quoted part by part (so it is
    # case-sensitive). Arguments (a binary String arrives as its bytes), results and block as
    # for #query.
    def callproc(name, *args, &block)
      Statements.execute(block) do
        Statements.callproc(name, args, @handle, :pgsess_callproc, :pgsess_callproc_params)
      end
    end

    # Run `sql` and yield its rows (Hashes, as Results#each) as they arrive in chunks of at
    # most `chunk_rows`, so memory stays bounded. The pooled connection is held until the block
    # has seen every row (or raised). Text parameters only. Returns the number of rows.
    def stream(sql, *params, chunk_rows: 1000)
      return enum_for(:stream, sql, *params, chunk_rows: chunk_rows) unless block_given?

      sql = sql.to_s
      sql_ptr = Native.cstring(sql, "SQL")
      prm = Params.new(params)
      if prm.binary?
        raise InterfaceError.new("stream takes text parameters only; use #query for binary ones",
                                 code: :interface_error)
      end
      chunk = Integer(chunk_rows)
      raise InterfaceError.new("chunk_rows must be 1 to #{UINT32_MAX}", code: :interface_error) unless chunk.between?(1, UINT32_MAX)

      total = 0
      stream = nil
      begin
        Statements.guarded do
          stream = @handle.use do |s|
            Native.checked { |e| Native.pgsess_query_stream(s, sql_ptr, prm.count, prm.values_ptr, chunk, e) }
          end
        end
        loop do
          results = nil
          begin
            Statements.guarded do
              ptr = Native.checked { |e| Native.pgsess_stream_next(stream, e) }
              results = Results.new(ptr, sql) unless ptr.null?
            end
            break unless results

            results.each do |row|
              total += 1
              yield row
            end
          ensure
            results&.free
          end
        end
      ensure
        Native.pgsess_stream_free(stream) if stream
      end
      total
    end

    # Run a COPY statement and move its data, as pg's PG::Connection#copy_data. The server
    # decides the direction, as PGRES_COPY_IN or PGRES_COPY_OUT does for pg (pgsess_copy_start,
    # then pgsess_copy_is_in; Copy#in? and #out? tell). A statement that is no COPY FROM STDIN or
    # TO STDOUT still runs, as on pg, and then raises InterfaceError.
    #
    # With a block, yields a PGSess::Copy: for COPY ... FROM STDIN, send rows with
    # `copy.put_copy_data(row)` (or `copy << row`); for COPY ... TO STDOUT, read them with
    # `copy.get_copy_data` (one CopyData message, a row for text and CSV, as a binary String; nil
    # at the end) or `copy.each`, or in large chunks with `copy.read_chunk` / `copy.each_chunk` /
    # `copy.read_all`. When the block ends the copy is finished and the number of rows copied is
    # returned; when it raises (or leaves early by break, return or throw) the copy is aborted,
    # so a COPY FROM STDIN commits none of its rows, and the exception goes on. A COPY TO STDOUT
    # block must read to the end (else InterfaceError, as pg's NotAllCopyDataRetrieved).
    #
    # Without a block, returns the Copy: call Copy#finish (then the rows are committed) or
    # Copy#close (aborted). Until then it holds its connection; on a pinned session or a
    # transaction other statements are refused with InterfaceError meanwhile.
    def copy_data(sql, &block)
      Copy.start(@handle, sql, nil, &block)
    end

    # #copy_data for a COPY ... FROM STDIN (pgsess_copy_in): the library refuses any other
    # statement with InterfaceError (NotSupportedError for a COPY ... TO STDOUT).
    #
    # With `io` instead of a block, sends its data and returns the rows copied: a String is sent
    # whole; anything else is read with `io.read(64 KiB)` until it returns nil (an IO, a StringIO,
    # a Tempfile). An exception from `io` aborts the copy.
    def copy_in(sql, io = nil, &block)
      return Copy.start(@handle, sql, :in, &block) if io.nil?
      raise ArgumentError, "copy_in takes an io or a block, not both" if block

      data = String.try_convert(io)
      raise TypeError, "copy_in takes a String or an object with #read, not #{io.class}" unless data || io.respond_to?(:read)

      Copy.start(@handle, sql, :in) do |copy|
        if data
          copy.put_copy_data(data)
        else
          while (piece = io.read(Copy::CHUNK_BYTES))
            copy.put_copy_data(piece)
          end
        end
      end
    end

    # #copy_data for a COPY ... TO STDOUT (pgsess_copy_out): the library refuses any other
    # statement with InterfaceError (NotSupportedError for a COPY ... FROM STDIN).
    #
    # With `io` instead of a block, writes all the data to it in large chunks (Copy#each_chunk:
    # one native call per 64 KiB or more, not per row) and returns the rows copied: `io.write`
    # when it has #write (an IO, a StringIO), else `io << chunk` (a binary String, say:
    # `copy_out(sql, out = String.new)`). An exception from `io` cancels the copy.
    def copy_out(sql, io = nil, &block)
      return Copy.start(@handle, sql, :out, &block) if io.nil?
      raise ArgumentError, "copy_out takes an io or a block, not both" if block

      write = if io.respond_to?(:write) then io.method(:write)
              elsif io.respond_to?(:<<) then io.method(:<<)
              else raise TypeError, "copy_out takes an object with #write or #<<, not #{io.class}"
              end
      Copy.start(@handle, sql, :out) { |copy| copy.each_chunk { |chunk| write.call(chunk) } }
    end

    # Notifications are waited for in slices of at most this many milliseconds, so that
    # Thread#raise, Thread#kill, Timeout and Ctrl-C get through, and #close from another thread
    # is not held up.
    NOTIFY_SLICE_MS = 100

    # LISTEN on `channel` (the library quotes it as an identifier: "Foo" is not "foo", unlike an
    # unquoted `LISTEN Foo`). The session listens through a dedicated listener connection of its
    # own (opened on first use, not counted against pool_max_size); when that connection is lost
    # it reconnects with backoff, listens again and delivers a gap marker for each channel (see
    # #next_notification). Returns nil.
    def listen(channel)
      ch = Native.cstring(channel, "channel")
      @handle.use { |s| Native.checked { |e| Native.pgsess_listen(s, ch, e) } }
      nil
    end

    # UNLISTEN `channel` (quoted as for #listen). Returns nil.
    def unlisten(channel)
      ch = Native.cstring(channel, "channel")
      @handle.use { |s| Native.checked { |e| Native.pgsess_unlisten(s, ch, e) } }
      nil
    end

    # The next notification, a PGSess::Notification (channel, payload, pid, gap?), waiting up to
    # `timeout` seconds (fractional; nil: for ever; 0: do not wait); nil on timeout.
    # Notifications are kept in arrival order (at most 65,536, beyond which the oldest are
    # dropped and a gap marker is queued for their channel). The GVL is released while it waits;
    # it raises InterfaceError if the session is closed meanwhile. Any thread may call it; each
    # notification goes to one caller.
    #
    # On a pinned session, notifications for a plain `LISTEN x` run with #query on its own
    # connection arrive here too.
    def next_notification(timeout = nil)
      deadline = notify_deadline(timeout)
      loop do
        ms = if deadline
               ((deadline - monotonic) * 1000).ceil.clamp(0, NOTIFY_SLICE_MS)
             else
               NOTIFY_SLICE_MS
             end
        notification = take_notification(ms)
        return notification if notification
        return nil if deadline && monotonic >= deadline
      end
    end

    # pg's PG::Connection#wait_for_notify: waits as #next_notification and returns the channel
    # name, or nil on timeout; with a block, yields `channel, pid, payload` first. A gap marker
    # (notifications on the channel may have been lost: the listener reconnected, or the queue
    # overflowed) is returned and yielded too, as `channel, 0, nil`: a pid of 0 and a nil
    # payload (a NOTIFY without one has payload ""). Use #next_notification for Notification#gap?.
    def wait_for_notify(timeout = nil)
      notification = next_notification(timeout)
      return nil unless notification

      yield(*notification.to_a) if block_given?
      notification.channel
    end

    # pg's PG::Connection#notifies: the next notification without waiting, as a Hash
    # `{ relname: channel, be_pid: pid, extra: payload, gap: false }`, or nil when none is ready.
    # A gap marker (see #wait_for_notify) is `{ relname: channel, be_pid: 0, extra: nil, gap: true }`.
    def notifies
      notification = next_notification(0)
      return nil unless notification

      { relname: notification.channel, be_pid: notification.pid, extra: notification.payload,
        gap: notification.gap? }
    end

    # A file descriptor (an eventfd owned by the session) readable while a notification is
    # ready, for an event loop (IO.for_fd(fd, autoclose: false) with IO.select or nio4r): when it
    # is readable call `next_notification(0)`. Do not read or close it; it is valid until #close.
    def notification_fd
      @handle.use { |s| Native.pgsess_notification_fd(s) }
    end

    # Begin a transaction (pins one pooled connection). With a block, see #transaction.
    #
    # `isolation:` (nil or :default, :read_committed, :repeatable_read, :serializable; a String
    # such as "REPEATABLE READ" too), `read_only: true` and `deferrable: true` are sent with the
    # BEGIN itself (pgsess_begin_with: `BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE`);
    # only what is asked is said, so nil and false leave the server's default_transaction_*
    # settings in effect. `deferrable` only has an effect on a SERIALIZABLE READ ONLY
    # transaction. Anything else raises InterfaceError. Without options, a plain BEGIN
    # (pgsess_begin).
    def begin(isolation: nil, read_only: false, deferrable: false, &block)
      level = isolation_level(isolation)
      tx = nil
      completed = false
      begin
        Statements.guarded do
          ptr = @handle.use do |s|
            Native.checked do |e|
              if level.zero? && !read_only && !deferrable
                Native.pgsess_begin(s, e)
              else
                Native.pgsess_begin_with(s, level, read_only ? true : false, deferrable ? true : false, e)
              end
            end
          end
          tx = Transaction.new(ptr, @name, @typed_binary)
        end
        return Transaction.run(tx, &block) if block

        completed = true
        tx
      ensure
        # Interrupted right after the begin: do not leave the connection pinned.
        tx.rollback if tx && !block && !completed
      end
    end

    # Yield a new Transaction; commit when the block ends normally, roll back when it raises
    # (re-raising) or leaves early (break, return, throw). Returns the block's value. A commit
    # of a transaction in which a statement failed raises TransactionRollbackError.
    # `isolation:`, `read_only:` and `deferrable:` as for #begin:
    #
    #   session.transaction(isolation: :serializable, read_only: true) { |tx| tx.exec("...") }
    def transaction(isolation: nil, read_only: false, deferrable: false, &block)
      raise ArgumentError, "transaction needs a block (or use #begin)" unless block

      self.begin(isolation: isolation, read_only: read_only, deferrable: deferrable, &block)
    end

    # A new pinned session on this session's pool: it checks out one connection now (waiting up
    # to the checkout timeout; PoolExhaustedError when none comes free) and holds it until
    # #close, so SET, temporary tables, PREPARE, lastval() and BEGIN ... COMMIT sent as separate
    # #query calls behave as on one libpq connection. Its results share that connection.
    # Statements from several threads run on it one at a time. If the connection dies, the
    # statement in flight raises OperationalError saying the session's state was lost, and the
    # next runs on a new connection. Closing it returns the connection to the pool (once its
    # results are freed too), reset as the `reset:` option says. This session is unchanged.
    #
    # With a block, yields the pinned session, closes it when the block ends (even on exception)
    # and returns the block's value; without one, returns it (close it: until then the pool has
    # one connection fewer; one garbage-collected unclosed is closed then).
    def pin
      pinned = nil
      Statements.guarded do
        ptr = @handle.use { |s| Native.checked { |e| Native.pgsess_pin(s, e) } }
        handle = Session.new_handle(ptr)
        pinned = Session.adopt(handle, @name, @typed_binary)
        ObjectSpace.define_finalizer(pinned, handle)
      end
      return pinned unless block_given?

      begin
        yield pinned
      ensure
        pinned.close
      end
    end

    # Whether the session holds one connection for its life: from #pin, `pinned: true`, or a
    # transaction's session (Transaction#session). False once closed (or once the transaction
    # has ended).
    def pinned?
      @handle.use { |s| Native.pgsess_is_pinned(s) }
    rescue InterfaceError
      false
    end

    # How many pinned sessions hold a connection of this session's pool now.
    def pinned_sessions
      @handle.use { |s| Native.pgsess_pool_pinned_sessions(s) }
    end

    # How many COPY handles (PGSess::Copy not yet finished or closed) hold a connection of this
    # session's pool now.
    def copies_open
      @handle.use { |s| Native.pgsess_pool_copies_open(s) }
    end

    # The pool's state and counters (pgsess_pool_stats_v2) as a Hash with Symbol keys: :max_size,
    # :open, :idle, :in_use, :waiting, :min_idle, :checkouts, :checkout_timeouts,
    # :checkouts_failed_fast, :connects, :connect_failures, :closed_dead, :closed_idle_ttl,
    # :closed_lifetime, :closed_health, :closed_drained, :wait_total_us, :wait_count, and
    # :wait_buckets (checkouts that waited at most 1, 5, 10, 50, 100, 500, 1000, 5000 ms, and longer).
    def pool_stats
      @handle.use do |s|
        st = Native::StatsV2.new
        code = Native.pgsess_pool_stats_v2(s, st.to_ptr, Native::StatsV2.size)
        raise Error.class_for(code).new("pgsess_pool_stats_v2 failed", code: Error.code_symbol(code)) unless code == Native::OK

        stats = {}
        Native::StatsV2.members.each { |m| stats[m] = st[m] unless m == :size }
        stats[:wait_buckets] = st[:wait_buckets].to_a
        stats
      end
    end

    # #pool_stats in Prometheus' text exposition format, labelled with the pool id.
    def pool_stats_text
      @handle.use { |s| Native.take_string(Native.pgsess_pool_stats_text(s)) }
    end

    # Stop handing out the pool's connections, wait up to `timeout_ms` for those in use, close
    # them all (graceful shutdown, credential rotation); statements meanwhile wait and then get
    # new connections. Raises PoolExhausted naming what was still in use at the timeout. Not
    # from a thread that holds a connection of the pool (a transaction, a pinned session).
    def pool_drain(timeout_ms)
      ms = Integer(timeout_ms)
      raise InterfaceError.new("timeout_ms out of range: #{ms}", code: :interface_error) unless ms.between?(0, UINT32_MAX)

      Statements.guarded { @handle.use { |s| Native.checked { |e| Native.pgsess_pool_drain(s, ms, e) } } }
      nil
    end

    # Change the pool's pool_max_size (1 to 10000) for every session on it.
    def pool_resize(max_size)
      n = Integer(max_size)
      n = 0 unless n.between?(0, UINT32_MAX) # refused by the library with its message
      @handle.use { |s| Native.checked { |e| Native.pgsess_pool_resize(s, n, e) } }
      nil
    end

    # The backend pid that ran this session's latest statement (0 before any).
    def backend_pid
      @handle.use { |s| Native.pgsess_backend_pid(s) }
    end

    # The client encoding: always "UTF8".
    def encoding
      @handle.use { |s| Native.str(Native.pgsess_encoding(s)) }
    end

    # Accepts UTF8 under any spelling; any other encoding raises NotSupportedError.
    def set_encoding(value = "UTF8")
      enc = Native.cstring(value, "encoding")
      @handle.use { |s| Native.checked { |e| Native.pgsess_set_encoding(s, enc, e) } }
      nil
    end

    # The session's last 50 notices, oldest first, each whole in libpq's form: the severity line
    # as the server wrote it ("NOTICE:  text\n", translated under its lc_messages) and its
    # DETAIL:/HINT: lines. Other threads' statements may add notices (dropping the oldest)
    # while this reads them.
    def notices
      @handle.use do |s|
        notices = []
        Native.pgsess_notice_count(s).times do |k|
          notice = Native.take_string(Native.pgsess_notice(s, k))
          break unless notice # the list shrank meanwhile

          notices << notice
        end
        notices
      end
    end

    # Whether the session can get a connection and run SELECT 1.
    def validate
      @handle.use { |s| Native.pgsess_validate(s) }
    end
    alias valid? validate

    def inspect
      state = if closed? then " closed"
              elsif pinned? then " pinned"
              else ""
              end
      "#<#{self.class.name} #{@name.inspect} pool=#{@pool_id}#{state}>"
    end

    private

    def adopt(handle, name, typed_binary)
      @name = name
      @handle = handle
      @typed_binary = typed_binary
      @query_fn = Session.query_fn(handle, typed_binary)
      @pool_id = @handle.use { |s| Native.str(Native.pgsess_pool_id(s)) }.freeze
    end

    def monotonic
      Process.clock_gettime(Process::CLOCK_MONOTONIC)
    end

    # The monotonic deadline for a wait of `timeout` seconds (nil: none).
    def notify_deadline(timeout)
      return nil if timeout.nil?

      seconds = timeout.is_a?(Numeric) ? timeout.to_f : nil
      unless seconds && seconds >= 0 && !seconds.nan?
        raise InterfaceError.new("timeout must be nil or a number of seconds >= 0, not #{timeout.inspect}",
                                 code: :interface_error)
      end
      return nil if seconds.infinite?

      monotonic + seconds
    end

    # One pgsess_notification_next of up to `ms` milliseconds: a Notification, or nil. The
    # session's handle is taken for this slice only, so #close can run between slices.
    def take_notification(ms)
      Statements.guarded do
        @handle.use do |s|
          ptr = Native.checked { |e| Native.pgsess_notification_next(s, ms, e) }
          next nil if ptr.null?

          begin
            Notification.from_native(ptr)
          ensure
            Native.pgsess_notification_free(ptr)
          end
        end
      end
    end

    # The pgsess_isolation number of an `isolation:` option (nil: the default).
    def isolation_level(isolation)
      return 0 if isolation.nil?

      key = isolation.is_a?(String) ? isolation.strip.downcase.tr(" ", "_").to_sym : isolation
      level = ISOLATION_LEVELS[key]
      unless level
        raise InterfaceError.new("invalid isolation #{isolation.inspect} (nil or one of " \
                                 "#{ISOLATION_LEVELS.keys.map(&:inspect).join(', ')})", code: :interface_error)
      end

      level
    end

    def set_reset(opts, mode)
      value = RESET_MODES[mode.respond_to?(:to_sym) ? mode.to_sym : mode]
      unless value
        raise InterfaceError.new("invalid reset #{mode.inspect} (one of #{RESET_MODES.keys.map(&:inspect).join(', ')})",
                                 code: :interface_error)
      end

      code = Native.pgsess_options_set_reset(opts, value)
      option_failed("reset", mode.inspect, code) unless code == Native::OK
    end

    def set_uint32(opts, setter, what, value)
      return if value.nil?

      n = Integer(value)
      code = n.between?(0, UINT32_MAX) ? Native.public_send(setter, opts, n) : Error::VALUES[:config_error]
      option_failed(what, n, code) unless code == Native::OK
    rescue ArgumentError, TypeError
      option_failed(what, value.inspect, Error::VALUES[:config_error])
    end

    def option_failed(what, value, code)
      raise Error.class_for(code).new("invalid #{what} #{value} (#{Native.pgsess_code_name(code)})",
                                      code: Error.code_symbol(code))
    end
  end
end
