import Foundation
import ModelConversion
import Testing
@testable import UniECG

/// The ECG image encoder end to end: the converter turns the transformers fixtures
/// (Tools/reference/make_image_encoder_fixtures.py: CLIPVisionModel weights in two
/// configurations, one under LLaVA's key prefix) into .uecg files, the Swift wrapper runs the C
/// encoder, and the outputs are compared with transformers': within 1e-4 (relative to the
/// largest magnitude) unquantized, correlation >= 0.999 with q8. Then LLaVA's key list, and bad
/// input.
@Suite struct ImageEncoderTests {
    struct Case: Sendable, CustomStringConvertible {
        let name: String, config: String
        let input: String, hidden: String, embeddings: String
        var description: String { name }
    }

    static let cases: [Case] = {
        guard let text = try? String(contentsOf: Fixtures.url("image_encoder/manifest.txt"), encoding: .utf8) else { return [] }
        return text.split(separator: "\n").filter { !$0.hasPrefix("#") }.compactMap { line in
            let words = line.split(separator: " ").map(String.init)
            var fields: [String: String] = [:]
            for word in words.dropFirst() {
                let parts = word.split(separator: "=", maxSplits: 1).map(String.init)
                if parts.count == 2 { fields[parts[0]] = parts[1] }
            }
            guard let config = fields["config"], let input = fields["input"], let hidden = fields["hidden"],
                  let embeddings = fields["embeddings"] else { return nil }
            return Case(name: words[0], config: config, input: input, hidden: hidden, embeddings: embeddings)
        }
    }()

    static func floats(_ name: String) throws -> [Float] {
        let data = try Data(contentsOf: Fixtures.url("image_encoder/\(name)"))
        return data.withUnsafeBytes { raw in
            (0..<(data.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
        }
    }

    static func convert(_ config: String, weights: Converter.WeightFormat, into dir: TemporaryDirectory) throws -> String {
        let path = dir.path("\(config)-\(weights.rawValue).uecg")
        if !FileManager.default.fileExists(atPath: path) {
            try Fixtures.convert(Fixtures.url("image_encoder/\(config)").path, weights: weights, to: path)
        }
        return path
    }

    static func config(_ name: String) throws -> ImageEncoderConfig {
        let json = try Data(contentsOf: Fixtures.url("image_encoder/\(name)/image_config.json"))
        return try ImageEncoderConfig(configJSON: json, source: name)
    }

    @Test("converted fixtures match transformers (unquantized 1e-4, q8 correlation 0.999)", arguments: cases)
    func matchesTransformers(c: Case) throws {
        let dir = try Fixtures.temporaryDirectory()
        let wantHidden = try Self.floats(c.hidden), wantEmbeddings = try Self.floats(c.embeddings)
        for weights in Converter.WeightFormat.allCases {
            let encoder = try ImageEncoder(path: try Self.convert(c.config, weights: weights, into: dir), options: .init(threads: 2))
            #expect(encoder.tokens * encoder.width == wantHidden.count)
            #expect(encoder.tokens * encoder.dimension == wantEmbeddings.count)
            let got = try encoder.encode(image: try Self.floats(c.input))
            if weights == .none {
                let eh = Agreement.maxRelative(got.hidden, wantHidden), ee = Agreement.maxRelative(got.embeddings, wantEmbeddings)
                #expect(eh <= 1e-4 && ee <= 1e-4, "\(c.name) f32: hidden \(eh), embeddings \(ee)")
            } else {
                let ch = Agreement.correlation(got.hidden, wantHidden), ce = Agreement.correlation(got.embeddings, wantEmbeddings)
                #expect(ch >= 0.999 && ce >= 0.999, "\(c.name) q8: hidden \(ch), embeddings \(ce)")
            }
        }
    }

    @Test("the converter writes the format's names, dtypes and metadata, q, k, v packed")
    func fileContents() throws {
        let dir = try Fixtures.temporaryDirectory()
        for name in ["tiny_quick", "small_gelu"] {
            let cfg = try Self.config(name)
            let file = try ModelFile(path: try Self.convert(name, weights: .q8, into: dir))
            #expect(file.metadata("general.architecture") == .string("image-encoder"))
            for (key, value) in cfg.metadata() { #expect(file.metadata(key) == value, "\(key)") }
            #expect(file.tensors.count == cfg.tensorPlan().count)
            let patch = try #require(file.tensor(named: "image.patch_embed"))
            #expect(patch.shape == [cfg.width, 3 * cfg.patchSize * cfg.patchSize])
            // 3 x 8 x 8 = 192 columns are q8 (tiny_quick); 3 x 6 x 6 = 108 cannot be (small_gelu).
            #expect(patch.dtype == (3 * cfg.patchSize * cfg.patchSize % 32 == 0 ? .q8 : .f32))
            #expect(file.tensor(named: "image.pos_embed")?.dtype == .f32)
            #expect(file.tensor(named: "image.layers.0.attn_qkv")?.shape == [3 * cfg.width, cfg.width])
            // Rows of width values: q8 for tiny_quick's 32, f32 for small_gelu's 48.
            #expect(file.tensor(named: "image.layers.0.attn_qkv")?.dtype == (cfg.width % 32 == 0 ? .q8 : .f32))
            #expect(file.tensor(named: "image.layers.0.ffn_down")?.dtype == .q8)
            #expect(file.tensor(named: "image.layers.0.attn_qkv_bias")?.dtype == .f32)
            // Blocks after the selected layer are not converted.
            #expect(file.tensor(named: "image.layers.\(cfg.selectLayer).attn_qkv") == nil)
            // --quant none keeps every value exactly as torch saved it (q, k, v in that order).
            let exact = try ModelFile(path: try Self.convert(name, weights: .none, into: dir))
            let archive = try SafeTensorsFile(path: Fixtures.url("image_encoder/\(name)/image_encoder.safetensors").path)
            for entry in cfg.tensorPlan() {
                var values: [Float] = []
                for source in entry.sources {
                    let t = try #require(archive.tensors[source])
                    values += Quantization.floats(archive.bytes(of: t), dtype: .f32, count: t.elementCount)
                }
                #expect(try exact.floats(of: entry.target) == values, "\(entry.target)")
            }
        }
        #expect(try Self.config("tiny_quick").selectLayer == 1)   // -2 of 2 layers
        #expect(try Self.config("small_gelu").selectLayer == 3)   // -1 of 3 layers
    }

    /// tiny_quick's source directory with every tensor as bf16 (the upper half of each f32: exact,
    /// so the stored values can be compared bit for bit), without `drop` and with `extra`.
    static func bf16Source(into dir: TemporaryDirectory, name: String, drop: String? = nil, extra: String? = nil) throws -> String {
        let source = Fixtures.url("image_encoder/tiny_quick")
        let archive = try SafeTensorsFile(path: source.appendingPathComponent("image_encoder.safetensors").path)
        var header: [String: Any] = [:], payload = Data()
        var names = archive.tensors.keys.sorted().filter { $0 != drop }
        if let extra { names.append(extra) }
        for tensorName in names {
            let t = archive.tensors[tensorName] ?? archive.tensors[names[0]]!
            let values = Quantization.floats(archive.bytes(of: t), dtype: .f32, count: t.elementCount)
            let begin = payload.count
            for v in values { withUnsafeBytes(of: UInt16(truncatingIfNeeded: v.bitPattern >> 16).littleEndian) { payload.append(contentsOf: $0) } }
            header[tensorName] = ["dtype": "BF16", "shape": t.shape, "data_offsets": [begin, payload.count]]
        }
        let json = try JSONSerialization.data(withJSONObject: header)
        var file = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { file.append(contentsOf: $0) }
        file += json + payload
        let directory = dir.path(name)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try file.write(to: URL(fileURLWithPath: directory + "/image_encoder.safetensors"))
        try FileManager.default.copyItem(atPath: source.appendingPathComponent("image_config.json").path, toPath: directory + "/image_config.json")
        return directory
    }

    @Test("a bf16 checkpoint: q, k, v stacked in their dtype, results close to the f32 ones; missing and unknown tensors refused")
    func halfPrecisionSource() throws {
        let dir = try Fixtures.temporaryDirectory()
        let source = try Self.bf16Source(into: dir, name: "bf16")
        let cfg = try Self.config("tiny_quick")
        let exact = try ModelFile(path: try Fixtures.convert(source, weights: .none, to: dir.path("bf16-none.uecg")))
        let qkv = try #require(exact.tensor(named: "image.layers.0.attn_qkv"))
        #expect(qkv.dtype == .bf16 && qkv.shape == [3 * cfg.width, cfg.width])
        #expect(exact.tensor(named: "image.layers.0.attn_qkv_bias")?.dtype == .f32)
        let archive = try SafeTensorsFile(path: source + "/image_encoder.safetensors")
        for target in ["image.layers.0.attn_qkv", "image.layers.0.attn_qkv_bias"] {
            let entry = try #require(cfg.tensorPlan().first { $0.target == target })
            var values: [Float] = []
            for name in entry.sources {
                let t = try #require(archive.tensors[name])
                values += Quantization.floats(archive.bytes(of: t), dtype: .bf16, count: t.elementCount)
            }
            #expect(try exact.floats(of: target) == values, "\(target)")
        }
        let c = try #require(Self.cases.first { $0.config == "tiny_quick" })
        let want = try Self.floats(c.embeddings), image = try Self.floats(c.input)
        for weights in Converter.WeightFormat.allCases {
            let path = try Fixtures.convert(source, weights: weights, to: dir.path("bf16-\(weights.rawValue).uecg"))
            let got = try ImageEncoder(path: path, options: .init(threads: 1)).encode(image: image).embeddings
            let r = Agreement.correlation(got, want)
            #expect(r >= 0.999, "bf16 source, \(weights): correlation \(r)")
        }

        let k = cfg.towerPrefix + "encoder.layers.0.self_attn.k_proj.weight"
        let noK = try Self.bf16Source(into: dir, name: "no-k", drop: k)
        #expect { try Fixtures.convert(noK, weights: .q8, to: dir.path("no-k.uecg")) } throws: {
            ($0 as? ConversionError)?.message.contains("'\(k)' is missing") == true
        }
        let stray = cfg.towerPrefix + "encoder.layers.0.self_attn.rotary.weight"
        let extra = try Self.bf16Source(into: dir, name: "extra", extra: stray)
        #expect { try Fixtures.convert(extra, weights: .q8, to: dir.path("extra.uecg")) } throws: {
            ($0 as? ConversionError)?.message.contains("no place in the format: \(stray)") == true
        }
    }

    @Test("LLaVA-1.5's CLIP ViT-L/14-336 keys are all planned or knowingly left out, with their shapes")
    func llavaKeys() throws {
        let cfg = try Self.config("llava")
        #expect(cfg.imageSize == 336 && cfg.patchSize == 14 && cfg.patches == 576 && cfg.width == 1024)
        #expect(cfg.layers == 24 && cfg.selectLayer == 23 && cfg.heads == 16 && cfg.ffnDim == 4096)
        #expect(cfg.activation == "quick_gelu" && cfg.featureSelect == "patch")
        let text = try String(contentsOf: Fixtures.url("image_encoder/llava/keys.txt"), encoding: .utf8)
        var published: [String: [Int]] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            published[String(parts[0])] = parts[1].split(separator: "x").map { Int($0)! }
        }
        #expect(published.count == 395)
        let plan = cfg.tensorPlan()
        for entry in plan {
            for source in entry.sources { #expect(published[source] == entry.sourceShape, "\(source)") }
        }
        let planned = Set(plan.flatMap(\.sources))
        let left = published.keys.filter { !planned.contains($0) }.sorted()
        // post_layernorm (2) and the 16 tensors of layer 23, which LLaVA's select layer -2 never runs.
        #expect(left.count == 18)
        #expect(left.allSatisfy(cfg.isIgnorable))
        #expect(left.filter { $0.contains("encoder.layers.") }.allSatisfy { $0.contains("encoder.layers.23.") })
        #expect(!cfg.isIgnorable(cfg.towerPrefix + "encoder.layers.22.mlp.fc1.weight"))
    }

    @Test("bad input is refused with a message that names the problem")
    func badInput() throws {
        let dir = try Fixtures.temporaryDirectory()
        let c = try #require(Self.cases.first { $0.config == "tiny_quick" })
        let path = try Self.convert(c.config, weights: .q8, into: dir)
        let encoder = try ImageEncoder(path: path, options: .init(threads: 1))
        var image = try Self.floats(c.input)
        let s = encoder.imageSize

        image[(1 * s + 4) * s + 9] = .nan
        #expect { try encoder.encode(image: image) } throws: {
            guard case .range(let m) = $0 as? UniECGError else { return false }
            return m.contains("channel 1") && m.contains("row 4, column 9")
        }
        #expect { try encoder.encode(image: [Float](repeating: 0, count: 3 * s * s - 1)) } throws: {
            ($0 as? UniECGError)?.message.contains("3 planes of \(s) x \(s)") == true
        }
        // normalize applies the file's mean and std.
        let gray = try encoder.normalize(rgb: [Float](repeating: 0.5, count: 3 * s * s))
        #expect(abs(gray[2 * s * s] - Float((0.5 - encoder.mean[2]) / encoder.std[2])) < 1e-6)

        // A file without one image.* key: the encoder names it.
        let source = try ModelFile(path: path)
        for missing in ["image.select_layer", "image.std"] {
            let broken = dir.path("without-\(missing).uecg")
            let writer = try ModelWriter(path: broken)
            for (key, value) in source.metadata where key != missing { try writer.set(key, value) }
            for t in source.tensors {
                _ = try source.withPayload(of: t.name) { bytes in
                    try writer.addTensor(name: t.name, dtype: t.dtype, shape: t.shape, bytes: bytes)
                }
            }
            try writer.finish()
            #expect { try ImageEncoder(path: broken) } throws: {
                guard case .notFound(let m) = $0 as? UniECGError else { return false }
                return m.contains(missing)
            }
        }

        // Converter: settings the encoder does not implement are refused by name.
        let json = try Data(contentsOf: Fixtures.url("image_encoder/\(c.config)/image_config.json"))
        let object = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
        func refused(_ change: (inout [String: Any]) -> Void, _ needle: String) throws {
            var changed = object
            change(&changed)
            let data = try JSONSerialization.data(withJSONObject: changed)
            #expect { try ImageEncoderConfig(configJSON: data, source: "cfg") } throws: {
                ($0 as? ConversionError)?.message.contains(needle) == true
            }
        }
        try refused({ var v = $0["vision_config"] as! [String: Any]; v["hidden_act"] = "relu"; $0["vision_config"] = v }, "relu")
        try refused({ var v = $0["vision_config"] as! [String: Any]; v["image_size"] = 36; $0["vision_config"] = v }, "image_size 36")
        try refused({ $0["mm_vision_select_layer"] = -4 }, "mm_vision_select_layer -4")
        try refused({ $0["mm_vision_select_feature"] = "cls" }, "'cls'")
        try refused({ $0["image_std"] = [0.2, 0.0, 0.3] }, "image_std")
    }
}
