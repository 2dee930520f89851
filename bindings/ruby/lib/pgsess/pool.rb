# frozen_string_literal: true

module PGSess
  # Check a connection string (URI or key=value) or a session name (its PGSQL_<NAME> variable)
  # the way Session.open reads it, without connecting: service and password files are looked
  # up, every value checked. Returns nil, or raises ConfigError / NotSupportedError saying what
  # is wrong (never with a password in the message).
  def self.config_check(uri_or_conninfo)
    arg = Native.cstring(uri_or_conninfo, "connection string")
    Native.checked { |e| Native.pgsess_config_check(arg, e) }
    nil
  end

  # Asks a block for the password of each new connection a pool opens (pgx's BeforeConnect,
  # HikariCP's credentials provider): so a rotated password or a short-lived token is used by
  # the connections opened after the change. The block gets (host, port, user) and returns the
  # password as a String, or nil for the configured one (the URI, PGPASSWORD, the password file);
  # raising fails that connection attempt (the exception does not propagate into the library).
  #
  #   tokens = PGSess::PasswordProvider.new { |host, port, user| iam_token(host, user) }
  #   PGSess::Session.open("app", password_provider: tokens)
  #
  # The block runs with the GVL, on the thread opening the connection or a library thread, maybe
  # several at once: keep it short and thread-safe, and do not use pgsess sessions in it (the
  # pool may be waiting for it). Sessions share a pool only when they use the same provider;
  # a provider is never freed, so make one per configuration, not one per Session.open.
  class PasswordProvider
    # Every provider ever made: the library may call one for as long as the process lives.
    LIVE = []
    LIVE_LOCK = Mutex.new

    def initialize(&block)
      raise ArgumentError, "PasswordProvider needs a block" unless block

      @block = block
      @function = FFI::Function.new(:int32, [:pointer, :uint16, :pointer, :pointer, :size_t, :pointer]) do |h, p, u, buf, size, _|
        answer(h, p, u, buf, size)
      end
      LIVE_LOCK.synchronize { LIVE << self }
    end

    # Set this provider on a pgsess_options (internal, for Session.open).
    def install(opts) # :nodoc:
      code = Native.pgsess_options_set_password_callback(opts, @function, nil)
      return if code == Native::OK

      raise Error.class_for(code).new("password_provider refused (#{Native.pgsess_code_name(code)})",
                                      code: Error.code_symbol(code))
    end

    private

    # The C callback's body: never raises (an exception must not unwind through the library).
    def answer(host, port, user, buf, size)
      Thread.handle_interrupt(Object => :never) do
        password = @block.call(Native.str(host), port, Native.str(user))
        next -1 if password.nil?

        bytes = password.to_s.b
        next -2 if bytes.include?("\0") || bytes.bytesize >= size

        buf.put_bytes(0, bytes)
        buf.put_uint8(bytes.bytesize, 0)
        bytes.bytesize
      end
    rescue Exception # rubocop:disable Lint/RescueException -- nothing may cross into C
      -2
    end
  end
end
