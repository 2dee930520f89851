# frozen_string_literal: true

module PGSess
  # A transaction pinned to one pooled connection, from Session#begin or Session#transaction.
  # Ended (and its handle freed) by exactly one #commit or #rollback. One thread at a time (calls
  # from several threads, its #session's included, are serialised). Results from #query share
  # the transaction's connection: it returns to the pool once the transaction has ended and they
  # are freed.
  class Transaction
    # pg's exec and exec_params, run inside the transaction (see PGSess::Exec).
    include Exec

    # Owns the native handle. The finalizer holds this object, never the Transaction.
    class Handle # :nodoc:
      def initialize(ptr)
        @ptr = ptr
        @lock = Mutex.new
      end

      def use
        @lock.synchronize do
          raise InterfaceError.new("transaction already ended", code: :interface_error) unless @ptr

          yield @ptr
        end
      end

      def active?
        !@ptr.nil?
      end

      # Take the handle away (the caller ends it); nil when already ended.
      def take
        @lock.synchronize do
          p = @ptr
          @ptr = nil
          p
        end
      end

      # Finalizer: the transaction was never ended.
      def call(_object_id)
        ptr = @ptr
        return unless ptr

        @ptr = nil
        $stderr.puts("pgsess: leaked PGSess::Transaction: garbage-collected without #commit or " \
                     "#rollback; rolling it back now")
        Native.pgsess_rollback(ptr)
      rescue StandardError
        nil
      end
    end

    def initialize(ptr, name = nil, typed_binary = true) # :nodoc:
      @handle = Handle.new(ptr)
      @name = name
      @typed_binary = typed_binary # the opening session's (Session.open's typed_binary:)
      @session = nil
      ObjectSpace.define_finalizer(self, @handle)
    end

    # Yield `tx`; commit when the block ends normally, roll back when it raises (re-raising) or
    # leaves early. Returns the block's value. Internal: use Session#transaction.
    def self.run(tx) # :nodoc:
      done = false
      begin
        value = yield tx
        done = true
      ensure
        if tx.active?
          done ? tx.commit : tx.rollback
        end
      end
      value
    end

    # Whether neither #commit nor #rollback has run.
    def active?
      @handle.active?
    end

    # The transaction's session (pgsess_tx_session): a PGSess::Session whose every call
    # (#query, #callproc, #stream, ...) runs inside this transaction, on its connection, and is
    # committed or rolled back with it, so code written for a Session can take part in the
    # transaction. It belongs to the transaction and is valid until #commit or #rollback: its
    # #close does nothing, and its calls raise InterfaceError once the transaction has ended.
    # Its #begin raises InterfaceError (use SAVEPOINT). Always the same object.
    def session
      @session ||= Session.adopt(Session::TransactionHandle.new(@handle, @handle.use { |t| Native.pgsess_tx_session(t) }),
                                 @name, @typed_binary)
    end

    # Run a statement inside the transaction; parameters, results and block as Session#query.
    # After a failed statement the server refuses further statements (SQLSTATE 25P02) until
    # rollback.
    def query(sql, *params, &block)
      Statements.execute(block) { Statements.run(sql, params, @handle, :pgsess_tx_query, :pgsess_tx_query_params) }
    end

    # Session#query_binary inside the transaction (on #session): every result column in binary.
    def query_binary(sql, *params, &block)
      session.query_binary(sql, *params, &block)
    end

    # Session#callproc inside the transaction (pgsess_tx_callproc): what the function does
    # commits or rolls back with the transaction.
    def callproc(name, *args, &block)
      Statements.execute(block) do
        Statements.callproc(name, args, @handle, :pgsess_tx_callproc, :pgsess_tx_callproc_params)
      end
    end

    # Session#copy_data inside the transaction (through #session): the rows a COPY FROM STDIN
    # copies commit or roll back with the transaction. While the copy is open the transaction's
    # other statements are refused with InterfaceError.
    def copy_data(sql, &block)
      session.copy_data(sql, &block)
    end

    # Session#copy_in inside the transaction (also with an `io`).
    def copy_in(sql, io = nil, &block)
      session.copy_in(sql, io, &block)
    end

    # Session#copy_out inside the transaction (also with an `io`).
    def copy_out(sql, io = nil, &block)
      session.copy_out(sql, io, &block)
    end

    # Commit. Raises TransactionRollbackError when a statement in the transaction failed (the
    # server rolled back instead), InterfaceError when the transaction already ended.
    def commit
      Statements.guarded do
        ptr = @handle.take
        raise InterfaceError.new("transaction already ended", code: :interface_error) unless ptr

        ObjectSpace.undefine_finalizer(self)
        Native.checked { |e| Native.pgsess_commit(ptr, e) }
      end
      nil
    end

    # Roll back. Returns false when the transaction had already ended, true otherwise.
    def rollback
      Statements.guarded do
        ptr = @handle.take
        return false unless ptr

        ObjectSpace.undefine_finalizer(self)
        Native.pgsess_rollback(ptr)
      end
      true
    end

    def inspect
      "#<#{self.class.name}#{active? ? '' : ' ended'}>"
    end
  end
end
