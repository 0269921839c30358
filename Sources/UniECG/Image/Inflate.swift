/// DEFLATE (RFC 1951) and its zlib wrapper (RFC 1950), enough to read PNG image data without a
/// system zlib. Every malformed stream ends in a `UniECGError` naming the problem, and the
/// output never grows past the caller's `limit`, so a tiny hostile stream cannot claim memory.
public enum Inflate {
    /// Decodes a zlib stream (header, DEFLATE data, Adler-32 of the output).
    public static func zlib(_ input: [UInt8], limit: Int) throws(UniECGError) -> [UInt8] {
        guard input.count >= 2 else { throw .compression("zlib stream truncated: \(input.count) bytes, no header") }
        let cmf = Int(input[0]), flg = Int(input[1])
        guard (cmf << 8 | flg) % 31 == 0 else { throw .compression("zlib header check bits are wrong (not a zlib stream)") }
        guard cmf & 0x0F == 8 else { throw .compression("zlib compression method \(cmf & 0x0F) is not deflate (8)") }
        guard cmf >> 4 <= 7 else { throw .compression("zlib window size 2^\((cmf >> 4) + 8) exceeds 32 KiB") }
        guard flg & 0x20 == 0 else { throw .compression("zlib stream needs a preset dictionary, which PNG never uses") }
        var decoder = Decoder(input: input, start: 2, limit: limit)
        try decoder.run()
        let end = decoder.alignedBytePosition()
        guard end + 4 <= input.count else { throw .compression("zlib stream truncated: the Adler-32 checksum is missing") }
        let stored = UInt32(input[end]) << 24 | UInt32(input[end + 1]) << 16 | UInt32(input[end + 2]) << 8 | UInt32(input[end + 3])
        let computed = adler32(decoder.output)
        guard stored == computed else {
            throw .checksum("zlib Adler-32 mismatch: stored \(hex8(stored)), data gives \(hex8(computed))")
        }
        return decoder.output
    }

    /// Decodes raw DEFLATE data (no wrapper).
    public static func raw(_ input: [UInt8], limit: Int) throws(UniECGError) -> [UInt8] {
        var decoder = Decoder(input: input, start: 0, limit: limit)
        try decoder.run()
        return decoder.output
    }

    public static func adler32(_ data: [UInt8]) -> UInt32 {
        var a: UInt32 = 1, b: UInt32 = 0
        var i = 0
        // 5552 is the longest run for which b cannot overflow 32 bits before the modulo.
        while i < data.count {
            let end = min(i + 5552, data.count)
            while i < end { a &+= UInt32(data[i]); b &+= a; i += 1 }
            a %= 65521
            b %= 65521
        }
        return b << 16 | a
    }

    static func hex8(_ v: UInt32) -> String {
        let s = String(v, radix: 16)
        return "0x" + String(repeating: "0", count: 8 - s.count) + s
    }
}

/// A canonical Huffman code as RFC 1951 §3.2.2 defines it from code lengths alone.
struct DeflateHuffman {
    /// Codes of at most `fastBits` bits resolve with one look-up; longer ones walk `counts`.
    static let fastBits = 12
    /// Indexed by the next `fastBits` input bits: symbol << 4 | length, or 0 for "longer code".
    var fast: [UInt16]
    /// Number of codes of each length 0...15.
    var counts: [Int]
    /// Symbols ordered by code (length, then symbol value).
    var symbols: [UInt16]

    init(lengths: ArraySlice<UInt8>, name: String) throws(UniECGError) {
        counts = [Int](repeating: 0, count: 16)
        for l in lengths { counts[Int(l)] += 1 }
        counts[0] = 0
        // A code length set that claims more codes than bit patterns exist cannot be decoded.
        var left = 1
        for len in 1...15 {
            left = left * 2 - counts[len]
            guard left >= 0 else { throw .compression("deflate: the \(name) code lengths are over-subscribed") }
        }
        var offsets = [Int](repeating: 0, count: 16)
        for len in 1..<15 { offsets[len + 1] = offsets[len] + counts[len] }
        symbols = [UInt16](repeating: 0, count: lengths.count)
        var codes = [Int](repeating: 0, count: lengths.count)
        var next = [Int](repeating: 0, count: 16)
        var code = 0
        for len in 1...15 {
            code = (code + counts[len - 1]) << 1
            next[len] = code
        }
        fast = [UInt16](repeating: 0, count: 1 << Self.fastBits)
        for (i, l) in lengths.enumerated() where l > 0 {
            let len = Int(l)
            symbols[offsets[len]] = UInt16(i)
            offsets[len] += 1
            codes[i] = next[len]
            next[len] += 1
            guard len <= Self.fastBits else { continue }
            // The stream sends codes most-significant bit first into an LSB-first bit order,
            // so the table is indexed by the bit-reversed code.
            var reversed = 0
            for b in 0..<len where codes[i] & (1 << b) != 0 { reversed |= 1 << (len - 1 - b) }
            let entry = UInt16(i << 4 | len)
            var index = reversed
            while index < fast.count {
                fast[index] = entry
                index += 1 << len
            }
        }
    }
}

extension Inflate {
    struct Decoder {
        let input: [UInt8]
        var position: Int
        let limit: Int
        var bitBuffer: UInt64 = 0
        var bitCount = 0
        var output: [UInt8] = []

        init(input: [UInt8], start: Int, limit: Int) {
            self.input = input
            self.position = start
            self.limit = max(0, limit)
            // Reserve what the input could plausibly expand to, never more than the limit.
            output.reserveCapacity(min(self.limit, max(1024, input.count * 4)))
        }

        static let lengthBase: [Int] = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59,
                                        67, 83, 99, 115, 131, 163, 195, 227, 258]
        static let lengthExtra: [Int] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
        static let distanceBase: [Int] = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769,
                                          1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577]
        static let distanceExtra: [Int] = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10,
                                           11, 11, 12, 12, 13, 13]
        static let codeLengthOrder: [Int] = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]
        static let fixed: (literal: DeflateHuffman, distance: DeflateHuffman) = {
            var lengths = [UInt8](repeating: 8, count: 288)
            for i in 144..<256 { lengths[i] = 9 }
            for i in 256..<280 { lengths[i] = 7 }
            // Fixed lengths are a complete code, so building them cannot fail. Symbols 286, 287
            // and distances 30, 31 take part in the code (RFC 1951 §3.2.6) but are invalid in data.
            let literal = try! DeflateHuffman(lengths: lengths[...], name: "fixed literal/length")
            let distance = try! DeflateHuffman(lengths: [UInt8](repeating: 5, count: 32)[...], name: "fixed distance")
            return (literal, distance)
        }()

        /// Byte offset just after the last consumed bit, rounded up to a whole byte.
        func alignedBytePosition() -> Int { position - bitCount / 8 }

        @inline(__always)
        mutating func refill() {
            while bitCount <= 56, position < input.count {
                bitBuffer |= UInt64(input[position]) << UInt64(bitCount)
                position += 1
                bitCount += 8
            }
        }

        @inline(__always)
        mutating func bits(_ n: Int) throws(UniECGError) -> Int {
            if bitCount < n {
                refill()
                guard bitCount >= n else { throw .compression("deflate stream truncated: data ends inside a block") }
            }
            let value = Int(bitBuffer & ((1 << UInt64(n)) - 1))
            bitBuffer >>= UInt64(n)
            bitCount -= n
            return value
        }

        @inline(__always)
        mutating func decode(_ code: DeflateHuffman) throws(UniECGError) -> Int {
            if bitCount < 15 { refill() }
            let entry = Int(code.fast[Int(bitBuffer & UInt64((1 << DeflateHuffman.fastBits) - 1))])
            if entry != 0 {
                let len = entry & 15
                guard len <= bitCount else { throw .compression("deflate stream truncated: data ends inside a Huffman code") }
                bitBuffer >>= UInt64(len)
                bitCount -= len
                return entry >> 4
            }
            // Long codes: walk the canonical code one bit at a time (RFC 1951 §3.2.2 ordering).
            var codeValue = 0, first = 0, index = 0
            for len in 1...15 {
                guard bitCount > 0 else { throw .compression("deflate stream truncated: data ends inside a Huffman code") }
                codeValue |= Int(bitBuffer & 1)
                bitBuffer >>= 1
                bitCount -= 1
                let count = code.counts[len]
                if codeValue - first < count { return Int(code.symbols[index + codeValue - first]) }
                index += count
                first = (first + count) << 1
                codeValue <<= 1
            }
            throw .compression("deflate: invalid Huffman code (no symbol has this bit pattern)")
        }

        mutating func run() throws(UniECGError) {
            var final = false
            while !final {
                final = try bits(1) == 1
                switch try bits(2) {
                case 0: try stored()
                case 1: try compressed(Self.fixed.literal, Self.fixed.distance)
                case 2:
                    let (literal, distance) = try dynamicCodes()
                    try compressed(literal, distance)
                default: throw .compression("deflate: invalid block type 3 (reserved)")
                }
            }
        }

        mutating func stored() throws(UniECGError) {
            _ = try bits(bitCount % 8)
            let length = try bits(16), complement = try bits(16)
            guard length ^ complement == 0xFFFF else {
                throw .compression("deflate: stored block length \(length) does not match its complement \(complement)")
            }
            guard output.count + length <= limit else { throw overLimit() }
            var remaining = length
            // Whole bytes may still sit in the bit buffer after the header.
            while remaining > 0, bitCount >= 8 {
                output.append(UInt8(truncatingIfNeeded: bitBuffer))
                bitBuffer >>= 8
                bitCount -= 8
                remaining -= 1
            }
            guard position + remaining <= input.count else { throw .compression("deflate stream truncated inside a stored block") }
            output.append(contentsOf: input[position..<position + remaining])
            position += remaining
        }

        func overLimit() -> UniECGError {
            .limit("deflate output exceeds the limit of \(limit) bytes")
        }

        mutating func dynamicCodes() throws(UniECGError) -> (DeflateHuffman, DeflateHuffman) {
            let literalCount = try bits(5) + 257, distanceCount = try bits(5) + 1, lengthCodeCount = try bits(4) + 4
            guard literalCount <= 286 else { throw .compression("deflate: \(literalCount) literal/length codes (at most 286)") }
            guard distanceCount <= 30 else { throw .compression("deflate: \(distanceCount) distance codes (at most 30)") }
            var lengthLengths = [UInt8](repeating: 0, count: 19)
            for i in 0..<lengthCodeCount { lengthLengths[Self.codeLengthOrder[i]] = UInt8(try bits(3)) }
            let lengthCode = try DeflateHuffman(lengths: lengthLengths[...], name: "code-length")
            var lengths = [UInt8](repeating: 0, count: literalCount + distanceCount)
            var i = 0
            while i < lengths.count {
                let symbol = try decode(lengthCode)
                if symbol < 16 {
                    lengths[i] = UInt8(symbol)
                    i += 1
                    continue
                }
                let value: UInt8, repeats: Int
                switch symbol {
                case 16:
                    guard i > 0 else { throw .compression("deflate: code length repeat (16) with no previous length") }
                    value = lengths[i - 1]
                    repeats = 3 + (try bits(2))
                case 17:
                    value = 0
                    repeats = 3 + (try bits(3))
                default:
                    value = 0
                    repeats = 11 + (try bits(7))
                }
                guard i + repeats <= lengths.count else {
                    throw .compression("deflate: code length repeat runs past the \(lengths.count) lengths")
                }
                for _ in 0..<repeats { lengths[i] = value; i += 1 }
            }
            guard lengths[256] != 0 else { throw .compression("deflate: dynamic block has no end-of-block code") }
            return (try DeflateHuffman(lengths: lengths[0..<literalCount], name: "literal/length"),
                    try DeflateHuffman(lengths: lengths[literalCount...], name: "distance"))
        }

        mutating func compressed(_ literal: DeflateHuffman, _ distance: DeflateHuffman) throws(UniECGError) {
            while true {
                let symbol = try decode(literal)
                if symbol < 256 {
                    guard output.count < limit else { throw overLimit() }
                    output.append(UInt8(symbol))
                    continue
                }
                if symbol == 256 { return }
                guard symbol <= 285 else { throw .compression("deflate: invalid literal/length symbol \(symbol)") }
                let li = symbol - 257
                let length = Self.lengthBase[li] + (try bits(Self.lengthExtra[li]))
                let ds = try decode(distance)
                guard ds < 30 else { throw .compression("deflate: invalid distance symbol \(ds)") }
                let back = Self.distanceBase[ds] + (try bits(Self.distanceExtra[ds]))
                guard back <= output.count else {
                    throw .compression("deflate: distance \(back) reaches before the start of the output (\(output.count) bytes)")
                }
                guard output.count + length <= limit else { throw overLimit() }
                var from = output.count - back
                // Byte by byte, because a match may overlap the bytes it is producing.
                for _ in 0..<length {
                    output.append(output[from])
                    from += 1
                }
            }
        }
    }
}
