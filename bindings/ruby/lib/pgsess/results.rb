# frozen_string_literal: true

require "bigdecimal"
require "date"
require "json"

module PGSess
  # The buffered result of one statement (the seed's queries.Results with RealDictCursor rows).
  #
  # Results hold their pooled connection until #free: call it (or use the block form of
  # Session#query) as soon as you are done. A Results that is garbage-collected without #free
  # prints a leak warning naming its SQL to $stderr, then frees itself.
  #
  # Reading is thread-safe; #free may be called from any thread, any number of times.
  class Results
    include Enumerable

    # Type OIDs (pg_type.h).
    module OID
      BOOL = 16
      BYTEA = 17
      NAME = 19
      INT8 = 20
      INT2 = 21
      INT4 = 23
      TEXT = 25
      OID = 26
      JSON = 114
      FLOAT4 = 700
      FLOAT8 = 701
      BPCHAR = 1042
      VARCHAR = 1043
      DATE = 1082
      TIMESTAMPTZ = 1184
      NUMERIC = 1700
      UUID = 2950
      JSONB = 3802
    end

    # Owns the native handle. The finalizer holds this object, never the Results.
    class Handle # :nodoc:
      attr_reader :sql

      def initialize(ptr, sql)
        @ptr = ptr
        @sql = sql
        @lock = Mutex.new
      end

      # Yield the live pointer, holding the lock so that #free cannot run meanwhile.
      def use
        @lock.synchronize do
          raise InterfaceError.new("results already freed (#{@sql.inspect})", code: :interface_error) unless @ptr

          yield @ptr
        end
      end

      def freed?
        @ptr.nil?
      end

      def free
        ptr = @lock.synchronize do
          p = @ptr
          @ptr = nil
          p
        end
        Native.pgsess_results_free(ptr) if ptr
        !ptr.nil?
      end

      # The finalizer: the Results is unreachable, so nothing else can be using the handle.
      def call(_object_id)
        ptr = @ptr
        return unless ptr

        @ptr = nil
        $stderr.puts("pgsess: leaked PGSess::Results for SQL #{@sql.inspect}: garbage-collected " \
                     "without #free; freeing it now (call #free or use the block form of #query)")
        Native.pgsess_results_free(ptr)
      rescue StandardError
        nil
      end
    end

    INFINITY_MICROS = 2**63 - 1
    NEG_INFINITY_MICROS = -2**63
    INFINITY_DAYS = 2**31 - 1
    NEG_INFINITY_DAYS = -2**31
    # 2000-01-01, the epoch of binary dates and timestamps: in Unix microseconds, as a Julian day.
    PG_EPOCH_MICROS = 946_684_800_000_000
    PG_EPOCH_JD = 2_451_545
    # Binary integers: unpack format and size by type.
    BINARY_INTS = { OID::INT2 => ["s>", 2], OID::INT4 => ["l>", 4], OID::INT8 => ["q>", 8],
                    OID::OID => ["L>", 4] }.freeze
    # Types whose binary value is its text's bytes.
    BINARY_TEXT = [OID::TEXT, OID::VARCHAR, OID::NAME, OID::BPCHAR].freeze
    DATE_RE = /\A(\d+)-(\d\d)-(\d\d)( BC)?\z/.freeze
    PTR_SIZE = FFI::Pointer.size

    # Wraps a non-NULL pgsess_results pointer, taking ownership of it. `leak_check` false: the
    # caller frees the results itself (the block form of Session#query), so they need no
    # finalizer; it calls #leak_check! if it hands them out after all.
    def initialize(ptr, sql = nil, leak_check = true) # :nodoc:
      @sql = sql || Native.str(Native.pgsess_results_query(ptr))
      @handle = (Accel::ENABLED ? Ext::ResultsHandle : Handle).new(ptr, @sql)
      leak_check! if leak_check
      @nrows, @ncols, @columns, @types, @formats, @status, @count, @rows_affected, @backend_pid =
        Accel::ENABLED ? Ext.meta(ptr.address) : Results.native_meta(ptr)
    end

    # What Results reads once about the results at `ptr`, one foreign call per item and column:
    # [nrows, ncols, columns, types, formats, status, count, rows_affected, backend_pid], the
    # Strings and the per-column Arrays frozen. Ext.meta gives the same in one call. :nodoc:
    def self.native_meta(ptr)
      ncols = Native.pgsess_results_ncols(ptr)
      [Native.pgsess_results_nrows(ptr), ncols,
       Array.new(ncols) { |c| Native.str(Native.pgsess_results_column_name(ptr, c)).freeze }.freeze,
       Array.new(ncols) { |c| Native.pgsess_results_column_type(ptr, c) }.freeze,
       Array.new(ncols) { |c| Native.pgsess_results_column_format(ptr, c) }.freeze,
       Native.str(Native.pgsess_results_status(ptr)).freeze, Native.pgsess_results_count(ptr),
       Native.pgsess_results_rows_affected(ptr), Native.pgsess_results_backend_pid(ptr)]
    end

    # From now on, results garbage-collected without #free print the leak warning and are freed
    # (a finalizer): for results handed to the caller. With the accelerator the handle does that
    # itself when it is collected, without a finalizer. :nodoc:
    def leak_check!
      return self if Accel::ENABLED

      ObjectSpace.define_finalizer(self, @handle)
      @finalizer = true
      self
    end

    # The SQL text that produced the results (the seed's `query`).
    attr_reader :sql
    alias query sql
    # Column names, in order.
    attr_reader :columns
    # The command tag (the seed's `status`): "SELECT 3", "INSERT 0 2", "CREATE TABLE".
    attr_reader :status
    # Rows affected, as libpq's PQcmdTuples (0 for commands without a count).
    attr_reader :rows_affected
    # Backend pid of the connection that ran the statement.
    attr_reader :backend_pid

    # Column type OIDs, in order.
    def column_types
      @types
    end

    # Column formats, in order, as libpq's PQfformat: 0 text (#query), 1 binary
    # (Session#query_binary).
    def column_formats
      @formats
    end

    # Number of rows returned.
    def nrows
      @nrows
    end
    alias length nrows
    alias size nrows

    def empty?
      @nrows.zero?
    end

    # The seed's count(): rows returned or affected; -1 for commands without a count (DDL, SET,
    # DO). With an argument or a block, Enumerable#count.
    def count(*args, &block)
      return super if !args.empty? || block

      @count
    end

    # Yield each row as a Hash keyed by column name (a duplicated name keeps the last value).
    def each
      return enum_for(:each) { @nrows } unless block_given?

      each_block { |row| yield @columns.zip(row).to_h }
      self
    end

    # Row `i` as a Hash (negative indexes count from the end). IndexError when out of range.
    def [](index)
      i = index.to_int
      i += @nrows if i.negative?
      raise IndexError, "No such row: #{index} (#{@nrows} rows)" if i.negative? || i >= @nrows

      fetch_row(i, row_buffers)
    end

    # All rows, as Hashes.
    def to_a
      each.to_a
    end
    alias items to_a

    # The seed's as_dict(): the only row; {} when there is none; ArgumentError for several.
    def as_dict
      return {} if @nrows.zero?
      raise ArgumentError, "More than one row (#{@nrows})" if @nrows > 1

      self[0]
    end

    # The whole result as the library's JSON text (pgsess_results_json).
    def to_json(*_args)
      @handle.use { |ptr| Native.take_string(Native.pgsess_results_json(ptr)) }
    end

    # Notices the statement raised, each in libpq's form ("NOTICE:  text\n").
    def notices
      @handle.use do |ptr|
        Array.new(Native.pgsess_results_notice_count(ptr)) { |k| Native.str(Native.pgsess_results_notice(ptr, k)) }
      end
    end

    # Free the results and return the pooled connection. Idempotent; true when this call freed.
    def free
      freed = @handle.free
      ObjectSpace.undefine_finalizer(self) if freed && @finalizer
      freed
    end

    def freed?
      @handle.freed?
    end

    def inspect
      "#<#{self.class.name} rows=#{@nrows} status=#{@status.inspect}#{freed? ? ' freed' : ''}>"
    end

    # --- pg's PG::Result vocabulary ---------------------------------------------------------
    #
    # The names of pg's PG::Result where the meaning is the same. Values are converted as #each
    # converts them (pg without a type map gives the server's text instead). Out-of-range
    # numbers raise what pg raises: ArgumentError for #getvalue, #getisnull, #ftype, #fname,
    # #fformat and an unknown #fnumber, IndexError for #column_values, #field_values and
    # #tuple_values. The shape (#ntuples, #fields, #ftype, #cmd_status, ...) stays readable after
    # #clear; the values raise InterfaceError then, as pg's raise PG::Error.

    # pg's ntuples: the number of rows (#nrows).
    alias ntuples nrows
    alias num_tuples nrows

    # pg's nfields: the number of columns.
    def nfields
      @ncols
    end
    alias num_fields nfields

    # pg's fields: the column names (#columns).
    alias fields columns

    # pg's cmd_tuples: rows affected by INSERT, UPDATE, DELETE, MERGE, SELECT, MOVE, FETCH and
    # COPY, 0 for other commands (#rows_affected, libpq's PQcmdTuples).
    alias cmd_tuples rows_affected
    alias cmdtuples rows_affected

    # pg's cmd_status: the command tag, "INSERT 0 1" (#status).
    alias cmd_status status

    # pg's clear: #free. Returns nil, as pg's.
    def clear
      free
      nil
    end

    # pg's cleared?: #freed?.
    alias cleared? freed?

    # pg's ftype: the type OID of column `col` (#column_types).
    def ftype(col)
      @types[column_index(col)]
    end

    # pg's fmod: column `col`'s type modifier (varchar(n) gives n + 4, numeric(p,s)
    # ((p << 16) | s) + 4), -1 when it has none.
    def fmod(col)
      column_meta(:pgsess_results_column_typmod, col)
    end

    # pg's fsize: the size of column `col`'s type (pg_type.typlen; negative when variable).
    def fsize(col)
      column_meta(:pgsess_results_column_size, col)
    end

    # pg's ftable: the OID of the table column `col` comes from, 0 when none.
    def ftable(col)
      column_meta(:pgsess_results_column_table, col)
    end

    # pg's ftablecol: column `col`'s attribute number in #ftable's table, 0 when none.
    def ftablecol(col)
      column_meta(:pgsess_results_column_table_column, col)
    end

    # pg's fname: the name of column `col`.
    def fname(col)
      @columns[column_index(col)]
    end

    # pg's fformat: the format of column `col`, 0 text or 1 binary (#column_formats).
    def fformat(col)
      @formats[column_index(col)]
    end

    # pg's fnumber: the index of the column `name` names, read as libpq's PQfnumber reads it,
    # as an SQL identifier: down-cased (ASCII) unless double-quoted, so `fnumber("ID")` finds
    # "id" and `fnumber('"ID"')` finds "ID". ArgumentError when no column has that name.
    def fnumber(name)
      s = name.to_s
      unless s.empty? # PQfnumber's rule: "" names no column
        index = @columns.index(s) if !s.include?('"') && s == ascii_downcase(s)
        index ||= @columns.index(identifier(s))
      end
      raise ArgumentError, "Unknown field: #{s}" unless index

      index
    end

    # pg's getvalue: the value at (`row`, `col`), converted as #each converts it; nil for NULL.
    # With the accelerator this is replaced by a C method (Ext.install, below) that converts the
    # cell in one call as pg's does and comes here only for what it leaves to Ruby (an index out
    # of range, a column only Ruby converts).
    def getvalue(row, col)
      i = row_index(row)
      c = column_index(col)
      @handle.use { |ptr| cell(ptr, i, c, nil) }
    end

    if Accel::ENABLED
      alias_method :getvalue_ruby, :getvalue
      Ext.install(self)
    end

    # pg's getisnull: whether the value at (`row`, `col`) is SQL NULL.
    def getisnull(row, col)
      i = row_index(row)
      c = column_index(col)
      @handle.use { |ptr| Native.pgsess_results_is_null(ptr, i, c) }
    end

    # pg's values: every row as an Array of its values, in column order.
    def values
      return each_row.to_a unless Accel::ENABLED

      ext_rows(:values) # with the accelerator, in one C call without Ruby code per row
    end

    # pg's each_row: yield each row as an Array of its values, in column order (#each yields
    # Hashes).
    def each_row(&block)
      return enum_for(:each_row) { @nrows } unless block

      Accel::ENABLED ? ext_rows(:values, &block) : each_block_ruby(:values, nil, &block)
      self
    end

    # Each row as an Array of its values as the server sent them, without conversion: the text
    # of a text-format column (a UTF-8 String), the bytes of a binary-format one (a binary
    # String), nil for NULL. What pg's each_row gives without a type map; for code that converts
    # values itself, such as the Sequel adapter (Sequel's conversion procs). Rows are read in
    # blocks as #each_row reads them.
    def each_text_row(&block)
      return enum_for(:each_text_row) { @nrows } unless block

      Accel::ENABLED ? ext_rows(:text, &block) : each_block_ruby(:text, nil, &block)
      self
    end

    # Each row as a Hash of `keys[c]` => the value of column c as #each_text_row gives it, passed
    # through `convs[c]` (anything with #call; nil leaves the text as it is) when not NULL. For
    # adapters that name and convert columns themselves: the Sequel adapter's rows, built with
    # no Array per row. `keys` and `convs` have one entry per column. The converters run while
    # the results are locked, so they must not use these results; the block may.
    def each_text_hash(keys, convs)
      return enum_for(:each_text_hash, keys, convs) { @nrows } unless block_given?
      unless keys.size == @ncols && convs.size == @ncols
        raise ArgumentError, "each_text_hash needs #{@ncols} keys and converters, not #{keys.size} and #{convs.size}"
      end

      if Accel::ENABLED && @nrows <= BLOCK_ROWS # one block: one C call (Sequel's fetch of a few rows)
        @handle.hashes(0, BLOCK_ROWS, keys, convs) { |row| yield row }
      else
        each_block(:hash, [keys.dup.freeze, convs.dup.freeze]) { |row| yield row }
      end
      self
    end

    # pg's tuple_values: row `n` as an Array of its values. IndexError when out of range.
    def tuple_values(n)
      i = n.to_int
      raise IndexError, "Index #{n} is out of range" if i.negative? || i >= @nrows

      fetch_values(i, row_buffers)
    end

    # pg's column_values: the values of column `col` (an Integer), one per row. IndexError when
    # out of range.
    def column_values(col)
      c = col.to_int
      raise IndexError, "no column #{col} in result" if c.negative? || c >= @ncols

      column(c)
    end

    # pg's field_values: the values of the column `name` names (found as #fnumber finds it),
    # one per row. IndexError when no column has that name.
    def field_values(name)
      column(fnumber(name))
    rescue ArgumentError
      raise IndexError, "no such field '#{name}' in result"
    end

    # pg's error_field (alias result_error_field) asks a failed PG::Result for a field of the
    # server's error report. Results here are never failed (a failed statement raises
    # PGSess::Error, whose #error_field and #result answer instead), so nil, as pg's is for a
    # successful result.
    def error_field(_field)
      nil
    end
    alias result_error_field error_field

    # pg's error_message (alias result_error_message): "" for a successful result.
    def error_message
      ""
    end
    alias result_error_message error_message

    private

    # pg's rule for a column number: ArgumentError out of range.
    def column_index(col)
      c = col.to_int
      raise ArgumentError, "invalid field number #{col}" if c.negative? || c >= @ncols

      c
    end

    # pg's rule for a row number: ArgumentError out of range.
    def row_index(row)
      i = row.to_int
      raise ArgumentError, "invalid tuple number #{row}" if i.negative? || i >= @nrows

      i
    end

    # Down-case ASCII letters only, as libpq's pg_tolower in PQfnumber.
    def ascii_downcase(s)
      s.tr("A-Z", "a-z")
    end

    # An identifier as PQfnumber reads it: the double-quoted parts as written ("" a quote), the
    # rest down-cased.
    def identifier(s)
      out = +""
      quoted = false
      i = 0
      while i < s.length
        ch = s[i]
        if quoted
          if ch == '"'
            if s[i + 1] == '"'
              out << '"'
              i += 1
            else
              quoted = false
            end
          else
            out << ch
          end
        elsif ch == '"'
          quoted = true
        else
          out << ascii_downcase(ch)
        end
        i += 1
      end
      out
    end

    # Every value of column `c`, one native call per value.
    def column(c)
      out = FFI::MemoryPointer.new(:int64)
      @handle.use { |ptr| Array.new(@nrows) { |i| cell(ptr, i, c, out) } }
    end

    # The value at (`i`, `c`) (both in range), converted as #fetch_row converts it; `out` is
    # scratch memory for the getters that need it, or nil to make it only then.
    def cell(ptr, i, c, out)
      vp = Native.pgsess_results_value(ptr, i, c)
      return nil if vp.null?

      len = Native.pgsess_results_value_length(ptr, i, c)
      @formats[c] == 1 ? binary(ptr, i, c, vp.read_bytes(len), out) : convert(ptr, i, c, vp, len, out)
    end

    # One of the library's per-column metadata calls (`fn`) for column `col` (pg's rule for it).
    def column_meta(fn, col)
      c = column_index(col)
      @handle.use { |ptr| Native.public_send(fn, ptr, c) }
    end

    # Rows read per call of pgsess_results_copy_cells.
    BLOCK_ROWS = 256
    # pgsess_results_copy_cells' length of a NULL (SIZE_MAX).
    NULL_LENGTH = 2**(8 * FFI.type_size(:size_t)) - 1

    # Yield every row as an Array of its values, converted as #fetch_row converts them. Rows are
    # copied a block at a time (pgsess_results_copy_cells: one foreign call per 256 rows, the
    # cells' bytes in one String) and sliced into their values, with no FFI::Pointer per cell;
    # a block is converted under the handle's lock and yielded outside it, so the caller's
    # block may use (or clear) the results.
    def each_block(mode = :values, hash_args = nil, &block)
      return each_block_ext(mode, hash_args, &block) if Accel::ENABLED

      each_block_ruby(mode, hash_args, &block)
    end

    # #each_block through PGSess::Ext: each block of rows built in C (one call, no Ruby code
    # per cell but the converters of :hash and the cells Ext hands back to #ext_fallback).
    def each_block_ext(mode, hash_args, &block)
      return ext_rows(mode, &block) unless mode == :hash # one call for all the rows

      i = 0
      while i < @nrows
        rows = ext_block(hash_args, i)
        i += rows.size
        rows.each(&block) # the caller's block itself: no Ruby block call of ours per row
      end
    end

    # Every row (`mode` :values converted, :text as the server sent it), yielded to the block or
    # returned in an Array, in one PGSess::Ext call (Ext::ResultsHandle#rows): the library's
    # cells read a block at a time and each row built and yielded in C, as pg's each_row.
    def ext_rows(mode, &block)
      kinds = mode == :text ? (@ext_raw_kinds ||= ext_raw_kinds) : (@ext_kinds ||= ext_kinds)
      out = nil # scratch memory for the fallback's getters, made when one needs it
      fallback = ->(r, c, s) { @handle.use { |ptr| ext_fallback(ptr, r, c, s, out ||= FFI::MemoryPointer.new(:int64)) } }
      @handle.rows(kinds, fallback, &block)
    end

    # The :hash rows of the block that starts at row `i` (:values and :text rows go through
    # #ext_rows).
    def ext_block(hash_args, i)
      rows = @handle.use do |ptr|
        Ext.hashes(ptr.address, i, BLOCK_ROWS, @ncols, @binary_flags ||= binary_flags, *hash_args)
      end
      raise InterfaceError.new("the results have no row #{i} of #{@nrows}", code: :interface_error) if rows.empty?

      rows
    end

    # A cell PGSess::Ext does not convert itself (`s`: its bytes, a binary String), as
    # #block_rows converts it.
    def ext_fallback(ptr, row, col, s, out)
      @formats[col] == 1 ? binary(ptr, row, col, s, out) : convert_bytes(ptr, row, col, s, out)
    end

    # Per column, the one-byte kind PGSess::Ext converts it by (see ext/pgsess_ext/pgsess_ext.c):
    # the rules of #column_kinds, #convert_bytes and #binary that cannot fail; "X" sends the
    # cell to #ext_fallback.
    def ext_kinds
      Array.new(@ncols) { |c| ext_kind(c) }.join.freeze
    end

    # Column `c`'s kind for Ext (see ext_kinds).
    def ext_kind(c)
      Results.ext_kind(@types[c], @formats[c])
    end

    # The kind for Ext of a column of type OID `type` in `format` (0 text, 1 binary): a function
    # of the two only, so Ext caches it per process (Ext.kind_for). :nodoc:
    def self.ext_kind(type, format)
      if format == 1
        EXT_BINARY_KINDS.fetch(type) { BINARY_TEXT.include?(type) ? "T" : "X" }
      else
        EXT_TEXT_KINDS.fetch(type) { Results.column_kinds_text(type) == :text ? "T" : "X" }
      end
    end

    # Per column as #raw_kinds: "T" (UTF-8 text) or "B" (binary String) by format.
    def ext_raw_kinds
      @formats.map { |f| f == 1 ? "B" : "T" }.join.freeze
    end

    # Per column, 1 for binary format: the bytes Ext.hashes leaves binary.
    def binary_flags
      @formats.map { |f| f == 1 ? 1 : 0 }.pack("C*").freeze
    end

    EXT_TEXT_KINDS = { OID::INT2 => "I", OID::INT4 => "I", OID::INT8 => "I", OID::OID => "I",
                       OID::FLOAT4 => "F", OID::FLOAT8 => "F", OID::BOOL => "L",
                       OID::TIMESTAMPTZ => "Z" }.freeze
    EXT_BINARY_KINDS = { OID::INT2 => "h", OID::INT4 => "i", OID::INT8 => "q", OID::OID => "u",
                         OID::FLOAT8 => "d", OID::BOOL => "b", OID::TIMESTAMPTZ => "z",
                         OID::BYTEA => "B", OID::UUID => "g" }.freeze

    # #each_block in Ruby (without PGSess::Ext): one copy of each block's bytes
    # (pgsess_results_copy_cells), sliced and converted here.
    def each_block_ruby(mode, hash_args)
      buf = FFI::MemoryPointer.new(:char, 64 * 1024, false)
      lens = FFI::MemoryPointer.new(:size_t, BLOCK_ROWS * [@ncols, 1].max)
      bytes = FFI::MemoryPointer.new(:size_t)
      out = FFI::MemoryPointer.new(:int64)
      i = 0
      while i < @nrows
        rows = @handle.use do |ptr|
          k = Native.pgsess_results_copy_cells(ptr, i, BLOCK_ROWS, buf, buf.size, lens, bytes)
          if k.zero?
            buf = FFI::MemoryPointer.new(:char, [bytes.read_ulong, 2 * buf.size].max, false)
            next []
          end
          data = buf.get_bytes(0, bytes.read_ulong)
          cell_lens = lens.read_array_of_ulong(k * @ncols)
          case mode
          when :hash then text_hashes(k, data, cell_lens, *hash_args)
          when :text then block_rows(ptr, i, k, data, cell_lens, out, @raw_kinds ||= raw_kinds)
          else block_rows(ptr, i, k, data, cell_lens, out, @kinds ||= column_kinds)
          end
        end
        i += rows.size
        rows.each { |row| yield row }
      end
    end

    # The rows of one copy as #each_text_hash yields them (`data` and `lens` as for #block_rows).
    def text_hashes(k, data, lens, keys, convs)
      data.force_encoding(Encoding::UTF_8)
      binary = (@binary_columns ||= @formats.map { |f| f == 1 })
      ncols = @ncols
      at = 0
      n = 0
      Array.new(k) do
        row = {}
        c = 0
        while c < ncols
          len = lens[n]
          n += 1
          if len == NULL_LENGTH
            row[keys[c]] = nil
          else
            v = data.byteslice(at, len)
            at += len
            v = v.b if binary[c]
            conv = convs[c]
            row[keys[c]] = conv ? conv.call(v) : v
          end
          c += 1
        end
        row
      end
    end

    # The rows `first...first + k` from one copy: `data` their cells' bytes, `lens` each cell's
    # length (NULL_LENGTH for NULL), `kinds` how each column is taken (#column_kinds or
    # #raw_kinds). The text of a :text column is a slice of `data` (taken as UTF-8, as the
    # library guarantees every text value is); :int is parsed from its slice; :bytes is the
    # slice as binary; other columns are converted as #convert does.
    def block_rows(ptr, first, k, data, lens, out, kinds)
      data.force_encoding(Encoding::UTF_8)
      at = 0
      n = 0
      Array.new(k) do |r|
        Array.new(@ncols) do |c|
          len = lens[n]
          n += 1
          next nil if len == NULL_LENGTH

          s = data.byteslice(at, len)
          at += len
          case kinds[c]
          when :text then s
          when :int then s.to_i
          when :bytes then s.b
          when :binary then binary(ptr, first + r, c, s.b, out)
          else convert_bytes(ptr, first + r, c, s, out)
          end
        end
      end
    end

    # Per column, how #each_text_row takes it: :text, or :bytes for a binary-format column.
    def raw_kinds
      Array.new(@ncols) { |c| @formats[c] == 1 ? :bytes : :text }
    end

    # Per column, how #block_rows converts it: :text (the value's text as it is), :int, :binary
    # (#binary) or :other (#convert_bytes).
    def column_kinds
      Array.new(@ncols) { |c| @formats[c] == 1 ? :binary : Results.column_kinds_text(@types[c]) }
    end

    # #column_kinds for a text-format column of type `type`. :nodoc:
    def self.column_kinds_text(type)
      case type
      when OID::INT4, OID::INT8, OID::INT2, OID::OID then :int
      when OID::FLOAT8, OID::FLOAT4, OID::NUMERIC, OID::BOOL, OID::BYTEA, OID::JSON, OID::JSONB,
           OID::TIMESTAMPTZ, OID::DATE then :other
      else Arrays.array_type?(type) ? :other : :text
      end
    end

    # A text value `s` (its bytes) as #convert gives it.
    def convert_bytes(ptr, row, col, s, out)
      case @types[col]
      when OID::INT4, OID::INT8, OID::INT2, OID::OID then s.to_i
      when OID::FLOAT8, OID::FLOAT4 then float(s)
      when OID::NUMERIC then BigDecimal(s)
      when OID::BOOL then s.getbyte(0) == 116 # "t"
      when OID::BYTEA then bytes(ptr, row, col, out)
      when OID::JSON, OID::JSONB then JSON.parse(s.force_encoding(Encoding::UTF_8))
      when OID::TIMESTAMPTZ then timestamptz_bytes(ptr, row, col, s, out)
      when OID::DATE then date(s.force_encoding(Encoding::UTF_8))
      else Arrays.array_type?(@types[col]) ? array_value(@types[col], s) : s.force_encoding(Encoding::UTF_8)
      end
    end

    # A text array of type `type` as a Ruby Array (nested by dimension) of its elements, each
    # converted as #element converts it for the array's element type.
    def array_value(type, s)
      elem = Arrays::ELEMENT_TYPES[type]
      deep_map(Arrays.split(s, type)) { |e| element(elem, e) }
    end

    def deep_map(list, &block)
      list.map { |x| x.is_a?(Array) ? deep_map(x, &block) : x && block.call(x) }
    end

    # An array element's text (`s`, binary) as a value of type `type`: the conversions of a
    # text column's value that need no library call (integers, floats, numeric, bool, bytea in
    # hex, json/jsonb, date); other element types (timestamptz included) as UTF-8 Strings.
    def element(type, s)
      case type
      when OID::INT4, OID::INT8, OID::INT2, OID::OID then s.to_i
      when OID::FLOAT8, OID::FLOAT4 then float(s)
      when OID::NUMERIC then BigDecimal(s)
      when OID::BOOL then s == "t"
      when OID::BYTEA then s.start_with?("\\x") ? [s.byteslice(2..)].pack("H*") : s.force_encoding(Encoding::UTF_8)
      when OID::JSON, OID::JSONB then JSON.parse(s.force_encoding(Encoding::UTF_8))
      when OID::DATE then date(s.force_encoding(Encoding::UTF_8))
      else s.force_encoding(Encoding::UTF_8)
      end
    end

    # #timestamptz for a value given as its bytes.
    def timestamptz_bytes(ptr, row, col, s, out)
      out ||= FFI::MemoryPointer.new(:int64)
      rc = Native.pgsess_results_get_epoch_micros(ptr, row, col, out)
      return s.force_encoding(Encoding::UTF_8) unless rc == Native::OK

      micros = out.read_int64
      return Float::INFINITY if micros == INFINITY_MICROS
      return -Float::INFINITY if micros == NEG_INFINITY_MICROS

      Time.at(micros.div(1_000_000), micros % 1_000_000, :usec).utc
    end

    # Row `i` as an Array of its values, as #fetch_row converts them.
    def fetch_values(i, buffers)
      values, lengths, out = buffers
      @handle.use do |ptr|
        Native.pgsess_results_row(ptr, i, values, lengths, @ncols)
        ptrs = values.read_array_of_pointer(@ncols)
        lens = lengths.read_array_of_ulong(@ncols)
        Array.new(@ncols) do |c|
          vp = ptrs[c]
          if vp.null? then nil
          elsif @formats[c] == 1 then binary(ptr, i, c, vp.read_bytes(lens[c]), out)
          else convert(ptr, i, c, vp, lens[c], out)
          end
        end
      end
    end

    # Per-call buffers for pgsess_results_row (per call so that threads never share them).
    def row_buffers
      n = [@ncols, 1].max
      [FFI::MemoryPointer.new(:pointer, n), FFI::MemoryPointer.new(:size_t, n), FFI::MemoryPointer.new(:int64)]
    end

    # One foreign call per row (pgsess_results_row), plus one per text bytea or timestamptz
    # value (binary values are decoded in Ruby, but for those read as text: see #binary).
    def fetch_row(i, buffers)
      values, lengths, out = buffers
      @handle.use do |ptr|
        Native.pgsess_results_row(ptr, i, values, lengths, @ncols)
        ptrs = values.read_array_of_pointer(@ncols)
        lens = lengths.read_array_of_ulong(@ncols)
        row = {}
        c = 0
        while c < @ncols
          vp = ptrs[c]
          row[@columns[c]] = if vp.null? then nil
                             elsif @formats[c] == 1 then binary(ptr, i, c, vp.read_bytes(lens[c]), out)
                             else convert(ptr, i, c, vp, lens[c], out)
                             end
          c += 1
        end
        row
      end
    end

    def convert(ptr, row, col, vp, len, out)
      convert_bytes(ptr, row, col, vp.read_bytes(len), out)
    end


    # A binary value (`b`, its bytes) as #convert gives the same value's text: integers, floats,
    # bool, bytea, json/jsonb, timestamptz, date, uuid and the text types are decoded here from
    # the bytes; a float4 through pgsess_results_get_double (the double nearest its shortest
    # decimal, as its text reads); numeric, and every other type (a String, as its text), from
    # the library's rendering of its text (pgsess_results_get_text), which raises
    # NotSupportedError for a type whose text it does not know or that depends on settings.
    def binary(ptr, row, col, b, out)
      type = @types[col]
      if (int = BINARY_INTS[type])
        return malformed(col, b) unless b.bytesize == int[1]

        return b.unpack1(int[0])
      end
      case type
      when OID::FLOAT8
        b.bytesize == 8 ? b.unpack1("G") : malformed(col, b)
      when OID::FLOAT4
        return malformed(col, b) unless b.bytesize == 4

        out ||= FFI::MemoryPointer.new(:int64)
        rc = Native.pgsess_results_get_double(ptr, row, col, out)
        rc == Native::OK ? out.read_double : malformed(col, b)
      when OID::BOOL
        b.bytesize == 1 ? b.getbyte(0) != 0 : malformed(col, b)
      when OID::BYTEA
        b
      when OID::JSON
        JSON.parse(b.force_encoding(Encoding::UTF_8))
      when OID::JSONB
        return malformed(col, b) unless b.getbyte(0) == 1

        JSON.parse(b.byteslice(1, b.bytesize - 1).force_encoding(Encoding::UTF_8))
      when OID::TIMESTAMPTZ
        binary_timestamptz(ptr, row, col, b)
      when OID::DATE
        binary_date(col, b)
      when OID::UUID
        return malformed(col, b) unless b.bytesize == 16

        b.unpack1("H*").insert(20, "-").insert(16, "-").insert(12, "-").insert(8, "-").force_encoding(Encoding::UTF_8)
      when OID::NUMERIC
        BigDecimal(library_text(ptr, row, col))
      else
        BINARY_TEXT.include?(type) ? b.force_encoding(Encoding::UTF_8) : library_text(ptr, row, col)
      end
    end

    # As #timestamptz: Time in UTC, ±Float::INFINITY; a value past the 64-bit microseconds
    # since 1970 (after the year 294246), which the text form gives as text, the same text.
    def binary_timestamptz(ptr, row, col, b)
      return malformed(col, b) unless b.bytesize == 8

      v = b.unpack1("q>")
      return Float::INFINITY if v == INFINITY_MICROS
      return -Float::INFINITY if v == NEG_INFINITY_MICROS
      return library_text(ptr, row, col) if v > INFINITY_MICROS - PG_EPOCH_MICROS

      micros = v + PG_EPOCH_MICROS
      Time.at(micros.div(1_000_000), micros % 1_000_000, :usec).utc
    end

    # As #date: a proleptic Gregorian Date, or ±Float::INFINITY.
    def binary_date(col, b)
      return malformed(col, b) unless b.bytesize == 4

      days = b.unpack1("l>")
      return Float::INFINITY if days == INFINITY_DAYS
      return -Float::INFINITY if days == NEG_INFINITY_DAYS

      Date.jd(PG_EPOCH_JD + days, Date::GREGORIAN)
    end

    # The server's text for a binary value, as the library renders it (pgsess_results_get_text).
    def library_text(ptr, row, col)
      textp = FFI::MemoryPointer.new(:pointer)
      Native.checked { |e| Native.pgsess_results_get_text(ptr, row, col, textp, e) }
      Native.str(textp.read_pointer)
    rescue NotSupportedError => e
      raise NotSupportedError.new("column #{@columns[col].inspect}: #{e.message} (#query gives the server's own text)",
                                  code: e.code, category: e.category)
    end

    def malformed(col, b)
      raise Error.class_for(Error::VALUES[:type_mismatch]).new(
        "column #{@columns[col].inspect}: a binary #{@types[col]} value of #{b.bytesize} bytes",
        code: :type_mismatch
      )
    end

    def float(s)
      case s
      when "NaN" then Float::NAN
      when "Infinity" then Float::INFINITY
      when "-Infinity" then -Float::INFINITY
      else s.to_f
      end
    end

    def bytes(ptr, row, col, out)
      out ||= FFI::MemoryPointer.new(:size_t)
      p = Native.pgsess_results_get_bytes(ptr, row, col, out)
      return nil if p.null?

      p.read_bytes(out.read_ulong) # ASCII-8BIT
    end

    # Date (proleptic Gregorian, as PostgreSQL); Float::INFINITY / -Float::INFINITY for infinity;
    # the text under a DateStyle other than ISO.
    def date(s)
      m = DATE_RE.match(s)
      if m
        year = m[1].to_i
        year = 1 - year if m[4]
        return Date.new(year, m[2].to_i, m[3].to_i, Date::GREGORIAN)
      end
      case s
      when "infinity" then Float::INFINITY
      when "-infinity" then -Float::INFINITY
      else s
      end
    end
  end
end
