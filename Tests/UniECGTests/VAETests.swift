import Foundation
import ModelConversion
import Testing
@testable import UniECG

/// The DiffuSETS VAE through the Swift wrapper: the converter turns the small fixture
/// (Tests/Fixtures/diffusets/small, make_diffusets_fixtures.py) into a .uecg file, and decode /
/// encode must reproduce what PyTorch computed (vae_decode.bin, vae_encode.bin).
@Suite struct VAETests {
    static let small = Fixtures.url("diffusets/small")

    /// The @tensors of one manifest case, by name, read from <case>.bin (little-endian f32).
    static func fixture(_ name: String) throws -> [String: [Float]] {
        let manifest = try String(contentsOf: small.appendingPathComponent("manifest.txt"), encoding: .utf8)
        let line = try #require(manifest.split(separator: "\n").first { $0.split(separator: " ").first == Substring(name) })
        let data = try Data(contentsOf: small.appendingPathComponent("\(name).bin"))
        var out: [String: [Float]] = [:], offset = 0
        for field in line.split(separator: " ") where field.hasPrefix("@") {
            let parts = field.dropFirst().split(separator: "=")
            let count = parts[1].split(separator: ",").map { Int($0)! }.reduce(1, *)
            out[String(parts[0])] = (0..<count).map { i in
                Float(bitPattern: data[(offset + i) * 4..<(offset + i + 1) * 4].enumerated()
                    .reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) })
            }
            offset += count
        }
        #expect(offset * 4 == data.count, "\(name).bin holds \(data.count) bytes for \(offset) floats")
        return out
    }

    /// A source directory holding only the VAE (the small fixture also holds a U-Net), with
    /// `config` as its config.json (default: the fixture's).
    static func source(in dir: TemporaryDirectory, config: Data? = nil) throws -> String {
        let path = dir.path("vae-source")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: path + "/vae.safetensors",
                                                   withDestinationPath: small.appendingPathComponent("vae.safetensors").path)
        if let config {
            try config.write(to: URL(fileURLWithPath: path + "/config.json"))
        } else {
            try FileManager.default.createSymbolicLink(atPath: path + "/config.json",
                                                       withDestinationPath: small.appendingPathComponent("config.json").path)
        }
        return path
    }

    static func convert(_ weights: Converter.WeightFormat, into dir: TemporaryDirectory) throws -> String {
        try Fixtures.convert(try source(in: dir), weights: weights, to: dir.path("vae-\(weights.rawValue).uecg"))
    }

    @Test("the converter maps every published VAE key: 232 tensors, kernels flattened, values exact")
    func conversionKeepsEveryTensor() throws {
        let dir = try Fixtures.temporaryDirectory()
        let file = try ModelFile(path: try Self.convert(.none, into: dir))
        let source = try SafeTensorsFile(path: Self.small.appendingPathComponent("vae.safetensors").path)
        // Every source tensor but the two attention GroupNorms (2 tensors each) has a place.
        #expect(file.tensors.count == source.tensors.count - 4)
        #expect(file.metadata("general.architecture") == .string("diffusets-vae1d"))
        #expect(file.metadata("vae.widths") == .int64Array([16, 16, 32]))
        #expect(file.metadata("vae.groups") == .int(8))
        #expect(file.metadata("vae.scale") == .double(0.18215))
        #expect(file.metadata("vae.signal_length") == .int(1024))
        let pairs = [("decoder.25.weight", "vae.decoder.25.conv"), ("encoder.7.residual_layer.weight", "vae.encoder.7.skip"),
                     ("decoder.3.attention.in_proj.weight", "vae.decoder.3.attn_in"), ("encoder.15.bias", "vae.encoder.15.norm_bias"),
                     ("decoder.20.groupnorm_2.weight", "vae.decoder.20.norm_2")]
        for (key, target) in pairs {
            let tensor = try #require(source.tensors[key])
            let info = try #require(file.tensor(named: target), "missing \(target)")
            #expect(info.shape == (tensor.shape.count == 3 ? [tensor.shape[0], tensor.shape[1] * tensor.shape[2]] : tensor.shape))
            let reference = Quantization.floats(source.bytes(of: tensor), dtype: .f32, count: tensor.elementCount)
            #expect(try file.floats(of: target) == reference, "\(target) differs from \(key)")
        }
        #expect(file.tensor(named: "vae.decoder.3.norm") == nil)
    }

    @Test("decode reproduces PyTorch: within 1e-4 unquantized, correlation >= 0.999 in q8", arguments: Converter.WeightFormat.allCases)
    func decodeMatchesTorch(weights: Converter.WeightFormat) throws {
        let dir = try Fixtures.temporaryDirectory()
        var options = VAE.Options()
        options.threads = 2
        let vae = try VAE(path: try Self.convert(weights, into: dir), options: options)
        let cases = try Self.fixture("vae_decode")
        let z = try #require(cases["z"]), expected = try #require(cases["ecg"])
        let record = try vae.decode(latent: z)
        #expect(record.leads == Lead.allCases)
        #expect(record.sampleRate == 102.4 && record.sampleCount == 1024)
        let (relative, correlation) = Agreement.compare(record.signals.flatMap { $0 }, expected)
        if weights == .none {
            #expect(relative <= 1e-4, "relative error \(relative)")
        } else {
            #expect(correlation >= 0.999, "correlation \(correlation)")
        }
    }

    @Test("encode with the fixture's noise gives PyTorch's latent; without noise, the scaled mean")
    func encodeMatchesTorch() throws {
        let dir = try Fixtures.temporaryDirectory()
        let vae = try VAE(path: try Self.convert(.none, into: dir))
        let cases = try Self.fixture("vae_encode")
        let ecg = try #require(cases["ecg"]), noise = try #require(cases["noise"])
        let z = try vae.encode(samples: ecg, noise: noise)
        #expect(Agreement.compare(z, try #require(cases["z"])).relative <= 1e-4)
        let record = try ECGRecord(leads: Lead.allCases, signals: (0..<12).map { Array(ecg[$0 * 1024..<($0 + 1) * 1024]) },
                                   sampleRate: 102.4)
        let mean = try vae.encode(record)
        let expectedMean = try #require(cases["mean"]).map { $0 * Float(0.18215) }
        #expect(Agreement.compare(mean, expectedMean).relative <= 1e-4)
    }

    @Test("wrong sizes are refused before the C core runs")
    func refusesWrongSizes() throws {
        let dir = try Fixtures.temporaryDirectory()
        let vae = try VAE(path: try Self.convert(.q8, into: dir))
        #expect(throws: UniECGError.self) { try vae.decode(latent: [Float](repeating: 0, count: 511)) }
        #expect(throws: UniECGError.self) { try vae.encode(samples: [Float](repeating: 0, count: 1024)) }
        let shortRecord = try ECGRecord(leads: Lead.allCases, signals: Array(repeating: [Float](repeating: 0, count: 1000), count: 12),
                                        sampleRate: 102.4)
        #expect(throws: UniECGError.self) { try vae.encode(shortRecord) }
    }

    @Test("a config whose latent width disagrees with the checkpoint is refused, naming the tensor")
    func refusesShapeMismatch() throws {
        let dir = try Fixtures.temporaryDirectory()
        var config = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: Self.small.appendingPathComponent("config.json"))) as? [String: Any])
        var vae = try #require(config["vae"] as? [String: Any])
        vae["latent_channels"] = 2
        config["vae"] = vae
        config["unet"] = nil
        let source = try Self.source(in: dir, config: try JSONSerialization.data(withJSONObject: config))
        do {
            _ = try Converter(directory: source).convert(to: dir.path("bad.uecg"))
            Issue.record("the conversion should have failed")
        } catch let error as ConversionError {
            #expect(error.message.contains("'encoder.17.weight' has shape [8, 32, 3]"), "\(error.message)")
        }
    }

    @Test("a file without vae.* keys is refused, naming the key")
    func refusesFileWithoutVAE() throws {
        let decoder = Fixtures.url("decoder/llama-gqa-untied-hd64/model-q8.uecg").path
        #expect {
            _ = try VAE(path: decoder)
        } throws: { error in
            (error as? UniECGError).map { $0.message.contains("vae.architecture") } ?? false
        }
    }
}
