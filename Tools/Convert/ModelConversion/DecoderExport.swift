import Foundation
import UniECG

/// The text decoder component: a Hugging Face Llama / Qwen2 directory (config.json with a
/// model_type, model.safetensors or its shards, tokenizer.json, tokenizer_config.json).
enum DecoderExport {
    static func plan(directory: String) throws -> ComponentPlan? {
        let configPath = directory + "/config.json"
        // Without config.json the directory may hold other components only (a signal encoder);
        // with none at all, Converter.convert names what it expected.
        guard let configData = FileManager.default.contents(atPath: configPath) else { return nil }
        // Other components' directories have a config.json without a model_type.
        if let object = try? JSONSerialization.jsonObject(with: configData) as? [String: Any], object["model_type"] == nil {
            return nil
        }
        let config = try DecoderConfig(configJSON: configData, source: configPath)
        let archive = try SafeTensorsArchive(directory: directory)
        let tokenizer = try TokenizerExport(directory: directory)
        guard tokenizer.vocabularySize <= config.vocabSize else {
            throw ConversionError("tokenizer has \(tokenizer.vocabularySize) tokens but the model's vocab_size is \(config.vocabSize)")
        }
        let qkvBias = archive.tensor("model.layers.0.self_attn.q_proj.bias") != nil
        let plan = config.tensorPlan(qkvBias: qkvBias)

        // Every source tensor must be used (or be a known duplicate), so nothing is silently lost.
        let planned = Set(plan.map(\.source))
        let ignorable = { (name: String) in
            name.hasSuffix("rotary_emb.inv_freq") || (config.tiedEmbeddings && name == "lm_head.weight")
        }
        let unknown = archive.tensorNames.filter { !planned.contains($0) && !ignorable($0) }
        guard unknown.isEmpty else {
            throw ConversionError("source tensors with no place in the format: \(unknown.prefix(5).joined(separator: ", "))\(unknown.count > 5 ? ", …" : "")")
        }
        var tensors: [PlannedTensor] = []
        for entry in plan {
            guard let (file, tensor) = archive.tensor(entry.source) else {
                throw ConversionError("tensor '\(entry.source)' is missing from the safetensors files")
            }
            guard tensor.shape == entry.shape else {
                throw ConversionError("tensor '\(entry.source)' has shape \(tensor.shape), config.json implies \(entry.shape)")
            }
            tensors.append(PlannedTensor(file: file, tensor: tensor, target: entry.target,
                                         kind: entry.shape.count == 2 ? .matrix : .vector))
        }
        return ComponentPlan(architecture: config.architecture,
                             metadata: config.metadata(qkvBias: qkvBias) + tokenizer.entries, tensors: tensors)
    }
}
