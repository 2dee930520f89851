# frozen_string_literal: true

require "bigdecimal"
require "date"
require "time"

module PGSess
  # Conversion of Ruby values to statement parameters, and their native arrays. Internal.
  #
  # Parameters travel as text and the server infers their types (as libpq's PQexecParams with no
  # types): nil is SQL NULL, true/false are "true"/"false", Time and DateTime are ISO 8601 with
  # microseconds, Date is ISO 8601, BigDecimal is plain notation, an Array an array literal of
  # its elements so converted (nested Arrays for more dimensions; see Arrays), anything else is
  # `to_s`.
  # A String whose encoding is ASCII-8BIT (binary) is sent in binary format instead, so bytea
  # values may hold zero bytes.
  class Params
    INT32_MAX = 2**31 - 1

    # The text form of one value (nil for SQL NULL), or the String itself when it is binary.
    def self.text(value)
      case value
      when nil then nil
      when true then "true"
      when false then "false"
      when String then value
      when Integer then value.to_s
      when Float then value.to_s
      when BigDecimal then value.to_s("F")
      when Time, DateTime then value.iso8601(6)
      when Date then value.iso8601
      when Array then Arrays.literal(value) { |v| element_text(v) }
      else value.to_s
      end
    end

    # An Array parameter's element as #text gives it, but a binary String as bytea's hex text
    # (an array literal is text): `"\x00ff"`.
    def self.element_text(value)
      value.is_a?(String) && value.encoding == Encoding::BINARY ? "\\x#{value.unpack1('H*')}" : text(value)
    end

    # The parameters as the library's text form takes them, for PGSess::Ext.statement: each a
    # String as #utf8 checks it, or nil for SQL NULL; nil when one is binary (a binary String),
    # which only the *_query_params forms can send (then use Params.new).
    def self.texts(values, what = "parameter")
      i = 0
      values.map do |v|
        i += 1
        s = text(v)
        next nil if s.nil?

        enc = s.encoding
        return nil if enc == Encoding::BINARY
        # Most parameters are already what the library takes: no copy and no error message made.
        next s if (enc == Encoding::UTF_8 || enc == Encoding::US_ASCII) && !s.include?("\0")

        Native.utf8(s, "#{what} #{i}")
      end
    end

    attr_reader :count

    # `values`: the Ruby parameters. `what`: how errors name them ("parameter", "argument").
    def initialize(values, what = "parameter")
      @count = values.size
      @binary = false
      @keep = [] # the MemoryPointers the arrays point at, alive as long as self
      @values = FFI::MemoryPointer.new(:pointer, [@count, 1].max)
      @lengths = nil # the lengths and formats (NULL: all text, whose lengths the library
      @formats = nil # ignores) are made at the first binary parameter
      values.each_with_index { |v, i| set(i, v, what) }
    end

    # Whether a parameter is binary (then only the *_query_params functions can send them).
    def binary?
      @binary
    end

    # `const char *const *` of the values (NULL entries for SQL NULL).
    def values_ptr
      @count.zero? ? nil : @values
    end

    def lengths_ptr
      @count.zero? ? nil : @lengths
    end

    def formats_ptr
      @count.zero? ? nil : @formats
    end

    private

    # At the first binary parameter: the lengths and formats arrays (zeroed: format 0, text,
    # for the others).
    def binary_arrays
      return if @binary

      @binary = true
      n = [@count, 1].max
      @lengths = FFI::MemoryPointer.new(:int32, n)
      @formats = FFI::MemoryPointer.new(:int32, n)
    end

    def set(i, value, what)
      s = Params.text(value)
      if s.nil?
        @values.put_pointer(i * FFI::Pointer.size, nil)
        return
      end

      if s.encoding == Encoding::BINARY
        if s.bytesize > INT32_MAX
          raise InterfaceError.new("#{what} #{i + 1} is too long (#{s.bytesize} bytes)", code: :interface_error)
        end

        binary_arrays
        mem = FFI::MemoryPointer.new(:uint8, [s.bytesize, 1].max)
        mem.put_bytes(0, s)
        @lengths.put_int32(i * 4, s.bytesize)
        @formats.put_int32(i * 4, 1)
      else
        mem = Native.cstring(s, "#{what} #{i + 1}")
      end
      @keep << mem
      @values.put_pointer(i * FFI::Pointer.size, mem)
    end
  end
end
