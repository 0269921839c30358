/// The entropy-coded layer of a Huffman JPEG: code tables and the bit reader of a scan.

/// A JPEG Huffman table (T.81 annex C) with a 9-bit look-up for short codes.
struct JPEGHuffman {
    static let fastBits = 9
    /// Indexed by the next 9 bits: length << 8 | symbol, or 0 when the code is longer.
    var fast = [UInt16](repeating: 0, count: 1 << fastBits)
    /// Largest code of each length 1...16, or -1 when there is none.
    var maxCode = [Int](repeating: -1, count: 17)
    /// values[valueOffset[len] + code] is the symbol of a code of length len.
    var valueOffset = [Int](repeating: 0, count: 17)
    var values: [UInt8]

    init(counts: [Int], values: [UInt8]) throws(UniECGError) {
        self.values = values
        var code = 0, k = 0
        for len in 1...16 {
            valueOffset[len] = k - code
            for _ in 0..<counts[len - 1] {
                guard code < 1 << len else { throw .format("JPEG Huffman table has more codes of length \(len) than fit") }
                if len <= Self.fastBits {
                    let first = code << (Self.fastBits - len)
                    for i in first..<first + (1 << (Self.fastBits - len)) { fast[i] = UInt16(len << 8 | Int(values[k])) }
                }
                code += 1
                k += 1
            }
            maxCode[len] = counts[len - 1] > 0 ? code - 1 : -1
            code <<= 1
        }
    }
}

/// The entropy-coded bits of one scan: byte stuffing (FF 00) removed, stopping at any marker.
struct JPEGBits {
    let bytes: [UInt8]
    var position: Int
    /// Unread bits, most significant first.
    var buffer: UInt64 = 0
    var count = 0
    var atMarker = false

    @inline(__always)
    mutating func fill() {
        while count <= 56, !atMarker, position < bytes.count {
            let byte = bytes[position]
            if byte == 0xFF {
                guard position + 1 < bytes.count else { return }
                if bytes[position + 1] != 0x00 { atMarker = true; return }
                position += 2
            } else {
                position += 1
            }
            buffer |= UInt64(byte) << UInt64(56 - count)
            count += 8
        }
    }

    /// The next n bits (1...16); beyond the data they read as zeros until consumed.
    @inline(__always)
    func peek(_ n: Int) -> Int { Int(buffer >> UInt64(64 - n)) }

    @inline(__always)
    mutating func consume(_ n: Int) throws(UniECGError) {
        guard n <= count else {
            if atMarker { throw .format("JPEG entropy-coded data is corrupt: a marker interrupts a block") }
            throw .format("JPEG truncated: the file ends inside the image data")
        }
        buffer <<= UInt64(n)
        count -= n
    }

    @inline(__always)
    mutating func receive(_ n: Int) throws(UniECGError) -> Int {
        if n == 0 { return 0 }
        if count < n { fill() }
        let v = peek(n)
        try consume(n)
        return v
    }

    /// receive + EXTEND (T.81 F.2.2.1): an n-bit magnitude category to a signed value.
    @inline(__always)
    mutating func signed(_ n: Int) throws(UniECGError) -> Int {
        let v = try receive(n)
        return n == 0 || v >= 1 << (n - 1) ? v : v - (1 << n) + 1
    }

    @inline(__always)
    mutating func decode(_ table: JPEGHuffman) throws(UniECGError) -> Int {
        if count < 16 { fill() }
        let entry = Int(table.fast[peek(JPEGHuffman.fastBits)])
        if entry != 0 {
            try consume(entry >> 8)
            return entry & 0xFF
        }
        for len in (JPEGHuffman.fastBits + 1)...16 {
            let code = peek(len)
            if code <= table.maxCode[len] {
                try consume(len)
                let index = table.valueOffset[len] + code
                guard index >= 0, index < table.values.count else { break }
                return Int(table.values[index])
            }
        }
        if count == 0 { try consume(1) }  // reports truncation or a marker rather than a bad code
        throw .format("JPEG entropy-coded data is corrupt: invalid Huffman code")
    }

    /// Drops the bits of the finished restart interval and steps over its RSTn marker.
    mutating func restart(expected: Int) throws(UniECGError) {
        buffer = 0
        count = 0
        atMarker = false
        guard position + 1 < bytes.count else { throw .format("JPEG truncated: the file ends before restart marker RST\(expected)") }
        guard bytes[position] == 0xFF, bytes[position + 1] == 0xD0 + UInt8(expected) else {
            throw .format("JPEG restart marker RST\(expected) expected at byte \(position), found \(bytes[position]) \(bytes[position + 1])")
        }
        position += 2
    }
}
