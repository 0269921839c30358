import Foundation
import UniECG

/// The ECG image encoder's hyper-parameters, read from `image_config.json`, and the image.*
/// metadata and tensors they become (ModelFormat.md, "Image encoder").
///
/// The JSON keeps Hugging Face's `CLIPVisionConfig` as `vision_config` (image_size, patch_size,
/// hidden_size, num_hidden_layers, num_attention_heads, intermediate_size, hidden_act,
/// layer_norm_eps), `CLIPImageProcessor`'s `image_mean` / `image_std`, LLaVA's
/// `mm_vision_select_layer` (hidden_states index, negative from the end; -2 by default) and
/// `mm_vision_select_feature` ("patch" by default), and adds `tower_prefix` (prepended to every
/// tower tensor name: "vision_model." by default, LLaVA's
/// "model.vision_tower.vision_tower.vision_model.") and `projector` {dims, activations, sources}.
public struct ImageEncoderConfig: Equatable, Sendable {
    public var imageSize: Int
    public var patchSize: Int
    public var width: Int
    public var layers: Int
    public var heads: Int
    public var ffnDim: Int
    /// "quick_gelu" or "gelu".
    public var activation: String
    public var normEps: Double
    public var mean: [Double]
    public var std: [Double]
    /// Blocks run: hidden_states[selectLayer] are the features (0...layers).
    public var selectLayer: Int
    /// "patch" (class token dropped) or "cls_patch".
    public var featureSelect: String
    public var towerPrefix: String
    public var projectorDims: [Int]
    public var projectorActivations: [String]
    public var projectorSources: [String]

    public var patches: Int { (imageSize / patchSize) * (imageSize / patchSize) }

    public init(configJSON data: Data, source: String) throws {
        guard let c = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ConversionError("\(source): not a JSON object")
        }
        guard let v = c["vision_config"] as? [String: Any] else { throw ConversionError("\(source): missing object 'vision_config'") }
        func int(_ key: String) throws -> Int {
            guard let n = v[key] as? Int else { throw ConversionError("\(source): missing integer 'vision_config.\(key)'") }
            guard n > 0 else { throw ConversionError("\(source): 'vision_config.\(key)' is \(n), must be positive") }
            return n
        }
        imageSize = try int("image_size")
        patchSize = try int("patch_size")
        width = try int("hidden_size")
        layers = try int("num_hidden_layers")
        heads = try int("num_attention_heads")
        ffnDim = try int("intermediate_size")
        if let channels = v["num_channels"] as? Int, channels != 3 {
            throw ConversionError("\(source): vision_config.num_channels is \(channels); the image encoder takes 3 (RGB)")
        }
        guard imageSize % patchSize == 0 else {
            throw ConversionError("\(source): image_size \(imageSize) is not a multiple of patch_size \(patchSize)")
        }
        guard width % heads == 0 else {
            throw ConversionError("\(source): hidden_size \(width) is not a multiple of num_attention_heads \(heads)")
        }
        activation = (v["hidden_act"] as? String) ?? "quick_gelu"
        guard ["quick_gelu", "gelu"].contains(activation) else {
            throw ConversionError("\(source): vision_config.hidden_act '\(activation)' is not supported (quick_gelu, gelu)")
        }
        normEps = (v["layer_norm_eps"] as? Double) ?? 1e-5
        guard normEps > 0, normEps.isFinite else { throw ConversionError("\(source): layer_norm_eps must be a positive number") }
        func channelStats(_ key: String, positive: Bool) throws -> [Double] {
            guard let values = c[key] as? [Double], values.count == 3, values.allSatisfy({ $0.isFinite && (!positive || $0 > 0) }) else {
                throw ConversionError("\(source): '\(key)' must list 3 \(positive ? "positive " : "")numbers (one per channel)")
            }
            return values
        }
        mean = try channelStats("image_mean", positive: false)
        std = try channelStats("image_std", positive: true)
        // LLaVA indexes hidden_states as Python does: -2 is the second-to-last layer's output.
        let select = (c["mm_vision_select_layer"] as? Int) ?? -2
        guard select >= -(layers + 1), select <= layers else {
            throw ConversionError("\(source): mm_vision_select_layer \(select) is outside -\(layers + 1)...\(layers) (hidden_states of \(layers) layers)")
        }
        selectLayer = select < 0 ? layers + 1 + select : select
        featureSelect = (c["mm_vision_select_feature"] as? String) ?? "patch"
        guard ["patch", "cls_patch"].contains(featureSelect) else {
            throw ConversionError("\(source): mm_vision_select_feature '\(featureSelect)' is not supported (patch, cls_patch)")
        }
        towerPrefix = (c["tower_prefix"] as? String) ?? "vision_model."
        guard let projector = c["projector"] as? [String: Any], let dims = projector["dims"] as? [Int], dims.count >= 2,
              dims.count <= 9, dims.allSatisfy({ $0 > 0 })
        else { throw ConversionError("\(source): 'projector.dims' must list 2 to 9 positive widths (input, then one per layer)") }
        guard dims[0] == width else { throw ConversionError("\(source): projector.dims starts at \(dims[0]), the tower's hidden_size is \(width)") }
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
            // nn.Sequential numbering: a GELU between layers takes an index too.
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
            ("image.architecture", .string("clip-vit")),
            ("image.image_size", .int(Int64(imageSize))),
            ("image.patch_size", .int(Int64(patchSize))),
            ("image.mean", .float64Array(mean)),
            ("image.std", .float64Array(std)),
            ("image.width", .int(Int64(width))),
            ("image.n_layers", .int(Int64(layers))),
            ("image.select_layer", .int(Int64(selectLayer))),
            ("image.n_heads", .int(Int64(heads))),
            ("image.ffn_dim", .int(Int64(ffnDim))),
            ("image.norm_eps", .double(normEps)),
            ("image.activation", .string(activation)),
            ("image.feature_select", .string(featureSelect)),
            ("image.projector.dims", .int64Array(projectorDims.map(Int64.init))),
            ("image.projector.activations", .stringArray(projectorActivations)),
        ]
    }

    public enum Storage: Sendable {
        /// A weight matrix: q8 when asked and its rows are a multiple of 32 values, otherwise the
        /// source dtype.
        case matrix
        /// Always f32 (norms, biases, class token and positions).
        case f32
    }

    public struct Entry: Sendable, Equatable {
        /// One source tensor, or several whose elements are joined in this order (q, k, v).
        public let sources: [String]
        public let target: String
        /// The shape of each source tensor.
        public let sourceShape: [Int]
        public let targetShape: [Int]
        public let storage: Storage
    }

    /// Every tensor the encoder needs, in source and target names and shapes. Blocks from
    /// selectLayer on are never run and have no entry.
    public func tensorPlan() -> [Entry] {
        let w = width, f = ffnDim, p = towerPrefix
        var plan: [Entry] = []
        func add(_ sources: [String], _ target: String, _ shape: [Int], _ storage: Storage, as targetShape: [Int]? = nil) {
            plan.append(Entry(sources: sources, target: target, sourceShape: shape, targetShape: targetShape ?? shape, storage: storage))
        }
        // Conv2d weight (width, 3, p, p) is the matrix (width, 3 p p) in the same order.
        add([p + "embeddings.patch_embedding.weight"], "image.patch_embed", [w, 3, patchSize, patchSize], .matrix,
            as: [w, 3 * patchSize * patchSize])
        add([p + "embeddings.class_embedding"], "image.class_embed", [w], .f32)
        add([p + "embeddings.position_embedding.weight"], "image.pos_embed", [patches + 1, w], .f32)
        add([p + "pre_layrnorm.weight"], "image.ln_pre", [w], .f32)
        add([p + "pre_layrnorm.bias"], "image.ln_pre_bias", [w], .f32)
        for i in 0..<selectLayer {
            let s = p + "encoder.layers.\(i).", t = "image.layers.\(i)."
            let qkv = ["q_proj", "k_proj", "v_proj"].map { s + "self_attn." + $0 }
            add([s + "layer_norm1.weight"], t + "attn_norm", [w], .f32)
            add([s + "layer_norm1.bias"], t + "attn_norm_bias", [w], .f32)
            add(qkv.map { $0 + ".weight" }, t + "attn_qkv", [w, w], .matrix, as: [3 * w, w])
            add(qkv.map { $0 + ".bias" }, t + "attn_qkv_bias", [w], .f32, as: [3 * w])
            add([s + "self_attn.out_proj.weight"], t + "attn_out", [w, w], .matrix)
            add([s + "self_attn.out_proj.bias"], t + "attn_out_bias", [w], .f32)
            add([s + "layer_norm2.weight"], t + "ffn_norm", [w], .f32)
            add([s + "layer_norm2.bias"], t + "ffn_norm_bias", [w], .f32)
            add([s + "mlp.fc1.weight"], t + "ffn_up", [f, w], .matrix)
            add([s + "mlp.fc1.bias"], t + "ffn_up_bias", [f], .f32)
            add([s + "mlp.fc2.weight"], t + "ffn_down", [w, f], .matrix)
            add([s + "mlp.fc2.bias"], t + "ffn_down_bias", [w], .f32)
        }
        for (j, prefix) in projectorSources.enumerated() {
            add([prefix + ".weight"], "image.projector.\(j)", [projectorDims[j + 1], projectorDims[j]], .matrix)
            add([prefix + ".bias"], "image.projector.\(j)_bias", [projectorDims[j + 1]], .f32)
        }
        return plan
    }

    /// Tower tensors the format leaves out: CLIP's post_layernorm (it normalises the pooled
    /// class token, which LLaVA never uses), the position_ids buffer older checkpoints store,
    /// and the blocks after the selected layer, whose output is never used.
    public func isIgnorable(_ name: String) -> Bool {
        let p = towerPrefix
        if [p + "post_layernorm.weight", p + "post_layernorm.bias", p + "embeddings.position_ids"].contains(name) { return true }
        guard name.hasPrefix(p + "encoder.layers.") else { return false }
        let rest = name.dropFirst((p + "encoder.layers.").count)
        guard let dot = rest.firstIndex(of: "."), let layer = Int(rest[..<dot]) else { return false }
        return layer >= selectLayer && layer < layers
    }
}

/// The image encoder component: `image_config.json` + `image_encoder.safetensors` in the source
/// directory, alone (general.architecture "image-encoder") or next to other components' files.
enum ImageEncoderExport {
    static let configName = "image_config.json"
    static let weightsName = "image_encoder.safetensors"

    static func plan(directory: String) throws -> ComponentPlan? {
        let configPath = directory + "/" + configName, weightsPath = directory + "/" + weightsName
        let fm = FileManager.default
        guard fm.fileExists(atPath: configPath) || fm.fileExists(atPath: weightsPath) else { return nil }
        guard let data = fm.contents(atPath: configPath) else {
            throw ConversionError("'\(configPath)' is missing (an image encoder needs it next to \(weightsName))")
        }
        guard fm.fileExists(atPath: weightsPath) else {
            throw ConversionError("'\(weightsPath)' is missing (an image encoder needs it next to \(configName))")
        }
        let config = try ImageEncoderConfig(configJSON: data, source: configPath)
        let file = try SafeTensorsFile(path: weightsPath)
        let plan = config.tensorPlan()
        // Every source tensor must be used or be one the format knowingly leaves out.
        let planned = Set(plan.flatMap(\.sources))
        let unknown = file.tensors.keys.sorted().filter { !planned.contains($0) && !config.isIgnorable($0) }
        guard unknown.isEmpty else {
            throw ConversionError("\(weightsName): tensors with no place in the format: \(unknown.prefix(5).joined(separator: ", "))\(unknown.count > 5 ? ", …" : "")")
        }
        var tensors: [PlannedTensor] = []
        for entry in plan {
            var parts: [SourceTensor] = []
            for name in entry.sources {
                guard let tensor = file.tensors[name] else { throw ConversionError("\(weightsName): tensor '\(name)' is missing") }
                guard tensor.shape == entry.sourceShape else {
                    throw ConversionError("\(weightsName): tensor '\(name)' has shape \(tensor.shape), \(configName) implies \(entry.sourceShape)")
                }
                guard tensor.dtype == parts.first?.dtype ?? tensor.dtype else {
                    throw ConversionError("\(weightsName): '\(name)' is \(tensor.dtype.rawValue), '\(parts[0].name)' is \(parts[0].dtype.rawValue); packed q, k, v must share a dtype")
                }
                parts.append(tensor)
            }
            // ViT-L/14's patch conv has 3 x 14 x 14 = 588 columns, not a multiple of 32: the
            // converter keeps it in the source dtype (the C encoder widens f16 / bf16 at load).
            tensors.append(PlannedTensor(file: file, tensor: parts[0], target: entry.target,
                                         kind: entry.storage == .matrix ? .matrix : .vector,
                                         shape: entry.targetShape == entry.sourceShape ? nil : entry.targetShape,
                                         stacked: Array(parts.dropFirst())))
        }
        return ComponentPlan(architecture: "image-encoder", metadata: config.metadata(), tensors: tensors)
    }
}
