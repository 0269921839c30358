import Foundation
import UniECG

/// The aligner component: the MLP that maps the language model's hidden states at its K
/// ECG-generation tokens to the U-Net's text-embedding condition. A directory with
/// `aligner_config.json` and `aligner.safetensors` (the state dict of the reference module in
/// Tools/reference/make_aligner_fixtures.py). ModelFormat.md, "Aligner (aligner.*)".
///
/// Source tensors (PyTorch names, `nn.ModuleList` of Linear layers plus an optional LayerNorm):
///   layers.{i}.weight (out, in), layers.{i}.bias (out)  ->  aligner.layers.{i}.weight / .bias
///   norm.weight, norm.bias (output_dim), with layer_norm  ->  aligner.norm / aligner.norm_bias
///   intent_head.weight (n, output_dim), intent_head.bias (n), with "intents" (n names) in the
///   config  ->  aligner.intent_head / aligner.intent_head_bias, aligner.intents
enum AlignerExport {
    static func plan(directory: String) throws -> ComponentPlan? {
        let configPath = directory + "/aligner_config.json", weightsPath = directory + "/aligner.safetensors"
        guard FileManager.default.fileExists(atPath: configPath), FileManager.default.fileExists(atPath: weightsPath)
        else { return nil }
        guard let data = FileManager.default.contents(atPath: configPath),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { throw ConversionError("\(configPath) is not a JSON object") }
        let config = try AlignerConfig(object, source: configPath)
        let file = try SafeTensorsFile(path: weightsPath)
        return ComponentPlan(architecture: AlignerConfig.architecture, metadata: config.metadata,
                             tensors: try config.tensors(of: file, source: weightsPath))
    }
}

struct AlignerConfig {
    static let architecture = "mlp"

    let tokens, inputDim, hiddenDim, layers, outputDim: Int
    let pooling: String  // "mean" or "flatten"
    let layerNorm, normalize: Bool
    let normEps: Double
    /// Names of the findings the optional intent head scores (empty: no head).
    let intents: [String]

    init(_ v: [String: Any], source: String) throws {
        func int(_ key: String) throws -> Int {
            if let n = v[key] as? Int, n > 0 { return n }
            throw ConversionError("\(source): \(key) is missing or not a positive integer")
        }
        func bool(_ key: String) throws -> Bool {
            if let b = v[key] as? Bool { return b }
            throw ConversionError("\(source): \(key) is missing or not true/false")
        }
        tokens = try int("tokens")
        inputDim = try int("input_dim")
        hiddenDim = try int("hidden_dim")
        layers = try int("n_layers")
        outputDim = try int("output_dim")
        guard layers <= 16 else { throw ConversionError("\(source): n_layers \(layers) exceeds 16") }
        guard let p = v["pooling"] as? String, p == "mean" || p == "flatten" else {
            throw ConversionError("\(source): pooling must be \"mean\" or \"flatten\"")
        }
        pooling = p
        layerNorm = try bool("layer_norm")
        normalize = try bool("normalize")
        // nn.LayerNorm's default when the source does not say.
        if v["norm_eps"] == nil {
            normEps = 1e-5
        } else if let e = v["norm_eps"] as? Double, e > 0, e.isFinite {
            normEps = e
        } else {
            throw ConversionError("\(source): norm_eps is not a positive number")
        }
        if v["intents"] == nil {
            intents = []
        } else if let names = v["intents"] as? [String], !names.isEmpty, names.count <= 4096,
                  names.allSatisfy({ !$0.isEmpty }), Set(names).count == names.count {
            intents = names
        } else {
            throw ConversionError("\(source): intents must list 1...4096 distinct, non-empty names")
        }
    }

    var metadata: [(String, MetadataValue)] {
        [
            ("aligner.architecture", .string(Self.architecture)),
            ("aligner.tokens", .int(Int64(tokens))),
            ("aligner.input_dim", .int(Int64(inputDim))),
            ("aligner.hidden_dim", .int(Int64(hiddenDim))),
            ("aligner.n_layers", .int(Int64(layers))),
            ("aligner.output_dim", .int(Int64(outputDim))),
            ("aligner.pooling", .string(pooling)),
            ("aligner.layer_norm", .bool(layerNorm)),
            ("aligner.norm_eps", .double(normEps)),
            ("aligner.normalize", .bool(normalize)),
        ] + (intents.isEmpty ? [] : [("aligner.intents", .stringArray(intents))])
    }

    /// (source key, format name, shape, matrix?) of every tensor, in layer order.
    func entries() -> [(source: String, target: String, shape: [Int], matrix: Bool)] {
        let pooled = pooling == "flatten" ? tokens * inputDim : inputDim
        var out: [(source: String, target: String, shape: [Int], matrix: Bool)] = []
        for i in 0..<layers {
            let cols = i == 0 ? pooled : hiddenDim, rows = i + 1 == layers ? outputDim : hiddenDim
            out.append(("layers.\(i).weight", "aligner.layers.\(i).weight", [rows, cols], true))
            out.append(("layers.\(i).bias", "aligner.layers.\(i).bias", [rows], false))
        }
        if layerNorm {
            out.append(("norm.weight", "aligner.norm", [outputDim], false))
            out.append(("norm.bias", "aligner.norm_bias", [outputDim], false))
        }
        if !intents.isEmpty {  // small and read once per objective: kept f32
            out.append(("intent_head.weight", "aligner.intent_head", [intents.count, outputDim], false))
            out.append(("intent_head.bias", "aligner.intent_head_bias", [intents.count], false))
        }
        return out
    }

    func tensors(of file: SafeTensorsFile, source: String) throws -> [PlannedTensor] {
        let plan = entries()
        // A tensor the config does not account for means config and weights disagree (a norm
        // with layer_norm false, a layer beyond n_layers): refuse rather than drop it.
        let known = Set(plan.map(\.source))
        let unknown = file.tensors.keys.filter { !known.contains($0) }.sorted()
        guard unknown.isEmpty else {
            throw ConversionError("\(source): tensors with no place in the aligner format: \(unknown.prefix(5).joined(separator: ", "))")
        }
        return try plan.map { entry in
            guard let tensor = file.tensors[entry.source] else {
                throw ConversionError("\(source): tensor '\(entry.source)' is missing")
            }
            guard tensor.shape == entry.shape else {
                throw ConversionError("\(source): tensor '\(entry.source)' has shape \(tensor.shape), aligner_config.json implies \(entry.shape)")
            }
            return PlannedTensor(file: file, tensor: tensor, target: entry.target, kind: entry.matrix ? .matrix : .vector)
        }
    }
}
