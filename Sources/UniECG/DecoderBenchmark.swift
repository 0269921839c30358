import CUniECG
import Foundation

/// Speed of the decoder on random q8 weights of a given shape, with this machine's memory
/// read bandwidth measured in the same run so the result can be read against the roofline
/// (bandwidth / bytes of weights streamed per generated token).
public enum DecoderBenchmark {
    public struct Shape: Sendable {
        public let name: String
        public let dim, layers, heads, kvHeads, ffn, vocab: Int
        public var headDim: Int { dim / heads }

        /// ~110M Llama shape (llama2.c's 110M; tied embeddings).
        public static let llama110M = Shape(name: "110M", dim: 768, layers: 12, heads: 12, kvHeads: 12, ffn: 2048, vocab: 32000)
        /// ~0.5B Qwen2.5 shape (tied embeddings, QKV bias).
        public static let qwen05B = Shape(name: "0.5B", dim: 896, layers: 24, heads: 14, kvHeads: 2, ffn: 4864, vocab: 151936)

        /// (name, rows, cols) of every matrix, the tied output head included once.
        var matrices: [(String, Int, Int)] {
            var list = [("text.embed", vocab, dim)]
            for i in 0..<layers {
                let p = "text.layers.\(i)."
                list += [(p + "attn_q", heads * headDim, dim), (p + "attn_k", kvHeads * headDim, dim),
                         (p + "attn_v", kvHeads * headDim, dim), (p + "attn_out", dim, heads * headDim),
                         (p + "ffn_gate", ffn, dim), (p + "ffn_up", ffn, dim), (p + "ffn_down", dim, ffn)]
            }
            return list
        }

        /// q8 bytes of weights read to generate one token (every matrix but the embedding table,
        /// which is read one row at a time, plus the tied output head, which is that table).
        public var bytesPerToken: Int {
            matrices.reduce(0) { $0 + $1.1 * $1.2 * 17 / 16 }
        }

        public var parameters: Int { matrices.reduce(0) { $0 + $1.1 * $1.2 } + (2 * layers + 1) * dim }
    }

    public struct Result: Sendable {
        public let shape: String
        public let threads: Int
        public let loadSeconds: Double  // opening the file and creating the decoder
        public let promptTokensPerSecond: Double
        public let generationTokensPerSecond: Double
        public let bandwidth: Double  // bytes/s measured with the same thread count
        public let bytesPerToken: Int
        public var roofline: Double { bandwidth / Double(bytesPerToken) }
        public var rooflineFraction: Double { generationTokensPerSecond / roofline }
    }

    /// Writes a random-weight q8 model of `shape` to `path` (norms 1, scales chosen so
    /// activations stay finite).
    public static func writeRandomModel(_ shape: Shape, to path: String, seed: UInt64 = 1) throws {
        let writer = try ModelWriter(path: path, zstdLevel: 1)
        let meta: [(String, MetadataValue)] = [
            ("general.architecture", .string("llama")),
            ("general.name", .string("random \(shape.name) benchmark model")),
            ("general.intended_use", .string("Benchmark only: random weights.")),
            ("text.architecture", .string("llama")),
            ("text.vocab_size", .int(Int64(shape.vocab))), ("text.dim", .int(Int64(shape.dim))),
            ("text.n_layers", .int(Int64(shape.layers))), ("text.n_heads", .int(Int64(shape.heads))),
            ("text.n_kv_heads", .int(Int64(shape.kvHeads))), ("text.head_dim", .int(Int64(shape.headDim))),
            ("text.ffn_dim", .int(Int64(shape.ffn))), ("text.context_length", .int(4096)),
            ("text.rope_theta", .double(10000)), ("text.norm_eps", .double(1e-6)),
            ("text.rope_layout", .string("half")), ("text.tied_embeddings", .bool(true)),
            ("text.qkv_bias", .bool(false)), ("text.activation", .string("silu")),
        ]
        for (key, value) in meta { try writer.set(key, value) }
        var state = seed | 1
        for (name, rows, cols) in shape.matrices {
            let count = rows * cols
            var payload = [UInt8](repeating: 0, count: count + count / 16)
            payload.withUnsafeMutableBytes { raw in
                let words = raw.bindMemory(to: UInt64.self)
                for i in 0..<(count / 8) {  // random int8 values in [-127, 127]
                    state ^= state << 13; state ^= state >> 7; state ^= state << 17
                    words[i] = state & 0x7F7F_7F7F_7F7F_7F7F
                }
                let scale = Quantization.f16Bits(0.02 / Float(cols).squareRoot())
                for g in 0..<(count / 32) { raw.storeBytes(of: scale, toByteOffset: count + 2 * g, as: UInt16.self) }
            }
            try payload.withUnsafeBytes { _ = try writer.addTensor(name: name, dtype: .q8, shape: [rows, cols], bytes: $0, encoding: .raw) }
        }
        let ones = [Float](repeating: 1, count: shape.dim)
        for i in 0..<shape.layers {
            for norm in ["attn_norm", "ffn_norm"] {
                try ones.withUnsafeBytes { _ = try writer.addTensor(name: "text.layers.\(i).\(norm)", dtype: .f32, shape: [shape.dim], bytes: $0) }
            }
        }
        try ones.withUnsafeBytes { _ = try writer.addTensor(name: "text.norm", dtype: .f32, shape: [shape.dim], bytes: $0) }
        try writer.finish()
    }

    /// Read bandwidth with `threads` threads (best of a few passes over 1 GiB).
    public static func readBandwidth(threads: Int, bytes: Int = 1 << 30) throws(UniECGError) -> Double {
        var pool: OpaquePointer?
        try check { uniecg_thread_pool_create(Int32(threads), &pool, $0) }
        defer { uniecg_thread_pool_free(pool) }
        var rate = 0.0
        guard uniecg_measure_read_bandwidth(pool, UInt64(bytes), 5, &rate) == UNIECG_OK else {
            throw .outOfMemory("cannot allocate \(bytes) bytes to measure bandwidth")
        }
        return rate
    }

    /// Prompt processing of `promptTokens` in one batch, then `generatedTokens` single steps.
    public static func run(model path: String, shape: Shape, threads: Int, promptTokens: Int, generatedTokens: Int,
                           bandwidth: Double) throws(UniECGError) -> Result {
        var options = LanguageModel.Options()
        options.threads = threads
        options.contextLength = promptTokens + generatedTokens + 1
        let loadStart = DispatchTime.now().uptimeNanoseconds
        let lm = try LanguageModel(path: path, options: options)
        let loadSeconds = Double(DispatchTime.now().uptimeNanoseconds - loadStart) / 1e9
        let prompt = (0..<promptTokens).map { Int32(($0 * 7919) % shape.vocab) }
        var logits = [Float](repeating: 0, count: shape.vocab)
        let start = DispatchTime.now().uptimeNanoseconds
        try lm.evaluate(tokens: prompt, logits: &logits, allLogits: false)
        let promptSeconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        func argmax(_ values: [Float]) -> Int32 {
            values.withUnsafeBufferPointer { v in
                var best = 0
                for i in 1..<v.count where v[i] > v[best] { best = i }
                return Int32(best)
            }
        }
        var token = argmax(logits)
        let genStart = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<generatedTokens {
            try lm.evaluate(tokens: [token], logits: &logits, allLogits: false)
            token = argmax(logits)
        }
        let genSeconds = Double(DispatchTime.now().uptimeNanoseconds - genStart) / 1e9
        return Result(shape: shape.name, threads: threads, loadSeconds: loadSeconds, promptTokensPerSecond: Double(promptTokens) / promptSeconds,
                      generationTokensPerSecond: Double(generatedTokens) / genSeconds, bandwidth: bandwidth,
                      bytesPerToken: shape.bytesPerToken)
    }
}
