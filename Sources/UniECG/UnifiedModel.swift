import Foundation

/// The prompt format a unified model was trained with (ModelFormat.md, "Multimodal prompt").
public struct PromptFormat: Sendable, Equatable {
    public let explainTemplate: String
    public let generateTemplate: String
    public let ecgPlaceholder: String
    public let generationTokens: [String]
    public let generationParameters: String
    public let endOfTurn: String
    public let defaultQuestion: String
    /// The special token whose rows take the image encoder's tokens, placed right after the ECG
    /// tokens (GEM's order); nil when the model takes no image.
    public var imagePlaceholder: String?
    /// The user turn that asks for an explanation of a photo of the printout on its own (no record,
    /// no measurements); holds `{question}` and the image placeholder once each. Nil when the model
    /// was not trained to read photos alone.
    public var photoTemplate: String?

    public init(file: ModelFile) throws(UniECGError) {
        func string(_ key: String) throws(UniECGError) -> String {
            guard case .string(let s)? = file.metadata(key) else {
                throw .notFound("\(file.path) has no \(key) (a unified model needs the prompt.* keys)")
            }
            return s
        }
        guard case .stringArray(let tokens)? = file.metadata("prompt.generation_tokens"), !tokens.isEmpty else {
            throw .notFound("\(file.path) has no prompt.generation_tokens")
        }
        try self.init(explainTemplate: string("prompt.explain_template"), generateTemplate: string("prompt.generate_template"),
                      ecgPlaceholder: string("prompt.ecg_placeholder"), generationTokens: tokens,
                      generationParameters: string("prompt.generation_parameters"), endOfTurn: string("prompt.end_of_turn"),
                      defaultQuestion: string("prompt.default_question"))
        if case .string(let image)? = file.metadata("prompt.image_placeholder") { imagePlaceholder = image }
        if case .string(let photo)? = file.metadata("prompt.photo_template") {
            try Self.checkPhotoTemplate(photo, imagePlaceholder: imagePlaceholder)
            photoTemplate = photo
        }
    }

    public static func checkPhotoTemplate(_ template: String, imagePlaceholder: String?) throws(UniECGError) {
        guard let imagePlaceholder else { throw .format("prompt.photo_template needs prompt.image_placeholder") }
        for field in ["{question}", imagePlaceholder] where template.components(separatedBy: field).count != 2 {
            throw .format("prompt.photo_template must hold \(field) exactly once")
        }
    }

    public init(explainTemplate: String, generateTemplate: String, ecgPlaceholder: String, generationTokens: [String],
                generationParameters: String, endOfTurn: String, defaultQuestion: String) throws(UniECGError) {
        self.explainTemplate = explainTemplate
        self.generateTemplate = generateTemplate
        self.ecgPlaceholder = ecgPlaceholder
        self.generationTokens = generationTokens
        self.generationParameters = generationParameters
        self.endOfTurn = endOfTurn
        self.defaultQuestion = defaultQuestion
        for field in ["{evidence}", "{question}", ecgPlaceholder] where explainTemplate.components(separatedBy: field).count != 2 {
            throw .format("prompt.explain_template must hold \(field) exactly once")
        }
        guard generateTemplate.components(separatedBy: "{objective}").count == 2 else {
            throw .format("prompt.generate_template must hold {objective} exactly once")
        }
    }

    /// Reads sex, age and heart rate from the text the model wrote after the generation tokens.
    public func parameters(in text: String) -> (sex: Sex?, age: Double?, heartRate: Double?) {
        let number = "([0-9]+(?:\\.[0-9]+)?)"
        var pattern = NSRegularExpression.escapedPattern(for: generationParameters)
        var order: [String] = []
        for (field, group) in [("{rate}", number), ("{age}", number), ("{sex}", "(male|female)")] {
            let escaped = NSRegularExpression.escapedPattern(for: field)
            if let r = pattern.range(of: escaped) {
                pattern.replaceSubrange(r, with: group)
                order.append(field)
            }
        }
        // Fields in the order they appear in the pattern, which is the order of the groups.
        order.sort { generationParameters.range(of: $0)!.lowerBound < generationParameters.range(of: $1)!.lowerBound }
        guard let regex = try? NSRegularExpression(pattern: pattern),
              let m = regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) else { return (nil, nil, nil) }
        var sex: Sex?, age: Double?, rate: Double?
        for (i, field) in order.enumerated() {
            guard let r = Range(m.range(at: i + 1), in: text) else { continue }
            let value = String(text[r])
            switch field {
            case "{rate}": rate = Double(value)
            case "{age}": age = Double(value)
            default: sex = value == "male" ? .male : .female
            }
        }
        return (sex, age, rate)
    }
}

/// The whole teaching model in one file: a text decoder with its tokenizer, the signal encoder
/// whose tokens are spliced into the prompt, the aligner from the ECG generation tokens to the
/// diffusion condition, the latent U-Net and the VAE. It explains a record (signal + measured
/// evidence), or with an image encoder and a photo template a photo of a printout on its own,
/// and answers a learning objective with a condition for `ECGGenerator`.
public final class UnifiedModel: @unchecked Sendable {
    public let file: ModelFile
    public let language: LanguageModel
    public let signalEncoder: SignalEncoder
    public let aligner: Aligner
    public let generator: ECGGenerator
    /// The image encoder, when the file holds one (image.*) and its prompt has an image placeholder.
    public let imageEncoder: ImageEncoder?
    public let prompt: PromptFormat
    public let tokenizer: Tokenizer
    let placeholderID: Int32
    let imagePlaceholderID: Int32?
    let generationIDs: [Int32]

    public convenience init(path: String, options: ComputeOptions = ComputeOptions()) throws(UniECGError) {
        try self.init(file: ModelFile(path: path), options: options)
    }

    public init(file: ModelFile, options: ComputeOptions = ComputeOptions()) throws(UniECGError) {
        self.file = file
        prompt = try PromptFormat(file: file)
        var lmOptions = LanguageModel.Options()
        lmOptions.threads = options.threads
        lmOptions.kernels = options.kernels
        language = try LanguageModel(file: file, options: lmOptions)
        guard let tokenizer = language.tokenizer else { throw .notFound("\(file.path) has no tokenizer") }
        self.tokenizer = tokenizer
        signalEncoder = try SignalEncoder(file: file, options: options)
        aligner = try Aligner(file: file, options: options)
        generator = try ECGGenerator(file: file, options: options)
        imageEncoder = file.metadataKeys.contains("image.architecture") && prompt.imagePlaceholder != nil
            ? try ImageEncoder(file: file, options: options) : nil

        func single(_ text: String, _ role: String) throws(UniECGError) -> Int32 {
            let ids = try tokenizer.encode(text, addSpecial: false, parseSpecial: true)
            guard ids.count == 1, tokenizer.isSpecial(ids[0]) else {
                throw .format("the \(role) '\(text)' is not one special token of the tokenizer")
            }
            return ids[0]
        }
        placeholderID = try single(prompt.ecgPlaceholder, "ECG placeholder")
        imagePlaceholderID = imageEncoder == nil ? nil : try single(prompt.imagePlaceholder!, "image placeholder")
        if let imageEncoder, imageEncoder.dimension != language.dimension {
            throw .format("the image encoder projects to \(imageEncoder.dimension), the decoder is \(language.dimension) wide")
        }
        var ids: [Int32] = []
        for t in prompt.generationTokens { ids.append(try single(t, "generation token")) }
        generationIDs = ids
        guard ids.count == aligner.tokens, aligner.inputDim == language.dimension else {
            throw .format("the aligner takes \(aligner.tokens) hidden states of width \(aligner.inputDim), the prompt has \(ids.count) generation tokens and the decoder is \(language.dimension) wide")
        }
        guard signalEncoder.dimension == language.dimension else {
            throw .format("the signal encoder projects to \(signalEncoder.dimension), the decoder is \(language.dimension) wide")
        }
        guard aligner.outputDim == generator.embeddingWidth else {
            throw .format("the aligner gives \(aligner.outputDim) values, the U-Net's condition embedding is \(generator.embeddingWidth) wide")
        }
    }

    /// The file's own account of what it is (general.description), for the user to see next to
    /// its output; empty when the file has none.
    public var modelDescription: String {
        if case .string(let d)? = file.metadata("general.description") { return d }
        return ""
    }

    /// The user's question, or the model's default one when it gives none (or only white space).
    func asked(_ question: String?) -> String {
        (question?.trimmingCharacters(in: .whitespacesAndNewlines)).flatMap { $0.isEmpty ? nil : $0 } ?? prompt.defaultQuestion
    }

    /// A template's own text is tokenized with its special tokens; the user's text in `fields`
    /// is not, so a question that spells "<ecg>" stays plain text.
    func encode(_ template: String, fields: [String: String]) throws(UniECGError) -> [Int32] {
        var ids: [Int32] = []
        var rest = Substring(template)
        while let (field, range) = fields.keys.compactMap({ f in rest.range(of: f).map { (f, $0) } }).min(by: { $0.1.lowerBound < $1.1.lowerBound }) {
            ids += try tokenizer.encode(String(rest[..<range.lowerBound]), addSpecial: false, parseSpecial: true)
            ids += try tokenizer.encode(fields[field]!, addSpecial: false, parseSpecial: false)
            rest = rest[range.upperBound...]
        }
        return ids + (try tokenizer.encode(String(rest), addSpecial: false, parseSpecial: true))
    }

    /// The explain prompt: the template filled with the evidence block and the question, the
    /// placeholder repeated once per signal token and those rows replaced by the encoded signal.
    public func explainInput(record: ECGRecord, measurements: Measurements, question: String? = nil,
                             image: RGBImage? = nil) throws(UniECGError) -> PromptInput {
        let ids = try encode(prompt.explainTemplate, fields: ["{evidence}": Evidence.render(measurements), "{question}": asked(question)])
        guard let at = ids.firstIndex(of: placeholderID) else {
            throw .format("prompt.explain_template does not encode its ECG placeholder")
        }
        let signal = try signalEncoder.encode(record)
        var spliced = signal.values
        var placeholders = Array(repeating: placeholderID, count: signal.tokens)
        if let image {
            guard let imageEncoder, let imagePlaceholderID else {
                throw .notFound("\(file.path) has no image encoder (image.* with prompt.image_placeholder): it explains signals only")
            }
            guard prompt.photoTemplate == nil else {
                // Trained on a record (with its measurements) or on a photo alone, never on both at once.
                throw .invalidArgument("\(file.path) reads a record or a photo on its own, not both together: explain the photo without the record")
            }
            spliced += try encode(image: image, with: imageEncoder)
            placeholders += Array(repeating: imagePlaceholderID, count: imageEncoder.tokens)
        }
        return splice(ids, at: at, placeholders: placeholders, rows: spliced)
    }

    /// Whether the model explains a photo of a printout on its own (`explain(photo:)`).
    public var readsPhotos: Bool { prompt.photoTemplate != nil && imageEncoder != nil }

    /// The photo prompt: the photo template filled with the question, the image placeholder
    /// repeated once per image token and those rows replaced by the encoded photo.
    public func photoInput(_ image: RGBImage, question: String? = nil) throws(UniECGError) -> PromptInput {
        guard let template = prompt.photoTemplate, let imageEncoder, let imagePlaceholderID else {
            throw .notFound("\(file.path) does not read a photo on its own (it needs prompt.photo_template and an image encoder); give it a record")
        }
        let ids = try encode(template, fields: ["{question}": asked(question)])
        guard let at = ids.firstIndex(of: imagePlaceholderID) else {
            throw .format("prompt.photo_template does not encode its image placeholder")
        }
        let encoded = try encode(image: image, with: imageEncoder)
        return splice(ids, at: at, placeholders: Array(repeating: imagePlaceholderID, count: imageEncoder.tokens), rows: encoded)
    }

    /// Streams the explanation of a photo of a printout on its own. Nothing is measured: the text
    /// can only say what the model reads from the picture (callers say so next to it).
    public func explain(photo: RGBImage, question: String? = nil,
                        options: GenerationOptions = GenerationOptions()) throws(UniECGError)
        -> AsyncThrowingStream<GenerationEvent, any Error>
    {
        language.generate(input: try photoInput(photo, question: question), options: options)
    }

    private func encode(image: RGBImage, with imageEncoder: ImageEncoder) throws(UniECGError) -> [Float] {
        let prepared = try ImagePreparation(size: imageEncoder.imageSize, mean: imageEncoder.mean.map(Float.init),
                                            std: imageEncoder.std.map(Float.init)).prepare(image)
        return try imageEncoder.encode(image: prepared.values).embeddings
    }

    /// `ids` with the one placeholder at `at` replaced by `placeholders`, whose rows take `rows`.
    private func splice(_ ids: [Int32], at: Int, placeholders: [Int32], rows spliced: [Float]) -> PromptInput {
        let tokens = Array(ids[..<at]) + placeholders + Array(ids[(at + 1)...])
        let d = language.dimension
        var rows = [Float](repeating: 0, count: tokens.count * d)
        rows.replaceSubrange((at * d)..<((at + placeholders.count) * d), with: spliced)
        let use = tokens.indices.map { $0 >= at && $0 < at + placeholders.count }
        return PromptInput(tokens: tokens, embeddings: rows, useEmbedding: use)
    }

    /// Streams the explanation of a record (measure it first: the evidence block is part of the
    /// prompt, and the caller shows the same measurements as the table the text cites).
    public func explain(record: ECGRecord, measurements: Measurements, question: String? = nil, image: RGBImage? = nil,
                        options: GenerationOptions = GenerationOptions()) throws(UniECGError)
        -> AsyncThrowingStream<GenerationEvent, any Error>
    {
        let input = try explainInput(record: record, measurements: measurements, question: question, image: image)
        return language.generate(input: input, options: options)
    }

    /// What the model answered to a learning objective: its text and, when it emitted the ECG
    /// generation tokens, the condition for the generator.
    public struct Plan: Sendable {
        public var reply: String
        public var condition: ECGCondition?
        /// What the objective asks for, by the aligner's intent head (aligner.intents); nil
        /// without a head or without generation tokens.
        public var intent: String?
        public var summary: GenerationSummary
    }

    public func plan(objective: String, options: GenerationOptions = GenerationOptions()) throws(UniECGError) -> Plan {
        let trimmed = objective.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { throw .invalidArgument("the learning objective is empty") }
        let ids = try encode(prompt.generateTemplate, fields: ["{objective}": trimmed])
        var reply = ""
        var embedding: [Float]?
        let aligner = self.aligner
        let summary = try language.generate(input: PromptInput(tokens: ids), options: options, group: generationIDs,
                                            onGroup: { hidden in embedding = try aligner.condition(hidden: hidden) },
                                            onText: { reply += $0 })
        guard let embedding else { return Plan(reply: reply, condition: nil, intent: nil, summary: summary) }
        let p = prompt.parameters(in: reply)
        return Plan(reply: reply, condition: ECGCondition(embedding: embedding, sex: p.sex, age: p.age, heartRate: p.heartRate),
                    intent: aligner.intent(condition: embedding), summary: summary)
    }
}
