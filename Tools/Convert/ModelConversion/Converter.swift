import CUniECG
import Foundation
import UniECG

/// Converts a Hugging Face Llama / Qwen2 model directory into one .uecg file, tensor by tensor:
/// each source tensor is read from the mapped safetensors file, converted, written, and its
/// pages released, so peak memory stays near the largest single tensor.
public struct Converter {
    public enum WeightFormat: String, Sendable, CaseIterable {
        /// 2-D weight matrices become q8 (when their input dimension is a multiple of 32).
        case q8
        /// Weight matrices keep the source dtype.
        case none
    }

    public struct Options: Sendable {
        public var weights: WeightFormat = .q8
        public var zstdLevel: Int = 9
        public var name: String?
        public init() {}
    }

    public struct Progress: Sendable {
        public let tensorIndex: Int, tensorCount: Int
        public let tensorName: String
        public let bytesDone: Int, bytesTotal: Int
    }

    public struct Summary: Sendable {
        public let tensors: Int
        public let parameters: Int
        public let sourceBytes: Int
        public let rawBytes: Int     // payload bytes once decoded (after quantization)
        public let outputBytes: Int  // the .uecg file
        public let seconds: Double
        public let architecture: String
    }

    public static let intendedUse =
        "UniECG models are educational aids for learning to read ECGs. They are not medical devices and must not be used for diagnosis or treatment."

    public let directory: String
    public let options: Options

    public init(directory: String, options: Options = Options()) {
        self.directory = directory
        self.options = options
    }

    public func convert(to output: String, progress: (Progress) -> Void = { _ in }) throws -> Summary {
        let start = Date()
        let configPath = directory + "/config.json"
        guard let configData = FileManager.default.contents(atPath: configPath) else {
            throw ConversionError("'\(configPath)' is missing")
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
        var sources: [(SafeTensorsFile, SourceTensor, String)] = []
        for entry in plan {
            guard let (file, tensor) = archive.tensor(entry.source) else {
                throw ConversionError("tensor '\(entry.source)' is missing from the safetensors files")
            }
            guard tensor.shape == entry.shape else {
                throw ConversionError("tensor '\(entry.source)' has shape \(tensor.shape), config.json implies \(entry.shape)")
            }
            sources.append((file, tensor, entry.target))
        }

        let writer = try ModelWriter(path: output, zstdLevel: options.zstdLevel)
        try writer.set("general.architecture", .string(config.architecture))
        try writer.set("general.name", .string(options.name ?? URL(fileURLWithPath: directory).lastPathComponent))
        try writer.set("general.source", .string("Hugging Face directory '\(URL(fileURLWithPath: directory).lastPathComponent)'"))
        try writer.set("general.converter", .string("uniecg-convert \(UniECGVersion.string) (quantization \(options.weights.rawValue))"))
        try writer.set("general.intended_use", .string(Self.intendedUse))
        for (key, value) in config.metadata(qkvBias: qkvBias) { try writer.set(key, value) }
        for (key, value) in tokenizer.entries { try writer.set(key, value) }

        let total = sources.reduce(0) { $0 + $1.1.end - $1.1.begin }
        var done = 0, parameters = 0, rawBytes = 0
        for (index, (file, tensor, target)) in sources.enumerated() {
            progress(Progress(tensorIndex: index, tensorCount: sources.count, tensorName: target, bytesDone: done, bytesTotal: total))
            let info = try convertTensor(tensor, from: file, as: target, into: writer)
            file.release(tensor)
            done += tensor.end - tensor.begin
            parameters += tensor.elementCount
            rawBytes += Int(info.rawSize)
        }
        progress(Progress(tensorIndex: sources.count, tensorCount: sources.count, tensorName: "", bytesDone: total, bytesTotal: total))
        try writer.finish()
        let outputBytes = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0
        return Summary(tensors: sources.count, parameters: parameters, sourceBytes: total, rawBytes: rawBytes,
                       outputBytes: outputBytes, seconds: Date().timeIntervalSince(start), architecture: config.architecture)
    }

    private func convertTensor(_ tensor: SourceTensor, from file: SafeTensorsFile, as target: String,
                               into writer: ModelWriter) throws -> TensorInfo {
        let source = file.bytes(of: tensor)
        let dtype: DType = switch tensor.dtype { case .f32: .f32; case .f16: .f16; case .bf16: .bf16 }
        let width = dtype == .f32 ? 4 : 2
        // The C core reads elements through typed pointers: give it aligned bytes.
        let aligned: UnsafeRawBufferPointer
        var copy: UnsafeMutableRawBufferPointer?
        if Int(bitPattern: source.baseAddress) % width != 0 {
            copy = UnsafeMutableRawBufferPointer.allocate(byteCount: source.count, alignment: 64)
            copy!.copyMemory(from: source)
            aligned = UnsafeRawBufferPointer(copy!)
        } else {
            aligned = source
        }
        defer { copy?.deallocate() }

        let isMatrix = tensor.shape.count == 2
        if isMatrix && options.weights == .q8 && tensor.shape[1] % 32 == 0 {
            let q8 = try Quantization.quantizeQ8(aligned, dtype: dtype, rows: tensor.shape[0], cols: tensor.shape[1])
            return try q8.withUnsafeBytes { try writer.addTensor(name: target, dtype: .q8, shape: tensor.shape, bytes: $0) }
        }
        if isMatrix || dtype == .f32 { // matrices keep their dtype; f32 vectors are already f32
            return try writer.addTensor(name: target, dtype: dtype, shape: tensor.shape, bytes: aligned)
        }
        // Norm weights and biases: f32 (a lossless widening of f16/bf16).
        let floats = Quantization.floats(aligned, dtype: dtype, count: tensor.elementCount)
        return try floats.withUnsafeBytes { try writer.addTensor(name: target, dtype: .f32, shape: tensor.shape, bytes: $0) }
    }
}
