import CUniECG
import Foundation
import UniECG

/// Converts a source directory (a Hugging Face Llama / Qwen2 model, and the other components
/// the exporters know) into one .uecg file, tensor by tensor: each source tensor is read from
/// the mapped safetensors file, converted, written, and its pages released, so peak memory
/// stays near the largest single tensor.
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
        /// What the model is and how it was made (general.description), e.g. "trained only on synthetic data".
        public var description: String?
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

    /// Every kind of component the converter knows, tried in this order on the source
    /// directory; each returns nil when the directory does not hold its files. A new component
    /// (encoder, U-Net, VAE, ...) adds its exporter here.
    static let exporters: [@Sendable (String) throws -> ComponentPlan?] = [
        { try DecoderExport.plan(directory: $0) },
        { try UNetExport.plan(directory: $0) },
        { try SignalEncoderExport.plan(directory: $0) },
        { try VAEExport.plan(directory: $0) },
        { try AlignerExport.plan(directory: $0) },
        { try ImageEncoderExport.plan(directory: $0) },
        { try PromptExport.plan(directory: $0) },
    ]

    public func convert(to output: String, progress: (Progress) -> Void = { _ in }) throws -> Summary {
        let start = Date()
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ConversionError("'\(directory)' is not a directory (a model directory holds config.json and its weights)")
        }
        let components = try Self.exporters.compactMap { try $0(directory) }
        guard !components.isEmpty else {
            throw ConversionError("'\(directory)' holds no model this converter knows: expected config.json of a Llama or Qwen2 model, signal_config.json + signal_encoder.safetensors, config.json with \"unet\"/\"vae\" sections + unet/vae.safetensors, aligner_config.json + aligner.safetensors, or image_config.json + image_encoder.safetensors (see uniecg-convert --help)")
        }
        var targets = Set<String>()
        for component in components {
            for t in component.tensors where !targets.insert(t.target).inserted {
                throw ConversionError("two components write the tensor '\(t.target)'")
            }
        }
        let architecture = components.count == 1 ? components[0].architecture : "uniecg"

        let writer = try ModelWriter(path: output, zstdLevel: options.zstdLevel)
        try writer.set("general.architecture", .string(architecture))
        try writer.set("general.name", .string(options.name ?? URL(fileURLWithPath: directory).lastPathComponent))
        try writer.set("general.source", .string("directory '\(URL(fileURLWithPath: directory).lastPathComponent)'"))
        try writer.set("general.converter", .string("uniecg-convert \(UniECGVersion.string) (quantization \(options.weights.rawValue))"))
        try writer.set("general.intended_use", .string(Self.intendedUse))
        if let description = options.description { try writer.set("general.description", .string(description)) }
        for component in components {
            for (key, value) in component.metadata { try writer.set(key, value) }
        }

        let sources = components.flatMap(\.tensors)
        let total = sources.reduce(0) { $0 + $1.sourceBytes }
        var done = 0, parameters = 0, rawBytes = 0
        for (index, planned) in sources.enumerated() {
            progress(Progress(tensorIndex: index, tensorCount: sources.count, tensorName: planned.target, bytesDone: done, bytesTotal: total))
            let info = try convertTensor(planned, into: writer)
            for part in [planned.tensor] + planned.stacked { planned.file.release(part) }
            done += planned.sourceBytes
            parameters += planned.elementCount
            rawBytes += Int(info.rawSize)
        }
        progress(Progress(tensorIndex: sources.count, tensorCount: sources.count, tensorName: "", bytesDone: total, bytesTotal: total))
        try writer.finish()
        let outputBytes = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0
        return Summary(tensors: sources.count, parameters: parameters, sourceBytes: total, rawBytes: rawBytes,
                       outputBytes: outputBytes, seconds: Date().timeIntervalSince(start), architecture: architecture)
    }

    private func convertTensor(_ planned: PlannedTensor, into writer: ModelWriter) throws -> TensorInfo {
        let tensor = planned.tensor, target = planned.target
        // Stacked parts are joined into one buffer first (the matrix is quantized as a whole).
        var joined: UnsafeMutableRawBufferPointer?
        defer { joined?.deallocate() }
        let source: UnsafeRawBufferPointer
        if planned.stacked.isEmpty {
            source = planned.file.bytes(of: tensor)
        } else {
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: planned.sourceBytes, alignment: 64)
            joined = buffer
            var at = 0
            for part in [tensor] + planned.stacked {
                let bytes = planned.file.bytes(of: part)
                UnsafeMutableRawBufferPointer(rebasing: buffer[at..<(at + bytes.count)]).copyMemory(from: bytes)
                at += bytes.count
            }
            source = UnsafeRawBufferPointer(buffer)
        }
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

        // q8 works on rows: a weight of shape (out, a, b, ...) is quantized as `out` rows of
        // a*b*... values (a convolution's (out, in, k) flattens the way the C ops read it).
        let shape = planned.shape ?? tensor.shape
        let rowLength = shape.dropFirst().reduce(1, *)
        if planned.kind == .matrix && options.weights == .q8 && shape.count >= 2 && rowLength % 32 == 0 {
            let q8 = try Quantization.quantizeQ8(aligned, dtype: dtype, rows: shape[0], cols: rowLength)
            return try q8.withUnsafeBytes { try writer.addTensor(name: target, dtype: .q8, shape: shape, bytes: $0) }
        }
        if planned.kind == .matrix || dtype == .f32 { // matrices keep their dtype; f32 vectors are already f32
            return try writer.addTensor(name: target, dtype: dtype, shape: shape, bytes: aligned)
        }
        // Norm weights and biases: f32 (a lossless widening of f16/bf16).
        let floats = Quantization.floats(aligned, dtype: dtype, count: planned.elementCount)
        return try floats.withUnsafeBytes { try writer.addTensor(name: target, dtype: .f32, shape: shape, bytes: $0) }
    }
}

/// What one component contributes to the file: its metadata and its tensors, mapped from source
/// names to the format's names (ModelFormat.md).
public struct ComponentPlan {
    /// general.architecture when this is the file's only component ("llama", "qwen2", ...).
    public var architecture: String
    public var metadata: [(String, MetadataValue)]
    public var tensors: [PlannedTensor]

    public init(architecture: String, metadata: [(String, MetadataValue)], tensors: [PlannedTensor]) {
        self.architecture = architecture
        self.metadata = metadata
        self.tensors = tensors
    }
}

public struct PlannedTensor {
    public enum Kind: Sendable {
        /// A weight matrix (or convolution kernel, quantized by output rows): q8 under --quant q8
        /// when its row length is a multiple of 32, else the source dtype.
        case matrix
        /// Norms, biases, embeddings of positions and the like: always f32.
        case vector
    }
    public let file: SafeTensorsFile
    public let tensor: SourceTensor
    public let target: String
    public let kind: Kind
    /// The stored shape when it differs from the source's (same element count), else nil.
    public let shape: [Int]?
    /// Tensors of the same file and dtype whose elements follow `tensor`'s in the target
    /// (Hugging Face's separate q, k, v projections stored as one packed matrix); `shape` then
    /// gives the joined shape.
    public let stacked: [SourceTensor]

    public var elementCount: Int { stacked.reduce(tensor.elementCount) { $0 + $1.elementCount } }
    public var sourceBytes: Int { stacked.reduce(tensor.end - tensor.begin) { $0 + $1.end - $1.begin } }

    public init(file: SafeTensorsFile, tensor: SourceTensor, target: String, kind: Kind, shape: [Int]? = nil,
                stacked: [SourceTensor] = []) {
        precondition(stacked.allSatisfy { $0.dtype == tensor.dtype }, "stacked tensors must share the dtype")
        precondition(stacked.isEmpty || shape != nil, "stacked tensors need the joined shape")
        self.file = file
        self.tensor = tensor
        self.target = target
        self.kind = kind
        self.shape = shape
        self.stacked = stacked
        precondition(shape == nil || shape!.reduce(1, *) == elementCount, "a reshape must keep the element count")
    }
}
