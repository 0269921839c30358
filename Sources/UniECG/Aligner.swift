import CUniECG
import Foundation

/// The aligner running in the C core from a .uecg file's aligner.* component: the language
/// model's hidden states at its K ECG-generation tokens (tokens x inputDim, row-major) to the
/// U-Net's text-embedding condition (outputDim floats; ECGCondition appends sex, age and rate).
///
/// One call at a time (the activations are held by the instance); calls are serialised.
public final class Aligner: @unchecked Sendable {
    public typealias Options = ComputeOptions

    public let file: ModelFile
    let handle: OpaquePointer
    let lock = NSLock()
    public let tokens: Int, inputDim: Int, outputDim: Int
    /// True when the condition is scaled to unit length (aligner.normalize).
    public let normalizes: Bool

    public convenience init(path: String, options: Options = Options()) throws(UniECGError) {
        try self.init(file: ModelFile(path: path), options: options)
    }

    public init(file: ModelFile, options: Options = Options()) throws(UniECGError) {
        self.file = file
        var params = uniecg_aligner_default_params()
        params.n_threads = Int32(clamping: options.threads)
        params.kernels = options.kernels.c
        var created: OpaquePointer?
        try check { uniecg_aligner_create(file.handle, params, &created, $0) }
        handle = created!
        var info = uniecg_aligner_info()
        uniecg_aligner_get_info(handle, &info)
        tokens = Int(info.tokens)
        inputDim = Int(info.input_dim)
        outputDim = Int(info.output_dim)
        normalizes = info.normalize
    }

    deinit { uniecg_aligner_free(handle) }

    /// The condition embedding (outputDim floats) of `hidden`: tokens x inputDim floats,
    /// row-major (token 0's hidden state first).
    public func condition(hidden: [Float]) throws(UniECGError) -> [Float] {
        guard hidden.count == tokens * inputDim else {
            throw .invalidArgument("\(tokens) x \(inputDim) = \(tokens * inputDim) hidden-state values are needed, not \(hidden.count)")
        }
        var out = [Float](repeating: 0, count: outputDim)
        lock.lock()
        defer { lock.unlock() }
        try hidden.withUnsafeBufferPointer { h throws(UniECGError) in
            try out.withUnsafeMutableBufferPointer { y throws(UniECGError) in
                try check { uniecg_aligner_forward(handle, h.baseAddress, y.baseAddress, $0) }
            }
        }
        return out
    }
}
