import CUniECG
import Foundation
import Synchronization

/// A Llama / Qwen2-family text decoder running in the C core from a .uecg file.
///
/// One evaluation at a time (the KV cache is state); `generate(prompt:options:)` streams text
/// when the file carries a tokenizer.
public final class LanguageModel: @unchecked Sendable {
    public struct Options: Sendable {
        /// KV cache positions; 0 = the model's context length, capped at 4096.
        public var contextLength = 0
        /// Worker threads; 0 = the number of physical cores.
        public var threads = 0
        /// Kernel implementation; `.auto` honours the UNIECG_KERNELS environment variable.
        public var kernels: KernelVariant = .auto
        /// Tokens per batched prompt step.
        public var batchSize = 0
        public init() {}
    }

    public let file: ModelFile
    let handle: OpaquePointer
    public let vocabularySize: Int
    public let dimension: Int
    public let contextLength: Int
    public let threads: Int
    public let kernels: KernelVariant
    /// The file's tokenizer; nil for a file without tokenizer.* metadata.
    public let tokenizer: Tokenizer?
    let cancelFlag = CancelFlag()
    let generationLock = Mutex(false)

    public convenience init(path: String, options: Options = Options()) throws(UniECGError) {
        try self.init(file: ModelFile(path: path), options: options)
    }

    public init(file: ModelFile, options: Options = Options()) throws(UniECGError) {
        self.file = file
        var params = uniecg_lm_default_params()
        params.context_length = Int32(clamping: options.contextLength)
        params.n_threads = Int32(clamping: options.threads)
        params.batch_size = Int32(clamping: options.batchSize)
        params.kernels = options.kernels.c
        // The decoder polls this between layers, so a cancelled generation stops quickly.
        params.abort_callback = { flag in Unmanaged<CancelFlag>.fromOpaque(flag!).takeUnretainedValue().isSet }
        params.abort_user_data = Unmanaged.passUnretained(cancelFlag).toOpaque()
        var created: OpaquePointer?
        try check { uniecg_lm_create(file.handle, params, &created, $0) }
        handle = created!
        var info = uniecg_lm_info()
        uniecg_lm_get_info(handle, &info)
        vocabularySize = Int(info.vocab_size)
        dimension = Int(info.dim)
        contextLength = Int(info.context_length)
        threads = Int(info.n_threads)
        kernels = KernelVariant(info.kernels)
        tokenizer = file.metadata("tokenizer.model") == nil ? nil : try Tokenizer(file: file)
    }

    deinit { uniecg_lm_free(handle) }

    /// Positions held in the KV cache.
    public var position: Int { Int(uniecg_lm_position(handle)) }

    /// Forgets the KV cache from `position` on.
    public func rewind(to position: Int = 0) throws(UniECGError) {
        guard uniecg_lm_rewind(handle, Int32(clamping: position)) == UNIECG_OK else {
            throw .invalidArgument("cannot rewind to \(position): \(self.position) positions are held")
        }
    }

    /// Teacher-forced logits for `tokens` appended after the current position: a
    /// (tokens.count x vocabularySize) row-major array.
    public func logits(tokens: [Int32]) throws(UniECGError) -> [Float] {
        guard !tokens.isEmpty else { throw .invalidArgument("no tokens given") }
        var out = [Float](repeating: 0, count: tokens.count * vocabularySize)
        try evaluate(tokens: tokens, logits: &out, allLogits: true)
        return out
    }

    /// One evaluation step with every input and output the decoder offers: `embeddings`
    /// (tokens.count x dimension) replace the token's own embedding where `useEmbedding` is
    /// true (how encoders splice their outputs in); the result holds every position's logits
    /// and last-layer hidden states (after the final norm).
    /// With `allLogits` false only the last position's logits are returned (and computed).
    public func evaluate(tokens: [Int32], embeddings: [Float]? = nil, useEmbedding: [Bool]? = nil, allLogits: Bool = true)
        throws(UniECGError) -> (logits: [Float], hidden: [Float])
    {
        let n = tokens.count
        guard n > 0 else { throw .invalidArgument("no tokens given") }
        if let embeddings, embeddings.count != n * dimension {
            throw .invalidArgument("embeddings hold \(embeddings.count) values, \(n) positions need \(n * dimension)")
        }
        if let useEmbedding, useEmbedding.count != n {
            throw .invalidArgument("useEmbedding has \(useEmbedding.count) entries for \(n) positions")
        }
        var logits = [Float](repeating: 0, count: (allLogits ? n : 1) * vocabularySize)
        var hidden = [Float](repeating: 0, count: n * dimension)
        let mask = useEmbedding?.map { UInt8($0 ? 1 : 0) }
        var error = uniecg_error()
        let status = tokens.withUnsafeBufferPointer { ids in
            logits.withUnsafeMutableBufferPointer { out in
                hidden.withUnsafeMutableBufferPointer { h in
                    (embeddings ?? []).withUnsafeBufferPointer { e in
                        (mask ?? []).withUnsafeBufferPointer { m in
                            var batch = uniecg_lm_batch()
                            batch.n_tokens = Int32(n)
                            batch.tokens = ids.baseAddress
                            batch.embeddings = embeddings == nil ? nil : e.baseAddress
                            batch.embedding_mask = mask == nil ? nil : m.baseAddress
                            batch.logits = out.baseAddress
                            batch.all_logits = allLogits
                            batch.hidden = h.baseAddress
                            return uniecg_lm_decode(handle, &batch, &error)
                        }
                    }
                }
            }
        }
        guard status == UNIECG_OK else { throw UniECGError(error) }
        return (logits, hidden)
    }

    /// Evaluates tokens, filling `logits` with the last position's (or every position's) logits.
    func evaluate(tokens: [Int32], logits: inout [Float], allLogits: Bool) throws(UniECGError) {
        var error = uniecg_error()
        let status = tokens.withUnsafeBufferPointer { ids in
            logits.withUnsafeMutableBufferPointer { out in
                var batch = uniecg_lm_batch()
                batch.n_tokens = Int32(ids.count)
                batch.tokens = ids.baseAddress
                batch.logits = out.baseAddress
                batch.all_logits = allLogits
                return uniecg_lm_decode(handle, &batch, &error)
            }
        }
        guard status == UNIECG_OK else { throw UniECGError(error) }
    }
}

/// Threads and kernels of a C-core component (signal encoder, aligner, U-Net, VAE), the options
/// every one of them takes.
public struct ComputeOptions: Sendable {
    /// Worker threads; 0 = the number of physical cores.
    public var threads = 0
    /// Kernel implementation; `.auto` honours the UNIECG_KERNELS environment variable.
    public var kernels: KernelVariant = .auto
    public init(threads: Int = 0, kernels: KernelVariant = .auto) {
        self.threads = threads
        self.kernels = kernels
    }
}

/// A C-core thread pool shared by components that run one after another (the U-Net, then the
/// VAE), so they do not each keep their own workers on the same cores.
final class ThreadPool: @unchecked Sendable {
    let handle: OpaquePointer

    init(threads: Int) throws(UniECGError) {
        var created: OpaquePointer?
        try check { uniecg_thread_pool_create(Int32(clamping: threads), &created, $0) }
        handle = created!
    }

    deinit { uniecg_thread_pool_free(handle) }
}

/// Kernel implementations of the C core.
public enum KernelVariant: String, Sendable, CaseIterable {
    case auto, portable, avx2, neon
    case neonDotProduct = "neon-dotprod"

    init(_ c: uniecg_kernel_variant) {
        switch c {
        case UNIECG_KERNELS_PORTABLE: self = .portable
        case UNIECG_KERNELS_AVX2: self = .avx2
        case UNIECG_KERNELS_NEON: self = .neon
        case UNIECG_KERNELS_NEON_DOTPROD: self = .neonDotProduct
        default: self = .auto
        }
    }

    public var c: uniecg_kernel_variant {
        switch self {
        case .auto: UNIECG_KERNELS_AUTO
        case .portable: UNIECG_KERNELS_PORTABLE
        case .avx2: UNIECG_KERNELS_AVX2
        case .neon: UNIECG_KERNELS_NEON
        case .neonDotProduct: UNIECG_KERNELS_NEON_DOTPROD
        }
    }

    /// Whether this machine can run the variant.
    public var isSupported: Bool { uniecg_kernel_variant_supported(c) }
}
