/// PNG decoding (ISO/IEC 15948, the W3C PNG specification) to 8-bit RGB: every colour type and
/// bit depth, all five filters and Adam7 interlacing. Transparency is composited onto white
/// paper, since an ECG printout has no alpha; 16-bit samples keep their high byte.
public enum PNG {
    static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    struct Header {
        var width = 0, height = 0, depth = 0, colorType = 0
        var interlaced = false

        var channels: Int { [0: 1, 2: 3, 3: 1, 4: 2, 6: 4][colorType]! }

        func rowBytes(_ pixels: Int) -> Int { (pixels * channels * depth + 7) / 8 }

        /// Sub-images in transmission order: one for a plain image, seven Adam7 passes otherwise,
        /// each as (first x, first y, x step, y step, width, height); empty passes are skipped.
        var passes: [(x0: Int, y0: Int, dx: Int, dy: Int, width: Int, height: Int)] {
            guard interlaced else { return [(0, 0, 1, 1, width, height)] }
            let adam7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
            return adam7.compactMap { (x0, y0, dx, dy) in
                let w = (width - x0 + dx - 1) / dx, h = (height - y0 + dy - 1) / dy
                return w > 0 && h > 0 ? (x0, y0, dx, dy, w, h) : nil
            }
        }
    }

    public static func decode(_ bytes: [UInt8]) throws(UniECGError) -> RGBImage {
        guard bytes.starts(with: signature) else { throw .format("not a PNG file (bad signature)") }
        var header: Header?
        var palette: [UInt8] = []  // RGB triples
        var paletteAlpha: [UInt8] = []
        var key: [Int]?  // tRNS colour of a grey or truecolour image, in sample units
        var data: [UInt8] = []
        var idatState = 0  // 0 none yet, 1 inside the IDAT run, 2 after it
        var position = 8
        chunks: while true {
            guard position + 8 <= bytes.count else { throw .format("PNG truncated: the file ends before the IEND chunk") }
            let length = Int(be32(bytes, position))
            let typeBytes = Array(bytes[position + 4..<position + 8])
            guard typeBytes.allSatisfy({ (65...90).contains($0) || (97...122).contains($0) }) else {
                throw .format("PNG chunk at byte \(position) has an invalid type (corrupt file)")
            }
            let type = String(decoding: typeBytes, as: UTF8.self)
            guard length <= 0x7FFF_FFFF, position + 12 + length <= bytes.count else {
                throw .format("PNG truncated inside chunk '\(type)' (\(length) bytes announced)")
            }
            let body = position + 8..<position + 8 + length
            let stored = be32(bytes, body.upperBound)
            let computed = crc32(bytes[position + 4..<body.upperBound])
            guard stored == computed else {
                throw .checksum("PNG chunk '\(type)' CRC mismatch: stored \(Inflate.hex8(stored)), data gives \(Inflate.hex8(computed))")
            }
            position = body.upperBound + 4
            if header == nil, type != "IHDR" { throw .format("PNG starts with chunk '\(type)' instead of IHDR") }
            if type != "IDAT", idatState == 1 { idatState = 2 }
            switch type {
            case "IHDR":
                guard header == nil else { throw .format("PNG has a second IHDR chunk") }
                header = try parseHeader(bytes[body])
            case "PLTE":
                guard length % 3 == 0, (3...768).contains(length) else {
                    throw .format("PNG PLTE chunk of \(length) bytes is not 1 to 256 RGB entries")
                }
                palette = Array(bytes[body])
            case "tRNS":
                switch header!.colorType {
                case 3:
                    guard length <= palette.count / 3 else {
                        throw .format("PNG tRNS has \(length) alpha values for \(palette.count / 3) palette entries")
                    }
                    paletteAlpha = Array(bytes[body])
                case 0:
                    guard length == 2 else { throw .format("PNG tRNS of a grey image must be 2 bytes, got \(length)") }
                    key = [Int(be16(bytes, body.lowerBound))]
                case 2:
                    guard length == 6 else { throw .format("PNG tRNS of an RGB image must be 6 bytes, got \(length)") }
                    key = (0..<3).map { Int(be16(bytes, body.lowerBound + 2 * $0)) }
                default: break  // images with an alpha channel may not carry tRNS; it is ignored
                }
            case "IDAT":
                guard idatState != 2 else { throw .format("PNG IDAT chunks are not consecutive") }
                idatState = 1
                data.append(contentsOf: bytes[body])
            case "IEND":
                break chunks
            default:
                // Bit 5 of the first letter clear (upper case) marks a chunk a decoder must understand.
                guard typeBytes[0] & 0x20 != 0 else { throw .format("PNG has an unknown critical chunk '\(type)'") }
            }
        }
        let h = header!
        guard idatState != 0 else { throw .format("PNG has no IDAT image data") }
        if h.colorType == 3, palette.isEmpty { throw .format("PNG palette image has no PLTE chunk") }
        let passes = h.passes
        let expected = passes.reduce(0) { $0 + $1.height * (1 + h.rowBytes($1.width)) }
        var raw: [UInt8]
        do { raw = try Inflate.zlib(data, limit: expected) } catch {
            if case .limit = error {
                throw .format("PNG image data decompresses to more than the \(expected) bytes a \(h.width)x\(h.height) image needs")
            }
            throw error
        }
        guard raw.count == expected else {
            throw .format("PNG image data decompresses to \(raw.count) bytes, a \(h.width)x\(h.height) image needs \(expected)")
        }
        var pixels = [UInt8](repeating: 0, count: h.width * h.height * 3)
        let converter = Converter(header: h, palette: palette, paletteAlpha: paletteAlpha, key: key)
        try raw.withUnsafeMutableBufferPointer { (rawBuffer) throws(UniECGError) in
            try pixels.withUnsafeMutableBufferPointer { (out) throws(UniECGError) in
                var offset = 0
                for pass in passes {
                    let rowBytes = h.rowBytes(pass.width)
                    let bpp = max(1, h.channels * h.depth / 8)
                    for row in 0..<pass.height {
                        let filter = rawBuffer[offset]
                        let current = offset + 1
                        let previous = row == 0 ? nil : current - rowBytes - 1
                        try unfilter(filter, rawBuffer, current, previous, rowBytes, bpp, row: pass.y0 + row * pass.dy)
                        try converter.convert(UnsafeBufferPointer(rebasing: rawBuffer[current..<current + rowBytes]),
                                              count: pass.width, into: out,
                                              at: (pass.y0 + row * pass.dy) * h.width + pass.x0, step: pass.dx)
                        offset = current + rowBytes
                    }
                }
            }
        }
        return RGBImage(unchecked: h.width, h.height, pixels)
    }

    static func parseHeader(_ body: ArraySlice<UInt8>) throws(UniECGError) -> Header {
        guard body.count == 13 else { throw .format("PNG IHDR is \(body.count) bytes, not 13") }
        let b = Array(body)
        var h = Header()
        h.width = Int(be32(b, 0))
        h.height = Int(be32(b, 4))
        h.depth = Int(b[8])
        h.colorType = Int(b[9])
        let allowed: [Int: [Int]] = [0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16]]
        guard let depths = allowed[h.colorType] else { throw .format("PNG colour type \(h.colorType) does not exist") }
        guard depths.contains(h.depth) else {
            throw .format("PNG bit depth \(h.depth) is not allowed for colour type \(h.colorType) (allowed: \(depths))")
        }
        guard b[10] == 0 else { throw .format("PNG compression method \(b[10]) is unknown") }
        guard b[11] == 0 else { throw .format("PNG filter method \(b[11]) is unknown") }
        guard b[12] <= 1 else { throw .format("PNG interlace method \(b[12]) is unknown") }
        h.interlaced = b[12] == 1
        try ImageLimits.check(width: h.width, height: h.height, what: "PNG image")
        return h
    }

    /// Reverses the row filter in place. `previous` is nil on a (sub-)image's first row, where
    /// the row above counts as zeros.
    @inline(__always)
    static func unfilter(_ filter: UInt8, _ p: UnsafeMutableBufferPointer<UInt8>, _ cur: Int, _ previous: Int?,
                         _ n: Int, _ bpp: Int, row: Int) throws(UniECGError) {
        switch filter {
        case 0: break
        case 1:  // Sub
            for i in bpp..<max(bpp, n) { p[cur + i] &+= p[cur + i - bpp] }
        case 2:  // Up
            guard let prev = previous else { break }
            for i in 0..<n { p[cur + i] &+= p[prev + i] }
        case 3:  // Average
            for i in 0..<n {
                let left = i >= bpp ? Int(p[cur + i - bpp]) : 0
                let up = previous.map { Int(p[$0 + i]) } ?? 0
                p[cur + i] &+= UInt8((left + up) >> 1)
            }
        case 4:  // Paeth
            for i in 0..<n {
                let a = i >= bpp ? Int(p[cur + i - bpp]) : 0
                let b = previous.map { Int(p[$0 + i]) } ?? 0
                let c = i >= bpp ? previous.map { Int(p[$0 + i - bpp]) } ?? 0 : 0
                let estimate = a + b - c
                let pa = abs(estimate - a), pb = abs(estimate - b), pc = abs(estimate - c)
                p[cur + i] &+= UInt8(pa <= pb && pa <= pc ? a : pb <= pc ? b : c)
            }
        default:
            throw .format("PNG row \(row) has unknown filter type \(filter)")
        }
    }

    /// Turns one unfiltered row of samples into RGB pixels.
    struct Converter {
        let header: Header
        let palette: [UInt8]
        let paletteAlpha: [UInt8]
        let key: [Int]?

        @inline(__always)
        func sample(_ row: UnsafeBufferPointer<UInt8>, _ index: Int) -> Int {
            switch header.depth {
            case 8: return Int(row[index])
            case 16: return Int(row[2 * index]) << 8 | Int(row[2 * index + 1])
            default:
                // Sub-byte samples are packed from the most significant bit.
                let bit = index * header.depth
                let shift = 8 - header.depth - bit % 8
                return (Int(row[bit / 8]) >> shift) & ((1 << header.depth) - 1)
            }
        }

        /// A sample scaled to 0...255.
        @inline(__always)
        func level(_ v: Int) -> Int {
            switch header.depth {
            case 16: return v >> 8
            case 8: return v
            default: return v * 255 / ((1 << header.depth) - 1)
            }
        }

        /// Alpha over white paper, rounded to nearest.
        @inline(__always)
        static func onWhite(_ c: Int, _ a: Int) -> UInt8 { UInt8((c * a + 255 * (255 - a) + 127) / 255) }

        func convert(_ row: UnsafeBufferPointer<UInt8>, count: Int, into out: UnsafeMutableBufferPointer<UInt8>,
                     at first: Int, step: Int) throws(UniECGError) {
            var o = first * 3
            let stride = step * 3
            // The common 8-bit layouts without a colour key skip the per-sample dispatch below.
            if header.depth == 8, key == nil, header.colorType != 3 {
                switch header.colorType {
                case 0:
                    for x in 0..<count { out[o] = row[x]; out[o + 1] = row[x]; out[o + 2] = row[x]; o += stride }
                case 2:
                    for x in 0..<count { out[o] = row[3 * x]; out[o + 1] = row[3 * x + 1]; out[o + 2] = row[3 * x + 2]; o += stride }
                case 6:
                    for x in 0..<count {
                        let a = Int(row[4 * x + 3])
                        for c in 0..<3 { out[o + c] = Self.onWhite(Int(row[4 * x + c]), a) }
                        o += stride
                    }
                default:
                    for x in 0..<count {
                        let v = Self.onWhite(Int(row[2 * x]), Int(row[2 * x + 1]))
                        out[o] = v; out[o + 1] = v; out[o + 2] = v
                        o += stride
                    }
                }
                return
            }
            for x in 0..<count {
                switch header.colorType {
                case 0:
                    let g = sample(row, x)
                    let v = key?[0] == g ? 255 : UInt8(level(g))
                    out[o] = v; out[o + 1] = v; out[o + 2] = v
                case 2:
                    let r = sample(row, 3 * x), g = sample(row, 3 * x + 1), b = sample(row, 3 * x + 2)
                    if let key, key[0] == r, key[1] == g, key[2] == b {
                        out[o] = 255; out[o + 1] = 255; out[o + 2] = 255
                    } else {
                        out[o] = UInt8(level(r)); out[o + 1] = UInt8(level(g)); out[o + 2] = UInt8(level(b))
                    }
                case 3:
                    let i = sample(row, x)
                    guard 3 * i < palette.count else {
                        throw .format("PNG pixel uses palette index \(i), the palette has \(palette.count / 3) entries")
                    }
                    let a = i < paletteAlpha.count ? Int(paletteAlpha[i]) : 255
                    for c in 0..<3 { out[o + c] = Self.onWhite(Int(palette[3 * i + c]), a) }
                case 4:
                    let v = Self.onWhite(level(sample(row, 2 * x)), level(sample(row, 2 * x + 1)))
                    out[o] = v; out[o + 1] = v; out[o + 2] = v
                default:
                    let a = level(sample(row, 4 * x + 3))
                    for c in 0..<3 { out[o + c] = Self.onWhite(level(sample(row, 4 * x + c)), a) }
                }
                o += stride
            }
        }
    }

    static func be32<C: Collection>(_ b: C, _ i: Int) -> UInt32 where C.Index == Int, C.Element == UInt8 {
        UInt32(b[i]) << 24 | UInt32(b[i + 1]) << 16 | UInt32(b[i + 2]) << 8 | UInt32(b[i + 3])
    }

    static func be16(_ b: [UInt8], _ i: Int) -> UInt16 { UInt16(b[i]) << 8 | UInt16(b[i + 1]) }

    static let crcTable: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    /// CRC-32 as PNG and zlib define it (reflected polynomial 0xEDB88320).
    public static func crc32(_ data: ArraySlice<UInt8>) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for byte in data { c = crcTable[Int((c ^ UInt32(byte)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }
}
