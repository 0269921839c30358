import CUniECG
import Foundation

/// The ECG image encoder of a model file (a CLIP vision transformer and its projector, LLaVA's
/// image tower), running in the C core. It takes an image already prepared the way the file
/// says: `imageSize` square, 3 channel planes (R, G, B), each value `(v - mean[c]) / std[c]` for
/// v in 0...1.
///
/// One encode at a time per encoder (the C encoder keeps scratch buffers); calls are serialised.
public final class ImageEncoder: @unchecked Sendable {
    public typealias Options = ComputeOptions

    public let file: ModelFile
    let handle: OpaquePointer
    let lock = NSLock()
    /// Side of the square input, in pixels.
    public let imageSize: Int
    public let patchSize: Int
    /// Per-channel normalisation (R, G, B) the caller applies: (v - mean) / std.
    public let mean: [Double]
    public let std: [Double]
    /// Output rows: one per patch, plus the class token first when the file keeps it.
    public let tokens: Int
    public let includesClassToken: Bool
    public let width: Int
    /// Width of each output embedding.
    public let dimension: Int
    public let kernels: KernelVariant
    public let threads: Int

    public convenience init(path: String, options: Options = Options()) throws(UniECGError) {
        try self.init(file: ModelFile(path: path), options: options)
    }

    public init(file: ModelFile, options: Options = Options()) throws(UniECGError) {
        self.file = file
        var params = uniecg_image_encoder_default_params()
        params.n_threads = Int32(clamping: options.threads)
        params.kernels = options.kernels.c
        var created: OpaquePointer?
        try check { uniecg_image_encoder_create(file.handle, params, &created, $0) }
        handle = created!
        var info = uniecg_image_encoder_info()
        uniecg_image_encoder_get_info(handle, &info)
        imageSize = Int(info.image_size)
        patchSize = Int(info.patch_size)
        mean = [info.mean.0, info.mean.1, info.mean.2]
        std = [info.std.0, info.std.1, info.std.2]
        tokens = Int(info.tokens)
        includesClassToken = info.class_token
        width = Int(info.width)
        dimension = Int(info.output_dim)
        kernels = KernelVariant(info.kernels)
        threads = Int(info.n_threads)
    }

    deinit { uniecg_image_encoder_free(handle) }

    /// Normalises an RGB image of `imageSize` square in 0...1, channel-major (3 planes), with the
    /// file's mean and std: the input `encode(image:)` takes.
    public func normalize(rgb: [Float]) throws(UniECGError) -> [Float] {
        let plane = imageSize * imageSize
        guard rgb.count == 3 * plane else {
            throw .invalidArgument("the image holds \(rgb.count) values, 3 planes of \(imageSize) x \(imageSize) need \(3 * plane)")
        }
        var out = rgb
        for c in 0..<3 {
            let m = Float(mean[c]), s = Float(std[c])
            for i in (c * plane)..<((c + 1) * plane) { out[i] = (rgb[i] - m) / s }
        }
        return out
    }

    /// Encodes one prepared image (3 x imageSize x imageSize, channel-major, normalised): the
    /// projected tokens (tokens x dimension) and the selected layer's tokens before the projector
    /// (tokens x width). A NaN or infinite value is refused, naming channel, row and column.
    public func encode(image: [Float]) throws(UniECGError) -> (embeddings: [Float], hidden: [Float]) {
        let plane = imageSize * imageSize
        guard image.count == 3 * plane else {
            throw .invalidArgument("the image holds \(image.count) values, 3 planes of \(imageSize) x \(imageSize) need \(3 * plane)")
        }
        var embeddings = [Float](repeating: 0, count: tokens * dimension)
        var hidden = [Float](repeating: 0, count: tokens * width)
        var error = uniecg_error()
        lock.lock()
        let status = image.withUnsafeBufferPointer { x in
            embeddings.withUnsafeMutableBufferPointer { e in
                hidden.withUnsafeMutableBufferPointer { h in
                    uniecg_image_encoder_forward(handle, x.baseAddress, e.baseAddress, h.baseAddress, &error)
                }
            }
        }
        lock.unlock()
        guard status == UNIECG_OK else { throw UniECGError(error) }
        return (embeddings, hidden)
    }
}
