import Foundation

/// Baseline and extended sequential Huffman JPEG (ITU-T T.81 SOF0/SOF1, 8-bit) to RGB: one
/// or three components, any sampling factors, restart intervals, interleaved or one scan per
/// component. Of the APPn segments only two are read: the EXIF orientation (APP1), so a phone
/// photo comes out upright as viewers show it, and Adobe APP14 to tell RGB from YCbCr; a damaged
/// EXIF block is ignored rather than refused. Chroma is upsampled with centred
/// linear interpolation where the ratio is 2 (libjpeg's default "fancy" triangle filter) and
/// replicated for other whole ratios, as libjpeg does, so results stay close to what Pillow and
/// browsers show.
public enum JPEG {
    /// `upright: false` keeps the stored pixel order even when EXIF says the camera was turned.
    public static func decode(_ bytes: [UInt8], upright: Bool = true) throws(UniECGError) -> RGBImage {
        var decoder = JPEGDecoder(bytes: bytes)
        let image = try decoder.run()
        return upright ? image.oriented(exif: decoder.orientation) : image
    }

    /// The orientation tag (0x0112) of an APP1 "Exif" segment body, 1 when absent or unreadable.
    static func exifOrientation(_ b: ArraySlice<UInt8>) -> Int {
        let s = Array(b)
        guard s.count >= 14, Array(s[0..<6]) == Array("Exif".utf8) + [0, 0] else { return 1 }
        let tiff = 6
        let little: Bool
        switch (s[tiff], s[tiff + 1]) {
        case (0x49, 0x49): little = true
        case (0x4D, 0x4D): little = false
        default: return 1
        }
        func u16(_ i: Int) -> Int? {
            guard i >= 0, i + 2 <= s.count else { return nil }
            return little ? Int(s[i]) | Int(s[i + 1]) << 8 : Int(s[i]) << 8 | Int(s[i + 1])
        }
        func u32(_ i: Int) -> Int? {
            guard let lo = u16(little ? i : i + 2), let hi = u16(little ? i + 2 : i) else { return nil }
            return hi << 16 | lo
        }
        guard u16(tiff + 2) == 42, let ifd = u32(tiff + 4), ifd < s.count, let entries = u16(tiff + ifd) else { return 1 }
        for e in 0..<entries {
            let entry = tiff + ifd + 2 + 12 * e
            guard let tag = u16(entry) else { return 1 }
            // Type 3 is SHORT; one value sits left-aligned in the 4-byte value field.
            if tag == 0x0112, u16(entry + 2) == 3, let value = u16(entry + 8), (1...8).contains(value) { return value }
        }
        return 1
    }

    /// Position k in zig-zag order -> index in the row-major 8x8 block (T.81 figure A.6).
    static let zigzag: [Int] = [0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34,
                                27, 20, 13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
                                58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63]

    /// basis[x * 8 + u] = C(u)/2 * cos((2x + 1) u pi / 16), the 1-D inverse DCT of T.81 A.3.3.
    static let basis: [Float] = (0..<64).map { (i: Int) -> Float in
        let x = Double(i / 8), u = Double(i % 8)
        let c: Double = u == 0 ? 1 / 2.0.squareRoot() : 1
        let angle: Double = (2 * x + 1) * u * Double.pi / 16
        return Float(c / 2 * cos(angle))
    }
}

struct JPEGDecoder {
    struct Component {
        let id: UInt8
        let h: Int, v: Int
        let quantTable: Int
        /// Size of the component's own (possibly subsampled) image.
        let width: Int, height: Int
        /// Blocks per line and per column, padded to whole MCUs.
        let blocksPerLine: Int, blocksPerColumn: Int
        var plane: [UInt8]
        var decoded = false
        var stride: Int { blocksPerLine * 8 }
    }

    let bytes: [UInt8]
    var position = 2
    var quant: [[Float]?] = [nil, nil, nil, nil]  // in zig-zag order
    var dcTables: [JPEGHuffman?] = [nil, nil, nil, nil]
    var acTables: [JPEGHuffman?] = [nil, nil, nil, nil]
    var restartInterval = 0
    var adobeTransform: Int?
    var width = 0, height = 0
    var hmax = 1, vmax = 1
    var mcusX = 0, mcusY = 0
    var components: [Component] = []
    var frameSeen = false
    var orientation = 1

    init(bytes: [UInt8]) { self.bytes = bytes }

    mutating func run() throws(UniECGError) -> RGBImage {
        guard bytes.starts(with: [0xFF, 0xD8]) else { throw .format("not a JPEG file (no SOI marker)") }
        markers: while true {
            guard position < bytes.count else {
                if frameSeen, components.allSatisfy(\.decoded) { break markers }  // tolerate a missing EOI
                throw .format("JPEG truncated: the file ends before the image is complete")
            }
            guard bytes[position] == 0xFF else {
                throw .format("JPEG is corrupt: expected a marker at byte \(position), found \(bytes[position])")
            }
            while position < bytes.count, bytes[position] == 0xFF { position += 1 }  // fill bytes
            guard position < bytes.count else { continue }
            let marker = bytes[position]
            position += 1
            switch marker {
            case 0xD9: break markers
            case 0xD0...0xD7, 0x01: continue  // stray restart or TEM: no segment follows
            case 0xD8: throw .format("JPEG has a second SOI marker (corrupt or concatenated file)")
            default: break
            }
            let segment = try segmentBody(marker)
            switch marker {
            case 0xC0, 0xC1: try readFrame(segment)
            case 0xC2: throw .format("progressive JPEG (SOF2) is not supported, re-save it as baseline")
            case 0xC3, 0xC7, 0xCB, 0xCF: throw .format("lossless JPEG (SOF\(marker - 0xC0)) is not supported, re-save it as baseline")
            case 0xC5, 0xC6, 0xCD, 0xCE: throw .format("hierarchical JPEG (SOF\(marker - 0xC0)) is not supported, re-save it as baseline")
            case 0xC9, 0xCA: throw .format("arithmetic-coded JPEG (SOF\(marker - 0xC0)) is not supported, re-save it as baseline")
            case 0xC4: try readHuffmanTables(segment)
            case 0xDB: try readQuantTables(segment)
            case 0xDD:
                guard segment.count == 2 else { throw .format("JPEG DRI segment is \(segment.count) bytes, not 2") }
                restartInterval = Int(bytes[segment.lowerBound]) << 8 | Int(bytes[segment.lowerBound + 1])
            case 0xDA: try readScan(segment)
            case 0xE1 where orientation == 1:
                orientation = JPEG.exifOrientation(bytes[segment])
            case 0xEE:
                // Adobe APP14: "Adobe", version, two flag words, then the colour transform.
                if segment.count >= 12, Array(bytes[segment.lowerBound..<segment.lowerBound + 5]) == Array("Adobe".utf8) {
                    adobeTransform = Int(bytes[segment.lowerBound + 11])
                }
            default: break  // APPn, COM and anything else carrying a length
            }
        }
        guard frameSeen else { throw .format("JPEG has no frame header (SOF0/SOF1)") }
        for c in components where !c.decoded {
            throw .format("JPEG has no scan data for component \(c.id) (truncated file)")
        }
        return colourConvert()
    }

    /// The bytes after a marker's length field; `position` moves past the segment.
    mutating func segmentBody(_ marker: UInt8) throws(UniECGError) -> Range<Int> {
        guard position + 2 <= bytes.count else { throw .format("JPEG truncated: marker 0xFF\(hex(marker)) has no length") }
        let length = Int(bytes[position]) << 8 | Int(bytes[position + 1])
        guard length >= 2 else { throw .format("JPEG segment 0xFF\(hex(marker)) has length \(length) (at least 2)") }
        guard position + length <= bytes.count else {
            throw .format("JPEG truncated inside segment 0xFF\(hex(marker)) (\(length) bytes announced)")
        }
        defer { position += length }
        return position + 2..<position + length
    }

    func hex(_ b: UInt8) -> String { let s = String(b, radix: 16, uppercase: true); return s.count == 1 ? "0" + s : s }

    mutating func readFrame(_ s: Range<Int>) throws(UniECGError) {
        guard !frameSeen else { throw .format("JPEG has more than one frame header") }
        guard s.count >= 6 else { throw .format("JPEG SOF segment is too short") }
        let b = s.lowerBound
        guard bytes[b] == 8 else { throw .format("\(bytes[b])-bit JPEG is not supported (only 8-bit samples)") }
        height = Int(bytes[b + 1]) << 8 | Int(bytes[b + 2])
        width = Int(bytes[b + 3]) << 8 | Int(bytes[b + 4])
        let count = Int(bytes[b + 5])
        guard height != 0 else { throw .format("JPEG height 0 (set later by a DNL marker) is not supported") }
        try ImageLimits.check(width: width, height: height, what: "JPEG image")
        guard count == 1 || count == 3 else {
            throw .format("JPEG with \(count) components is not supported (only greyscale or 3-component colour; CMYK is not)")
        }
        guard s.count == 6 + 3 * count else { throw .format("JPEG SOF segment length does not match \(count) components") }
        var factors: [(id: UInt8, h: Int, v: Int, tq: Int)] = []
        for i in 0..<count {
            let p = b + 6 + 3 * i
            let h = Int(bytes[p + 1] >> 4), v = Int(bytes[p + 1] & 15), tq = Int(bytes[p + 2])
            guard (1...4).contains(h), (1...4).contains(v) else { throw .format("JPEG component \(bytes[p]) has sampling factors \(h)x\(v) (1 to 4 allowed)") }
            guard tq <= 3 else { throw .format("JPEG component \(bytes[p]) uses quantisation table \(tq) (0 to 3 exist)") }
            guard !factors.contains(where: { $0.id == bytes[p] }) else { throw .format("JPEG component id \(bytes[p]) appears twice") }
            factors.append((bytes[p], h, v, tq))
        }
        hmax = factors.map(\.h).max()!
        vmax = factors.map(\.v).max()!
        mcusX = (width + 8 * hmax - 1) / (8 * hmax)
        mcusY = (height + 8 * vmax - 1) / (8 * vmax)
        components = factors.map { f in
            let perLine = mcusX * f.h, perColumn = mcusY * f.v
            return Component(id: f.id, h: f.h, v: f.v, quantTable: f.tq,
                             width: (width * f.h + hmax - 1) / hmax, height: (height * f.v + vmax - 1) / vmax,
                             blocksPerLine: perLine, blocksPerColumn: perColumn,
                             plane: [UInt8](repeating: 0, count: perLine * perColumn * 64))
        }
        frameSeen = true
    }

    mutating func readHuffmanTables(_ s: Range<Int>) throws(UniECGError) {
        var p = s.lowerBound
        while p < s.upperBound {
            guard p + 17 <= s.upperBound else { throw .format("JPEG DHT segment is truncated") }
            let tc = Int(bytes[p] >> 4), th = Int(bytes[p] & 15)
            guard tc <= 1, th <= 3 else { throw .format("JPEG DHT names table class \(tc), slot \(th) (class 0-1, slot 0-3)") }
            let counts = (0..<16).map { Int(bytes[p + 1 + $0]) }
            let total = counts.reduce(0, +)
            guard total <= 256, p + 17 + total <= s.upperBound else { throw .format("JPEG DHT table holds \(total) codes, more than the segment") }
            let table = try JPEGHuffman(counts: counts, values: Array(bytes[p + 17..<p + 17 + total]))
            if tc == 0 { dcTables[th] = table } else { acTables[th] = table }
            p += 17 + total
        }
    }

    mutating func readQuantTables(_ s: Range<Int>) throws(UniECGError) {
        var p = s.lowerBound
        while p < s.upperBound {
            let precision = Int(bytes[p] >> 4), tq = Int(bytes[p] & 15)
            guard precision <= 1, tq <= 3 else { throw .format("JPEG DQT names precision \(precision), slot \(tq)") }
            let size = precision == 0 ? 64 : 128
            guard p + 1 + size <= s.upperBound else { throw .format("JPEG DQT segment is truncated") }
            quant[tq] = (0..<64).map { k in
                Float(precision == 0 ? Int(bytes[p + 1 + k]) : Int(bytes[p + 1 + 2 * k]) << 8 | Int(bytes[p + 2 + 2 * k]))
            }
            p += 1 + size
        }
    }

    mutating func readScan(_ s: Range<Int>) throws(UniECGError) {
        guard frameSeen else { throw .format("JPEG scan (SOS) comes before the frame header") }
        let b = s.lowerBound
        guard s.count >= 1 else { throw .format("JPEG SOS segment is empty") }
        let n = Int(bytes[b])
        guard (1...4).contains(n), s.count == 4 + 2 * n else { throw .format("JPEG SOS segment is malformed") }
        var members: [(index: Int, dc: JPEGHuffman, ac: JPEGHuffman, quant: [Float])] = []
        for i in 0..<n {
            let id = bytes[b + 1 + 2 * i], tables = bytes[b + 2 + 2 * i]
            guard let c = components.firstIndex(where: { $0.id == id }) else { throw .format("JPEG scan names unknown component \(id)") }
            let td = Int(tables >> 4), ta = Int(tables & 15)
            guard td <= 3, let dc = dcTables[td] else { throw .format("JPEG scan uses DC Huffman table \(td), which is not defined") }
            guard ta <= 3, let ac = acTables[ta] else { throw .format("JPEG scan uses AC Huffman table \(ta), which is not defined") }
            guard let q = quant[components[c].quantTable] else {
                throw .format("JPEG component \(id) uses quantisation table \(components[c].quantTable), which is not defined")
            }
            members.append((c, dc, ac, q))
        }
        let ss = bytes[b + 1 + 2 * n], se = bytes[b + 2 + 2 * n], approximation = bytes[b + 3 + 2 * n]
        guard ss == 0, se == 63, approximation == 0 else {
            throw .format("JPEG sequential scan has spectral selection \(ss)...\(se) / approximation \(approximation) (expected 0...63 / 0)")
        }
        var reader = JPEGBits(bytes: bytes, position: position)
        var predictions = [Int](repeating: 0, count: members.count)
        var coefficients = [Float](repeating: 0, count: 64)
        var workspace = [Float](repeating: 0, count: 64)
        // One component alone is coded block by block over its own size; several are interleaved in MCUs.
        let single = members.count == 1 ? components[members[0].index] : nil
        let unitsX = single.map { ($0.width + 7) / 8 } ?? mcusX
        let unitsY = single.map { ($0.height + 7) / 8 } ?? mcusY
        let total = unitsX * unitsY
        var restarts = 0
        for unit in 0..<total {
            if restartInterval > 0, unit > 0, unit % restartInterval == 0 {
                try reader.restart(expected: restarts % 8)
                restarts += 1
                for i in predictions.indices { predictions[i] = 0 }
            }
            let ux = unit % unitsX, uy = unit / unitsX
            for (m, member) in members.enumerated() {
                let c = member.index
                let h = single == nil ? components[c].h : 1, v = single == nil ? components[c].v : 1
                for by in 0..<v {
                    for bx in 0..<h {
                        try decodeBlock(&reader, member.dc, member.ac, member.quant, &predictions[m], &coefficients)
                        let stride = components[c].stride
                        let origin = ((uy * v + by) * 8) * stride + (ux * h + bx) * 8
                        coefficients.withUnsafeBufferPointer { coef in
                            workspace.withUnsafeMutableBufferPointer { work in
                                components[c].plane.withUnsafeMutableBufferPointer { plane in
                                    Self.inverseDCT(coef, plane, origin, stride, work)
                                }
                            }
                        }
                    }
                }
            }
        }
        for member in members { components[member.index].decoded = true }
        // Skip what is left of the scan (padding bits) up to the next marker.
        position = reader.position
        while position + 1 < bytes.count, !(bytes[position] == 0xFF && bytes[position + 1] != 0 && !(0xD0...0xD7).contains(bytes[position + 1])) {
            position += 1
        }
        if position + 1 >= bytes.count { position = bytes.count }
    }

    @inline(__always)
    func decodeBlock(_ reader: inout JPEGBits, _ dc: JPEGHuffman, _ ac: JPEGHuffman, _ q: [Float],
                     _ prediction: inout Int, _ out: inout [Float]) throws(UniECGError) {
        for i in 0..<64 { out[i] = 0 }
        let category = try reader.decode(dc)
        guard category <= 11 else { throw .format("JPEG DC difference category \(category) is out of range (corrupt data)") }
        prediction += try reader.signed(category)
        out[0] = Float(prediction) * q[0]
        var k = 1
        while k < 64 {
            let rs = try reader.decode(ac)
            let run = rs >> 4, size = rs & 15
            if size == 0 {
                if run != 15 { break }  // end of block
                k += 16
                continue
            }
            k += run
            guard k < 64 else { throw .format("JPEG block has a coefficient beyond position 63 (corrupt data)") }
            out[JPEG.zigzag[k]] = Float(try reader.signed(size)) * q[k]
            k += 1
        }
    }

    /// Separable float 2-D inverse DCT of T.81 A.3.3, level-shifted and clamped into the plane.
    /// Outputs x and 7 - x share their terms (the cosines of even frequencies are symmetric,
    /// odd ones antisymmetric), so each 1-D pass computes an even and an odd half-sum.
    static func inverseDCT(_ coef: UnsafeBufferPointer<Float>, _ plane: UnsafeMutableBufferPointer<UInt8>, _ origin: Int,
                           _ stride: Int, _ r: UnsafeMutableBufferPointer<Float>) {
        // Quantisation leaves the high-frequency rows mostly zero; they add nothing to either pass.
        var rows = 0
        for i in Swift.stride(from: 63, through: 1, by: -1) where coef[i] != 0 { rows = i / 8 + 1; break }
        if rows == 0 {  // a flat block: every sample is DC / 8
            let value = clamp(coef[0] / 8 + 128)
            for y in 0..<8 { for x in 0..<8 { plane[origin + y * stride + x] = value } }
            return
        }
        JPEG.basis.withUnsafeBufferPointer { t in
            for v in 0..<rows {
                let c = v * 8
                for x in 0..<4 {
                    let b = x * 8
                    let even = t[b] * coef[c] + t[b + 2] * coef[c + 2] + t[b + 4] * coef[c + 4] + t[b + 6] * coef[c + 6]
                    let odd = t[b + 1] * coef[c + 1] + t[b + 3] * coef[c + 3] + t[b + 5] * coef[c + 5] + t[b + 7] * coef[c + 7]
                    r[c + x] = even + odd
                    r[c + 7 - x] = even - odd
                }
            }
            for x in 0..<8 {
                for y in 0..<4 {
                    let b = y * 8
                    var even: Float = 128, odd: Float = 0
                    var v = 0
                    while v < rows {
                        even += t[b + v] * r[v * 8 + x]
                        if v + 1 < rows { odd += t[b + v + 1] * r[(v + 1) * 8 + x] }
                        v += 2
                    }
                    plane[origin + y * stride + x] = clamp(even + odd)
                    plane[origin + (7 - y) * stride + x] = clamp(even - odd)
                }
            }
        }
    }

    /// Upsamples each component to the full image and converts to RGB.
    func colourConvert() -> RGBImage {
        let planes = components.map { upsample($0) }
        let count = width * height
        var pixels = [UInt8](repeating: 0, count: count * 3)
        let rgb = components.count == 3 && (adobeTransform == 0 || (adobeTransform == nil && components.map(\.id) == [82, 71, 66]))
        // YCbCr as JFIF defines it (full range, ITU-R BT.601 coefficients), in 16.16 fixed point
        // with the rounding half folded into the tables.
        func table(_ k: Double, rounding: Bool) -> [Int] {
            (0..<256).map { Int((k * Double($0 - 128) * 65536).rounded()) + (rounding ? 32768 : 0) }
        }
        let crR = table(1.402, rounding: true), cbB = table(1.772, rounding: true)
        let cbG = table(-0.344136, rounding: true), crG = table(-0.714136, rounding: false)
        pixels.withUnsafeMutableBufferPointer { out in
            if components.count == 1 {
                planes[0].withUnsafeBufferPointer { g in
                    for i in 0..<count { out[3 * i] = g[i]; out[3 * i + 1] = g[i]; out[3 * i + 2] = g[i] }
                }
                return
            }
            planes[0].withUnsafeBufferPointer { p0 in
                planes[1].withUnsafeBufferPointer { p1 in
                    planes[2].withUnsafeBufferPointer { p2 in
                        if rgb {
                            for i in 0..<count { out[3 * i] = p0[i]; out[3 * i + 1] = p1[i]; out[3 * i + 2] = p2[i] }
                            return
                        }
                        crR.withUnsafeBufferPointer { crR in
                        cbB.withUnsafeBufferPointer { cbB in
                        cbG.withUnsafeBufferPointer { cbG in
                        crG.withUnsafeBufferPointer { crG in
                            for i in 0..<count {
                                let y = Int(p0[i]) << 16, cb = Int(p1[i]), cr = Int(p2[i])
                                out[3 * i] = UInt8(clamping: (y + crR[cr]) >> 16)
                                out[3 * i + 1] = UInt8(clamping: (y + cbG[cb] + crG[cr]) >> 16)
                                out[3 * i + 2] = UInt8(clamping: (y + cbB[cb]) >> 16)
                            }
                        }
                        }
                        }
                        }
                    }
                }
            }
        }
        return RGBImage(unchecked: width, height, pixels)
    }

    /// Rounds to nearest and clamps to 0...255 (truncation equals flooring once v + 0.5 >= 0,
    /// and anything below that clamps to 0 anyway).
    @inline(__always)
    static func clamp(_ v: Float) -> UInt8 { UInt8(clamping: Int(max(-1, min(256, v + 0.5)))) }

    /// A component at full image size (width x height, no padding).
    func upsample(_ c: Component) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: width * height)
        let (width, height, stride) = (self.width, self.height, c.stride)
        if c.h == hmax, c.v == vmax {
            out.withUnsafeMutableBufferPointer { o in
                c.plane.withUnsafeBufferPointer { p in
                    for y in 0..<height { for x in 0..<width { o[y * width + x] = p[y * stride + x] } }
                }
            }
            return out
        }
        // libjpeg (and so Pillow and most viewers) interpolates only 2x factors and replicates
        // samples for other whole ratios such as 4:1:1; doing the same keeps results comparable.
        if hmax % c.h == 0, vmax % c.v == 0 {
            let rx = hmax / c.h, ry = vmax / c.v
            if ![(2, 1), (1, 2), (2, 2)].contains(where: { $0 == (rx, ry) }) {
                out.withUnsafeMutableBufferPointer { o in
                    c.plane.withUnsafeBufferPointer { p in
                        for y in 0..<height { for x in 0..<width { o[y * width + x] = p[(y / ry) * stride + x / rx] } }
                    }
                }
                return out
            }
        }
        // Centred sampling positions: output x sits at source (x + 0.5) * h / hmax - 0.5. Weights
        // are in 1/256 units, exact for the 1/4 and 3/4 of 2x factors.
        func taps(_ n: Int, _ factor: Int, _ maxFactor: Int, _ size: Int) -> [Int] {
            var packed: [Int] = []  // per output: first source, second source, weight of the second
            for x in 0..<n {
                let s = max(0, min(Double(size - 1), (Double(x) + 0.5) * Double(factor) / Double(maxFactor) - 0.5))
                let i0 = Int(s)
                packed += [i0, min(i0 + 1, size - 1), Int(((s - Double(i0)) * 256).rounded())]
            }
            return packed
        }
        let xs = taps(width, c.h, hmax, c.width), ys = taps(height, c.v, vmax, c.height)
        var row = [Int](repeating: 0, count: c.width)
        out.withUnsafeMutableBufferPointer { o in
            c.plane.withUnsafeBufferPointer { p in
                row.withUnsafeMutableBufferPointer { r in
                    xs.withUnsafeBufferPointer { xs in
                        for y in 0..<height {
                            let a = ys[3 * y] * stride, b = ys[3 * y + 1] * stride, wy = ys[3 * y + 2]
                            for x in 0..<c.width { r[x] = Int(p[a + x]) * (256 - wy) + Int(p[b + x]) * wy }
                            for x in 0..<width {
                                let wx = xs[3 * x + 2]
                                o[y * width + x] = UInt8(clamping: (r[xs[3 * x]] * (256 - wx) + r[xs[3 * x + 1]] * wx + 32768) >> 16)
                            }
                        }
                    }
                }
            }
        }
        return out
    }
}
