import Foundation
import UniECG

/// The tokenizer of a Hugging Face model directory (`tokenizer.json` + `tokenizer_config.json`)
/// as format metadata (ModelFormat.md §4, tokenizer.*). The normaliser, pre-tokenizer and
/// decoder sections are kept verbatim as JSON so the runtime can follow them exactly.
public struct TokenizerExport {
    public var entries: [(String, MetadataValue)] = []
    public var vocabularySize: Int = 0

    public init(directory: String) throws {
        let path = directory + "/tokenizer.json"
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConversionError("'\(path)' is missing: the converter embeds the tokenizer")
        }
        guard let json = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let model = json["model"] as? [String: Any] else {
            throw ConversionError("'\(path)': no 'model' object")
        }
        guard (model["type"] as? String) == "BPE" else {
            throw ConversionError("'\(path)': tokenizer model '\(model["type"] ?? "?")' is not supported (BPE)")
        }
        guard let vocab = model["vocab"] as? [String: Int] else { throw ConversionError("'\(path)': BPE model has no vocab") }
        let added = (json["added_tokens"] as? [[String: Any]]) ?? []
        var maxID = vocab.values.max() ?? -1
        for token in added { maxID = max(maxID, token["id"] as? Int ?? -1) }
        guard maxID >= 0, maxID < 10_000_000 else { throw ConversionError("'\(path)': vocabulary ids out of range") }
        var tokens = [String?](repeating: nil, count: maxID + 1)
        for (text, id) in vocab {
            guard id >= 0 else { throw ConversionError("'\(path)': negative token id for '\(text)'") }
            tokens[id] = text
        }
        var addedTexts: [String] = [], addedIDs: [Int32] = [], addedSpecial: [Int32] = []
        for token in added {
            guard let text = token["content"] as? String, let id = token["id"] as? Int else {
                throw ConversionError("'\(path)': malformed added token \(token)")
            }
            if tokens[id] == nil { tokens[id] = text }
            addedTexts.append(text)
            addedIDs.append(Int32(id))
            addedSpecial.append((token["special"] as? Bool ?? false) ? 1 : 0)
        }
        if let hole = tokens.firstIndex(where: { $0 == nil }) {
            throw ConversionError("'\(path)': no token has id \(hole) (ids must be dense)")
        }
        var merges: [String] = []
        for merge in (model["merges"] as? [Any]) ?? [] {
            let pair: [String]
            if let s = merge as? String { pair = s.split(separator: " ", omittingEmptySubsequences: false).map(String.init) }
            else if let a = merge as? [String] { pair = a }
            else { throw ConversionError("'\(path)': malformed merge \(merge)") }
            guard pair.count == 2, !pair[0].contains(" "), !pair[1].contains(" ") else {
                throw ConversionError("'\(path)': merge \(merge) is not two space-free tokens")
            }
            merges.append(pair[0] + " " + pair[1])
        }
        let byteFallback = model["byte_fallback"] as? Bool ?? false
        let preTokenizer = json["pre_tokenizer"]
        let kind = Self.usesByteLevel(preTokenizer) || Self.usesByteLevel(json["decoder"]) ? "bpe-byte-level" : "bpe-sentencepiece"

        let configPath = directory + "/tokenizer_config.json"
        var config: [String: Any] = [:]
        if let data = FileManager.default.contents(atPath: configPath) {
            guard let parsed = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw ConversionError("'\(configPath)' is not a JSON object")
            }
            config = parsed
        }
        let ids = Dictionary(tokens.enumerated().map { ($1!, $0) }, uniquingKeysWith: { first, _ in first })
        func specialID(_ key: String) -> Int64 {
            let value = config[key]
            let text = (value as? String) ?? ((value as? [String: Any])?["content"] as? String)
            return text.flatMap { ids[$0] }.map(Int64.init) ?? -1
        }

        vocabularySize = tokens.count
        entries = [
            ("tokenizer.model", .string(kind)),
            ("tokenizer.tokens", .stringArray(tokens.map { $0! })),
            ("tokenizer.merges", .stringArray(merges)),
            ("tokenizer.byte_fallback", .bool(byteFallback)),
            ("tokenizer.normalizer", .string(try Self.jsonText(json["normalizer"]))),
            ("tokenizer.pre_tokenizer", .string(try Self.jsonText(preTokenizer))),
            ("tokenizer.decoder", .string(try Self.jsonText(json["decoder"]))),
            ("tokenizer.added_tokens", .stringArray(addedTexts)),
            ("tokenizer.added_token_ids", .int32Array(addedIDs)),
            ("tokenizer.added_token_special", .int32Array(addedSpecial)),
            ("tokenizer.bos_id", .int(specialID("bos_token"))),
            ("tokenizer.eos_id", .int(specialID("eos_token"))),
            ("tokenizer.unk_id", .int(specialID("unk_token") >= 0 ? specialID("unk_token")
                                      : (model["unk_token"] as? String).flatMap { ids[$0] }.map(Int64.init) ?? -1)),
            ("tokenizer.pad_id", .int(specialID("pad_token"))),
            ("tokenizer.add_bos", .bool(config["add_bos_token"] as? Bool ?? false)),
            ("tokenizer.add_eos", .bool(config["add_eos_token"] as? Bool ?? false)),
        ]
        if let template = config["chat_template"] as? String {
            entries.append(("tokenizer.chat_template", .string(template)))
        }
    }

    private static func usesByteLevel(_ section: Any?) -> Bool {
        guard let dict = section as? [String: Any] else { return false }
        if (dict["type"] as? String) == "ByteLevel" { return true }
        let children = (dict["pretokenizers"] as? [Any]) ?? (dict["decoders"] as? [Any]) ?? []
        return children.contains { usesByteLevel($0) }
    }

    private static func jsonText(_ value: Any?) throws -> String {
        guard let value, !(value is NSNull) else { return "null" }
        let data = try JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed])
        return String(decoding: data, as: UTF8.self)
    }
}
