import Foundation
import ModelConversion
import Testing
@testable import UniECG

/// The converter against what torch reads from the same safetensors files (tensors.json, written
/// by Tools/reference/make_decoder_fixtures.py), and its refusals of broken inputs.
@Suite struct ConverterTests {
    static let names = DecoderTests.shapes

    struct Expected {
        let shape: [Int]
        let sum: Double, absSum: Double
        let first: [Double], last: [Double]
    }

    static func expected(_ name: String) throws -> [String: Expected] {
        let json = try #require(try Fixtures.json("decoder/\(name)/tensors.json") as? [String: [String: Any]])
        return json.mapValues {
            Expected(shape: $0["shape"] as! [Int], sum: $0["sum"] as! Double, absSum: $0["abs_sum"] as! Double,
                     first: $0["first"] as! [Double], last: $0["last"] as! [Double])
        }
    }

    @Test("the safetensors reader sees exactly what torch sees", arguments: names)
    func safetensorsMatchTorch(name: String) throws {
        let archive = try SafeTensorsArchive(directory: Fixtures.url("decoder/\(name)").path)
        let expected = try Self.expected(name)
        #expect(Set(archive.tensorNames) == Set(expected.keys))
        for (tensorName, e) in expected {
            let (file, tensor) = try #require(archive.tensor(tensorName))
            #expect(tensor.shape == e.shape)
            let dtype: DType = tensor.dtype == .f16 ? .f16 : tensor.dtype == .bf16 ? .bf16 : .f32
            let values = Quantization.floats(file.bytes(of: tensor), dtype: dtype, count: tensor.elementCount).map(Double.init)
            // Compared as Float: the f16/bf16/f32 values are exact there, while Foundation's JSON
            // reader may drop the last digit of a double.
            #expect(values.prefix(8).map(Float.init) == e.first.map(Float.init), "\(tensorName) first values")
            #expect(values.suffix(8).map(Float.init) == e.last.map(Float.init), "\(tensorName) last values")
            #expect(abs(values.reduce(0, +) - e.sum) <= 1e-9 * max(1, e.absSum))
            #expect(abs(values.map(abs).reduce(0, +) - e.absSum) <= 1e-9 * max(1, e.absSum))
        }
    }

    @Test("conversion keeps every tensor: exact with --quant none, within the q8 bound with q8", arguments: names)
    func tensorByTensor(name: String) throws {
        let dir = try Fixtures.temporaryDirectory()
        let source = Fixtures.url("decoder/\(name)").path
        let archive = try SafeTensorsArchive(directory: source)
        let config = try DecoderConfig(configJSON: Data(contentsOf: URL(fileURLWithPath: source + "/config.json")), source: "config.json")
        let qkvBias = archive.tensor("model.layers.0.self_attn.q_proj.bias") != nil
        for weights in Converter.WeightFormat.allCases {
            let path = try DecoderTests.convert(name, weights: weights, into: dir)
            let file = try ModelFile(path: path)
            let plan = config.tensorPlan(qkvBias: qkvBias)
            #expect(file.tensors.count == plan.count)
            for entry in plan {
                let (sf, tensor) = try #require(archive.tensor(entry.source))
                let dtype: DType = tensor.dtype == .f16 ? .f16 : tensor.dtype == .bf16 ? .bf16 : .f32
                let reference = Quantization.floats(sf.bytes(of: tensor), dtype: dtype, count: tensor.elementCount)
                let info = try #require(file.tensor(named: entry.target), "missing \(entry.target)")
                #expect(info.shape == tensor.shape)
                let converted = try file.floats(of: entry.target)
                if info.dtype == .q8 {
                    #expect(weights == .q8 && tensor.shape.count == 2)
                    // |x - q*scale| <= scale/2 + 127*|d - scale| with d = max|x|/127 of the group;
                    // bounded here by max|x| of the group times 1/254 + 2^-10 (f16 scale rounding).
                    for g in 0..<(reference.count / 32) {
                        let group = reference[g * 32..<(g + 1) * 32]
                        let bound = group.map(abs).max()! * (1.0 / 254 + 1.0 / 1024) + 1e-12
                        for i in group.indices { #expect(abs(converted[i] - reference[i]) <= bound, "\(entry.target)[\(i)]") }
                    }
                } else {
                    #expect(converted == reference, "\(entry.target) differs")
                }
            }
            #expect(file.metadata("text.n_layers") == .int(Int64(config.layers)))
            #expect(file.metadata("text.tied_embeddings") == .bool(config.tiedEmbeddings))
            #expect(file.metadata("text.qkv_bias") == .bool(qkvBias))
            #expect(file.metadata("general.intended_use") == .string(Converter.intendedUse))
            #expect(file.metadata("tokenizer.model") == .string("bpe-byte-level"))
        }
    }

    /// Copies a fixture directory so a test can break it.
    func copy(_ name: String, into dir: TemporaryDirectory) throws -> URL {
        let target = dir.url.appendingPathComponent("model")
        try FileManager.default.copyItem(at: Fixtures.url("decoder/\(name)"), to: target)
        return target
    }

    func failure(_ directory: URL, in dir: TemporaryDirectory) -> String? {
        do {
            _ = try Converter(directory: directory.path).convert(to: dir.path("out.uecg"))
            return nil
        } catch {
            #expect(!FileManager.default.fileExists(atPath: dir.path("out.uecg")), "a failed conversion left a file")
            return "\(error)"
        }
    }

    @Test("broken model directories are refused with an error naming the problem")
    func brokenInputs() throws {
        let dir = try Fixtures.temporaryDirectory()
        let model = try copy(Self.names[1], into: dir)
        let configURL = model.appendingPathComponent("config.json")
        let config = try Data(contentsOf: configURL)
        func withConfig(_ edit: (inout [String: Any]) -> Void) throws -> String? {
            var json = try #require(try JSONSerialization.jsonObject(with: config) as? [String: Any])
            edit(&json)
            try JSONSerialization.data(withJSONObject: json).write(to: configURL)
            defer { try? config.write(to: configURL) }
            return failure(model, in: dir)
        }
        #expect(try withConfig { $0["model_type"] = "gpt2" }?.contains("model_type 'gpt2' is not supported") == true)
        #expect(try withConfig { $0["num_hidden_layers"] = 3 }?.contains("model.layers.2") == true)
        #expect(try withConfig { $0["hidden_size"] = 96 }?.contains("has shape") == true)
        #expect(try withConfig { $0.removeValue(forKey: "vocab_size") }?.contains("'vocab_size'") == true)
        #expect(try withConfig { $0["rope_parameters"] = ["rope_type": "yarn", "rope_theta": 1e6] }?.contains("yarn") == true)

        // A truncated weights file.
        let weights = model.appendingPathComponent("model.safetensors")
        let original = try Data(contentsOf: weights)
        try original.prefix(original.count / 2).write(to: weights)
        #expect(failure(model, in: dir)?.contains("data_offsets") == true)
        // A header length pointing past the end.
        var bad = original
        bad.replaceSubrange(0..<8, with: [0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0])
        try bad.write(to: weights)
        #expect(failure(model, in: dir)?.contains("header length") == true)
        try original.write(to: weights)

        try FileManager.default.removeItem(at: model.appendingPathComponent("tokenizer.json"))
        #expect(failure(model, in: dir)?.contains("tokenizer.json") == true)
        #expect(failure(dir.url.appendingPathComponent("nowhere"), in: dir)?.contains("config.json") == true)
    }

    @Test("uniecg-convert and uniecg inspect --verify work end to end, and inspect names a damaged tensor")
    func commandLine() throws {
        let dir = try Fixtures.temporaryDirectory()
        let output = dir.path("cli.uecg")
        let convert = try Fixtures.run(Fixtures.executable("uniecg-convert"),
                                       [Fixtures.url("decoder/\(Self.names[0])").path, "-o", output])
        #expect(convert.status == 0, "\(convert.stderr)")
        #expect(convert.stdout.contains("parameters     328320"))
        let inspect = try Fixtures.run(Fixtures.executable("uniecg"), ["inspect", output, "--verify"])
        #expect(inspect.status == 0, "\(inspect.stderr)")
        #expect(inspect.stdout.contains("verify: all 21 tensor checksums match"))
        #expect(inspect.stdout.contains("text.layers.0.attn_q"))

        // Flip one byte inside the first tensor's payload: --verify must name that tensor.
        let file = try ModelFile(path: output, options: .init(loadTensors: false))
        let victim = file.tensors[0]
        var bytes = try Data(contentsOf: URL(fileURLWithPath: output))
        bytes[Int(victim.offset) + Int(victim.storedSize) / 2] ^= 0x10
        try bytes.write(to: URL(fileURLWithPath: output))
        let damaged = try Fixtures.run(Fixtures.executable("uniecg"), ["inspect", output, "--verify"])
        #expect(damaged.status != 0)
        #expect(damaged.stdout.contains("DAMAGED tensor '\(victim.name)'"))

        let json = try Fixtures.run(Fixtures.executable("uniecg"), ["inspect", output, "--json"])
        let parsed = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        #expect((parsed?["tensors"] as? [Any])?.count == 21)
    }

    @Test("retuning copies a .uecg bit for bit, changes only the keys it is told to, and refuses bad settings")
    func retune() throws {
        let dir = try Fixtures.temporaryDirectory()
        let source = try GeneratorTests.convert(.q8, into: dir)
        let copy = dir.path("copy.uecg")
        try ModelRetune.copy(from: source, to: copy, settings: [])
        #expect(try Data(contentsOf: URL(fileURLWithPath: copy)) == Data(contentsOf: URL(fileURLWithPath: source)))

        let retuned = dir.path("retuned.uecg")
        let settings = try ["unet.schedule.sampler=ddpm", "unet.schedule.steps=40", "unet.guidance_scale=3.5"]
            .map { s throws(ConversionError) in try ModelRetune.Setting(parsing: s) }
        let changed = try ModelRetune.copy(from: source, to: retuned, settings: settings)
        #expect(changed.map(\.new) == [.string("ddpm"), .int(40), .double(3.5)])
        let before = try ModelFile(path: source), after = try ModelFile(path: retuned)
        #expect(after.metadata("unet.schedule.sampler") == .string("ddpm"))
        #expect(after.metadata("unet.schedule.steps") == .int(40))
        #expect(after.metadata("unet.guidance_scale") == .double(3.5))
        #expect(after.metadataKeys == before.metadataKeys)
        for key in before.metadataKeys where !["unet.schedule.sampler", "unet.schedule.steps", "unet.guidance_scale"].contains(key) {
            #expect(after.metadata(key) == before.metadata(key), "\(key)")
        }
        #expect(after.tensors.map(\.name) == before.tensors.map(\.name))
        #expect(after.tensors.map(\.hash) == before.tensors.map(\.hash))
        let generator = try ECGGenerator(path: retuned)
        #expect(generator.defaultGuidance == 3.5)

        func refused(_ setting: String, _ message: String) throws {
            let out = dir.path("refused.uecg")
            #expect {
                try ModelRetune.copy(from: source, to: out, settings: [ModelRetune.Setting(parsing: setting)])
            } throws: { "\($0)".contains(message) }
            #expect(!FileManager.default.fileExists(atPath: out), "\(setting) left a file behind")
        }
        try refused("unet.schedule.sampler=euler", "does not load")
        try refused("unet.schedule.steps=many", "is an integer")
        try refused("unet.no_such_key=1", "no metadata key 'unet.no_such_key'")
        try refused("=1", "KEY=VALUE")
        #expect(throws: ConversionError.self) { try ModelRetune.copy(from: source, to: source, settings: []) }
    }

    @Test("replacing parts takes every tensor and key of those parts from the donor, keeps the rest, and checks the joins")
    func replaceParts() throws {
        let dir = try Fixtures.temporaryDirectory()
        let base = try GeneratorTests.convert(.q8, into: dir)
        let donor = try GeneratorTests.convert(.none, into: dir)
        let swapped = dir.path("swapped.uecg")
        try ModelRetune.copy(from: base, to: swapped, settings: [.init(parsing: "unet.schedule.steps=7")],
                             replacing: .init(donor: donor, parts: ["unet"]))
        let b = try ModelFile(path: base), d = try ModelFile(path: donor), s = try ModelFile(path: swapped)
        let hashes = { (f: ModelFile, prefix: String) in
            Dictionary(uniqueKeysWithValues: f.tensors.filter { $0.name.hasPrefix(prefix) }.map { ($0.name, $0.hash) })
        }
        #expect(hashes(s, "unet.") == hashes(d, "unet."))
        #expect(hashes(s, "vae.") == hashes(b, "vae."))
        #expect(hashes(b, "unet.") != hashes(d, "unet."), "q8 and unquantized U-Nets should differ")
        #expect(s.tensors.count == b.tensors.count)
        #expect(s.metadata("unet.schedule.steps") == .int(7))
        #expect(s.metadata("general.converter") == b.metadata("general.converter"))
        _ = try ECGGenerator(path: swapped)

        func refused(_ replacement: ModelRetune.PartReplacement, from input: String = base, _ message: String) {
            let out = dir.path("refused.uecg")
            #expect { try ModelRetune.copy(from: input, to: out, settings: [], replacing: replacement) }
                throws: { "\($0)".contains(message) }
            #expect(!FileManager.default.fileExists(atPath: out))
        }
        refused(.init(donor: donor, parts: ["image"]), "has no part 'image'")
        refused(.init(donor: donor, parts: ["general"]), "cannot be replaced")
        refused(.init(donor: dir.path("missing.uecg"), parts: ["unet"]), "missing.uecg")
        // The bundled model's aligner makes 384-wide conditions; the fixture U-Net takes 32.
        refused(.init(donor: donor, parts: ["unet"]), from: BundledModelTests.model, "do not fit together")
    }
}
