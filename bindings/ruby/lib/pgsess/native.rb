# frozen_string_literal: true

require "ffi"

module PGSess
  # Raw bindings to libpgsess (include/pgsess.h). Internal: use PGSess::Session.
  #
  # Every function that can wait on the network is attached with `blocking: true`, so the GVL is
  # released while it runs and other Ruby threads keep running.
  module Native
    extend FFI::Library

    # The library to load: $PGSESS_LIB, else `pkg-config --variable=libdir pgsess`/libpgsess.so,
    # else "pgsess" (the dynamic linker's search path).
    def self.library_path
      env = ENV["PGSESS_LIB"]
      return env if env && !env.empty?

      begin
        libdir = IO.popen(["pkg-config", "--variable=libdir", "pgsess"], err: File::NULL, &:read).to_s.strip
        if $?.success? && !libdir.empty?
          path = File.join(libdir, "libpgsess.so")
          return path if File.exist?(path)
        end
      rescue SystemCallError
        # pkg-config is not installed: fall through to the linker's search path.
      end
      "pgsess"
    end

    ffi_lib library_path

    # PGSESS_OK (the other codes are named by PGSess::Error::CODES, from pgsess_code_name).
    OK = 0

    typedef :pointer, :session
    typedef :pointer, :results
    typedef :pointer, :options
    typedef :pointer, :error
    typedef :pointer, :errp
    typedef :pointer, :tx
    typedef :pointer, :stream
    typedef :pointer, :copy
    typedef :pointer, :notification
    typedef :int, :code

    attach_function :pgsess_version, [], :string
    attach_function :pgsess_code_name, [:code], :string
    attach_function :pgsess_code_category, [:code], :code
    attach_function :pgsess_string_free, [:pointer], :void

    attach_function :pgsess_error_code, [:error], :code
    attach_function :pgsess_error_category, [:error], :code
    attach_function :pgsess_error_message, [:error], :pointer
    attach_function :pgsess_error_sqlstate, [:error], :pointer
    attach_function :pgsess_error_detail, [:error], :pointer
    attach_function :pgsess_error_hint, [:error], :pointer
    attach_function :pgsess_error_field, [:error, :int], :pointer
    attach_function :pgsess_error_free, [:error], :void

    attach_function :pgsess_options_new, [], :options
    attach_function :pgsess_options_free, [:options], :void
    attach_function :pgsess_options_set_db_url, [:options, :pointer], :code
    attach_function :pgsess_options_set_pool_max_size, [:options, :uint32], :code
    attach_function :pgsess_options_set_pool_idle_ttl, [:options, :uint32], :code
    attach_function :pgsess_options_set_checkout_timeout_ms, [:options, :uint32], :code
    attach_function :pgsess_options_set_reset, [:options, :int], :code
    attach_function :pgsess_options_set_pinned, [:options, :bool], :code
    attach_function :pgsess_options_set_statement_cache, [:options, :uint32], :code
    attach_function :pgsess_options_set_pool_max_lifetime, [:options, :uint32], :code
    attach_function :pgsess_options_set_pool_min_idle, [:options, :uint32], :code
    attach_function :pgsess_options_set_pool_health_check_ms, [:options, :uint32], :code
    attach_function :pgsess_options_set_cancel_on_signal, [:options, :bool], :code

    # Frees results and returns the pooled connection; may roll back: blocking.
    attach_function :pgsess_results_free, [:results], :void, blocking: true
    attach_function :pgsess_results_nrows, [:results], :size_t
    attach_function :pgsess_results_ncols, [:results], :size_t
    attach_function :pgsess_results_column_name, [:results, :size_t], :pointer
    attach_function :pgsess_results_column_type, [:results, :size_t], :uint32
    attach_function :pgsess_results_column_typmod, [:results, :size_t], :int32
    attach_function :pgsess_results_column_size, [:results, :size_t], :int32
    attach_function :pgsess_results_column_table, [:results, :size_t], :uint32
    attach_function :pgsess_results_column_table_column, [:results, :size_t], :int32
    attach_function :pgsess_results_column_format, [:results, :size_t], :int32
    attach_function :pgsess_results_value, [:results, :size_t, :size_t], :pointer
    attach_function :pgsess_results_value_length, [:results, :size_t, :size_t], :size_t
    attach_function :pgsess_results_is_null, [:results, :size_t, :size_t], :bool
    attach_function :pgsess_results_rows_affected, [:results], :uint64
    attach_function :pgsess_results_backend_pid, [:results], :int32
    attach_function :pgsess_results_notice_count, [:results], :size_t
    attach_function :pgsess_results_notice, [:results, :size_t], :pointer
    attach_function :pgsess_results_status, [:results], :pointer
    attach_function :pgsess_results_query, [:results], :pointer
    attach_function :pgsess_results_count, [:results], :int64
    attach_function :pgsess_results_row, [:results, :size_t, :pointer, :pointer, :size_t], :size_t
    attach_function :pgsess_array_split,
                    [:pointer, :size_t, :char, :pointer, :size_t, :pointer, :pointer, :size_t, :pointer, :pointer,
                     :pointer, :errp], :code
    attach_function :pgsess_array_literal, [:pointer, :pointer, :size_t, :pointer, :size_t, :errp], :pointer
    attach_function :pgsess_results_copy_cells,
                    [:results, :size_t, :size_t, :pointer, :size_t, :pointer, :pointer], :size_t
    attach_function :pgsess_results_get_epoch_micros, [:results, :size_t, :size_t, :pointer], :code
    attach_function :pgsess_results_get_bytes, [:results, :size_t, :size_t, :pointer], :pointer
    attach_function :pgsess_results_get_double, [:results, :size_t, :size_t, :pointer], :code
    attach_function :pgsess_results_get_text, [:results, :size_t, :size_t, :pointer, :errp], :code
    attach_function :pgsess_results_json, [:results], :pointer

    attach_function :pgsess_open, [:pointer, :options, :errp], :session, blocking: true
    attach_function :pgsess_close, [:session], :void, blocking: true
    attach_function :pgsess_query, [:session, :pointer, :size_t, :pointer, :errp], :results, blocking: true
    attach_function :pgsess_query_typed, [:session, :pointer, :size_t, :pointer, :errp], :results, blocking: true
    attach_function :pgsess_query_params,
                    [:session, :pointer, :size_t, :pointer, :pointer, :pointer, :pointer, :errp],
                    :results, blocking: true
    attach_function :pgsess_query_binary,
                    [:session, :pointer, :size_t, :pointer, :pointer, :pointer, :pointer, :errp],
                    :results, blocking: true
    attach_function :pgsess_query_stream, [:session, :pointer, :size_t, :pointer, :uint32, :errp],
                    :stream, blocking: true
    attach_function :pgsess_callproc, [:session, :pointer, :size_t, :pointer, :errp], :results,
                    blocking: true
    attach_function :pgsess_callproc_params,
                    [:session, :pointer, :size_t, :pointer, :pointer, :pointer, :pointer, :errp],
                    :results, blocking: true
    attach_function :pgsess_begin, [:session, :errp], :tx, blocking: true
    # pgsess_isolation is a C enum: an int.
    attach_function :pgsess_begin_with, [:session, :int, :bool, :bool, :errp], :tx, blocking: true
    # Waits up to the checkout timeout for a connection: blocking.
    attach_function :pgsess_pin, [:session, :errp], :session, blocking: true
    attach_function :pgsess_is_pinned, [:session], :bool
    attach_function :pgsess_pool_pinned_sessions, [:session], :uint64
    attach_function :pgsess_pool_copies_open, [:session], :uint64
    attach_function :pgsess_backend_pid, [:session], :int32
    attach_function :pgsess_pool_id, [:session], :pointer

    # struct pgsess_stats_v2, field for field (fields are only ever added at the end; the size
    # passed tells the library how many this binding knows).
    class StatsV2 < FFI::Struct
      layout :size, :size_t,
             :max_size, :uint32, :open, :uint32, :idle, :uint32, :in_use, :uint32, :waiting, :uint32,
             :min_idle, :uint32,
             :results_outstanding, :uint64, :transactions_open, :uint64, :pinned_sessions, :uint64,
             :copies_open, :uint64, :checkouts, :uint64, :checkout_timeouts, :uint64,
             :checkouts_failed_fast, :uint64, :connects, :uint64, :connect_failures, :uint64,
             :closed_dead, :uint64, :closed_idle_ttl, :uint64, :closed_lifetime, :uint64,
             :closed_health, :uint64, :closed_drained, :uint64, :wait_total_us, :uint64,
             :wait_count, :uint64, :wait_buckets, [:uint64, 9]
    end
    attach_function :pgsess_pool_stats_v2, [:session, :pointer, :size_t], :code
    attach_function :pgsess_pool_stats_text, [:session], :pointer
    # Waits for connections in use (up to its timeout): blocking.
    attach_function :pgsess_pool_drain, [:session, :uint32, :errp], :code, blocking: true
    attach_function :pgsess_pool_resize, [:session, :uint32, :errp], :code
    # Reads service and password files, never connects.
    attach_function :pgsess_config_check, [:pointer, :errp], :code, blocking: true
    callback :password_callback, [:pointer, :uint16, :pointer, :pointer, :size_t, :pointer], :int32
    attach_function :pgsess_options_set_password_callback, [:options, :password_callback, :pointer], :code
    attach_function :pgsess_encoding, [:session], :pointer
    attach_function :pgsess_set_encoding, [:session, :pointer, :errp], :code
    attach_function :pgsess_validate, [:session], :bool, blocking: true
    attach_function :pgsess_notice_count, [:session], :size_t
    attach_function :pgsess_notice, [:session, :size_t], :pointer

    attach_function :pgsess_stream_next, [:stream, :errp], :results, blocking: true
    attach_function :pgsess_stream_free, [:stream], :void, blocking: true

    attach_function :pgsess_tx_query, [:tx, :pointer, :size_t, :pointer, :errp], :results, blocking: true
    attach_function :pgsess_tx_query_params,
                    [:tx, :pointer, :size_t, :pointer, :pointer, :pointer, :pointer, :errp],
                    :results, blocking: true
    attach_function :pgsess_tx_callproc, [:tx, :pointer, :size_t, :pointer, :errp], :results, blocking: true
    attach_function :pgsess_tx_callproc_params,
                    [:tx, :pointer, :size_t, :pointer, :pointer, :pointer, :pointer, :errp],
                    :results, blocking: true
    attach_function :pgsess_tx_session, [:tx], :session
    attach_function :pgsess_commit, [:tx, :errp], :code, blocking: true
    attach_function :pgsess_rollback, [:tx], :void, blocking: true

    # COPY: every call may wait on the network (pgsess_copy_free sends CopyFail or a cancel).
    attach_function :pgsess_copy_in, [:session, :pointer, :errp], :copy, blocking: true
    attach_function :pgsess_copy_out, [:session, :pointer, :errp], :copy, blocking: true
    attach_function :pgsess_copy_write, [:copy, :pointer, :size_t, :errp], :code, blocking: true
    attach_function :pgsess_copy_start, [:session, :pointer, :errp], :copy, blocking: true
    attach_function :pgsess_copy_is_in, [:copy], :bool
    attach_function :pgsess_copy_read, [:copy, :pointer, :errp], :pointer, blocking: true
    attach_function :pgsess_copy_read_chunk, [:copy, :pointer, :errp], :pointer, blocking: true
    attach_function :pgsess_copy_abort, [:copy, :pointer, :errp], :code, blocking: true
    attach_function :pgsess_copy_finish, [:copy, :errp], :uint64, blocking: true
    attach_function :pgsess_copy_free, [:copy], :void, blocking: true

    # LISTEN/NOTIFY. pgsess_listen may open the listener connection; pgsess_notification_next
    # waits (the binding calls it in short slices so that interrupts get through).
    attach_function :pgsess_listen, [:session, :pointer, :errp], :code, blocking: true
    attach_function :pgsess_unlisten, [:session, :pointer, :errp], :code, blocking: true
    attach_function :pgsess_notification_next, [:session, :int32, :errp], :notification, blocking: true
    attach_function :pgsess_notification_fd, [:session], :int
    attach_function :pgsess_notification_channel, [:notification], :pointer
    attach_function :pgsess_notification_payload, [:notification], :pointer
    attach_function :pgsess_notification_pid, [:notification], :int32
    attach_function :pgsess_notification_is_gap, [:notification], :bool
    attach_function :pgsess_notification_free, [:notification], :void

    UTF8 = Encoding::UTF_8

    # A NUL-terminated string owned by the library, as a UTF-8 Ruby String (nil for NULL).
    def self.str(ptr)
      return nil if ptr.nil? || ptr.null?

      ptr.read_string.force_encoding(UTF8)
    end

    # Take ownership of a `char *` result: copy it and free it with pgsess_string_free.
    def self.take_string(ptr)
      return nil if ptr.nil? || ptr.null?

      begin
        ptr.read_string.force_encoding(UTF8)
      ensure
        pgsess_string_free(ptr)
      end
    end

    # Call the block with a fresh `pgsess_error **`; raise the error it reports (freeing it).
    # Returns the block's value.
    def self.checked
      errp = FFI::MemoryPointer.new(:pointer)
      value = yield errp
      err = errp.read_pointer
      raise PGSess::Error.from_native(err) unless err.null?

      value
    end

    # A NUL-terminated copy of a Ruby string in malloc'ed memory, stable while the GVL is
    # released (a Ruby String's buffer could be changed by another thread meanwhile).
    def self.cstring(value, what)
      FFI::MemoryPointer.from_string(utf8(value, what))
    end

    # `value.to_s` as the library takes a string: UTF-8 (a binary String's bytes taken as
    # UTF-8, which the library checks; another encoding converted), without NUL bytes, else
    # InterfaceError naming `what`.
    def self.utf8(value, what)
      s = value.to_s
      if s.encoding == Encoding::BINARY
        s = s.dup.force_encoding(UTF8) # bytes taken as UTF-8; the library rejects invalid UTF-8
      elsif s.encoding != UTF8 && s.encoding != Encoding::US_ASCII
        s = s.encode(UTF8)
      end
      if s.include?("\0")
        raise PGSess::InterfaceError.new("#{what} contains a NUL byte", code: :interface_error)
      end

      s
    rescue EncodingError => e
      raise PGSess::InterfaceError.new("#{what} cannot be converted to UTF-8: #{e.message}",
                                       code: :interface_error)
    end
  end
end
