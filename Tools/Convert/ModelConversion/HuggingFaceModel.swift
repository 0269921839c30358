import Foundation
import UniECG

/// A decoder's hyper-parameters, read from a Hugging Face `config.json` of the Llama / Qwen2
/// family, and the metadata keys they become (ModelFormat.md §4).
public struct DecoderConfig: Equatable, Sendable {
    public var architecture: String  // "llama" | "qwen2"
    public var vocabSize: Int
    public var dim: Int
    public var layers: Int
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int
    public var ffnDim: Int
    public var contextLength: Int
    public var ropeTheta: Double
    public var normEps: Double
    public var tiedEmbeddings: Bool

    public init(configJSON data: Data, source: String) throws {
        guard let c = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ConversionError("\(source): not a JSON object")
        }
        func int(_ key: String) throws -> Int {
            guard let v = c[key] as? Int else { throw ConversionError("\(source): missing integer '\(key)'") }
            guard v > 0 else { throw ConversionError("\(source): '\(key)' is \(v), must be positive") }
            return v
        }
        guard let modelType = c["model_type"] as? String else { throw ConversionError("\(source): missing 'model_type'") }
        guard modelType == "llama" || modelType == "qwen2" else {
            throw ConversionError("\(source): model_type '\(modelType)' is not supported (llama, qwen2)")
        }
        if let act = c["hidden_act"] as? String, act != "silu" {
            throw ConversionError("\(source): hidden_act '\(act)' is not supported (silu)")
        }
        // transformers 5 keeps RoPE settings in rope_parameters; earlier versions at the top level.
        let rope = c["rope_parameters"] as? [String: Any] ?? c["rope_scaling"] as? [String: Any] ?? [:]
        if let kind = (rope["rope_type"] ?? rope["type"]) as? String, kind != "default" {
            throw ConversionError("\(source): RoPE scaling '\(kind)' is not supported yet")
        }
        architecture = modelType
        vocabSize = try int("vocab_size")
        dim = try int("hidden_size")
        layers = try int("num_hidden_layers")
        heads = try int("num_attention_heads")
        kvHeads = (c["num_key_value_heads"] as? Int) ?? heads
        headDim = (c["head_dim"] as? Int) ?? dim / heads
        ffnDim = try int("intermediate_size")
        contextLength = try int("max_position_embeddings")
        ropeTheta = (rope["rope_theta"] as? Double) ?? (c["rope_theta"] as? Double) ?? 10000
        normEps = (c["rms_norm_eps"] as? Double) ?? 1e-6
        tiedEmbeddings = (c["tie_word_embeddings"] as? Bool) ?? false
        guard kvHeads > 0, heads % kvHeads == 0 else {
            throw ConversionError("\(source): \(heads) attention heads are not a multiple of \(kvHeads) key/value heads")
        }
        guard headDim > 0, headDim % 2 == 0 else { throw ConversionError("\(source): head_dim \(headDim) must be even and positive") }
    }

    public func metadata(qkvBias: Bool) -> [(String, MetadataValue)] {
        [
            ("text.architecture", .string(architecture)),
            ("text.vocab_size", .int(Int64(vocabSize))),
            ("text.dim", .int(Int64(dim))),
            ("text.n_layers", .int(Int64(layers))),
            ("text.n_heads", .int(Int64(heads))),
            ("text.n_kv_heads", .int(Int64(kvHeads))),
            ("text.head_dim", .int(Int64(headDim))),
            ("text.ffn_dim", .int(Int64(ffnDim))),
            ("text.context_length", .int(Int64(contextLength))),
            ("text.rope_theta", .double(ropeTheta)),
            ("text.norm_eps", .double(normEps)),
            ("text.rope_layout", .string("half")),  // HF checkpoints pair dimension i with i + head_dim/2
            ("text.tied_embeddings", .bool(tiedEmbeddings)),
            ("text.qkv_bias", .bool(qkvBias)),
            ("text.activation", .string("silu")),
        ]
    }

    /// Every tensor the decoder needs: (source name, format name, expected shape).
    public func tensorPlan(qkvBias: Bool) -> [(source: String, target: String, shape: [Int])] {
        var plan: [(String, String, [Int])] = [("model.embed_tokens.weight", "text.embed", [vocabSize, dim])]
        let q = heads * headDim, kv = kvHeads * headDim
        for i in 0..<layers {
            let s = "model.layers.\(i).", t = "text.layers.\(i)."
            plan.append((s + "input_layernorm.weight", t + "attn_norm", [dim]))
            plan.append((s + "self_attn.q_proj.weight", t + "attn_q", [q, dim]))
            plan.append((s + "self_attn.k_proj.weight", t + "attn_k", [kv, dim]))
            plan.append((s + "self_attn.v_proj.weight", t + "attn_v", [kv, dim]))
            if qkvBias {
                plan.append((s + "self_attn.q_proj.bias", t + "attn_q_bias", [q]))
                plan.append((s + "self_attn.k_proj.bias", t + "attn_k_bias", [kv]))
                plan.append((s + "self_attn.v_proj.bias", t + "attn_v_bias", [kv]))
            }
            plan.append((s + "self_attn.o_proj.weight", t + "attn_out", [dim, q]))
            plan.append((s + "post_attention_layernorm.weight", t + "ffn_norm", [dim]))
            plan.append((s + "mlp.gate_proj.weight", t + "ffn_gate", [ffnDim, dim]))
            plan.append((s + "mlp.up_proj.weight", t + "ffn_up", [ffnDim, dim]))
            plan.append((s + "mlp.down_proj.weight", t + "ffn_down", [dim, ffnDim]))
        }
        plan.append(("model.norm.weight", "text.norm", [dim]))
        if !tiedEmbeddings { plan.append(("lm_head.weight", "text.output", [vocabSize, dim])) }
        return plan
    }
}
