import Foundation
@testable import ModelConversion
import Testing
import UniECG

/// The latent U-Net's converter (UNetExport): the small fixture (Tests/Fixtures/diffusets/small,
/// make_diffusets_fixtures.py) converts with every tensor in its place, the published key list
/// (published/keys.txt) is covered exactly by the mapping plus the documented drop list, and
/// unknown or missing source tensors are refused. The numerics are CRuntime/tests/test_unet.c's.
@Suite struct UNetExportTests {
    static let small = Fixtures.url("diffusets/small")

    /// A source directory holding only the U-Net (the small fixture also holds a VAE), with
    /// `weights` as its unet.safetensors (default: the fixture's).
    static func source(in dir: TemporaryDirectory, weights: Data? = nil) throws -> String {
        let path = dir.path("unet-source")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: path + "/config.json",
                                                   withDestinationPath: small.appendingPathComponent("config.json").path)
        if let weights {
            try weights.write(to: URL(fileURLWithPath: path + "/unet.safetensors"))
        } else {
            try FileManager.default.createSymbolicLink(atPath: path + "/unet.safetensors",
                                                       withDestinationPath: small.appendingPathComponent("unet.safetensors").path)
        }
        return path
    }

    static func floats(_ file: SafeTensorsFile, _ key: String) throws -> [Float] {
        let tensor = try #require(file.tensors[key])
        return Quantization.floats(file.bytes(of: tensor), dtype: .f32, count: tensor.elementCount)
    }

    @Test("the small U-Net converts: metadata from the config, kernels flattened, packed projections sliced exactly")
    func conversion() throws {
        let dir = try Fixtures.temporaryDirectory()
        let output = try Fixtures.convert(try Self.source(in: dir), weights: .none, to: dir.path("unet.uecg"))
        let file = try ModelFile(path: output)
        let source = try SafeTensorsFile(path: Self.small.appendingPathComponent("unet.safetensors").path)
        #expect(file.metadata("general.architecture") == .string("diffusets-unet1d"))
        #expect(file.metadata("unet.levels") == .int(4))
        #expect(file.metadata("unet.block_heads") == .int64Array([2, 2, 2, 2, 2, 2]))
        #expect(file.metadata("unet.block_hidden") == .int64Array([16, 16, 16, 16, 16, 16]))
        #expect(file.metadata("unet.time_hidden") == .int(64))
        #expect(file.metadata("unet.schedule.sampler") == .string("ddim"))
        #expect(file.metadata("unet.schedule.steps") == .int(10))
        #expect(file.metadata("unet.schedule.clip_sample") == .bool(true))
        // dropped: each Block's own `down` (2 tensors, 6 blocks), the cross-attention's to_q,
        // to_k, normalization (6 tensors, 7 blocks); the self-attention's packed in-projection
        // becomes three matrices (+2, 7 blocks)
        let dropped = source.tensors.keys.filter(UNetConfig.isDropped)
        #expect(dropped.count == 12 + 42)
        #expect(file.tensors.count == source.tensors.count - dropped.count + 14)
        // a flattened kernel, a transposed-convolution kernel, plain matrices and vectors
        let same = [("downsampling_blocks.0.block.pre_shortcut_convs.weight", "unet.down.0.conv1"),
                    ("upsampling_blocks.1.up.weight", "unet.up.1.up"), ("bottelneck.bottleneck_conv1_2.weight", "unet.mid.conv_mid"),
                    ("upsampling_blocks.2.block.cross_attention.value_combiner.weight", "unet.up.2.cross.combiner"),
                    ("output_conv.2.bias", "unet.out.proj_bias"), ("bottelneck.attention_norm.weight", "unet.mid.attn_norm"),
                    ("downsampling_blocks.1.block.self_attention.attention.in_proj_bias", "unet.down.1.attn.in_proj_bias")]
        for (key, target) in same {
            #expect(try file.floats(of: target) == Self.floats(source, key), "\(target) differs from \(key)")
        }
        #expect(file.tensor(named: "unet.down.0.conv1")?.shape == [6, 4 * 7])
        // the row blocks of the packed in-projections (hidden 16)
        let packed = try Self.floats(source, "upsampling_blocks.0.block.self_attention.attention.in_proj_weight")
        #expect(try file.floats(of: "unet.up.0.attn.in_k") == Array(packed[16 * 16..<32 * 16]))
        let cross = try Self.floats(source, "bottelneck.cross_attention.attention.in_proj_weight")
        let crossBias = try Self.floats(source, "bottelneck.cross_attention.attention.in_proj_bias")
        #expect(try file.floats(of: "unet.mid.cross.in_v") == Array(cross[64 * 32..<96 * 32]))
        #expect(try file.floats(of: "unet.mid.cross.in_v_bias") == Array(crossBias[64..<96]))
        #expect(file.tensor(named: "unet.down.0.block.down") == nil && file.tensor(named: "unet.mid.cross.q") == nil)
    }

    @Test("the published key list is covered exactly: 624 tensors planned, the drop list is the unused and table keys")
    func publishedKeys() throws {
        let config = try #require(try Fixtures.json("diffusets/published/config.json") as? [String: Any])
        let unet = try #require(config["unet"] as? [String: Any])
        let plan = try UNetConfig(unet, scheduler: nil, source: "published/config.json").plan()
        let lines = try String(contentsOf: Fixtures.url("diffusets/published/keys.txt"), encoding: .utf8)
            .split(separator: "\n").filter { $0.hasPrefix("unet ") }
        #expect(lines.count == 713)
        var shapes: [String: [Int]] = [:]
        for line in lines {
            let fields = line.split(separator: " ")
            let key = String(fields[1]), use = fields[3]
            shapes[key] = fields[2].split(separator: ",").map { Int($0)! }
            #expect(UNetConfig.isDropped(key) == (use == "unused" || use == "table"), "\(key): \(use)")
        }
        #expect(plan.count == 624)
        #expect(Set(plan.map(\.target)).count == 624)
        for entry in plan {
            #expect(shapes[entry.source] == entry.shape, "\(entry.source)")
        }
        let planned = Set(plan.map(\.source))
        #expect(shapes.keys.filter { !planned.contains($0) && !UNetConfig.isDropped($0) }.isEmpty)
        #expect(planned.filter(UNetConfig.isDropped).isEmpty)
        // the condition combiner (1539 values a row) cannot be q8
        #expect(plan.contains { $0.target == "unet.up.0.cross.combiner" && $0.shape == [192, 1539] })
    }

    /// The fixture's safetensors with its header edited: `edit` changes the tensor table; an
    /// added tensor's bytes are appended.
    static func editedWeights(_ edit: (inout [String: Any], inout Data) -> Void) throws -> Data {
        let original = try Data(contentsOf: small.appendingPathComponent("unet.safetensors"))
        let length = original.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        var header = try #require(try JSONSerialization.jsonObject(with: original.subdata(in: 8..<(8 + length))) as? [String: Any])
        var payload = original.subdata(in: (8 + length)..<original.count)
        edit(&header, &payload)
        let json = try JSONSerialization.data(withJSONObject: header)
        var out = Data((0..<8).map { UInt8((json.count >> (8 * $0)) & 0xff) })
        out.append(json)
        out.append(payload)
        return out
    }

    @Test("a source tensor with no place in the format, or a missing one, is refused by name")
    func refusesUnknownAndMissing() throws {
        let dir = try Fixtures.temporaryDirectory()
        let extra = try Self.editedWeights { header, payload in
            header["downsampling_blocks.0.block.mystery.weight"] = ["dtype": "F32", "shape": [1],
                                                                   "data_offsets": [payload.count, payload.count + 4]]
            payload.append(Data(count: 4))
        }
        do {
            _ = try Converter(directory: try Self.source(in: dir, weights: extra)).convert(to: dir.path("a.uecg"))
            Issue.record("an unknown tensor was accepted")
        } catch let error as ConversionError {
            #expect(error.message.contains("downsampling_blocks.0.block.mystery.weight"), "\(error.message)")
        }
        let dir2 = try Fixtures.temporaryDirectory()
        let missing = try Self.editedWeights { header, _ in
            header["upsampling_blocks.2.block.cross_attention.to_v.bias"] = nil
        }
        do {
            _ = try Converter(directory: try Self.source(in: dir2, weights: missing)).convert(to: dir2.path("b.uecg"))
            Issue.record("a missing tensor was accepted")
        } catch let error as ConversionError {
            #expect(error.message.contains("upsampling_blocks.2.block.cross_attention.to_v.bias"), "\(error.message)")
        }
    }

    @Test("without unet.safetensors or a unet section the exporter stays out")
    func absent() throws {
        let dir = try Fixtures.temporaryDirectory()
        try FileManager.default.createSymbolicLink(atPath: dir.path("config.json"),
                                                   withDestinationPath: Self.small.appendingPathComponent("config.json").path)
        #expect(try UNetExport.plan(directory: dir.url.path) == nil)
        #expect(try UNetExport.plan(directory: Fixtures.url("decoder").path) == nil)
    }
}
