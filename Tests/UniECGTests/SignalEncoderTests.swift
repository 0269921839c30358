import Foundation
import ModelConversion
import Testing
@testable import UniECG

/// The ECG signal encoder end to end: the converter turns the PyTorch fixtures
/// (Tools/reference/make_signal_encoder_fixtures.py: open_clip-named weights in two
/// configurations) into .uecg files, the Swift wrapper prepares records and runs the C encoder,
/// and the outputs are compared with torch's: within 1e-4 (relative to the largest magnitude)
/// unquantized, correlation >= 0.999 with q8. Then the GEM key list, and bad input.
@Suite struct SignalEncoderTests {
    struct Case: Sendable, CustomStringConvertible {
        let name: String, config: String, samples: Int
        let input: String, hidden: String, embeddings: String
        var description: String { name }
    }

    static let cases: [Case] = {
        guard let text = try? String(contentsOf: Fixtures.url("signal_encoder/manifest.txt"), encoding: .utf8) else { return [] }
        return text.split(separator: "\n").filter { !$0.hasPrefix("#") }.compactMap { line in
            let words = line.split(separator: " ").map(String.init)
            var fields: [String: String] = [:]
            for word in words.dropFirst() {
                let parts = word.split(separator: "=", maxSplits: 1).map(String.init)
                if parts.count == 2 { fields[parts[0]] = parts[1] }
            }
            guard let config = fields["config"], let samples = fields["samples"].flatMap(Int.init), let input = fields["input"],
                  let hidden = fields["hidden"], let embeddings = fields["embeddings"] else { return nil }
            return Case(name: words[0], config: config, samples: samples, input: input, hidden: hidden, embeddings: embeddings)
        }
    }()

    static func floats(_ name: String) throws -> [Float] {
        let data = try Data(contentsOf: Fixtures.url("signal_encoder/\(name)"))
        return data.withUnsafeBytes { raw in
            (0..<(data.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
        }
    }

    static func convert(_ config: String, weights: Converter.WeightFormat, into dir: TemporaryDirectory) throws -> String {
        let path = dir.path("\(config)-\(weights.rawValue).uecg")
        if !FileManager.default.fileExists(atPath: path) {
            try Fixtures.convert(Fixtures.url("signal_encoder/\(config)").path, weights: weights, to: path)
        }
        return path
    }

    /// The fixture input as a record at the model's rate, leads named as the model names them.
    static func record(_ c: Case, encoder: SignalEncoder, leadOrder: [Int]? = nil) throws -> ECGRecord {
        let x = try floats(c.input)
        let leads = encoder.leadNames.map { Lead(name: $0)! }
        let rows = (0..<leads.count).map { Array(x[($0 * c.samples)..<(($0 + 1) * c.samples)]) }
        let order = leadOrder ?? Array(0..<leads.count)
        return try ECGRecord(leads: order.map { leads[$0] }, signals: order.map { rows[$0] }, sampleRate: encoder.sampleRate)
    }

    @Test("converted fixtures match PyTorch (unquantized 1e-4, q8 correlation 0.999)", arguments: cases)
    func matchesTorch(c: Case) throws {
        let dir = try Fixtures.temporaryDirectory()
        let wantHidden = try Self.floats(c.hidden), wantEmbeddings = try Self.floats(c.embeddings)
        for weights in Converter.WeightFormat.allCases {
            let encoder = try SignalEncoder(path: try Self.convert(c.config, weights: weights, into: dir), options: .init(threads: 2))
            #expect(encoder.tokens * encoder.width == wantHidden.count)
            #expect(encoder.tokens * encoder.dimension == wantEmbeddings.count)
            let raw = try encoder.encode(signal: try Self.floats(c.input), samples: c.samples)
            let viaRecord = try encoder.encode(try Self.record(c, encoder: encoder))
            // The record path prepares nothing here (same rate, same leads): it must give the same bits.
            #expect(viaRecord.values == raw.embeddings)
            #expect(viaRecord.recordSamples == c.samples && viaRecord.modelSamples == encoder.samples)
            #expect(viaRecord.derivedLeads.isEmpty)
            if weights == .none {
                let eh = Agreement.maxRelative(raw.hidden, wantHidden), ee = Agreement.maxRelative(raw.embeddings, wantEmbeddings)
                #expect(eh <= 1e-4 && ee <= 1e-4, "\(c.name) f32: hidden \(eh), embeddings \(ee)")
            } else {
                let ch = Agreement.correlation(raw.hidden, wantHidden), ce = Agreement.correlation(raw.embeddings, wantEmbeddings)
                #expect(ch >= 0.999 && ce >= 0.999, "\(c.name) q8: hidden \(ch), embeddings \(ce)")
            }
        }
    }

    @Test("the converter writes the format's names, dtypes and metadata")
    func fileContents() throws {
        let dir = try Fixtures.temporaryDirectory()
        for config in ["small_mlp", "narrow_linear"] {
            let json = try Data(contentsOf: Fixtures.url("signal_encoder/\(config)/signal_config.json"))
            let cfg = try SignalEncoderConfig(configJSON: json, source: config)
            let file = try ModelFile(path: try Self.convert(config, weights: .q8, into: dir))
            #expect(file.metadata("general.architecture") == .string("signal-encoder"))
            for (key, value) in cfg.metadata() { #expect(file.metadata(key) == value, "\(key)") }
            #expect(file.tensors.count == cfg.tensorPlan().count)
            let patch = try #require(file.tensor(named: "signal.patch_embed"))
            #expect(patch.shape == [cfg.width, cfg.leads.count * cfg.patchSize])
            // 12 x 50 = 600 columns cannot be q8 (small_mlp); 12 x 40 = 480 can (narrow_linear).
            #expect(patch.dtype == (cfg.leads.count * cfg.patchSize % 32 == 0 ? .q8 : .f32))
            #expect(file.tensor(named: "signal.pos_embed")?.dtype == .f32)
            #expect(file.tensor(named: "signal.class_embed")?.dtype == .f32)
            #expect(file.tensor(named: "signal.layers.0.attn_qkv")?.dtype == .q8)
            #expect(file.tensor(named: "signal.layers.0.attn_qkv_bias")?.dtype == .f32)
            #expect(file.tensor(named: "signal.projector.0")?.dtype == .q8)
            // --quant none keeps every tensor exactly as torch saved it.
            let exact = try ModelFile(path: try Self.convert(config, weights: .none, into: dir))
            let archive = try SafeTensorsFile(path: Fixtures.url("signal_encoder/\(config)/signal_encoder.safetensors").path)
            for entry in cfg.tensorPlan() {
                let source = try #require(archive.tensors[entry.source])
                let values = Quantization.floats(archive.bytes(of: source), dtype: .f32, count: source.elementCount)
                #expect(try exact.floats(of: entry.target) == values, "\(entry.target)")
            }
        }
    }

    @Test("GEM's published tower and projector keys are all planned or knowingly left out, with their shapes")
    func gemKeys() throws {
        let json = try Data(contentsOf: Fixtures.url("signal_encoder/gem/signal_config.json"))
        let cfg = try SignalEncoderConfig(configJSON: json, source: "gem")
        #expect(cfg.samples == 5000 && cfg.width == 768 && cfg.layers == 12 && cfg.heads == 12 && cfg.ffnDim == 3072)
        #expect(cfg.samples / cfg.patchSize + 1 == 101)
        let text = try String(contentsOf: Fixtures.url("signal_encoder/gem/keys.txt"), encoding: .utf8)
        var published: [String: [Int]] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            published[String(parts[0])] = parts[1].split(separator: "x").map { Int($0)! }
        }
        #expect(published.count == 158)
        let plan = cfg.tensorPlan()
        for entry in plan { #expect(published[entry.source] == entry.sourceShape, "\(entry.source)") }
        let planned = Set(plan.map(\.source))
        let left = published.keys.filter { !planned.contains($0) }.sorted()
        #expect(left == ["ln_post.bias", "ln_post.weight", "proj"])
        #expect(left.allSatisfy(cfg.isIgnorable))
        #expect(cfg.metadata().contains { $0.0 == "signal.projector.dims" && $0.1 == .int64Array([768, 1024, 4096, 4096]) })
    }

    @Test("records are prepared: lead order, derived limb leads, padding, resampling")
    func preparation() throws {
        let dir = try Fixtures.temporaryDirectory()
        let c = try #require(Self.cases.first { $0.name == "small_mlp_short" })
        let encoder = try SignalEncoder(path: try Self.convert(c.config, weights: .none, into: dir), options: .init(threads: 1))
        let reference = try encoder.encode(try Self.record(c, encoder: encoder))
        // Shuffled rows: the wrapper puts them back into the model's order.
        let shuffled = try encoder.encode(try Self.record(c, encoder: encoder, leadOrder: [7, 3, 11, 0, 5, 1, 9, 2, 10, 4, 8, 6]))
        #expect(shuffled.values == reference.values)
        // 430 samples for a 500-sample model: zero-padded, and torch's padded output is matched.
        #expect(reference.recordSamples == 430 && reference.modelSamples == 500)
        #expect(Agreement.maxRelative(reference.values, try Self.floats(c.embeddings)) <= 1e-4)
        // Only I, II and V1-V6: III, aVR, aVL, aVF are derived.
        let full = try Self.record(c, encoder: encoder)
        let keep: [Lead] = [.I, .II, .V1, .V2, .V3, .V4, .V5, .V6]
        let partial = try ECGRecord(leads: keep, signals: keep.map { full.signal($0)! }, sampleRate: full.sampleRate)
        let derived = try encoder.encode(partial)
        #expect(derived.derivedLeads == [.III, .aVR, .aVL, .aVF])
        #expect(derived.values.allSatisfy { $0.isFinite })
        // A 250 Hz record is resampled to the model's 500 Hz first.
        let slow = try ECGRecord(leads: full.leads, signals: full.signals.map { s in stride(from: 0, to: s.count, by: 2).map { s[$0] } },
                                 sampleRate: 250)
        let resampled = try encoder.encode(slow)
        #expect(resampled.recordSamples == 430 && resampled.values.allSatisfy { $0.isFinite })
    }

    @Test("bad input is refused with a message that names the problem")
    func badInput() throws {
        let dir = try Fixtures.temporaryDirectory()
        let c = try #require(Self.cases.first { $0.name == "narrow_linear_full" })
        let path = try Self.convert(c.config, weights: .q8, into: dir)
        let encoder = try SignalEncoder(path: path, options: .init(threads: 1))
        let full = try Self.record(c, encoder: encoder)

        // A lead the model needs and that cannot be derived.
        let noV3 = try ECGRecord(leads: full.leads.filter { $0 != .V3 }, signals: zip(full.leads, full.signals).filter { $0.0 != .V3 }.map(\.1),
                                 sampleRate: full.sampleRate)
        #expect { try encoder.encode(noV3) } throws: { ($0 as? UniECGError)?.message.contains("lacks lead V3") == true }

        // NaN samples, named by lead and sample.
        var withNaN = full
        withNaN.signals[1][17] = .nan
        #expect { try encoder.encode(withNaN) } throws: {
            guard case .range(let m) = $0 as? UniECGError else { return false }
            return m.contains("lead II") && m.contains("sample 17")
        }

        // Raw rows: the count must be leads x samples.
        #expect { try encoder.encode(signal: [Float](repeating: 0, count: 11 * 400), samples: 400) } throws: {
            ($0 as? UniECGError)?.message.contains("12 leads of 400 samples") == true
        }

        // A file without one signal.* key: the encoder names it.
        let source = try ModelFile(path: path)
        for missing in ["signal.n_heads", "signal.projector.activations"] {
            let broken = dir.path("without-\(missing).uecg")
            let writer = try ModelWriter(path: broken)
            for (key, value) in source.metadata where key != missing { try writer.set(key, value) }
            for t in source.tensors {
                _ = try source.withPayload(of: t.name) { bytes in
                    try writer.addTensor(name: t.name, dtype: t.dtype, shape: t.shape, bytes: bytes)
                }
            }
            try writer.finish()
            #expect { try SignalEncoder(path: broken) } throws: {
                guard case .notFound(let m) = $0 as? UniECGError else { return false }
                return m.contains(missing)
            }
        }

        // Converter: a tower feature the encoder does not implement is refused by name.
        let json = try Data(contentsOf: Fixtures.url("signal_encoder/\(c.config)/signal_config.json"))
        var object = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
        var ecg = try #require(object["ecg_cfg"] as? [String: Any])
        ecg["attentional_pool"] = true
        object["ecg_cfg"] = ecg
        let changed = try JSONSerialization.data(withJSONObject: object)
        #expect { try SignalEncoderConfig(configJSON: changed, source: "cfg") } throws: {
            ($0 as? ConversionError)?.message.contains("attentional_pool") == true
        }
    }
}
