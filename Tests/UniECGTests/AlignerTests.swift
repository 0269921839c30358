import Foundation
import ModelConversion
import Testing
@testable import UniECG

/// The aligner through the converter and the Swift wrapper: each fixture configuration
/// (Tests/Fixtures/aligner/<config>, make_aligner_fixtures.py) is converted to a .uecg file and
/// its inputs must give what PyTorch computed (expected.bin).
@Suite struct AlignerTests {
    static let root = Fixtures.url("aligner")

    static func floats(_ url: URL) throws -> [Float] {
        let data = try Data(contentsOf: url)
        return (0..<data.count / 4).map { i in
            Float(bitPattern: data[i * 4..<(i + 1) * 4].enumerated()
                .reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) })
        }
    }

    static func convert(_ config: String, _ weights: Converter.WeightFormat, into dir: TemporaryDirectory,
                        source: String? = nil) throws -> String {
        try Fixtures.convert(source ?? root.appendingPathComponent(config).path, weights: weights,
                             to: dir.path("aligner-\(config)-\(weights.rawValue).uecg"))
    }

    @Test("converted fixtures reproduce PyTorch: f32 within 1e-4, q8 correlation >= 0.999",
          arguments: ["mean_l2", "flatten_ln"])
    func matchesPyTorch(config: String) throws {
        let dir = try Fixtures.temporaryDirectory()
        let input = try Self.floats(Self.root.appendingPathComponent("\(config)/input.bin"))
        let expected = try Self.floats(Self.root.appendingPathComponent("\(config)/expected.bin"))
        for weights in [Converter.WeightFormat.none, .q8] {
            let path = try Self.convert(config, weights, into: dir)
            let file = try ModelFile(path: path)
            #expect(file.metadata("general.architecture") == .string("mlp"))
            #expect(file.metadata("aligner.pooling") == .string(config == "mean_l2" ? "mean" : "flatten"))
            let aligner = try Aligner(file: file)
            let cases = expected.count / aligner.outputDim
            #expect(cases == 3 && input.count == cases * aligner.tokens * aligner.inputDim)
            var got: [Float] = []
            for c in 0..<cases {
                let n = aligner.tokens * aligner.inputDim
                got += try aligner.condition(hidden: Array(input[c * n..<(c + 1) * n]))
            }
            let (relative, correlation) = Agreement.compare(got, expected)
            if weights == .none {
                #expect(relative <= 1e-4, "\(config) f32: relative error \(relative)")
            } else {
                #expect(correlation >= 0.999, "\(config) q8: correlation \(correlation)")
                // Every fixture matrix has rows of a multiple of 32: all of them must be q8.
                #expect(file.tensors.filter { $0.name.hasSuffix(".weight") }.allSatisfy { $0.dtype == .q8 })
            }
        }
    }

    @Test("the wrapper refuses a wrong-sized input and a NaN (token and index named)")
    func refusals() throws {
        let dir = try Fixtures.temporaryDirectory()
        let aligner = try Aligner(path: try Self.convert("mean_l2", .none, into: dir))
        #expect(throws: UniECGError.self) { try aligner.condition(hidden: [0, 1]) }
        var hidden = [Float](repeating: 0.5, count: aligner.tokens * aligner.inputDim)
        hidden[aligner.inputDim + 2] = .nan
        do {
            _ = try aligner.condition(hidden: hidden)
            Issue.record("a NaN hidden state was accepted")
        } catch {
            guard case .range(let message) = error else { Issue.record("expected a range error, got \(error)"); return }
            #expect(message.contains("token 1, index 2"))
        }
    }

    @Test("the converter refuses a config that disagrees with the weights")
    func converterRefusesMismatch() throws {
        let dir = try Fixtures.temporaryDirectory()
        let source = dir.path("src")
        try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: source + "/aligner.safetensors",
            withDestinationPath: Self.root.appendingPathComponent("flatten_ln/aligner.safetensors").path)
        var config = try #require(try JSONSerialization.jsonObject(
            with: Data(contentsOf: Self.root.appendingPathComponent("flatten_ln/aligner_config.json"))) as? [String: Any])
        // Mean pooling makes layer 0 (64, 48), but the weights are (64, 96): named in the error.
        config["pooling"] = "mean"
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: source + "/aligner_config.json"))
        do {
            _ = try Self.convert("bad", .none, into: dir, source: source)
            Issue.record("a mismatched config was converted")
        } catch let error as ConversionError {
            #expect(error.message.contains("layers.0.weight"))
        }
        // layer_norm false leaves norm.* without a place: refused, not dropped.
        config["pooling"] = "flatten"
        config["layer_norm"] = false
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: source + "/aligner_config.json"))
        do {
            _ = try Self.convert("bad2", .none, into: dir, source: source)
            Issue.record("unplaced norm tensors were accepted")
        } catch let error as ConversionError {
            #expect(error.message.contains("norm.bias"))
        }
    }

    /// `base` (a safetensors file) with f32 tensors appended: the format is an 8-byte
    /// little-endian header length, the JSON header, then the data.
    static func appendingTensors(to base: Data, _ extra: [(String, [Int], [Float])]) throws -> Data {
        let headerLength = Int(base.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
        var header = try #require(try JSONSerialization.jsonObject(with: base.subdata(in: 8..<8 + headerLength)) as? [String: Any])
        var body = base.subdata(in: (8 + headerLength)..<base.count)
        for (name, shape, values) in extra {
            let start = body.count
            for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { body.append(contentsOf: $0) } }
            header[name] = ["dtype": "F32", "shape": shape, "data_offsets": [start, body.count]]
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        return out + json + body
    }

    @Test("an intent head converts with its names and picks the highest-scoring name; a mismatched one is refused")
    func intentHead() throws {
        let dir = try Fixtures.temporaryDirectory()
        let source = dir.path("intents")
        try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: true)
        let fixture = Self.root.appendingPathComponent("flatten_ln")
        var config = try #require(try JSONSerialization.jsonObject(
            with: Data(contentsOf: fixture.appendingPathComponent("aligner_config.json"))) as? [String: Any])
        let outputDim = try #require(config["output_dim"] as? Int)
        let expected = try Self.floats(fixture.appendingPathComponent("expected.bin"))
        let first = Array(expected[0..<outputDim])
        // Row "toward" scores the first case's output highest, "away" lowest, "flat" by its bias.
        let head = first + first.map { -$0 } + [Float](repeating: 0, count: outputDim)
        let base = try Data(contentsOf: fixture.appendingPathComponent("aligner.safetensors"))
        try Self.appendingTensors(to: base, [("intent_head.weight", [3, outputDim], head), ("intent_head.bias", [3], [0, 0, 0.5])])
            .write(to: URL(fileURLWithPath: source + "/aligner.safetensors"))
        config["intents"] = ["toward", "away", "flat"]
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: source + "/aligner_config.json"))
        let file = try ModelFile(path: try Self.convert("intents", .q8, into: dir, source: source))
        #expect(file.metadata("aligner.intents") == .stringArray(["toward", "away", "flat"]))
        #expect(file.tensor(named: "aligner.intent_head")?.dtype == .f32)
        let aligner = try Aligner(file: file)
        #expect(aligner.intents == ["toward", "away", "flat"])
        #expect(aligner.intent(condition: first) == "toward")
        #expect(aligner.intent(condition: first.map { -$0 }) == "away")
        #expect(aligner.intent(condition: [Float](repeating: 0, count: outputDim)) == "flat")
        #expect(aligner.intent(condition: [1, 2]) == nil)

        // Four names for three rows: the converter names the tensor whose shape disagrees.
        config["intents"] = ["toward", "away", "flat", "extra"]
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: source + "/aligner_config.json"))
        do {
            _ = try Self.convert("intents-bad", .none, into: dir, source: source)
            Issue.record("an intent head of the wrong size was converted")
        } catch let error as ConversionError {
            #expect(error.message.contains("intent_head.weight"), "\(error.message)")
        }
    }
}
