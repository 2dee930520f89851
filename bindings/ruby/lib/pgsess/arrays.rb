# frozen_string_literal: true

module PGSess
  # Arrays in their text form, through the library's own rules (pgsess_array_split and
  # pgsess_array_literal, shared with the other bindings): a text array column becomes a Ruby
  # Array (nested for more dimensions) of its elements, and a Ruby Array parameter is sent as an
  # array literal the server converts to the parameter's array type. Internal: Results and
  # Params use it.
  module Arrays
    # Array type OID => element type OID, for the built-in arrays whose elements Results
    # converts (#element in Results); other arrays come back as Arrays of Strings.
    ELEMENT_TYPES = {
      1000 => 16, 1001 => 17, 1003 => 19, 1005 => 21, 1007 => 23, 1009 => 25, 1014 => 1042, 1015 => 1043,
      1016 => 20, 1021 => 700, 1022 => 701, 1028 => 26, 1182 => 1082, 1185 => 1184, 1231 => 1700,
      2951 => 2950, 199 => 114, 3807 => 3802, 1115 => 1114, 1183 => 1083, 1187 => 1186
    }.freeze
    # Array types whose elements are separated by ';' (box[]), not ','.
    SEMICOLON = [1020].freeze

    module_function

    # Whether `type` is an array type this module splits.
    def array_type?(type)
      ELEMENT_TYPES.key?(type) || SEMICOLON.include?(type)
    end

    # The elements of the array text `s` (Strings as the bytes arrived, binary; nil for NULL),
    # nested by its dimensions: `{{1,2},{3,4}}` is [["1", "2"], ["3", "4"]]. DataError when
    # the text is not an array.
    def split(s, type)
      len = s.bytesize
      max = len / 2 + 1
      buf = FFI::MemoryPointer.new(:char, len + 1)
      elems = FFI::MemoryPointer.new(:pointer, max)
      lens = FFI::MemoryPointer.new(:size_t, max)
      n = FFI::MemoryPointer.new(:size_t)
      dims = FFI::MemoryPointer.new(:size_t, 6)
      ndims = FFI::MemoryPointer.new(:size_t)
      delim = SEMICOLON.include?(type) ? ";".ord : ",".ord
      Native.checked do |e|
        Native.pgsess_array_split(s, len, delim, buf, len + 1, elems, lens, max, n, dims, ndims, e)
      end
      count = n.read(:size_t)
      ptrs = elems.read_array_of_pointer(count)
      sizes = lens.read_array_of_ulong(count)
      flat = Array.new(count) { |i| ptrs[i].null? ? nil : ptrs[i].read_bytes(sizes[i]) }
      shape(flat, dims.read_array_of_ulong(ndims.read(:size_t)))
    end

    # `flat` (row-major) as nested Arrays of `dims`.
    def shape(flat, dims)
      (dims[1..] || []).reverse_each { |d| flat = flat.each_slice(d).to_a }
      flat
    end

    # The array literal of the Ruby Array `array` (nested Arrays for more dimensions, which must
    # be rectangular), each element as `text` (a Params.text-like converter, nil for NULL)
    # gives it: `[1, nil, "a b"]` is `{"1",NULL,"a b"}`. InterfaceError when the nesting is
    # not rectangular or an element is not valid text.
    def literal(array, &text)
      dims = []
      level = array
      while level.is_a?(Array)
        dims << level.size
        level = level.first
      end
      flat = array.flatten
      unless dims.reduce(1, :*) == flat.size && rectangular?(array, dims)
        raise InterfaceError.new("an Array parameter must be rectangular (every sub-Array of one level the same size)",
                                 code: :interface_error)
      end
      texts = flat.map { |v| (t = text.call(v)) && Native.utf8(t, "array element") }
      elems = FFI::MemoryPointer.new(:pointer, [texts.size, 1].max)
      lens = FFI::MemoryPointer.new(:size_t, [texts.size, 1].max)
      keep = texts.map { |t| t && FFI::MemoryPointer.from_string(t) }
      keep.each_with_index do |m, i|
        elems.put_pointer(i * FFI::Pointer.size, m)
        lens.put(:size_t, i * FFI.type_size(:size_t), m ? texts[i].bytesize : 0)
      end
      shape_ptr = FFI::MemoryPointer.new(:size_t, [dims.size, 1].max)
      shape_ptr.write_array_of_ulong(dims) unless dims.empty?
      Native.take_string(Native.checked { |e| Native.pgsess_array_literal(elems, lens, texts.size, shape_ptr, dims.size, e) })
    end

    def rectangular?(array, dims)
      return !array.is_a?(Array) if dims.empty?
      return false unless array.is_a?(Array) && array.size == dims.first

      array.all? { |sub| rectangular?(sub, dims[1..]) }
    end
  end
end
