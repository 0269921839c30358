import Foundation
import UniECG

/// Copies a .uecg file with some of its scalar metadata changed: the defaults a model ships with
/// (sampler, steps, guidance scale, prompt strings) can be retuned after training without the
/// training exports. Tensors are copied as decoded payloads, so the weights stay bit for bit;
/// only existing keys of type bool, i64, f64 or string can be set, each to a value of its type.
public enum MetadataRetune {
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
    /// metadata of `input` with `settings` applied. When the file holds a U-Net and a VAE, the
    /// result is loaded as a generator before this returns, and removed again if it does not load
    /// (a sampler name the runtime does not know, say). Returns the keys changed, old and new.
    @discardableResult
    public static func copy(from input: String, to output: String, settings: [Setting], zstdLevel: Int = 9) throws
        -> [(key: String, old: MetadataValue, new: MetadataValue)]
    {
        guard URL(fileURLWithPath: input).standardizedFileURL != URL(fileURLWithPath: output).standardizedFileURL else {
            throw ConversionError("the output must be another file than the input (\(input))")
        }
        let source = try ModelFile(path: input)
        var changed: [String: MetadataValue] = [:]
        var report: [(key: String, old: MetadataValue, new: MetadataValue)] = []
        for s in settings {
            guard let old = source.metadata(s.key) else {
                throw ConversionError("\(input) has no metadata key '\(s.key)' (only existing keys can be set)")
            }
            guard changed[s.key] == nil else { throw ConversionError("--set gives '\(s.key)' twice") }
            let new = try parse(s.value, like: old, key: s.key)
            changed[s.key] = new
            report.append((s.key, old, new))
        }
        let writer = try ModelWriter(path: output, zstdLevel: zstdLevel)
        for entry in source.metadata { try writer.set(entry.key, changed[entry.key] ?? entry.value) }
        for info in source.tensors {
            _ = try source.withPayload(of: info.name) { bytes in
                try writer.addTensor(name: info.name, dtype: info.dtype, shape: info.shape, bytes: bytes)
            }
        }
        try writer.finish()
        let keys = source.metadataKeys
        if keys.contains(where: { $0.hasPrefix("unet.") }) && keys.contains(where: { $0.hasPrefix("vae.") }) {
            do {
                _ = try ECGGenerator(path: output)
            } catch {
                try? FileManager.default.removeItem(atPath: output)
                throw ConversionError("the retuned file does not load as a generator, not written: \(error)")
            }
        }
        return report
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
