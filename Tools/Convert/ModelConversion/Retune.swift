import Foundation
import UniECG

/// Copies a .uecg file with some of its scalar metadata changed, and optionally whole parts
/// (unet, vae, ...) taken from another .uecg file: the defaults a model ships with (sampler, steps,
/// guidance scale, prompt strings) can be retuned, and a retrained diffusion half swapped in, after
/// training without the other training exports. Tensors are copied as decoded payloads, so the
/// weights stay bit for bit; only existing keys of type bool, i64, f64 or string can be set, each
/// to a value of its type.
public enum ModelRetune {
    /// Every metadata key and tensor whose name starts with `part.` comes from `donor` instead.
    public struct PartReplacement {
        public let donor: String
        public let parts: [String]

        public init(donor: String, parts: [String]) {
            self.donor = donor
            self.parts = parts
        }

        func owns(_ name: String) -> Bool { parts.contains { name.hasPrefix($0 + ".") } }
    }

    public struct Setting: Equatable {
        public let key: String
        public let value: String

        /// `KEY=VALUE` (the value may itself hold `=`).
        public init(parsing text: String) throws(ConversionError) {
            guard let eq = text.firstIndex(of: "="), eq != text.startIndex else {
                throw ConversionError("--set wants KEY=VALUE, got '\(text)'")
            }
            key = String(text[..<eq])
            value = String(text[text.index(after: eq)...])
        }
    }

    /// Writes `output` (atomically, through the model writer's temporary file): the tensors and
    /// metadata of `input`, the parts `replacement` names taken from its donor, with `settings`
    /// applied. The result is loaded before this returns (as a generator when it holds a U-Net and
    /// a VAE, as a unified model when it holds a decoder and a prompt) and removed again if it does
    /// not load (a sampler name the runtime does not know, say). Returns the keys changed.
    @discardableResult
    public static func copy(from input: String, to output: String, settings: [Setting],
                            replacing replacement: PartReplacement? = nil, zstdLevel: Int = 9) throws
        -> [(key: String, old: MetadataValue, new: MetadataValue)]
    {
        let out = URL(fileURLWithPath: output).standardizedFileURL
        for other in [input] + (replacement.map { [$0.donor] } ?? []) where URL(fileURLWithPath: other).standardizedFileURL == out {
            throw ConversionError("the output must be another file than the input (\(other))")
        }
        let base = try ModelFile(path: input)
        var metadata = base.metadata
        var tensors = base.tensors.map { (file: base, info: $0) }
        if let replacement {
            let donor = try ModelFile(path: replacement.donor)
            for part in replacement.parts {
                guard !part.isEmpty, !part.contains("."), donor.metadataKeys.contains(where: { $0.hasPrefix(part + ".") }) else {
                    throw ConversionError("\(replacement.donor) has no part '\(part)' (no \(part).* metadata)")
                }
            }
            guard !replacement.parts.contains("general") else { throw ConversionError("general.* describes the file and cannot be replaced") }
            metadata = metadata.filter { !replacement.owns($0.key) } + donor.metadata.filter { replacement.owns($0.key) }
            tensors = tensors.filter { !replacement.owns($0.info.name) }
                + donor.tensors.filter { replacement.owns($0.name) }.map { (file: donor, info: $0) }
            try checkJoins(Dictionary(metadata.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a }))
        }
        var changed: [String: MetadataValue] = [:]
        var report: [(key: String, old: MetadataValue, new: MetadataValue)] = []
        for s in settings {
            guard let old = metadata.first(where: { $0.key == s.key })?.value else {
                throw ConversionError("\(input) has no metadata key '\(s.key)' (only existing keys can be set)")
            }
            guard changed[s.key] == nil else { throw ConversionError("--set gives '\(s.key)' twice") }
            let new = try parse(s.value, like: old, key: s.key)
            changed[s.key] = new
            report.append((s.key, old, new))
        }
        let writer = try ModelWriter(path: output, zstdLevel: zstdLevel)
        for entry in metadata { try writer.set(entry.key, changed[entry.key] ?? entry.value) }
        for (file, info) in tensors {
            _ = try file.withPayload(of: info.name) { bytes in
                try writer.addTensor(name: info.name, dtype: info.dtype, shape: info.shape, bytes: bytes)
            }
        }
        try writer.finish()
        let keys = metadata.map(\.key)
        func has(_ part: String) -> Bool { keys.contains { $0.hasPrefix(part + ".") } }
        do {
            if has("unet") && has("vae") { _ = try ECGGenerator(path: output) }
            if has("text") && has("prompt") { _ = try UnifiedModel(path: output) }
        } catch {
            try? FileManager.default.removeItem(atPath: output)
            throw ConversionError("the retuned file does not load, not written: \(error)")
        }
        return report
    }

    /// Where parts of a model meet, their shapes must agree: a swapped-in U-Net must take the
    /// aligner's condition width, and the VAE must make the U-Net's latents.
    static func checkJoins(_ metadata: [String: MetadataValue]) throws(ConversionError) {
        func int(_ key: String) -> Int64? {
            if case .int(let v)? = metadata[key] { return v }
            return nil
        }
        for (a, b) in [("aligner.output_dim", "unet.cond_dim"), ("vae.latent_channels", "unet.latent_channels")] {
            if let x = int(a), let y = int(b), x != y {
                throw ConversionError("the parts do not fit together: \(a) is \(x), \(b) is \(y)")
            }
        }
    }

    static func parse(_ text: String, like old: MetadataValue, key: String) throws(ConversionError) -> MetadataValue {
        switch old {
        case .string: return .string(text)
        case .bool:
            switch text {
            case "true": return .bool(true)
            case "false": return .bool(false)
            default: throw ConversionError("\(key) is a bool: true or false, got '\(text)'")
            }
        case .int:
            guard let v = Int64(text) else { throw ConversionError("\(key) is an integer, got '\(text)'") }
            return .int(v)
        case .double:
            guard let v = Double(text), v.isFinite else { throw ConversionError("\(key) is a finite number, got '\(text)'") }
            return .double(v)
        default:
            throw ConversionError("\(key) is a \(old.typeName); only bool, integer, number and string keys can be set")
        }
    }
}
