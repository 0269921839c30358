import Foundation
import UniECG

/// The multimodal prompt of a unified model: `prompt_config.json` next to the decoder's files
/// (written by Tools/train/train_unified.py). ModelFormat.md, "Multimodal prompt (prompt.*)".
enum PromptExport {
    static let configName = "prompt_config.json"

    static func plan(directory: String) throws -> ComponentPlan? {
        let path = directory + "/" + configName
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        guard let v = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ConversionError("\(path) is not a JSON object")
        }
        func string(_ key: String) throws -> String {
            guard let s = v[key] as? String, !s.isEmpty else { throw ConversionError("\(path): \(key) is missing or empty") }
            return s
        }
        let explain = try string("explain_template"), generate = try string("generate_template")
        let placeholder = try string("ecg_placeholder")
        for field in ["{evidence}", "{question}", placeholder] where explain.components(separatedBy: field).count != 2 {
            throw ConversionError("\(path): explain_template must hold \(field) exactly once")
        }
        guard generate.components(separatedBy: "{objective}").count == 2 else {
            throw ConversionError("\(path): generate_template must hold {objective} exactly once")
        }
        guard let tokens = v["generation_tokens"] as? [String], !tokens.isEmpty, tokens.allSatisfy({ !$0.isEmpty }) else {
            throw ConversionError("\(path): generation_tokens must be a non-empty list of token strings")
        }
        let parameters = (v["generation_parameters"] as? String) ?? "rate {rate} bpm, age {age}, sex {sex}"
        var image: [(String, MetadataValue)] = []
        if let placeholder = v["image_placeholder"] {
            guard let text = placeholder as? String, !text.isEmpty else { throw ConversionError("\(path): image_placeholder must be a token string") }
            image = [("prompt.image_placeholder", .string(text))]
        }
        if let photo = v["photo_template"] {
            guard let text = photo as? String else { throw ConversionError("\(path): photo_template must be a string") }
            do {
                try PromptFormat.checkPhotoTemplate(text, imagePlaceholder: v["image_placeholder"] as? String)
            } catch {
                throw ConversionError("\(path): \(error)")
            }
            image.append(("prompt.photo_template", .string(text)))
        }
        return ComponentPlan(architecture: "prompt", metadata: image + [
            ("prompt.explain_template", .string(explain)),
            ("prompt.generate_template", .string(generate)),
            ("prompt.ecg_placeholder", .string(placeholder)),
            ("prompt.generation_tokens", .stringArray(tokens)),
            ("prompt.generation_parameters", .string(parameters)),
            ("prompt.end_of_turn", .string(try string("end_of_turn"))),
            ("prompt.default_question", .string(try string("default_question"))),
        ], tensors: [])
    }
}
