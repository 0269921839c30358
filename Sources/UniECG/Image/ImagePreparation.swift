/// Getting a photo or scan of an ECG printout ready for a CLIP-style image encoder, the way
/// LLaVA prepares images in its "pad" mode: pad to a square with the normalisation mean colour
/// (so the padding becomes zeros after normalising), resize to `size` x `size` with bicubic
/// interpolation, scale to 0...1 and normalise per channel.
///
/// Bicubic (Keys, a = -0.5), because that is what CLIP's image processor uses: the encoder was
/// trained on images resized that way, and a different filter shifts the inputs it sees. Like
/// Pillow, the filter is stretched by the reduction factor when shrinking, which antialiases,
/// and each pass rounds to 8 bits with 22-bit fixed-point weights, so the bytes match Pillow's
/// `Image.resize(..., BICUBIC)` (what CLIP's processor calls) exactly on the test fixtures.
public struct ImagePreparation: Sendable {
    public static let clipMean: [Float] = [0.48145466, 0.4578275, 0.40821073]
    public static let clipStd: [Float] = [0.26862954, 0.26130258, 0.27577711]

    /// Side of the square model input in pixels (336 for CLIP ViT-L/14-336).
    public var size: Int
    public var mean: [Float]
    public var std: [Float]
    /// Smaller images cannot show an ECG's waves and are refused.
    public var minimumSide = 64

    public init(size: Int = 336, mean: [Float] = clipMean, std: [Float] = clipStd) {
        self.size = size
        self.mean = mean
        self.std = std
    }

    public struct Prepared: Sendable {
        /// 3 x size x size floats, channel-major (all R, then all G, then all B).
        public var values: [Float]
        /// Doubts about the input that do not stop preparation (e.g. it may not be an ECG).
        public var warnings: [String]
    }

    public func prepare(_ image: RGBImage) throws(UniECGError) -> Prepared {
        guard (1...4096).contains(size) else { throw .invalidArgument("image input size \(size) is not in 1...4096") }
        guard mean.count == 3, std.count == 3, std.allSatisfy({ $0 > 0 && $0.isFinite }), mean.allSatisfy(\.isFinite) else {
            throw .invalidArgument("image normalisation needs 3 finite means and 3 positive standard deviations")
        }
        guard min(image.width, image.height) >= minimumSide else {
            throw .range("image is \(image.width)x\(image.height) px, too small for an ECG (each side needs at least \(minimumSide) px)")
        }
        let square = padToSquare(image)
        let resized = Self.resize(square, width: size, height: size)
        let plane = size * size
        var values = [Float](repeating: 0, count: 3 * plane)
        for c in 0..<3 {
            let scale = 1 / std[c], shift = mean[c]
            for i in 0..<plane { values[c * plane + i] = (Float(resized.pixels[3 * i + c]) / 255 - shift) * scale }
        }
        return Prepared(values: values, warnings: Self.paperWarnings(image))
    }

    /// The image centred on a square canvas of the mean colour (LLaVA's `expand2square`, which
    /// truncates mean * 255 to an integer).
    public func padToSquare(_ image: RGBImage) -> RGBImage {
        let side = max(image.width, image.height)
        if image.width == image.height { return image }
        let fill = mean.map { UInt8(max(0, min(255, $0 * 255))) }
        var pixels = [UInt8](repeating: 0, count: side * side * 3)
        for i in 0..<side * side { pixels[3 * i] = fill[0]; pixels[3 * i + 1] = fill[1]; pixels[3 * i + 2] = fill[2] }
        let left = (side - image.width) / 2, top = (side - image.height) / 2
        let rowBytes = image.width * 3
        for y in 0..<image.height {
            let to = ((top + y) * side + left) * 3
            pixels.replaceSubrange(to..<to + rowBytes, with: image.pixels[y * rowBytes..<(y + 1) * rowBytes])
        }
        return RGBImage(unchecked: side, side, pixels)
    }

    /// Separable bicubic resize, horizontal pass first, antialiased when shrinking.
    public static func resize(_ image: RGBImage, width: Int, height: Int) -> RGBImage {
        var current = image
        if width != current.width {
            current = pass(current, taps: Taps(input: current.width, output: width), outWidth: width, outHeight: current.height,
                           step: 3, lineStep: current.width * 3, outStep: 3, outLineStep: width * 3)
        }
        if height != current.height {
            current = pass(current, taps: Taps(input: current.height, output: height), outWidth: current.width, outHeight: height,
                           step: current.width * 3, lineStep: 3, outStep: current.width * 3, outLineStep: 3)
        }
        return current
    }

    /// One filtering pass along an axis. `step` moves one input sample along the filtered axis,
    /// `lineStep` to the next line across it; the output likewise.
    static func pass(_ image: RGBImage, taps: Taps, outWidth: Int, outHeight: Int,
                     step: Int, lineStep: Int, outStep: Int, outLineStep: Int) -> RGBImage {
        var out = [UInt8](repeating: 0, count: outWidth * outHeight * 3)
        let lines = step == 3 ? image.height : image.width
        let half = 1 << (Taps.precision - 1)
        out.withUnsafeMutableBufferPointer { o in
            image.pixels.withUnsafeBufferPointer { p in
                taps.weights.withUnsafeBufferPointer { w in
                    for line in 0..<lines {
                        for x in 0..<taps.first.count {
                            let base = line * lineStep + taps.first[x] * step, row = x * taps.stride
                            var r = half, g = half, b = half
                            for k in 0..<taps.count[x] {
                                let i = base + k * step, weight = w[row + k]
                                r += weight * Int(p[i]); g += weight * Int(p[i + 1]); b += weight * Int(p[i + 2])
                            }
                            let at = line * outLineStep + x * outStep
                            o[at] = UInt8(clamping: r >> Taps.precision)
                            o[at + 1] = UInt8(clamping: g >> Taps.precision)
                            o[at + 2] = UInt8(clamping: b >> Taps.precision)
                        }
                    }
                }
            }
        }
        return RGBImage(unchecked: outWidth, outHeight, out)
    }

    /// Fixed-point filter weights for one axis: for each output position, the first input
    /// index, how many inputs it takes and their weights (`stride` slots per output).
    struct Taps {
        static let precision = 22
        var first: [Int] = []
        var count: [Int] = []
        var weights: [Int] = []
        let stride: Int

        init(input: Int, output: Int) {
            let scale = Double(input) / Double(output)
            let filterScale = max(1, scale)  // stretching the kernel when shrinking is the antialiasing
            let support = 2 * filterScale
            stride = Int(support.rounded(.up)) * 2 + 1
            for x in 0..<output {
                let center = (Double(x) + 0.5) * scale
                let lo = max(Int(center - support + 0.5), 0), hi = min(Int(center + support + 0.5), input)
                var w = (lo..<hi).map { Self.cubic((Double($0) - center + 0.5) / filterScale) }
                let total = w.reduce(0, +)
                if total != 0 { w = w.map { $0 / total } }
                first.append(lo)
                count.append(w.count)
                weights += w.map { Int(($0 * Double(1 << Self.precision)).rounded()) }
                weights += [Int](repeating: 0, count: stride - w.count)
            }
        }

        /// Keys' cubic convolution kernel with a = -0.5.
        static func cubic(_ t: Double) -> Double {
            let a = -0.5, x = abs(t)
            if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
            if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
            return 0
        }
    }

    /// A cheap look at whether the picture shows ECG paper: the share of pixels with the pink or
    /// red of the printed grid. Black-and-white printouts fail it too, so it only warns.
    public static func paperWarnings(_ image: RGBImage) -> [String] {
        var reddish = 0
        let count = image.width * image.height
        for i in 0..<count {
            let r = Int(image.pixels[3 * i]), g = Int(image.pixels[3 * i + 1]), b = Int(image.pixels[3 * i + 2])
            if r >= 150, r - g >= 20, r - b >= 10 { reddish += 1 }
        }
        let share = Double(reddish) / Double(count)
        guard share < 0.01 else { return [] }
        let percent = (share * 1000).rounded() / 10
        return ["only \(percent)% of the pixels have the pink/red colour of ECG grid paper: this may not be a photo or scan of an ECG printout"]
    }
}
