# frozen_string_literal: true

require "pgsess"
require "sequel/adapters/shared/postgres"

module Sequel
  # Sequel's adapter for pgsess, built on Sequel's shared PostgreSQL support (the SQL dialect,
  # schema parsing, `returning`, `insert_conflict`, savepoints, the pg_array and pg_json
  # extensions), so a program moves from Sequel's postgres adapter by changing its URL:
  #
  #   DB = Sequel.connect("pgsess://orders")            # PGSQL_ORDERS, as PGSess::Session.open("orders")
  #   DB = Sequel.connect("pgsess://")                  # PGSQL
  #   DB = Sequel.connect(adapter: :pgsess, name: "orders", max_connections: 8)
  #   DB = Sequel.connect(adapter: :pgsess, db_url: "postgresql://app@db/orders")
  #
  # Each Sequel connection is a pinned pgsess session (PGSess::Session#pin): one server
  # connection from the process-wide pgsess pool of that URI, held while Sequel holds the
  # connection, so Sequel's transactions, savepoints and connection settings stay on it. When
  # Sequel lets a connection go (Database#disconnect, a lost connection), the pinned session
  # is closed and the pool undoes what it changed (an open transaction is rolled back, then
  # DISCARD ALL) before anyone else gets that connection.
  #
  # Sizing: Sequel's pool (:max_connections, default 4) decides how many connections Sequel
  # uses; the pgsess pool (:pool_max_size, default 25, shared with every other session of the
  # same URI and options in the process) bounds the server connections. Keep :max_connections
  # at most :pool_max_size, minus what the rest of the process uses: a Sequel connection beyond
  # it waits for the pgsess pool's checkout timeout and then fails with
  # Sequel::DatabaseConnectionError (PGSess::PoolExhausted underneath).
  #
  # Options, besides Sequel's own and those of its shared postgres support (:search_path,
  # :client_min_messages, :force_standard_strings): :name (also the URL's host part) and
  # :db_url as for PGSess::Session.open; :pool_max_size, :checkout_timeout_ms,
  # :pool_idle_ttl, :statement_cache, :pool_max_lifetime, :pool_min_idle and
  # :pool_health_check_ms are passed to it (from the URL's query too:
  # `pgsess://orders?pool_max_size=8`).
  # :statement_cache defaults to 64 here (Sequel's bound variables and prepared statements are
  # then prepared once per connection); set it to 0 behind PgBouncer in transaction mode.
  # :use_iso_date_format (default true) sets DateStyle ISO, as Sequel's postgres adapter does.
  #
  # Sequel converts each value from the server's text with its conversion procs, as with the
  # postgres adapter and pg without sequel_pg.
  module Pgsess
    # The pgsess options that Database passes to PGSess::Session.open, with their
    # conversion from a URL's query text.
    SESSION_OPTIONS = {
      pool_max_size: :to_i, pool_idle_ttl: :to_i, checkout_timeout_ms: :to_i, statement_cache: :to_i,
      pool_max_lifetime: :to_i, pool_min_idle: :to_i, pool_health_check_ms: :to_i
    }.freeze

    # One Sequel connection: a pinned PGSess::Session.
    class Connection
      # The pinned PGSess::Session, for what Sequel does not wrap (Session#copy_data,
      # Session#backend_pid, Session#notices).
      attr_reader :session

      def initialize(session)
        @session = session
      end

      # Run `sql` with `args` ($1..$n, converted by PGSess::Params) on this connection. With a
      # block, yields the PGSess::Results and frees them when it returns; else frees them and
      # returns the rows affected.
      def execute(sql, args = nil)
        # The block form: the results are freed when it ends, and need no finalizer meanwhile.
        # Without arguments exec_params (no Array made for a splat; no Hash among no arguments).
        if args
          @session.query(sql, *args) { |results| block_given? ? yield(results) : results.rows_affected }
        else
          @session.exec_params(sql, NO_ARGS) { |results| block_given? ? yield(results) : results.rows_affected }
        end
      end
      NO_ARGS = [].freeze

      def close
        @session.close
      end

      def closed?
        @session.closed?
      end
    end

    class Database < Sequel::Database
      include Sequel::Postgres::DatabaseMethods

      set_adapter_scheme :pgsess

      # `pgsess://NAME` names the session (PGSQL_NAME); `pgsess://` is PGSQL. Nothing else of
      # the URL but its query (Sequel's and pgsess's options) has a meaning.
      def self.uri_to_options(uri)
        host = uri.host.to_s
        { name: host.empty? ? nil : host }
      end
      private_class_method :uri_to_options

      # A pinned session from the database's pgsess session, set up with Sequel's connection
      # settings (standard_conforming_strings, client_min_messages, search_path, DateStyle).
      def connect(server)
        opts = server_opts(server)
        conn = Connection.new(root_session(opts).pin)
        begin
          connection_configuration_sqls(opts).each { |sql| log_connection_yield(sql, conn) { conn.execute(sql) } }
        rescue StandardError
          conn.close
          raise
        end
        conn
      end

      def disconnect_connection(conn)
        conn.close
      rescue PGSess::Error
        nil
      end

      # Also closes the database's own pgsess session; the next connection opens it again.
      def disconnect(*)
        super
      ensure
        @root_mutex.synchronize do
          @root&.close
          @root = nil
        end
      end

      # Run `sql` (a String, or the name of a prepared statement) on a connection. With a
      # block, yields the PGSess::Results (freed when the block returns).
      def execute(sql, opts = OPTS, &block)
        synchronize(opts[:server]) { |conn| check_database_errors { _execute(conn, sql, opts, &block) } }
      end

      # What Sequel's extensions (pg_array, pg_json, ...) extend to send their values as bound
      # variables: a value as PGSess::Params takes it. A Sequel::SQL::Blob goes as binary.
      def bound_variable_arg(arg, _conn)
        arg.is_a?(Sequel::SQL::Blob) ? arg.b : arg
      end

      # The server's report of a failed statement, by the names Sequel's postgres adapter
      # gives: :schema, :table, :column, :constraint, :type, :severity, :sql_state,
      # :message_primary, :message_detail, :message_hint, :statement_position,
      # :internal_position, :internal_query, :source_file, :source_line, :source_function
      # (nil where the server sent none). `e`: a Sequel::DatabaseError or a PGSess::Error.
      def error_info(e)
        e = e.wrapped_exception if e.is_a?(DatabaseError)
        ERROR_INFO_FIELDS.transform_values { |field| e.error_field(field) }
      end

      ERROR_INFO_FIELDS = {
        schema: "s", table: "t", column: "c", constraint: "n", type: "d", severity: "S", sql_state: "C",
        message_primary: "M", message_detail: "D", message_hint: "H", statement_position: "P",
        internal_position: "p", internal_query: "q", source_file: "F", source_line: "L", source_function: "R"
      }.freeze
      private_constant :ERROR_INFO_FIELDS

      # COPY ... TO STDOUT of `table` (a table name, a Dataset or a whole COPY statement as a
      # String), as Sequel's postgres adapter: with a block, yields each row's data (one
      # CopyData message) and returns nil; without one, returns all the data as one String.
      # Options :format (:csv, :binary), :options (SQL) and :server.
      def copy_table(table, opts = OPTS)
        sql = copy_table_sql(table, opts)
        synchronize(opts[:server]) do |conn|
          check_database_errors do
            log_connection_yield(sql, conn) do
              if defined?(yield)
                conn.session.copy_data(sql) { |copy| copy.each { |row| yield row } }
                nil
              else
                out = String.new
                conn.session.copy_out(sql, out)
                out
              end
            end
          end
        end
      end

      # COPY ... FROM STDIN into `table`, as Sequel's postgres adapter: the data from :data (a
      # String, or anything whose #each yields Strings) or, without :data, from the block
      # (called until it returns nil), already in the :format's form (text, :csv). Options
      # :columns, :format, :options and :server. An exception from the block or the data
      # aborts the copy: no row of it is committed. Returns nil.
      def copy_into(table, opts = OPTS)
        data = opts[:data]
        data = [data] if data.is_a?(String)
        raise Error, "copy_into takes either a :data option or a block, not both" if data && defined?(yield)
        raise Error, "copy_into needs a :data option or a block" unless data || defined?(yield)

        sql = copy_into_sql(table, opts)
        synchronize(opts[:server]) do |conn|
          check_database_errors do
            log_connection_yield(sql, conn) do
              conn.session.copy_in(sql) do |copy|
                if data
                  data.each { |piece| copy.put_copy_data(piece) }
                else
                  while (piece = yield)
                    copy.put_copy_data(piece)
                  end
                end
              end
            end
          end
        end
        nil
      end

      # LISTEN on `channels` (a name or an Array of names) on one connection and wait for a
      # notification, as Sequel's postgres adapter: returns its channel, yielding `channel,
      # pid, payload` to the block first; nil when :timeout (seconds, or a callable giving them)
      # passes first. With :loop (true, or a callable called after each notification and each
      # timeout), waits again and again until the block breaks or `throw :stop`; returns nil.
      # :after_listen is called with the connection once it listens. UNLISTEN * afterwards.
      def listen(channels, opts = OPTS, &block)
        check_database_errors do
          synchronize(opts[:server]) do |conn|
            begin
              Array(channels).each do |channel|
                sql = "LISTEN ".dup
                dataset.send(:identifier_append, sql, channel)
                log_connection_yield(sql, conn) { conn.execute(sql) }
              end
              opts[:after_listen]&.call(conn)
              wait = notification_wait(opts[:timeout])
              if (again = opts[:loop])
                raise Error, "listen with :loop needs a block" unless block

                catch(:stop) do
                  loop do
                    conn.session.wait_for_notify(wait.call, &block)
                    again.call(conn) if again.respond_to?(:call)
                  end
                end
                nil
              else
                conn.session.wait_for_notify(wait.call, &block)
              end
            ensure
              conn.execute("UNLISTEN *") unless conn.closed?
            end
          end
        end
      end

      private

      # The database's pooled pgsess session (opened on first use, and again after
      # #disconnect): connections are pinned from it.
      def root_session(opts)
        @root_mutex.synchronize do
          @root = nil if @root&.closed?
          @root ||= PGSess::Session.open(opts[:name], db_url: opts[:db_url], **session_options(opts))
        end
      end

      def session_options(opts)
        out = { statement_cache: 64, typed_binary: false } # Sequel's conversion procs read text
        SESSION_OPTIONS.each do |key, conversion|
          value = opts[key]
          out[key] = value.is_a?(String) ? value.public_send(conversion) : value unless value.nil?
        end
        out
      end

      # A callable giving the wait, in seconds or nil (for ever), for the next notification.
      def notification_wait(timeout)
        timeout.respond_to?(:call) ? timeout : proc { timeout }
      end

      # Runs a String with its opts[:arguments] (bound variables), or a prepared statement by
      # its Symbol name: its SQL with $n placeholders is run with the arguments, and pgsess's
      # statement cache keeps it prepared on the connection.
      def _execute(conn, sql, opts, &block)
        log_sql = sql
        if sql.is_a?(Symbol)
          ps = prepared_statement(sql)
          raise Error, "no prepared statement named #{sql.inspect}" unless ps

          log_sql = "EXECUTE #{sql}"
          log_sql += " (#{ps.prepared_sql})" if ps.log_sql
          sql = ps.prepared_sql
        end
        args = opts[:arguments]&.map { |arg| bound_variable_arg(arg, conn) }
        log_connection_yield(log_sql, conn, args) { conn.execute(sql, args, &block) }
      end

      def adapter_initialize
        @root_mutex = Mutex.new
        @root = nil
        @use_iso_date_format = typecast_value_boolean(@opts.fetch(:use_iso_date_format, true))
        initialize_postgres_adapter
      end

      def connection_configuration_sqls(opts = @opts)
        sqls = super
        sqls << "SET DateStyle = 'ISO'" if @use_iso_date_format
        sqls
      end

      # Sequel runs its transaction statements (BEGIN, SAVEPOINT, COMMIT) through this; it logs
      # them itself.
      def log_connection_execute(conn, sql)
        log_connection_yield(sql, conn) { conn.execute(sql) }
      end

      def check_database_errors
        yield
      rescue PGSess::Error => e
        raise_error(e, classes: database_error_classes)
      end

      def database_error_classes
        [PGSess::Error]
      end

      # A lost or closed connection: Sequel drops it from its pool.
      def disconnect_error?(exception, opts)
        return true if super
        return false unless exception.is_a?(PGSess::Error)

        state = exception.sqlstate.to_s
        state.start_with?("08") || %w[57P01 57P02 57P03].include?(state) ||
          (exception.is_a?(PGSess::InterfaceError) && exception.message.include?("closed"))
      end

      def database_exception_sqlstate(exception, _opts)
        exception.sqlstate if exception.respond_to?(:sqlstate)
      end

      def dataset_class_default
        Dataset
      end
    end

    class Dataset < Sequel::Dataset
      include Sequel::Postgres::DatasetMethods

      # Each row as a Hash of column symbol => value, converted from the server's text by the
      # database's conversion procs (Database#conversion_procs, which extensions add to).
      def fetch_rows(sql, &block)
        execute(sql) do |res|
          procs = db.conversion_procs
          keys = res.columns.map { |name| output_identifier(name) }
          self.columns = keys
          res.each_text_hash(keys, res.column_types.map { |oid| procs[oid] }, &block)
        end
      end

      # Bound variables and prepared statements use PostgreSQL's $1..$n placeholders, numbered
      # in the order the arguments first appear.
      module ArgumentMapper
        include Sequel::Dataset::ArgumentMapper

        protected

        def map_to_prepared_args(hash)
          prepared_args.map { |k| hash[k.to_sym] }
        end

        private

        def prepared_arg(k)
          i = prepared_args.index(k)
          unless i
            prepared_args << k
            i = prepared_args.length - 1
          end
          LiteralString.new("$#{i + 1}")
        end
      end

      BindArgumentMethods = prepared_statements_module(:bind, [ArgumentMapper], %w[execute execute_dui])
      PreparedStatementMethods = prepared_statements_module(:prepare, BindArgumentMethods, %w[execute execute_dui])

      private

      def bound_variable_modules
        [BindArgumentMethods]
      end

      def prepared_statement_modules
        [PreparedStatementMethods]
      end
    end
  end
end
