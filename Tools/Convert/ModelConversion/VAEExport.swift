import Foundation
import UniECG

/// The VAE component (DiffuSETS' 1-D port of the Stable Diffusion autoencoder): a directory with
/// `vae.safetensors` holding the published encoder and decoder state dicts under the prefixes
/// `encoder.` and `decoder.`, and a config.json whose "vae" section gives the hyper-parameters
/// (Tools/reference/diffusets.py, VAEConfig.to_dict()). ModelFormat.md, "VAE (vae.*)".
enum VAEExport {
    static func plan(directory: String) throws -> ComponentPlan? {
        let configPath = diffusionConfigPath(directory), weightsPath = directory + "/vae.safetensors"
        guard let data = FileManager.default.contents(atPath: configPath),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let section = object["vae"] as? [String: Any]
        else { return nil }
        guard FileManager.default.fileExists(atPath: weightsPath) else { return nil }
        let config = try VAEConfig(section, source: configPath)
        let file = try SafeTensorsFile(path: weightsPath)
        return ComponentPlan(architecture: VAEConfig.architecture, metadata: config.metadata,
                             tensors: try config.tensors(of: file, source: weightsPath))
    }
}

/// The VAE's hyper-parameters and its layer list, both networks in the published nn.Sequential
/// order: the index of every step is the index in the source key, so the format names keep it.
struct VAEConfig {
    static let architecture = "diffusets-vae1d"

    let signalChannels, latentChannels, groups: Int
    let widths: [Int]  // finest level first
    let scale, logvarMin, logvarMax, normEps: Double
    let signalLength: Int
    let sampleRate: Double

    init(_ v: [String: Any], source: String) throws {
        func int(_ key: String, default value: Int? = nil) throws -> Int {
            if let n = v[key] as? Int, n > 0 { return n }
            if v[key] == nil, let value { return value }
            throw ConversionError("\(source): vae.\(key) is missing or not a positive integer")
        }
        func double(_ key: String, default value: Double? = nil) throws -> Double {
            if let x = v[key] as? Double, x.isFinite { return x }
            if v[key] == nil, let value { return value }
            throw ConversionError("\(source): vae.\(key) is missing or not a finite number")
        }
        signalChannels = try int("signal_channels")
        latentChannels = try int("latent_channels")
        let g = try int("groups")
        guard let w = v["widths"] as? [Int], w.count == 3, w.allSatisfy({ $0 > 0 }) else {
            throw ConversionError("\(source): vae.widths must be three positive integers (the DiffuSETS VAE has three levels)")
        }
        guard w.allSatisfy({ $0 % g == 0 }) else {
            throw ConversionError("\(source): vae.groups \(g) does not divide the widths \(w)")
        }
        groups = g
        widths = w
        scale = try double("scale")
        logvarMin = try double("logvar_min")
        logvarMax = try double("logvar_max")
        guard scale > 0, logvarMin <= logvarMax else {
            throw ConversionError("\(source): vae.scale \(scale) must be positive and logvar_min \(logvarMin) <= logvar_max \(logvarMax)")
        }
        // Not in the published code's config: nn.GroupNorm's default eps, and DiffuSETS' ECGs
        // (10 s at 102.4 Hz = 1024 samples).
        normEps = try double("norm_eps", default: 1e-5)
        signalLength = try int("signal_length", default: 1024)
        sampleRate = try double("sample_rate", default: 102.4)
        guard signalLength % 8 == 0 else {
            throw ConversionError("\(source): vae.signal_length \(signalLength) is not a multiple of 8 (three stride-2 levels)")
        }
    }

    var metadata: [(String, MetadataValue)] {
        [
            ("vae.architecture", .string(Self.architecture)),
            ("vae.signal_channels", .int(Int64(signalChannels))),
            ("vae.signal_length", .int(Int64(signalLength))),
            ("vae.sample_rate", .double(sampleRate)),
            ("vae.latent_channels", .int(Int64(latentChannels))),
            ("vae.widths", .int64Array(widths.map(Int64.init))),
            ("vae.groups", .int(Int64(groups))),
            ("vae.norm_eps", .double(normEps)),
            ("vae.scale", .double(scale)),
            ("vae.logvar_min", .double(logvarMin)),
            ("vae.logvar_max", .double(logvarMax)),
        ]
    }

    enum Step {
        case conv(Int, cin: Int, cout: Int, kernel: Int)
        case res(Int, cin: Int, cout: Int)
        case attention(Int, width: Int)
        case norm(Int, width: Int)  // GroupNorm; the SiLU after it has the next index and no keys
    }

    var encoderSteps: [Step] {
        let (a, b, c) = (widths[0], widths[1], widths[2])
        return [
            .conv(0, cin: signalChannels, cout: a, kernel: 3), .res(1, cin: a, cout: a), .res(2, cin: a, cout: a),
            .conv(3, cin: a, cout: a, kernel: 3), .res(4, cin: a, cout: b), .res(5, cin: b, cout: b),
            .conv(6, cin: b, cout: b, kernel: 3), .res(7, cin: b, cout: c), .res(8, cin: c, cout: c),
            .conv(9, cin: c, cout: c, kernel: 3), .res(10, cin: c, cout: c), .res(11, cin: c, cout: c),
            .res(12, cin: c, cout: c), .attention(13, width: c), .res(14, cin: c, cout: c), .norm(15, width: c),
            .conv(17, cin: c, cout: 2 * latentChannels, kernel: 3),
            .conv(18, cin: 2 * latentChannels, cout: 2 * latentChannels, kernel: 1),
        ]
    }

    var decoderSteps: [Step] {
        let (a, b, c) = (widths[0], widths[1], widths[2])
        // Indices 8, 13 and 18 are the nearest up-samplings and 24 the SiLU: no tensors.
        return [
            .conv(0, cin: latentChannels, cout: latentChannels, kernel: 1), .conv(1, cin: latentChannels, cout: c, kernel: 3),
            .res(2, cin: c, cout: c), .attention(3, width: c), .res(4, cin: c, cout: c), .res(5, cin: c, cout: c),
            .res(6, cin: c, cout: c), .res(7, cin: c, cout: c), .conv(9, cin: c, cout: c, kernel: 3),
            .res(10, cin: c, cout: c), .res(11, cin: c, cout: c), .res(12, cin: c, cout: c),
            .conv(14, cin: c, cout: c, kernel: 3), .res(15, cin: c, cout: b), .res(16, cin: b, cout: b),
            .res(17, cin: b, cout: b), .conv(19, cin: b, cout: b, kernel: 3), .res(20, cin: b, cout: a),
            .res(21, cin: a, cout: a), .res(22, cin: a, cout: a), .norm(23, width: a),
            .conv(25, cin: a, cout: signalChannels, kernel: 3),
        ]
    }

    /// (source key, format name, shape, matrix?) for every tensor of both networks.
    func entries() -> [(source: String, target: String, shape: [Int], matrix: Bool)] {
        var out: [(String, String, [Int], Bool)] = []
        for (part, steps) in [("encoder", encoderSteps), ("decoder", decoderSteps)] {
            func add(_ i: Int, _ key: String, _ name: String, _ shape: [Int]) {
                out.append(("\(part).\(i).\(key)", "vae.\(part).\(i).\(name)", shape, shape.count >= 2))
            }
            func conv(_ i: Int, _ prefix: String, _ name: String, cin: Int, cout: Int, kernel: Int) {
                add(i, prefix + "weight", name, [cout, cin, kernel])
                add(i, prefix + "bias", name + "_bias", [cout])
            }
            for step in steps {
                switch step {
                case let .conv(i, cin, cout, kernel):
                    conv(i, "", "conv", cin: cin, cout: cout, kernel: kernel)
                case let .res(i, cin, cout):
                    add(i, "groupnorm_1.weight", "norm_1", [cin])
                    add(i, "groupnorm_1.bias", "norm_1_bias", [cin])
                    conv(i, "conv_1.", "conv_1", cin: cin, cout: cout, kernel: 3)
                    add(i, "groupnorm_2.weight", "norm_2", [cout])
                    add(i, "groupnorm_2.bias", "norm_2_bias", [cout])
                    conv(i, "conv_2.", "conv_2", cin: cout, cout: cout, kernel: 3)
                    if cin != cout { conv(i, "residual_layer.", "skip", cin: cin, cout: cout, kernel: 1) }
                case let .attention(i, width):
                    add(i, "attention.in_proj.weight", "attn_in", [3 * width, width])
                    add(i, "attention.in_proj.bias", "attn_in_bias", [3 * width])
                    add(i, "attention.out_proj.weight", "attn_out", [width, width])
                    add(i, "attention.out_proj.bias", "attn_out_bias", [width])
                case let .norm(i, width):
                    add(i, "weight", "norm", [width])
                    add(i, "bias", "norm_bias", [width])
                }
            }
        }
        return out.map { (source: $0.0, target: $0.1, shape: $0.2, matrix: $0.3) }
    }

    /// The attention blocks' GroupNorm: in the checkpoint, never applied by the published
    /// forward pass, so not converted.
    func unusedKeys() -> Set<String> {
        var keys = Set<String>()
        for (part, steps) in [("encoder", encoderSteps), ("decoder", decoderSteps)] {
            for case let .attention(i, _) in steps {
                keys.insert("\(part).\(i).groupnorm.weight")
                keys.insert("\(part).\(i).groupnorm.bias")
            }
        }
        return keys
    }

    func tensors(of file: SafeTensorsFile, source: String) throws -> [PlannedTensor] {
        let plan = entries()
        // Every source tensor has a place, or is one of the documented unused ones.
        let known = Set(plan.map(\.source)).union(unusedKeys())
        let unknown = file.tensors.keys.filter { !known.contains($0) }.sorted()
        guard unknown.isEmpty else {
            throw ConversionError("\(source): tensors with no place in the VAE format: \(unknown.prefix(5).joined(separator: ", "))\(unknown.count > 5 ? ", …" : "")")
        }
        return try plan.map { entry in
            guard let tensor = file.tensors[entry.source] else {
                throw ConversionError("\(source): tensor '\(entry.source)' is missing")
            }
            guard tensor.shape == entry.shape else {
                throw ConversionError("\(source): tensor '\(entry.source)' has shape \(tensor.shape), config.json implies \(entry.shape)")
            }
            // Convolution kernels (c_out, c_in, k) are stored as matrices (c_out, c_in * k), same
            // element order: the layout the C convolution reads, and rows q8 can quantize.
            let stored: [Int]? = entry.shape.count == 3 ? [entry.shape[0], entry.shape[1] * entry.shape[2]] : nil
            return PlannedTensor(file: file, tensor: tensor, target: entry.target, kind: entry.matrix ? .matrix : .vector,
                                 shape: stored)
        }
    }
}
