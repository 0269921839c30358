import Foundation

/// An 8-bit RGB raster, row-major, three bytes per pixel: what the PNG and JPEG readers
/// produce and what image preparation consumes.
public struct RGBImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    /// width * height * 3 bytes, R G B per pixel, rows top to bottom.
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) throws(UniECGError) {
        try ImageLimits.check(width: width, height: height, what: "image")
        guard pixels.count == width * height * 3 else {
            throw .invalidArgument("\(width)x\(height) RGB image needs \(width * height * 3) bytes, got \(pixels.count)")
        }
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// The bytes were sized by the decoder itself.
    init(unchecked width: Int, _ height: Int, _ pixels: [UInt8]) {
        self.width = width
        self.height = height
        self.pixels = pixels
    }
}

extension RGBImage {
    /// The image turned upright for an EXIF orientation value (1 to 8, TIFF 6.0 / EXIF 2.3:
    /// 2 mirror, 3 rotate 180, 4 flip, 5 transpose, 6 rotate 90 clockwise, 7 transverse,
    /// 8 rotate 90 anticlockwise). Other values leave it as it is.
    public func oriented(exif orientation: Int) -> RGBImage {
        guard (2...8).contains(orientation) else { return self }
        let (w, h) = (width, height)
        let (outW, outH) = orientation >= 5 ? (h, w) : (w, h)
        var out = [UInt8](repeating: 0, count: pixels.count)
        for oy in 0..<outH {
            for ox in 0..<outW {
                let (sx, sy): (Int, Int)
                switch orientation {
                case 2: (sx, sy) = (w - 1 - ox, oy)
                case 3: (sx, sy) = (w - 1 - ox, h - 1 - oy)
                case 4: (sx, sy) = (ox, h - 1 - oy)
                case 5: (sx, sy) = (oy, ox)
                case 6: (sx, sy) = (oy, h - 1 - ox)
                case 7: (sx, sy) = (w - 1 - oy, h - 1 - ox)
                default: (sx, sy) = (w - 1 - oy, ox)
                }
                let to = (oy * outW + ox) * 3, from = (sy * w + sx) * 3
                out[to] = pixels[from]; out[to + 1] = pixels[from + 1]; out[to + 2] = pixels[from + 2]
            }
        }
        return RGBImage(unchecked: outW, outH, out)
    }
}

/// Bounds every decoder checks before it allocates anything for the pixels.
public enum ImageLimits {
    public static let maxSide = 16384
    public static let maxPixels = 64 * 1024 * 1024

    static func check(width: Int, height: Int, what: String) throws(UniECGError) {
        guard width > 0, height > 0 else { throw .format("\(what) has zero size (\(width)x\(height))") }
        guard width <= maxSide, height <= maxSide else {
            throw .limit("\(what) is \(width)x\(height) px; each side may be at most \(maxSide) px")
        }
        guard width * height <= maxPixels else {
            throw .limit("\(what) has \(width * height) px; at most \(maxPixels) (64 Mpixel) are accepted")
        }
    }
}

/// Reads a photo or scan of an ECG printout, telling PNG from JPEG by content, not by name.
public enum ImageFile {
    public static func decode(_ bytes: [UInt8]) throws(UniECGError) -> RGBImage {
        if bytes.starts(with: PNG.signature) { return try PNG.decode(bytes) }
        if bytes.starts(with: [0xFF, 0xD8]) { return try JPEG.decode(bytes) }
        throw .format("not a PNG or JPEG image" + describeOther(bytes))
    }

    public static func read(_ path: String) throws(UniECGError) -> RGBImage {
        guard let data = FileManager.default.contents(atPath: path) else { throw .io("cannot read image '\(path)'") }
        return try decode([UInt8](data))
    }

    /// Names a few formats people are likely to try, so the message says what to convert from.
    static func describeOther(_ bytes: [UInt8]) -> String {
        if bytes.isEmpty { return " (the data is empty)" }
        if bytes.starts(with: Array("GIF8".utf8)) { return " (it is a GIF; convert it to PNG)" }
        if bytes.starts(with: Array("BM".utf8)) { return " (it looks like a BMP; convert it to PNG)" }
        if bytes.starts(with: [0x49, 0x49, 0x2A, 0x00]) || bytes.starts(with: [0x4D, 0x4D, 0x00, 0x2A]) {
            return " (it is a TIFF; convert it to PNG)"
        }
        if bytes.count >= 12, bytes.starts(with: Array("RIFF".utf8)), Array(bytes[8..<12]) == Array("WEBP".utf8) {
            return " (it is a WebP; convert it to PNG)"
        }
        if bytes.starts(with: Array("%PDF".utf8)) { return " (it is a PDF; export the page as PNG)" }
        return ""
    }
}
