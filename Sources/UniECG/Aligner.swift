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
    /// The findings the optional intent head scores (aligner.intents); empty without one.
    public let intents: [String]
    let intentHead: [Float], intentBias: [Float]

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
        (intents, intentHead, intentBias) = try Self.loadIntentHead(file: file, outputDim: Int(info.output_dim))
    }

    /// aligner.intents with aligner.intent_head (n, outputDim) and _bias (n), all or none.
    static func loadIntentHead(file: ModelFile, outputDim: Int) throws(UniECGError) -> ([String], [Float], [Float]) {
        guard let value = file.metadata("aligner.intents") else {
            if file.tensor(named: "aligner.intent_head") != nil {
                throw .format("\(file.path): aligner.intent_head without aligner.intents")
            }
            return ([], [], [])
        }
        guard case .stringArray(let names) = value, !names.isEmpty else {
            throw .format("\(file.path): aligner.intents must be a non-empty string[]")
        }
        func load(_ name: String, _ shape: [Int]) throws(UniECGError) -> [Float] {
            guard let t = file.tensor(named: name) else { throw .notFound("\(file.path): aligner.intents without the tensor \(name)") }
            guard t.shape == shape else { throw .format("\(file.path): \(name) is \(t.shape), aligner.intents needs \(shape)") }
            do { return try file.floats(of: name) } catch { throw .format("\(file.path): cannot read \(name): \(error)") }
        }
        return (names, try load("aligner.intent_head", [names.count, outputDim]), try load("aligner.intent_head_bias", [names.count]))
    }

    /// The name of the finding the intent head scores highest for a condition embedding (the
    /// first of equals); nil when the file has no intent head.
    public func intent(condition: [Float]) -> String? {
        guard !intents.isEmpty, condition.count == outputDim else { return nil }
        var best = 0, bestScore = -Float.infinity
        for i in intents.indices {
            var score = intentBias[i]
            for j in 0..<outputDim { score += intentHead[i * outputDim + j] * condition[j] }
            if score > bestScore { best = i; bestScore = score }
        }
        return intents[best]
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
