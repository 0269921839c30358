import Foundation
import UniECG

/// The latent U-Net component (DiffuSETS' conditional 1-D U-Net): a directory with
/// `unet.safetensors` (the published key names) and a config.json whose "unet" section gives the
/// hyper-parameters (Tools/reference/diffusets.py, UNetConfig.to_dict()). The checkpoint does not
/// hold the attention head counts, so they come from the config; the optional "scheduler"
/// section (diffusers' DDIMScheduler / DDPMScheduler settings) gives the default sampling
/// schedule, else DiffuSETS' published one. ModelFormat.md, "Latent U-Net (unet.*)".
/// The diffusion part's config: `diffusion_config.json` when the directory also holds a language
/// model (whose Hugging Face config.json takes that name), else `config.json`.
func diffusionConfigPath(_ directory: String) -> String {
    let separate = directory + "/diffusion_config.json"
    return FileManager.default.fileExists(atPath: separate) ? separate : directory + "/config.json"
}

enum UNetExport {
    static func plan(directory: String) throws -> ComponentPlan? {
        let configPath = diffusionConfigPath(directory), weightsPath = directory + "/unet.safetensors"
        guard let data = FileManager.default.contents(atPath: configPath),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let section = object["unet"] as? [String: Any]
        else { return nil }
        guard FileManager.default.fileExists(atPath: weightsPath) else { return nil }
        let config = try UNetConfig(section, scheduler: object["scheduler"] as? [String: Any], source: configPath)
        let file = try SafeTensorsFile(path: weightsPath)
        // The guidance scale the model was tuned for (export_diffusion.py's "guidance" section).
        var metadata = config.metadata
        if let guidance = object["guidance"] as? [String: Any], let scale = (guidance["scale"] as? NSNumber)?.doubleValue {
            guard scale.isFinite, scale >= 0 else { throw ConversionError("\(configPath): guidance.scale must be finite and >= 0") }
            metadata.append(("unet.guidance_scale", .double(scale)))
        }
        return ComponentPlan(architecture: UNetConfig.architecture, metadata: metadata,
                             tensors: try config.tensors(of: file))
    }
}

/// The hyper-parameters and the derived widths (the same rules as diffusets.py's
/// UNetConfig.widths() and block_attention()).
struct UNetConfig {
    static let architecture = "diffusets-unet1d"

    let channels, length, levels, kernel, condDim, extraConditions: Int
    let trainSteps, timeDim, timeHidden: Int
    let timeConstant: Double
    let heads, hidden: [Int]               // the 2 (levels - 1) blocks: down blocks, then up blocks
    let bottleneckHeads, bottleneckHidden, bottleneckKernel: Int
    let downIn, downOut, upIn, upOut, upConv: [Int]
    let bottleneck: Int
    let schedule: [(String, MetadataValue)]

    var blocks: Int { 2 * (levels - 1) }
    var condLength: Int { condDim + extraConditions }

    init(_ u: [String: Any], scheduler: [String: Any]?, source: String) throws {
        func int(_ key: String, default value: Int? = nil) throws -> Int {
            if let v = u[key] as? Int { return v }
            if u[key] == nil, let value { return value }
            throw ConversionError("\(source): unet.\(key) is missing or not an integer")
        }
        channels = try int("channels")
        length = try int("latent_length", default: 128)
        levels = try int("levels")
        kernel = try int("kernel")
        condDim = try int("cond_dim")
        extraConditions = try int("extra_conditions", default: 3)
        trainSteps = try int("train_steps", default: 1000)
        timeDim = try int("time_dim", default: 64)
        timeHidden = try int("time_hidden", default: 128)
        timeConstant = (u["time_constant"] as? Double) ?? 10.0
        bottleneckHeads = try int("bottleneck_heads", default: 4)
        bottleneckHidden = try int("bottleneck_hidden", default: 32)
        bottleneckKernel = try int("bottleneck_kernel", default: 3)
        guard levels >= 3, levels <= 12, channels >= 1, kernel >= 1, kernel % 2 == 1, bottleneckKernel % 2 == 1,
              condDim >= 1, extraConditions >= 0, trainSteps >= 2, timeDim >= 4, timeDim % 2 == 0, timeHidden >= 1,
              length >= 1, length % (1 << (levels - 1)) == 0
        else {
            throw ConversionError("\(source): unet section out of range (levels \(levels) in 3...12, odd kernels, latent_length \(length) divisible by 2^(levels-1))")
        }
        // locals first: closures must not capture a partly initialized self
        let n = levels - 1, c = channels
        let dIn = (0..<n).map { c << $0 }
        let dOut = dIn.map { 2 * $0 }
        let uOut = (0..<n).map { dOut[n - 1 - $0] / 2 }
        let uIn = [dOut[n - 1]] + (1..<n).map { uOut[$0 - 1] + dOut[n - 1 - $0] }
        downIn = dIn
        downOut = dOut
        upOut = uOut
        upIn = uIn
        upConv = [uIn[0]] + uIn.dropFirst().map { $0 / 2 }
        bottleneck = dOut[n - 1]
        let ins = dIn + uIn
        // heads: an int for every block or a list; hidden: null (2 x the block's input width, the
        // release), an int, or a list
        func perBlock(_ key: String, _ fallback: (Int) -> Int) throws -> [Int] {
            switch u[key] {
            case let v as Int: return Array(repeating: v, count: 2 * n)
            case let v as [Int] where v.count >= 2 * n: return Array(v.prefix(2 * n))
            case nil, is NSNull: return (0..<(2 * n)).map(fallback)
            default: throw ConversionError("\(source): unet.\(key) must be an integer or a list of at least \(2 * n)")
            }
        }
        heads = try perBlock("heads") { _ in 8 }
        hidden = try perBlock("hidden") { 2 * ins[$0] }
        for (i, (h, d)) in zip(heads, hidden).enumerated() where h < 1 || d < 1 || d % h != 0 {
            throw ConversionError("\(source): block \(i) has attention width \(d) and \(h) heads (must divide)")
        }
        guard bottleneckHeads >= 1, bottleneckHidden % bottleneckHeads == 0 else {
            throw ConversionError("\(source): bottleneck attention width \(bottleneckHidden) with \(bottleneckHeads) heads")
        }
        // the reference writes its derived lists too: they must agree with ours
        if let derived = u["derived"] as? [String: Any] {
            let mine: [String: [Int]] = ["down_in": downIn, "down_out": downOut, "up_in": upIn, "up_out": upOut,
                                         "up_conv": upConv, "block_heads": heads, "block_hidden": hidden]
            for (key, value) in mine {
                if let theirs = derived[key] as? [Int], theirs != value {
                    throw ConversionError("\(source): unet.derived.\(key) is \(theirs), the configuration implies \(value)")
                }
            }
        }
        // the default sampling schedule: the config's diffusers scheduler section, else the
        // published DiffuSETS one (1000-step DDPM, linear betas 0.00085..0.012, epsilon, x0 clipped to +-1)
        let s = scheduler ?? [:]
        let betas = (s["beta_schedule"] as? String) ?? "linear"
        guard ["linear", "scaled_linear", "squaredcos_cap_v2"].contains(betas) else {
            throw ConversionError("\(source): scheduler.beta_schedule '\(betas)' is not supported")
        }
        let prediction = (s["prediction_type"] as? String) ?? "epsilon"
        guard ["epsilon", "v_prediction"].contains(prediction) else {
            throw ConversionError("\(source): scheduler.prediction_type '\(prediction)' is not supported")
        }
        let sampler = (s["kind"] as? String) ?? "ddpm"
        guard ["ddpm", "ddim", "dpmpp_2m"].contains(sampler) else {
            throw ConversionError("\(source): scheduler.kind '\(sampler)' is not supported (ddpm, ddim, dpmpp_2m)")
        }
        let scheduleSteps = (s["num_train_timesteps"] as? Int) ?? trainSteps
        schedule = [
            ("unet.schedule.train_steps", .int(Int64(scheduleSteps))),
            ("unet.schedule.betas", .string(betas)),
            ("unet.schedule.beta_start", .double((s["beta_start"] as? Double) ?? 0.00085)),
            ("unet.schedule.beta_end", .double((s["beta_end"] as? Double) ?? 0.012)),
            ("unet.schedule.prediction", .string(prediction)),
            ("unet.schedule.clip_sample", .bool((s["clip_sample"] as? Bool) ?? true)),
            ("unet.schedule.clip_range", .double((s["clip_sample_range"] as? Double) ?? 1.0)),
            ("unet.schedule.sampler", .string(sampler)),
            ("unet.schedule.steps", .int(Int64((s["steps"] as? Int) ?? scheduleSteps))),
            ("unet.schedule.eta", .double((s["eta"] as? Double) ?? 0.0)),
        ]
    }

    var metadata: [(String, MetadataValue)] {
        [
            ("unet.architecture", .string(Self.architecture)),
            ("unet.latent_channels", .int(Int64(channels))),
            ("unet.latent_length", .int(Int64(length))),
            ("unet.levels", .int(Int64(levels))),
            ("unet.base_channels", .int(Int64(channels))),
            ("unet.kernel", .int(Int64(kernel))),
            ("unet.cond_dim", .int(Int64(condDim))),
            ("unet.extra_conditions", .int(Int64(extraConditions))),
            ("unet.block_heads", .int64Array(heads.map(Int64.init))),
            ("unet.block_hidden", .int64Array(hidden.map(Int64.init))),
            ("unet.bottleneck_heads", .int(Int64(bottleneckHeads))),
            ("unet.bottleneck_hidden", .int(Int64(bottleneckHidden))),
            ("unet.bottleneck_kernel", .int(Int64(bottleneckKernel))),
            ("unet.time_dim", .int(Int64(timeDim))),
            ("unet.time_hidden", .int(Int64(timeHidden))),
            ("unet.time_constant", .double(timeConstant)),
            ("unet.train_steps", .int(Int64(trainSteps))),
            // PyTorch's defaults: the published modules construct GroupNorm / LayerNorm without eps
            ("unet.group_norm_eps", .double(1e-5)),
            ("unet.layer_norm_eps", .double(1e-5)),
        ] + schedule
    }

    /// Published key suffixes that the forward pass never reads, dropped by this explicit list
    /// (Tests/Fixtures/diffusets/published/keys.txt marks them "unused" / "table"):
    ///   - `*.block.down.*`: every Block owns a stride-2 conv that is never applied (the
    ///     DownsamplingBlock's own `down` is the one used);
    ///   - the cross-attention's `to_q`, `to_k`, `normalization`: with one condition token every
    ///     key is the same vector, the softmax is uniform and the queries do not matter;
    ///   - `time_emb.embeddings`: the fixed sinusoid table, recomputed from unet.time_* metadata.
    /// The cross-attention's packed in-projection is kept only for its value rows (2E..3E); the
    /// self-attention's is stored as its three row blocks.
    static func isDropped(_ key: String) -> Bool {
        if key.hasSuffix(".time_emb.embeddings") { return true }
        if key.contains(".block.down.") { return true }
        for part in ["to_q.", "to_k.", "normalization."] where key.contains(".cross_attention." + part) { return true }
        return false
    }

    struct Entry {
        let source: String, target: String
        let shape: [Int]        // the checkpoint's shape
        let stored: [Int]?      // reshaped (convolutions: (out, in * k)) or nil
        let rows: Range<Int>?   // a slice of the first dimension (the cross-attention's value rows)
        let matrix: Bool
    }

    func plan() -> [Entry] {
        var out: [Entry] = []
        // convolution weights (out, in, k) are stored as matrices (out, in * k), the order the
        // C convolution reads and q8 quantizes by output rows
        func matrix(_ source: String, _ target: String, _ shape: [Int]) {
            let stored: [Int]? = shape.count == 3 ? [shape[0], shape[1] * shape[2]] : nil
            out.append(Entry(source: source + ".weight", target: target, shape: shape, stored: stored, rows: nil, matrix: true))
        }
        func weightAndBias(_ source: String, _ target: String, _ shape: [Int]) {
            matrix(source, target, shape)
            out.append(Entry(source: source + ".bias", target: target + "_bias", shape: [shape[0]], stored: nil, rows: nil, matrix: false))
        }
        func norm(_ source: String, _ target: String, _ width: Int) {
            out.append(Entry(source: source + ".weight", target: target, shape: [width], stored: nil, rows: nil, matrix: false))
            out.append(Entry(source: source + ".bias", target: target + "_bias", shape: [width], stored: nil, rows: nil, matrix: false))
        }
        // one block (the bottleneck is a block with cin = cout = s, kernel = mid kernel = bottleneck_kernel)
        func block(_ src: String, _ dst: String, cin: Int, cout: Int, heads: Int, hidden: Int, bottleneckNames: Bool) {
            let s = bottleneckNames ? cin : (cin + cout) / 2
            let k = bottleneckNames ? bottleneckKernel : kernel
            weightAndBias("\(src).time_emb.fc1", "\(dst).time.fc1", [timeHidden, timeDim])
            weightAndBias("\(src).time_emb.fc2", "\(dst).time.fc2", [cin, timeHidden])
            if bottleneckNames {
                weightAndBias("\(src).bottleneck_conv1", "\(dst).conv1", [s, cin, k])
                norm("\(src).bottleneck_layer_norm1", "\(dst).norm1", s)
                weightAndBias("\(src).bottleneck_conv1_2", "\(dst).conv_mid", [s, s, k])
            } else {
                weightAndBias("\(src).pre_shortcut_convs", "\(dst).conv1", [s, cin, k])
                norm("\(src).layer_norm1", "\(dst).norm1", s)
                weightAndBias("\(src).shortcut_convs", "\(dst).conv_mid", [s, s, 1])
            }
            let sa = "\(src).self_attention"
            norm("\(sa).norm", "\(dst).attn.norm", s)
            weightAndBias("\(sa).to_q", "\(dst).attn.q", [hidden, s])
            weightAndBias("\(sa).to_k", "\(dst).attn.k", [hidden, s])
            weightAndBias("\(sa).to_v", "\(dst).attn.v", [hidden, s])
            // the packed in-projection as three matrices (q, k, v rows): the attention's inputs are
            // three different tensors, so each needs only its own third (a q8 payload cannot be
            // sliced by rows at run time: its scales follow all the values)
            for (p, name) in ["q", "k", "v"].enumerated() {
                out.append(Entry(source: "\(sa).attention.in_proj_weight", target: "\(dst).attn.in_\(name)", shape: [3 * hidden, hidden],
                                 stored: nil, rows: (p * hidden)..<((p + 1) * hidden), matrix: true))
            }
            out.append(Entry(source: "\(sa).attention.in_proj_bias", target: "\(dst).attn.in_proj_bias", shape: [3 * hidden],
                             stored: nil, rows: nil, matrix: false))
            weightAndBias("\(sa).attention.out_proj", "\(dst).attn.out_proj", [hidden, hidden])
            weightAndBias("\(sa).to_out", "\(dst).attn.out", [s, hidden])
            let ca = "\(src).cross_attention"
            weightAndBias("\(ca).value_combiner", "\(dst).cross.combiner", [s, condLength])
            norm("\(ca).condition_normalization", "\(dst).cross.cond_norm", s)
            weightAndBias("\(ca).to_v", "\(dst).cross.v", [hidden, s])
            // only the value rows of the packed in-projection matter
            out.append(Entry(source: "\(ca).attention.in_proj_weight", target: "\(dst).cross.in_v", shape: [3 * hidden, hidden],
                             stored: nil, rows: (2 * hidden)..<(3 * hidden), matrix: true))
            out.append(Entry(source: "\(ca).attention.in_proj_bias", target: "\(dst).cross.in_v_bias", shape: [3 * hidden],
                             stored: nil, rows: (2 * hidden)..<(3 * hidden), matrix: false))
            weightAndBias("\(ca).attention.out_proj", "\(dst).cross.out_proj", [hidden, hidden])
            weightAndBias("\(ca).to_out", "\(dst).cross.out", [s, hidden])
            norm("\(src).attention_norm", "\(dst).attn_norm", s)
            if bottleneckNames {
                weightAndBias("\(src).bottleneck_conv2", "\(dst).conv2", [cout, s, k])
                norm("\(src).bottleneck_layer_norm2", "\(dst).norm2", cout)
            } else {
                weightAndBias("\(src).post_shortcut_convs", "\(dst).conv2", [cout, s, k])
                norm("\(src).layer_norm2", "\(dst).norm2", cout)
                if cin != cout { weightAndBias("\(src).res_conv", "\(dst).res", [cout, cin, 1]) }
            }
        }
        let n = levels - 1
        for i in 0..<n {
            block("downsampling_blocks.\(i).block", "unet.down.\(i)", cin: downIn[i], cout: downOut[i],
                  heads: heads[i], hidden: hidden[i], bottleneckNames: false)
            weightAndBias("downsampling_blocks.\(i).down", "unet.down.\(i).down", [downOut[i], downOut[i], 3])
        }
        block("bottelneck", "unet.mid", cin: bottleneck, cout: bottleneck, heads: bottleneckHeads, hidden: bottleneckHidden,
              bottleneckNames: true)
        for j in 0..<n {
            // ConvTranspose1d weight (in, out, k): stored (in, out * k)
            weightAndBias("upsampling_blocks.\(j).up", "unet.up.\(j).up", [upConv[j], upConv[j], 4])
            block("upsampling_blocks.\(j).block", "unet.up.\(j)", cin: upIn[j], cout: upOut[j],
                  heads: heads[n + j], hidden: hidden[n + j], bottleneckNames: false)
        }
        weightAndBias("output_conv.0", "unet.out.conv", [channels, upOut[n - 1], 3])
        weightAndBias("output_conv.2", "unet.out.proj", [channels, channels, 1])
        return out
    }

    func tensors(of file: SafeTensorsFile) throws -> [PlannedTensor] {
        let entries = plan()
        let used = Set(entries.map(\.source))
        // every checkpoint key is either mapped or on the documented drop list
        let unknown = file.tensors.keys.filter { !used.contains($0) && !Self.isDropped($0) }.sorted()
        guard unknown.isEmpty else {
            throw ConversionError("\(file.path): tensors with no place in the format: \(unknown.prefix(5).joined(separator: ", "))\(unknown.count > 5 ? ", …" : "")")
        }
        return try entries.map { e in
            guard let t = file.tensors[e.source] else {
                throw ConversionError("\(file.path): tensor '\(e.source)' is missing")
            }
            guard t.shape == e.shape else {
                throw ConversionError("\(file.path): tensor '\(e.source)' has shape \(t.shape), config.json implies \(e.shape)")
            }
            var tensor = t
            var stored = e.stored
            if let rows = e.rows {
                // a contiguous run of rows: the same bytes, a narrower tensor
                let rowBytes = (t.end - t.begin) / t.shape[0]
                let shape = [rows.count] + t.shape.dropFirst()
                tensor = SourceTensor(name: t.name, dtype: t.dtype, shape: shape,
                                      begin: t.begin + rows.lowerBound * rowBytes, end: t.begin + rows.upperBound * rowBytes)
                stored = nil
            }
            return PlannedTensor(file: file, tensor: tensor, target: e.target, kind: e.matrix ? .matrix : .vector, shape: stored)
        }
    }
}
