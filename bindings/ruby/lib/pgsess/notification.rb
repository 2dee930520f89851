# frozen_string_literal: true

module PGSess
  # One notification from Session#next_notification: a NOTIFY on a channel the session listens
  # on, or a gap marker.
  #
  # A gap marker (#gap? true, #pid 0, #payload nil) says that notifications on #channel may
  # have been lost: the session's listener connection was lost and has been reconnected (and
  # listens again), or more than 65,536 notifications were waiting and the oldest were dropped.
  # An application that keeps state from notifications should reload it from the tables.
  class Notification
    # The channel name, as given to Session#listen (case kept).
    attr_reader :channel
    # The NOTIFY payload (a UTF-8 String, "" when none was given); nil for a gap marker.
    attr_reader :payload
    # The backend pid of the session that sent the NOTIFY; 0 for a gap marker.
    attr_reader :pid

    def initialize(channel, payload, pid, gap) # :nodoc:
      @channel = channel.freeze
      @payload = payload&.freeze
      @pid = pid
      @gap = gap
      freeze
    end

    # Copy a native pgsess_notification (not freed here).
    def self.from_native(ptr) # :nodoc:
      gap = Native.pgsess_notification_is_gap(ptr)
      new(Native.str(Native.pgsess_notification_channel(ptr)),
          gap ? nil : Native.str(Native.pgsess_notification_payload(ptr)),
          gap ? 0 : Native.pgsess_notification_pid(ptr),
          gap)
    end

    # Whether this is a gap marker: notifications on #channel may have been lost.
    def gap?
      @gap
    end

    # [channel, pid, payload]: what Session#wait_for_notify yields (as pg's).
    def to_a
      [@channel, @pid, @payload]
    end

    def ==(other)
      other.is_a?(Notification) && to_a == other.to_a && gap? == other.gap?
    end
    alias eql? ==

    def hash
      [self.class, @channel, @pid, @payload, @gap].hash
    end

    def inspect
      if @gap
        "#<#{self.class.name} gap channel=#{@channel.inspect}>"
      else
        "#<#{self.class.name} channel=#{@channel.inspect} pid=#{@pid} payload=#{@payload.inspect}>"
      end
    end
  end
end
