import Foundation
import UniECG

/// The ECG signal encoder's hyper-parameters, read from `signal_config.json`, and the signal.*
/// metadata and tensors they become (ModelFormat.md, "Signal encoder").
///
/// The JSON keeps open_clip's `ecg_cfg` object as ECG-Chat / GEM's ECG-CoCa model config writes it
/// (seq_length, lead_num, layers, width, patch_size, head_width = 64, mlp_ratio = 4.0 by default),
/// and adds what a checkpoint does not say: `sample_rate` (Hz), `leads` (input row names),
/// `layer_norm_eps` (1e-5), `tower_prefix` (prepended to every tower tensor name, e.g.
/// "module.ecg." for the raw ECG-CoCa checkpoint) and `projector` {dims, activations, sources}.
public struct SignalEncoderConfig: Equatable, Sendable {
    public var samples: Int
    public var leads: [String]
    public var layers: Int
    public var width: Int
    public var patchSize: Int
    public var heads: Int
    public var ffnDim: Int
    public var sampleRate: Double
    public var normEps: Double
    public var lnPre: Bool
    public var towerPrefix: String
    /// Widths of the projector chain: the input (= width), then one per Linear layer.
    public var projectorDims: [Int]
    /// Between consecutive Linear layers: "gelu" or "none" (count = layers - 1).
    public var projectorActivations: [String]
    /// Source name prefix of each Linear layer (`<prefix>.weight`, `<prefix>.bias`).
    public var projectorSources: [String]

    public init(configJSON data: Data, source: String) throws {
        guard let c = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ConversionError("\(source): not a JSON object")
        }
        guard let ecg = c["ecg_cfg"] as? [String: Any] else { throw ConversionError("\(source): missing object 'ecg_cfg'") }
        func int(_ key: String, in object: [String: Any], default value: Int? = nil) throws -> Int {
            guard let v = (object[key] as? Int) ?? value else { throw ConversionError("\(source): missing integer '\(key)'") }
            guard v > 0 else { throw ConversionError("\(source): '\(key)' is \(v), must be positive") }
            return v
        }
        // Features of open_clip's tower that the C encoder does not implement are refused by
        // name rather than silently dropped.
        if let v = ecg["ls_init_value"], !(v is NSNull) { throw ConversionError("\(source): ecg_cfg.ls_init_value (LayerScale) is not supported") }
        if (ecg["attentional_pool"] as? Bool) == true { throw ConversionError("\(source): ecg_cfg.attentional_pool is not supported") }
        if let t = ecg["pos_embed_type"] as? String, t != "learnable" { throw ConversionError("\(source): ecg_cfg.pos_embed_type '\(t)' is not supported (learnable)") }
        if (c["quick_gelu"] as? Bool) == true { throw ConversionError("\(source): quick_gelu is not supported (the ECG tower uses nn.GELU)") }
        if ecg["act_kwargs"] is [String: Any] || ecg["norm_kwargs"] is [String: Any] {
            throw ConversionError("\(source): ecg_cfg.act_kwargs / norm_kwargs are not supported")
        }
        samples = try int("seq_length", in: ecg)
        let leadCount = try int("lead_num", in: ecg)
        layers = try int("layers", in: ecg)
        width = try int("width", in: ecg)
        patchSize = try int("patch_size", in: ecg)
        let headWidth = try int("head_width", in: ecg, default: 64)
        let mlpRatio = (ecg["mlp_ratio"] as? Double) ?? 4.0
        guard width % headWidth == 0 else { throw ConversionError("\(source): width \(width) is not a multiple of head_width \(headWidth)") }
        heads = width / headWidth
        ffnDim = Int(Double(width) * mlpRatio)  // open_clip: int(d_model * mlp_ratio)
        guard samples % patchSize == 0 else { throw ConversionError("\(source): seq_length \(samples) is not a multiple of patch_size \(patchSize)") }
        lnPre = !((ecg["no_ln_pre"] as? Bool) ?? false)
        guard let rate = c["sample_rate"] as? Double, rate > 0 else { throw ConversionError("\(source): missing positive number 'sample_rate'") }
        sampleRate = rate
        guard let names = c["leads"] as? [String], names.count == leadCount, Set(names).count == names.count,
              names.allSatisfy({ !$0.isEmpty && $0.utf8.count < 32 })
        else { throw ConversionError("\(source): 'leads' must name \(leadCount) distinct leads (ecg_cfg.lead_num)") }
        leads = names
        normEps = (c["layer_norm_eps"] as? Double) ?? 1e-5
        towerPrefix = (c["tower_prefix"] as? String) ?? ""
        guard let projector = c["projector"] as? [String: Any], let dims = projector["dims"] as? [Int], dims.count >= 2,
              dims.count <= 9, dims.allSatisfy({ $0 > 0 })
        else { throw ConversionError("\(source): 'projector.dims' must list 2 to 9 positive widths (input, then one per layer)") }
        guard dims[0] == width else { throw ConversionError("\(source): projector.dims starts at \(dims[0]), the tower's width is \(width)") }
        projectorDims = dims
        let activations = (projector["activations"] as? [String]) ?? []
        guard activations.count == dims.count - 2, activations.allSatisfy({ $0 == "gelu" || $0 == "none" }) else {
            throw ConversionError("\(source): 'projector.activations' needs \(dims.count - 2) entries of \"gelu\" or \"none\"")
        }
        projectorActivations = activations
        if let sources = projector["sources"] as? [String] {
            guard sources.count == dims.count - 1 else {
                throw ConversionError("\(source): 'projector.sources' names \(sources.count) layers, dims describe \(dims.count - 1)")
            }
            projectorSources = sources
        } else {
            // nn.Sequential numbering: a GELU between layers takes an index too (LLaVA's
            // mlp2x_gelu is projector.0, projector.2).
            var index = 0, names: [String] = []
            for j in 0..<(dims.count - 1) {
                names.append("projector.\(index)")
                index += j < activations.count && activations[j] == "gelu" ? 2 : 1
            }
            projectorSources = names
        }
    }

    public func metadata() -> [(String, MetadataValue)] {
        [
            ("signal.architecture", .string("patch-transformer-1d")),
            ("signal.leads", .stringArray(leads)),
            ("signal.sample_rate", .double(sampleRate)),
            ("signal.samples", .int(Int64(samples))),
            ("signal.patch_size", .int(Int64(patchSize))),
            ("signal.width", .int(Int64(width))),
            ("signal.n_layers", .int(Int64(layers))),
            ("signal.n_heads", .int(Int64(heads))),
            ("signal.ffn_dim", .int(Int64(ffnDim))),
            ("signal.norm_eps", .double(normEps)),
            ("signal.ln_pre", .bool(lnPre)),
            ("signal.activation", .string("gelu")),
            ("signal.projector.dims", .int64Array(projectorDims.map(Int64.init))),
            ("signal.projector.activations", .stringArray(projectorActivations)),
        ]
    }

    public enum Storage: Sendable {
        /// A weight matrix: q8 when asked and its rows are a multiple of 32 values, otherwise the
        /// source dtype.
        case matrix
        /// Always f32 (norms, biases, class token and positions: small, and added, not multiplied).
        case f32
    }

    public struct Entry: Sendable, Equatable {
        public let source: String, target: String
        public let sourceShape: [Int], targetShape: [Int]
        public let storage: Storage
    }

    /// Every tensor the encoder needs, in source and target names and shapes.
    public func tensorPlan() -> [Entry] {
        let w = width, p = towerPrefix
        var plan: [Entry] = []
        func add(_ source: String, _ target: String, _ shape: [Int], _ storage: Storage, as targetShape: [Int]? = nil) {
            plan.append(Entry(source: source, target: target, sourceShape: shape, targetShape: targetShape ?? shape, storage: storage))
        }
        // Conv1d weight (width, leads, patch) is the matrix (width, leads * patch) in the same order.
        add(p + "conv1.weight", "signal.patch_embed", [w, leads.count, patchSize], .matrix, as: [w, leads.count * patchSize])
        add(p + "class_embedding", "signal.class_embed", [w], .f32)
        add(p + "positional_embedding", "signal.pos_embed", [samples / patchSize + 1, w], .f32)
        if lnPre {
            add(p + "ln_pre.weight", "signal.ln_pre", [w], .f32)
            add(p + "ln_pre.bias", "signal.ln_pre_bias", [w], .f32)
        }
        for i in 0..<layers {
            let s = p + "transformer.resblocks.\(i).", t = "signal.layers.\(i)."
            add(s + "ln_1.weight", t + "attn_norm", [w], .f32)
            add(s + "ln_1.bias", t + "attn_norm_bias", [w], .f32)
            add(s + "attn.in_proj_weight", t + "attn_qkv", [3 * w, w], .matrix)
            add(s + "attn.in_proj_bias", t + "attn_qkv_bias", [3 * w], .f32)
            add(s + "attn.out_proj.weight", t + "attn_out", [w, w], .matrix)
            add(s + "attn.out_proj.bias", t + "attn_out_bias", [w], .f32)
            add(s + "ln_2.weight", t + "ffn_norm", [w], .f32)
            add(s + "ln_2.bias", t + "ffn_norm_bias", [w], .f32)
            add(s + "mlp.c_fc.weight", t + "ffn_up", [ffnDim, w], .matrix)
            add(s + "mlp.c_fc.bias", t + "ffn_up_bias", [ffnDim], .f32)
            add(s + "mlp.c_proj.weight", t + "ffn_down", [w, ffnDim], .matrix)
            add(s + "mlp.c_proj.bias", t + "ffn_down_bias", [w], .f32)
        }
        for (j, prefix) in projectorSources.enumerated() {
            add(prefix + ".weight", "signal.projector.\(j)", [projectorDims[j + 1], projectorDims[j]], .matrix)
            add(prefix + ".bias", "signal.projector.\(j)_bias", [projectorDims[j + 1]], .f32)
        }
        return plan
    }

    /// Tower tensors GEM does not use and the format leaves out: it takes every token of the last
    /// transformer layer, before `ln_post`, and never the pooled `proj` output.
    public func isIgnorable(_ name: String) -> Bool {
        [towerPrefix + "ln_post.weight", towerPrefix + "ln_post.bias", towerPrefix + "proj"].contains(name)
    }
}

/// The signal encoder component: `signal_config.json` + `signal_encoder.safetensors` in the
/// source directory, alone (general.architecture "signal-encoder") or next to a decoder's files.
enum SignalEncoderExport {
    static let configName = "signal_config.json"
    static let weightsName = "signal_encoder.safetensors"

    static func plan(directory: String) throws -> ComponentPlan? {
        let configPath = directory + "/" + configName, weightsPath = directory + "/" + weightsName
        let fm = FileManager.default
        guard fm.fileExists(atPath: configPath) || fm.fileExists(atPath: weightsPath) else { return nil }
        guard let data = fm.contents(atPath: configPath) else {
            throw ConversionError("'\(configPath)' is missing (a signal encoder needs it next to \(weightsName))")
        }
        guard fm.fileExists(atPath: weightsPath) else {
            throw ConversionError("'\(weightsPath)' is missing (a signal encoder needs it next to \(configName))")
        }
        let config = try SignalEncoderConfig(configJSON: data, source: configPath)
        let file = try SafeTensorsFile(path: weightsPath)
        let plan = config.tensorPlan()
        // Every source tensor must be used or be one GEM leaves unused, so nothing is silently lost.
        let planned = Set(plan.map(\.source))
        let unknown = file.tensors.keys.sorted().filter { !planned.contains($0) && !config.isIgnorable($0) }
        guard unknown.isEmpty else {
            throw ConversionError("\(weightsName): tensors with no place in the format: \(unknown.prefix(5).joined(separator: ", "))\(unknown.count > 5 ? ", …" : "")")
        }
        var tensors: [PlannedTensor] = []
        for entry in plan {
            guard let tensor = file.tensors[entry.source] else {
                throw ConversionError("\(weightsName): tensor '\(entry.source)' is missing")
            }
            guard tensor.shape == entry.sourceShape else {
                throw ConversionError("\(weightsName): tensor '\(entry.source)' has shape \(tensor.shape), \(configName) implies \(entry.sourceShape)")
            }
            // GEM's patch conv has 12 x 50 = 600 columns, not a multiple of 32: the converter
            // keeps it in the source dtype (the C encoder widens f16 / bf16 to f32 once at load).
            tensors.append(PlannedTensor(file: file, tensor: tensor, target: entry.target,
                                         kind: entry.storage == .matrix ? .matrix : .vector,
                                         shape: entry.targetShape == entry.sourceShape ? nil : entry.targetShape))
        }
        return ComponentPlan(architecture: "signal-encoder", metadata: config.metadata(), tensors: tensors)
    }
}
