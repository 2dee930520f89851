# frozen_string_literal: true

module PGSess
  # One COPY in progress (pgsess_copy_start, pgsess_copy_in or pgsess_copy_out), from
  # Session#copy_data (the server's answer gives the direction, as PGRES_COPY_IN or
  # PGRES_COPY_OUT does for pg), Session#copy_in or Session#copy_out (and the same on a
  # Transaction or a pinned session).
  #
  #   session.copy_data("COPY t (a, b) FROM STDIN (FORMAT csv)") do |copy|
  #     copy.put_copy_data("1,one\n")
  #     copy << "2,two\n"
  #   end                                       # => 2 (rows copied)
  #
  #   session.copy_data("COPY t TO STDOUT") do |copy|
  #     while (row = copy.get_copy_data)      # "1\tone\n" (binary String), nil at the end
  #       ...
  #     end
  #   end
  #
  # It holds its connection until #finish or #close. COPY FROM STDIN: rows written with
  # #put_copy_data are collected into large chunks before they go to the library (which
  # buffers too), so a server error for a bad row (SQLSTATE 22P02, say, with the row number in
  # its message's CONTEXT) is raised by a later #put_copy_data or by #finish, and the copy is
  # then over. #close without #finish aborts it: the server rolls every row back; so does
  # #put_copy_end(error_message), with that reason (pg's put_copy_end).
  # COPY TO STDOUT: #get_copy_data returns one CopyData message per call (a text or CSV row
  # with its newline; a piece of the binary format) as a binary String, nil at the end, as pg's
  # does. Each call is one native call, which releases the GVL: with another Ruby thread busy,
  # taking it back costs far more than the row. #read_chunk (and #each_chunk, #read_all,
  # Session#copy_out(sql, io)) returns every message buffered at once, joined (64 KiB or more):
  # the same bytes, one native call per chunk.
  #
  # Calls from several threads are serialised. A Copy garbage-collected without #finish or
  # #close prints a leak warning naming its SQL to $stderr, then aborts the copy.
  class Copy
    include Enumerable

    # Rows are sent to the library once this many bytes are pending.
    CHUNK_BYTES = 64 * 1024

    # Owns the native handle. The finalizer holds this object, never the Copy.
    class Handle # :nodoc:
      attr_reader :sql

      def initialize(ptr, sql)
        @ptr = ptr
        @sql = sql
        @lock = Mutex.new
      end

      # Yield the live pointer under the lock (so #free cannot run meanwhile).
      def use
        @lock.synchronize do
          raise InterfaceError.new("COPY already ended (#{@sql.inspect})", code: :interface_error) unless @ptr

          yield @ptr
        end
      end

      def ended?
        @ptr.nil?
      end

      # pgsess_copy_free, taking the lock (so it waits for a call in flight); idempotent. True
      # when this call freed it.
      def free
        ptr = @lock.synchronize { free_locked }
        !ptr.nil?
      end

      # #free for a caller already holding the lock (inside #use). Returns the freed pointer.
      def free_locked
        ptr = @ptr
        @ptr = nil
        Native.pgsess_copy_free(ptr) if ptr
        ptr
      end

      # The finalizer: the Copy is unreachable, so nothing else is using the handle.
      def call(_object_id)
        ptr = @ptr
        return unless ptr

        @ptr = nil
        $stderr.puts("pgsess: leaked PGSess::Copy for SQL #{@sql.inspect}: garbage-collected without " \
                     "#finish or #close; aborting it now (use the block form of #copy_data)")
        Native.pgsess_copy_free(ptr)
      rescue StandardError
        nil
      end
    end

    # The native function that starts a COPY of each direction; nil: whichever the server takes.
    START = { in: :pgsess_copy_in, out: :pgsess_copy_out, nil => :pgsess_copy_start }.freeze # :nodoc:

    # Start a COPY on `handle` (a Session's handle): `direction` :in (pgsess_copy_in), :out
    # (pgsess_copy_out) or nil (pgsess_copy_start: the server decides, and pgsess_copy_is_in
    # tells). With a block, see Copy.run; without, returns the Copy. Internal: use
    # Session#copy_data, #copy_in or #copy_out.
    def self.start(handle, sql, direction, &block) # :nodoc:
      sql = sql.to_s
      sql_ptr = Native.cstring(sql, "SQL")
      fn = START.fetch(direction)
      copy = nil
      completed = false
      begin
        Statements.guarded do
          ptr = handle.use { |s| Native.checked { |e| Native.public_send(fn, s, sql_ptr, e) } }
          copy = new(ptr, sql, direction || (Native.pgsess_copy_is_in(ptr) ? :in : :out))
        end
        return run(copy, &block) if block

        completed = true
        copy
      ensure
        # Interrupted right after the start: do not leave the connection held.
        copy.close if copy && !block && !completed
      end
    end

    # Yield `copy`. When the block ends normally, finish the copy and return the rows copied
    # (COPY TO STDOUT: the block must have read to the end, else InterfaceError, as pg's
    # NotAllCopyDataRetrieved); when it raises (re-raising) or leaves early (break, return,
    # throw), abort it: a COPY FROM STDIN commits none of its rows. An exception aborts a COPY
    # FROM STDIN with pg's reason, "<class> while copy data: <message>" (in the server's log).
    def self.run(copy) # :nodoc:
      done = false
      begin
        yield copy
        done = true
      rescue Exception => e # every exception, re-raised: as pg's copy_data
        copy.send(:abort_quietly, "#{e.class.name} while copy data: #{e.message}") if copy.in?
        raise
      ensure
        copy.close unless done
      end
      copy.finish
    end

    def initialize(ptr, sql, direction) # :nodoc:
      @handle = Handle.new(ptr, sql)
      ObjectSpace.define_finalizer(self, @handle)
      @sql = sql
      @direction = direction
      @errp = FFI::MemoryPointer.new(:pointer)
      @lenp = FFI::MemoryPointer.new(:size_t)
      @pending = String.new(capacity: CHUNK_BYTES, encoding: Encoding::BINARY)
      @buffer = nil
      @at_end = false
      @failure = nil
      @aborted = nil
      @rows = nil
    end

    # The COPY statement.
    attr_reader :sql
    # :in (COPY ... FROM STDIN) or :out (COPY ... TO STDOUT).
    attr_reader :direction

    def in?
      @direction == :in
    end

    def out?
      @direction == :out
    end

    # Whether #finish or #close has run (or the copy failed and was freed).
    def ended?
      @handle.ended?
    end

    # COPY FROM STDIN: send `data` (a String: a text or CSV row with its newline, or any piece
    # of the stream; rows may also be split across calls). Its bytes go as they are; a String in
    # an encoding other than UTF-8, US-ASCII or binary is converted to UTF-8 first. Returns true
    # (as pg's). Raises the server's error when one has arrived (the copy is then over).
    def put_copy_data(data)
      raise InterfaceError.new("put_copy_data on a COPY TO STDOUT", code: :interface_error) unless in?

      bytes = Copy.bytes_of(data)
      @handle.use do |c|
        check_usable
        @pending << bytes
        flush(c) if @pending.bytesize >= CHUNK_BYTES
      end
      true
    end

    # put_copy_data(data); returns the Copy, so that calls chain: `copy << "1\n" << "2\n"`.
    def <<(data)
      put_copy_data(data)
      self
    end

    # As pg's put_copy_end, for a COPY FROM STDIN. Without `error_message`, the end of the data:
    # #finish (the rows are committed, or in a transaction part of it; #finish then returns their
    # count). With one, abort the copy (pgsess_copy_abort, libpq's PQputCopyEnd(conn,
    # error_message)): what is pending is dropped, the server fails the COPY with "COPY from
    # stdin failed: <error_message>" (inside a transaction, failing the transaction) and keeps
    # none of its rows; the Copy is then ended, and a later #finish (as at the end of
    # #copy_data's block) raises InterfaceError saying it was aborted, as pg's copy_data raises
    # after it. Returns true. Raises the server's error if the copy had failed already (a bad
    # row), then it is ended too.
    def put_copy_end(error_message = nil)
      raise InterfaceError.new("put_copy_end on a COPY TO STDOUT (use #close to cancel it)", code: :interface_error) unless in?

      if error_message.nil?
        finish
        return true
      end
      why = Native.cstring(error_message, "put_copy_end's error message")
      @handle.use do |c|
        check_usable
        @pending.clear
        Statements.guarded do
          @errp.put_pointer(0, nil)
          Native.pgsess_copy_abort(c, why, @errp)
          raise_error!
        end
        @aborted = error_message.to_s
      ensure
        @handle.free_locked
        ObjectSpace.undefine_finalizer(self)
      end
      true
    end

    # COPY TO STDOUT: the next CopyData message (a text or CSV row with its newline, or a piece
    # of the binary format) as a binary (ASCII-8BIT) String; nil at the end. Raises the server's
    # error when the copy failed. One native call per message (see #read_chunk).
    def get_copy_data
      read_next(:pgsess_copy_read, "get_copy_data")
    end

    # COPY TO STDOUT: every CopyData message buffered now (waiting for one when none has come),
    # joined into one binary String, typically 64 KiB or more; nil at the end. The chunks joined
    # are the same bytes as the messages of #get_copy_data joined, and a chunk ends where a
    # message ends (for text and CSV, after a whole row), but a chunk is not one row: for a row
    # at a time use #get_copy_data. One native call (one GVL hand-over) per chunk, not per row.
    # Calls may be mixed with #get_copy_data.
    def read_chunk
      read_next(:pgsess_copy_read_chunk, "read_chunk")
    end

    # COPY TO STDOUT: yield each row (#get_copy_data, one CopyData message) until the end; an
    # Enumerator without a block. Returns the Copy.
    def each
      return enum_for(:each) unless block_given?

      while (row = get_copy_data)
        yield row
      end
      self
    end

    # COPY TO STDOUT: yield each chunk (#read_chunk) until the end; an Enumerator without a
    # block. Returns the Copy.
    def each_chunk
      return enum_for(:each_chunk) unless block_given?

      while (chunk = read_chunk)
        yield chunk
      end
      self
    end

    # COPY TO STDOUT: the rest of the data, read by #read_chunk, as one binary String ("" at the
    # end).
    def read_all
      out = String.new(encoding: Encoding::BINARY)
      each_chunk { |chunk| out << chunk }
      out
    end

    # End the copy (pgsess_copy_finish) and free it; returns the number of rows copied.
    # COPY FROM STDIN: sends what is pending and CopyDone, so the rows are committed (or, in a
    # transaction, part of it); raises the server's error for a bad row. COPY TO STDOUT: call
    # after #get_copy_data returned nil; before that it cancels the rest and raises
    # InterfaceError. Idempotent once it has succeeded (returns the same count).
    def finish
      return @rows if @rows
      if @aborted
        raise InterfaceError.new("COPY aborted by put_copy_end(#{@aborted.inspect}): no row was copied",
                                 code: :interface_error)
      end

      @handle.use do |c|
        check_usable
        if out? && !@at_end
          raise InterfaceError.new("not all COPY data retrieved (the COPY TO STDOUT was cancelled): " \
                                   "read until get_copy_data returns nil", code: :interface_error)
        end
        flush(c) if in?
        @rows = Statements.guarded do
          @errp.put_pointer(0, nil)
          n = Native.pgsess_copy_finish(c, @errp)
          raise_error!
          n
        end
      ensure
        @handle.free_locked
        ObjectSpace.undefine_finalizer(self)
      end
    end

    # Free the copy (pgsess_copy_free): a COPY FROM STDIN not finished is aborted and none of its
    # rows are committed; a COPY TO STDOUT not read to the end is cancelled. Idempotent; true
    # when this call ended it.
    def close
      closed = @handle.free
      ObjectSpace.undefine_finalizer(self) if closed
      closed
    end

    def inspect
      state = if @rows then " finished rows=#{@rows}"
              elsif ended? then " ended"
              else ""
              end
      "#<#{self.class.name} #{@direction} #{@sql.inspect}#{state}>"
    end

    # The bytes to send for `data`. Internal.
    def self.bytes_of(data) # :nodoc:
      s = String.try_convert(data)
      raise TypeError, "put_copy_data takes a String, not #{data.class}" unless s

      case s.encoding
      when Encoding::BINARY then s
      when Encoding::UTF_8, Encoding::US_ASCII then s.b
      else s.encode(Encoding::UTF_8).b
      end
    rescue EncodingError => e
      raise InterfaceError.new("COPY data cannot be converted to UTF-8: #{e.message}", code: :interface_error)
    end

    private

    # COPY TO STDOUT: the next message (`fn` pgsess_copy_read) or chunk (pgsess_copy_read_chunk)
    # as a binary String, nil at the end.
    def read_next(fn, what)
      raise InterfaceError.new("#{what} on a COPY FROM STDIN", code: :interface_error) unless out?
      return nil if @at_end

      @handle.use do |c|
        check_usable
        bytes = Statements.guarded do
          @errp.put_pointer(0, nil)
          data = Native.public_send(fn, c, @lenp, @errp)
          raise_error! if data.null?
          data.null? ? nil : data.read_bytes(@lenp.read(:size_t))
        end
        return bytes if bytes

        @at_end = true
        nil
      end
    end

    # Abort a COPY FROM STDIN with `why` (pgsess_copy_abort) as the block of #copy_data raised:
    # any failure here (the copy had failed already, say) is dropped, the block's exception goes
    # on. The handle is left for #close.
    def abort_quietly(why)
      why_ptr = Native.cstring(why.scrub.delete("\0"), "reason")
      @handle.use do |c|
        @pending.clear
        Statements.guarded do
          errp = FFI::MemoryPointer.new(:pointer)
          Native.pgsess_copy_abort(c, why_ptr, errp)
          err = errp.read_pointer
          Native.pgsess_error_free(err) unless err.null?
        end
      end
    rescue StandardError
      nil
    end

    # After an error from the server the copy is over: say so rather than queue more rows.
    def check_usable
      return unless @failure

      raise InterfaceError.new("COPY already failed: #{@failure}", code: :interface_error)
    end

    # Send the pending bytes through pgsess_copy_write (from a native buffer: a Ruby String's
    # memory may move while the GVL is released). Call it inside @handle.use.
    def flush(copy_ptr)
      n = @pending.bytesize
      return if n.zero?

      @buffer = FFI::MemoryPointer.new(:uint8, [n, CHUNK_BYTES * 2].max) if @buffer.nil? || @buffer.size < n
      @buffer.put_bytes(0, @pending)
      @pending.clear
      Statements.guarded do
        @errp.put_pointer(0, nil)
        Native.pgsess_copy_write(copy_ptr, @buffer, n, @errp)
        raise_error!
      end
    end

    # Raise the error left in @errp, if any (recording that the copy failed). Call it inside the
    # Statements.guarded of the native call, so that an interrupt cannot leave the error unfreed.
    def raise_error!
      err = @errp.read_pointer
      return if err.null?

      @errp.put_pointer(0, nil)
      error = Error.from_native(err)
      @failure = error.message
      @pending.clear
      raise error
    end
  end
end
