import Foundation
import Testing
@testable import UniECG

/// The pure-Swift image path: DEFLATE/zlib, PNG and JPEG decoding and CLIP-style preparation,
/// each against fixtures from Tools/reference/make_image_fixtures.py (Python zlib, Pillow).
@Suite struct ImageTests {
    static func bytes(_ relative: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: Fixtures.url("images/" + relative)))
    }

    static func entries(_ relative: String) throws -> [[String: Any]] {
        try #require(Fixtures.json("images/" + relative) as? [[String: Any]])
    }

    /// The error's message, or "" when the body did not throw.
    static func message(_ body: () throws -> Void) -> String {
        do { try body(); return "" } catch { return "\(error)" }
    }

    @Test("raw DEFLATE and zlib streams from Python's zlib decode exactly, at every level and strategy")
    func inflateMatchesZlib() throws {
        for entry in try Self.entries("deflate/valid.json") {
            let file = entry["file"] as! String
            let input = try Self.bytes("deflate/" + file), plain = try Self.bytes("deflate/" + (entry["plain"] as! String))
            let output = entry["wrapper"] as! String == "zlib"
                ? try Inflate.zlib(input, limit: plain.count) : try Inflate.raw(input, limit: plain.count)
            #expect(output == plain, "\(file)")
        }
    }

    @Test("every damaged DEFLATE or zlib stream is refused with a message naming the problem")
    func inflateRefusals() throws {
        let catalogue = try Self.entries("deflate/corrupt.json")
        #expect(catalogue.count >= 15)
        for entry in catalogue {
            let file = entry["file"] as! String, expect = entry["expect"] as! String
            let input = try Self.bytes("deflate/corrupt/" + file)
            let text = Self.message {
                _ = entry["wrapper"] as! String == "zlib" ? try Inflate.zlib(input, limit: 1 << 20) : try Inflate.raw(input, limit: 1 << 20)
            }
            #expect(text.contains(expect), "\(file): got '\(text)', expected it to mention '\(expect)'")
        }
    }

    @Test("output beyond the caller's limit is refused instead of allocated")
    func inflateLimit() throws {
        let input = try Self.bytes("deflate/level6.zlib"), plain = try Self.bytes("deflate/plain.bin")
        let text = Self.message { _ = try Inflate.zlib(input, limit: plain.count - 1) }
        #expect(text.contains("exceeds the limit of \(plain.count - 1) bytes"))
        // A stored block that would need more than the limit is refused before its bytes are copied.
        let stored = try Self.bytes("deflate/level0.deflate")
        #expect(Self.message { _ = try Inflate.raw(stored, limit: 100) }.contains("exceeds the limit of 100 bytes"))
    }

    @Test("Adler-32 and CRC-32 give the published check values")
    func checksums() {
        let text = Array("123456789".utf8)
        #expect(Inflate.adler32(text) == 0x091E_01DE)
        #expect(PNG.crc32(text[...]) == 0xCBF4_3926)
        #expect(Inflate.adler32([]) == 1)
    }

    static func compare(_ image: RGBImage, _ entry: [String: Any], directory: String) throws -> (mean: Double, max: Int) {
        let reference = try bytes(directory + (entry["rgb"] as! String))
        #expect(image.width == entry["width"] as! Int && image.height == entry["height"] as! Int, "\(entry["file"]!)")
        try #require(image.pixels.count == reference.count)
        var total = 0, worst = 0
        for (a, b) in zip(image.pixels, reference) {
            let d = abs(Int(a) - Int(b))
            total += d
            worst = max(worst, d)
        }
        return (Double(total) / Double(reference.count), worst)
    }

    @Test("PNGs of every colour type, bit depth, filter and Adam7 decode exactly as Pillow decodes them")
    func pngMatchesPillow() throws {
        let manifest = try Self.entries("png/valid.json")
        #expect(manifest.count >= 25)
        for entry in manifest {
            let image = try PNG.decode(try Self.bytes("png/" + (entry["file"] as! String)))
            let diff = try Self.compare(image, entry, directory: "png/")
            #expect(diff.max == 0, "\(entry["file"]!): max difference \(diff.max)")
        }
    }

    @Test("every damaged PNG is refused with a message naming the problem")
    func pngRefusals() throws {
        for entry in try Self.entries("png/corrupt.json") {
            let file = entry["file"] as! String, expect = entry["expect"] as! String
            let input = try Self.bytes("png/corrupt/" + file)
            let text = Self.message { _ = try PNG.decode(input) }
            #expect(text.contains(expect), "\(file): got '\(text)', expected it to mention '\(expect)'")
        }
    }

    /// Bars on the mean and max absolute difference from Pillow (libjpeg-turbo, islow IDCT, fancy
    /// upsampling), in 8-bit levels. Measured over the 26 fixtures: mean 0.014...0.18, max 1...3
    /// (float IDCT and rounding of the chroma interpolation differ); the bars leave a little room.
    static let jpegMeanBar = 0.5, jpegMaxBar = 4

    @Test("baseline JPEGs (4:4:4, 4:2:2, 4:2:0, 4:4:0, 4:1:1, 4:1:0, grey, odd sizes, restarts, one scan per component, EXIF, Adobe RGB) match Pillow within the IDCT tolerance")
    func jpegMatchesPillow() throws {
        let manifest = try Self.entries("jpeg/valid.json")
        #expect(manifest.count >= 26)
        for entry in manifest {
            let image = try JPEG.decode(try Self.bytes("jpeg/" + (entry["file"] as! String)))
            let diff = try Self.compare(image, entry, directory: "jpeg/")
            #expect(diff.mean < Self.jpegMeanBar && diff.max <= Self.jpegMaxBar,
                    "\(entry["file"]!): mean \(diff.mean), max \(diff.max)")
        }
    }

    @Test("EXIF orientation turns photos upright (all eight values, either byte order); upright: false keeps the stored order")
    func jpegOrientation() throws {
        let manifest = try Self.entries("jpeg/valid.json").filter { ($0["file"] as! String).hasPrefix("orientation") }
        #expect(manifest.count == 8)
        let stored = try JPEG.decode(try Self.bytes("jpeg/orientation6.jpg"), upright: false)
        #expect(stored.width == 37 && stored.height == 23)
        for entry in manifest {
            let bytes = try Self.bytes("jpeg/" + (entry["file"] as! String))
            let upright = try JPEG.decode(bytes)
            #expect(upright == (try JPEG.decode(bytes, upright: false)).oriented(exif: try Self.orientation(of: entry)))
            let diff = try Self.compare(upright, entry, directory: "jpeg/")
            #expect(diff.mean < Self.jpegMeanBar && diff.max <= Self.jpegMaxBar, "\(entry["file"]!): mean \(diff.mean), max \(diff.max)")
        }
    }

    static func orientation(of entry: [String: Any]) throws -> Int {
        let name = (entry["file"] as! String).dropFirst("orientation".count)
        return try #require(Int(String(name.prefix(1))))
    }

    @Test("every damaged or unsupported JPEG is refused with a message naming the problem")
    func jpegRefusals() throws {
        for entry in try Self.entries("jpeg/corrupt.json") {
            let file = entry["file"] as! String, expect = entry["expect"] as! String
            let input = try Self.bytes("jpeg/corrupt/" + file)
            let text = Self.message { _ = try JPEG.decode(input) }
            #expect(text.contains(expect), "\(file): got '\(text)', expected it to mention '\(expect)'")
        }
    }

    @Test("files are told apart by content; other formats are named in the refusal")
    func sniffing() throws {
        let png = try ImageFile.decode(try Self.bytes("png/rgb8.png"))
        #expect(png == (try PNG.decode(try Self.bytes("png/rgb8.png"))))
        let jpeg = try ImageFile.decode(try Self.bytes("jpeg/gray.jpg"))
        #expect(jpeg.width == 96 && jpeg.height == 64)
        #expect(Self.message { _ = try ImageFile.decode(Array("GIF89a....".utf8)) }.contains("it is a GIF"))
        #expect(Self.message { _ = try ImageFile.decode(Array("I,II\n0.1,0.2\n".utf8)) }.contains("not a PNG or JPEG image"))
        #expect(Self.message { _ = try ImageFile.decode([]) }.contains("empty"))
        #expect(Self.message { _ = try ImageFile.read("/nonexistent/ecg.png") }.contains("cannot read image"))
    }

    @Test("LLaVA pad-and-resize preparation matches Pillow's bicubic resize and the CLIP normalisation")
    func preparationMatchesReference() throws {
        for entry in try Self.entries("prep/cases.json") {
            let size = entry["size"] as! Int
            let image = try PNG.decode(try Self.bytes("prep/" + (entry["image"] as! String)))
            let preparation = ImagePreparation(size: size)
            let resized = ImagePreparation.resize(preparation.padToSquare(image), width: size, height: size)
            let reference = try Self.bytes("prep/" + (entry["resized"] as! String))
            let levels = zip(resized.pixels, reference).map { abs(Int($0) - Int($1)) }
            // Same kernel, same 22-bit fixed-point weights and rounding: identical bytes.
            #expect(levels.max()! == 0, "\(entry["image"]!): resize differs from Pillow by \(levels.max()!) levels")
            let prepared = try preparation.prepare(image)
            let expected = try NPY.readFloat32(Data(contentsOf: Fixtures.url("images/prep/" + (entry["expected"] as! String))))
            #expect(expected.shape == [3, size, size])
            let worst = zip(prepared.values, expected.values).map { abs($0 - $1) }.max()!
            // Only float rounding is left (measured 2.4e-7).
            #expect(worst <= 1e-5, "\(entry["image"]!): max difference \(worst)")
            #expect(prepared.warnings.isEmpty, "the ECG-paper picture should not raise a warning")
        }
    }

    @Test("padding fills with the mean colour, which normalises to about zero")
    func paddingIsNeutral() throws {
        let wide = try RGBImage(width: 100, height: 64, pixels: [UInt8](repeating: 0, count: 100 * 64 * 3))
        let prepared = try ImagePreparation(size: 100).prepare(wide)
        // Rows 0...17 are padding (the 64 rows sit at 18...81), all channels.
        for c in 0..<3 {
            let corner = prepared.values[c * 100 * 100]
            #expect(abs(corner) < 0.02, "channel \(c) padding normalises to \(corner)")
            let inside = prepared.values[c * 100 * 100 + 50 * 100 + 50]
            #expect(abs(inside - (0 - ImagePreparation.clipMean[c]) / ImagePreparation.clipStd[c]) < 1e-5)
        }
    }

    @Test("images too small for an ECG and bad settings are refused; non-ECG pictures only warn")
    func preparationRefusalsAndWarnings() throws {
        let small = try JPEG.decode(try Self.bytes("jpeg/odd_420.jpg"))
        #expect(Self.message { _ = try ImagePreparation().prepare(small) }.contains("too small for an ECG"))
        let grey = try RGBImage(width: 80, height: 80, pixels: [UInt8](repeating: 128, count: 80 * 80 * 3))
        let prepared = try ImagePreparation(size: 32).prepare(grey)
        #expect(prepared.values.count == 3 * 32 * 32)
        #expect(prepared.warnings.count == 1 && prepared.warnings[0].contains("ECG grid paper"))
        #expect(Self.message { _ = try ImagePreparation(size: 0).prepare(grey) }.contains("input size 0"))
        #expect(Self.message { _ = try ImagePreparation(size: 32, std: [1, 0, 1]).prepare(grey) }.contains("standard deviations"))
        #expect(Self.message { _ = try RGBImage(width: 0, height: 5, pixels: []) }.contains("zero size"))
        #expect(Self.message { _ = try RGBImage(width: 2, height: 2, pixels: [1, 2, 3]) }.contains("needs 12 bytes"))
    }

    @Test("damaged copies of every fixture either decode or throw a UniECGError, never crash")
    func mutatedFilesNeverCrash() throws {
        let directory = Fixtures.url("images").path
        let files = try FileManager.default.subpathsOfDirectory(atPath: directory)
            .filter { ($0.hasSuffix(".png") || $0.hasSuffix(".jpg")) && !$0.contains("corrupt") }.sorted()
        #expect(files.count >= 30)
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next(_ bound: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int(state >> 33) % bound
        }
        var decoded = 0, refused = 0
        for round in 0..<800 {
            var bytes = try Self.bytes(files[round % files.count])
            for _ in 0...next(3) {
                switch next(3) {
                case 0: bytes[next(bytes.count)] ^= UInt8(1 << next(8))
                case 1: bytes[next(bytes.count)] = UInt8(next(256))
                default: bytes = Array(bytes.prefix(next(bytes.count) + 1))
                }
            }
            do {
                let image = try ImageFile.decode(bytes)
                #expect(image.pixels.count == image.width * image.height * 3)
                decoded += 1
            } catch {
                refused += 1
            }
        }
        #expect(decoded + refused == 800 && refused > 0)
    }
}
