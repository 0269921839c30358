import CUniECG
import Foundation
import ModelConversion
import Testing
@testable import UniECG

/// The decoder against transformers' logits (Tools/reference/make_decoder_fixtures.py): three
/// shapes covering GQA, tied and untied embeddings, QKV bias and head dims 32, 64 and 80.
@Suite struct DecoderTests {
    static let shapes = ["llama-gqa-untied-hd64", "qwen2-bias-tied-hd80", "qwen2-gqa-untied-hd32"]

    struct Fixture {
        let tokens: [Int32]
        let logits: [Float]  // (tokens, vocab)
        let vocab: Int
    }

    static func fixture(_ name: String) throws -> Fixture {
        let dir = Fixtures.url("decoder/\(name)")
        let text = try String(contentsOf: dir.appendingPathComponent("tokens.txt"), encoding: .utf8)
        let tokens = text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ",").compactMap { Int32($0) }
        let npy = try NPY.readFloat32(Data(contentsOf: dir.appendingPathComponent("logits.npy")))
        #expect(npy.shape.count == 2 && npy.shape[0] == tokens.count)
        return Fixture(tokens: tokens, logits: npy.values, vocab: npy.shape[1])
    }

    static func convert(_ name: String, weights: Converter.WeightFormat, into dir: TemporaryDirectory) throws -> String {
        try Fixtures.convert(Fixtures.url("decoder/\(name)").path, weights: weights,
                             to: dir.path("\(name)-\(weights.rawValue).uecg"))
    }

    static func model(_ path: String, kernels: KernelVariant = .auto, batch: Int = 0, threads: Int = 2) throws -> LanguageModel {
        var options = LanguageModel.Options()
        options.kernels = kernels
        options.batchSize = batch
        options.threads = threads
        return try LanguageModel(path: path, options: options)
    }

    /// Mean KL(reference || candidate) over positions and the top-1 agreement.
    static func agreement(_ reference: [Float], _ candidate: [Float], vocab: Int) -> (kl: Double, top1: Double) {
        let rows = reference.count / vocab
        var kl = 0.0, same = 0
        for r in 0..<rows {
            let a = reference[r * vocab..<(r + 1) * vocab].map(Double.init)
            let b = candidate[r * vocab..<(r + 1) * vocab].map(Double.init)
            func logSoftmax(_ x: [Double]) -> [Double] {
                let m = x.max()!
                let lse = log(x.reduce(0) { $0 + exp($1 - m) }) + m
                return x.map { $0 - lse }
            }
            let la = logSoftmax(a), lb = logSoftmax(b)
            kl += zip(la, lb).reduce(0) { $0 + exp($1.0) * ($1.0 - $1.1) }
            if a.indices.max(by: { a[$0] < a[$1] }) == b.indices.max(by: { b[$0] < b[$1] }) { same += 1 }
        }
        return (kl / Double(rows), Double(same) / Double(rows))
    }

    @Test("unquantized logits match transformers within 1e-4 relative", arguments: shapes)
    func unquantized(name: String) throws {
        let dir = try Fixtures.temporaryDirectory()
        let fixture = try Self.fixture(name)
        let lm = try Self.model(Self.convert(name, weights: .none, into: dir))
        let logits = try lm.logits(tokens: fixture.tokens)
        let scale = fixture.logits.map(abs).max()!
        let worst = zip(logits, fixture.logits).map { abs($0 - $1) }.max()!
        #expect(worst / scale <= 1e-4, "max relative error \(worst / scale)")
    }

    @Test("q8 logits agree with transformers (top-1 >= 98 %, KL <= 0.01) on every kernel variant",
          arguments: shapes)
    func quantized(name: String) throws {
        let dir = try Fixtures.temporaryDirectory()
        let fixture = try Self.fixture(name)
        let path = try Self.convert(name, weights: .q8, into: dir)
        for variant in KernelVariant.allCases where variant != .auto && variant.isSupported {
            let logits = try Self.model(path, kernels: variant).logits(tokens: fixture.tokens)
            let (kl, top1) = Self.agreement(fixture.logits, logits, vocab: fixture.vocab)
            #expect(top1 >= 0.98, "\(variant): top-1 agreement \(top1)")
            #expect(kl <= 0.01, "\(variant): mean KL \(kl)")
        }
    }

    @Test("batched prompt processing equals one token at a time")
    func batchedEqualsIncremental() throws {
        let dir = try Fixtures.temporaryDirectory()
        let name = Self.shapes[1]
        let fixture = try Self.fixture(name)
        let path = try Self.convert(name, weights: .q8, into: dir)
        let batched = try Self.model(path, batch: 16).logits(tokens: fixture.tokens)
        let single = try Self.model(path, batch: 1)
        var incremental: [Float] = []
        for token in fixture.tokens { incremental += try single.logits(tokens: [token]) }
        let worst = zip(batched, incremental).map { abs($0 - $1) }.max()!
        #expect(worst <= 1e-4, "batched vs incremental differ by \(worst)")
    }

    @Test("embeddings spliced in at chosen positions act like the tokens they copy; hidden states come out")
    func embeddingInput() throws {
        let dir = try Fixtures.temporaryDirectory()
        let name = Self.shapes[0]
        let fixture = try Self.fixture(name)
        let path = try Self.convert(name, weights: .none, into: dir)
        let tokens = Array(fixture.tokens.prefix(12))
        let reference = try Self.model(path).evaluate(tokens: tokens)
        // The embedding rows of the tokens at positions 3..5, fed as embeddings with dummy ids.
        let file = try ModelFile(path: path)
        let table = try file.floats(of: "text.embed")
        let lm = try Self.model(path)
        let dim = lm.dimension
        var embeddings = [Float](repeating: 0, count: tokens.count * dim)
        var use = [Bool](repeating: false, count: tokens.count)
        var ids = tokens
        for p in 3...5 {
            embeddings.replaceSubrange(p * dim..<(p + 1) * dim, with: table[Int(tokens[p]) * dim..<(Int(tokens[p]) + 1) * dim])
            use[p] = true
            ids[p] = 0
        }
        let spliced = try lm.evaluate(tokens: ids, embeddings: embeddings, useEmbedding: use)
        #expect(spliced.logits == reference.logits)
        #expect(spliced.hidden == reference.hidden)
        // Hidden states are the final-norm output: the (untied) output head applied to them gives the logits.
        let head = try file.floats(of: "text.output")
        let vocab = lm.vocabularySize
        for t in [0, 11] {
            for v in [0, 7, vocab - 1] {
                var dot: Float = 0
                for i in 0..<dim { dot += head[v * dim + i] * reference.hidden[t * dim + i] }
                #expect(abs(dot - reference.logits[t * vocab + v]) <= 1e-4 * max(1, abs(dot)))
            }
        }
    }

    @Test("a prompt past the context is refused with a clear error and leaves the cache as it was")
    func contextOverflow() throws {
        let dir = try Fixtures.temporaryDirectory()
        let path = try Self.convert(Self.shapes[0], weights: .q8, into: dir)
        var options = LanguageModel.Options()
        options.contextLength = 8
        let lm = try LanguageModel(path: path, options: options)
        _ = try lm.logits(tokens: [1, 2, 3])
        #expect(throws: UniECGError.limit("6 more tokens after 3 would exceed the context length of 8")) {
            _ = try lm.logits(tokens: [1, 2, 3, 4, 5, 6])
        }
        #expect(lm.position == 3)
        #expect(throws: UniECGError.self) { _ = try lm.logits(tokens: [Int32(lm.vocabularySize)]) }
        #expect(lm.position == 3)
    }

    @Test("every SIMD variant's int8 group dot product is bit-exact with the portable kernel")
    func groupDotBitExact() {
        var state: UInt64 = 0x1234_5678
        func next() -> Int8 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int8(Int((state >> 33) % 255) - 127)  // [-127, 127], as quantization produces
        }
        for variant in KernelVariant.allCases where variant != .auto && variant.isSupported {
            for _ in 0..<2000 {
                let a = (0..<32).map { _ in next() }, b = (0..<32).map { _ in next() }
                let reference = zip(a, b).reduce(Int32(0)) { $0 + Int32($1.0) * Int32($1.1) }
                #expect(uniecg_q8_group_dot(variant.c, a, b) == reference)
            }
            let extreme = [Int8](repeating: 127, count: 32), negative = [Int8](repeating: -127, count: 32)
            #expect(uniecg_q8_group_dot(variant.c, extreme, negative) == -127 * 127 * 32)
        }
    }

    @Test("every SIMD variant's q8 matrix-vector product matches the portable kernel")
    func matvecVariants() throws {
        let rows = 37, cols = 256
        var state: UInt64 = 42
        func next() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int((state >> 40) % 2001) - 1000) / 1000
        }
        let weights = (0..<rows * cols).map { _ in next() }
        let x = (0..<cols).map { _ in next() * 3 }
        let payload = try weights.withUnsafeBytes { try Quantization.quantizeQ8($0, dtype: .f32, rows: rows, cols: cols) }
        func run(_ v: KernelVariant) -> [Float] {
            var y = [Float](repeating: .nan, count: rows)
            let status = payload.withUnsafeBytes { uniecg_q8_matvec(v.c, $0.baseAddress, UInt64(rows), UInt64(cols), x, &y) }
            #expect(status == UNIECG_OK)
            return y
        }
        let reference = run(.portable)
        for variant in KernelVariant.allCases where variant != .auto && variant != .portable && variant.isSupported {
            let y = run(variant)
            for r in 0..<rows { #expect(abs(y[r] - reference[r]) <= 1e-4 * max(1, abs(reference[r])), "\(variant) row \(r)") }
        }
    }

    @Test("a kernel variant this CPU lacks is refused, never run")
    func unsupportedVariantRefused() {
        for variant in KernelVariant.allCases where !variant.isSupported {
            var resolved = UNIECG_KERNELS_AUTO
            #expect(uniecg_kernel_variant_resolve(variant.c, &resolved, nil) == UNIECG_ERR_INVALID_ARGUMENT)
        }
    }
}
