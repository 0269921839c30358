import CUniECG
import Foundation
import Synchronization

/// How the next token is chosen (the C core's sampler; see `uniecg.h`). Randomness is
/// xoshiro256** seeded from `seed`, so a seed gives the same tokens on x86 and ARM.
public struct SamplingOptions: Sendable, Equatable {
    /// 0 = greedy (the most likely token).
    public var temperature: Float = 0.8
    /// Keep only the k most likely tokens; 0 = off.
    public var topK = 40
    /// Keep the smallest set of tokens holding this probability mass; 1 = off.
    public var topP: Float = 0.95
    /// Drop tokens less likely than this fraction of the most likely one; 0 = off.
    public var minP: Float = 0.05
    /// Hugging Face's rule over the last `repetitionWindow` tokens; 1 = off.
    public var repetitionPenalty: Float = 1.1
    public var repetitionWindow = 64
    public var seed: UInt64 = 0

    public init() {}

    /// Always the most likely token.
    public static var greedy: SamplingOptions {
        var options = SamplingOptions()
        options.temperature = 0
        options.repetitionPenalty = 1
        return options
    }

    var c: uniecg_sampler_params {
        var p = uniecg_sampler_default_params()
        p.temperature = temperature
        p.top_k = Int32(clamping: topK)
        p.top_p = topP
        p.min_p = minP
        p.repetition_penalty = repetitionPenalty
        p.repetition_window = Int32(clamping: repetitionWindow)
        p.seed = seed
        return p
    }
}

public struct GenerationOptions: Sendable {
    /// Tokens to generate at most.
    public var maxTokens = 256
    public var sampling = SamplingOptions()
    /// Generation ends before the first occurrence of any of these; the stop string itself is
    /// not part of the output.
    public var stopStrings: [String] = []
    /// Add BOS/EOS around the prompt as the model's tokenizer says.
    public var addSpecialTokens = true
    /// Special tokens written in the prompt (`<|im_start|>`) become their ids.
    public var parseSpecialTokens = true
    public init() {}
}

/// Why generation ended.
public enum StopReason: String, Sendable {
    case endOfSequence = "end of sequence"
    case stopString = "stop string"
    case maxTokens = "maximum tokens"
    case contextFull = "context full"
    case cancelled
}

public struct GenerationSummary: Sendable {
    public var promptTokens: Int
    public var generatedTokens: Int
    public var promptSeconds: Double
    public var generationSeconds: Double
    public var stopReason: StopReason
    /// Generated tokens per second, after the prompt.
    public var tokensPerSecond: Double { generationSeconds > 0 ? Double(generatedTokens) / generationSeconds : 0 }
    public var promptTokensPerSecond: Double { promptSeconds > 0 ? Double(promptTokens) / promptSeconds : 0 }
}

public enum GenerationEvent: Sendable {
    /// The next piece of text: whole UTF-8 characters only.
    case text(String)
    /// The last event of a generation that was not cancelled.
    case finished(GenerationSummary)
}

/// A prompt as the decoder takes it: token ids, and optionally rows (tokens.count x dimension)
/// that replace the token embedding where `useEmbedding` is true (an encoder's output spliced
/// in at a placeholder).
public struct PromptInput: Sendable {
    public var tokens: [Int32]
    public var embeddings: [Float]?
    public var useEmbedding: [Bool]?
    public init(tokens: [Int32], embeddings: [Float]? = nil, useEmbedding: [Bool]? = nil) {
        self.tokens = tokens
        self.embeddings = embeddings
        self.useEmbedding = useEmbedding
    }
}

/// Set from any thread to stop a generation; polled by the C decoder between layers.
final class CancelFlag: Sendable {
    let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .relaxed) }
    func clear() { value.store(false, ordering: .relaxed) }
    var isSet: Bool { value.load(ordering: .relaxed) }
}

extension LanguageModel {
    /// Streams the continuation of `prompt`. The work runs on its own thread; cancelling the
    /// consuming task (or dropping the stream) stops it within one layer of the decoder.
    /// One generation at a time per model: a second concurrent call fails with `.state`.
    public func generate(prompt: String, options: GenerationOptions = GenerationOptions())
        -> AsyncThrowingStream<GenerationEvent, any Error>
    {
        stream { [self] onText in try generate(prompt: prompt, options: options, onText: onText) }
    }

    /// Streams the continuation of a prepared prompt (see `generate(input:options:group:onGroup:onText:)`).
    public func generate(input: PromptInput, options: GenerationOptions = GenerationOptions())
        -> AsyncThrowingStream<GenerationEvent, any Error>
    {
        stream { [self] onText in try generate(input: input, options: options, onText: onText) }
    }

    /// Runs a synchronous generation on its own thread and turns it into a stream: text pieces,
    /// then the summary unless it was cancelled; cancelling the consuming task (or dropping the
    /// stream) sets the flag the decoder polls.
    private func stream(_ run: @escaping @Sendable (_ onText: (String) -> Void) throws -> GenerationSummary)
        -> AsyncThrowingStream<GenerationEvent, any Error>
    {
        AsyncThrowingStream { continuation in
            let flag = cancelFlag
            continuation.onTermination = { termination in
                if case .cancelled = termination { flag.set() }
            }
            let thread = Thread {
                do {
                    let summary = try run { continuation.yield(.text($0)) }
                    if summary.stopReason != .cancelled { continuation.yield(.finished(summary)) }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    /// Stops a running generation from any thread (the stream's cancellation does this too).
    public func cancelGeneration() { cancelFlag.set() }

    /// The synchronous form: `onText` receives each piece of text on the calling thread.
    public func generate(prompt: String, options: GenerationOptions = GenerationOptions(),
                         onText: (String) -> Void) throws(UniECGError) -> GenerationSummary
    {
        guard let tokenizer else {
            throw .notFound("\(file.path) has no tokenizer (tokenizer.* metadata), so it cannot take a text prompt")
        }
        guard !prompt.isEmpty else { throw .invalidArgument("the prompt is empty") }
        let ids = try tokenizer.encode(prompt, addSpecial: options.addSpecialTokens,
                                       parseSpecial: options.parseSpecialTokens)
        return try generate(input: PromptInput(tokens: ids), options: options, onText: onText)
    }

    /// The general form: a prompt already turned into tokens, with encoder outputs spliced in
    /// (`PromptInput.embeddings`). When the model samples `group.first`, the rest of `group` is
    /// fed after it (the ECG generation tokens are emitted as one block) and `onGroup` receives
    /// the last-layer hidden states of the whole group (group.count x dimension); text
    /// generation then goes on after the group.
    public func generate(input: PromptInput, options: GenerationOptions = GenerationOptions(),
                         group: [Int32] = [], onGroup: ([Float]) throws -> Void = { _ in },
                         onText: (String) -> Void) throws(UniECGError) -> GenerationSummary
    {
        guard let tokenizer else {
            throw .notFound("\(file.path) has no tokenizer (tokenizer.* metadata), so it cannot generate text")
        }
        guard options.maxTokens >= 0 else { throw .invalidArgument("maxTokens must be >= 0") }
        let ids = input.tokens
        guard !ids.isEmpty else { throw .invalidArgument("the prompt encodes to no tokens") }
        guard ids.count < contextLength else {
            throw .limit("the prompt is \(ids.count) tokens; the context holds \(contextLength)")
        }
        guard generationLock.withLock({ busy in
            if busy { return false }
            busy = true
            return true
        }) else { throw .state("this model is already generating; one generation at a time") }
        defer { generationLock.withLock { $0 = false } }
        cancelFlag.clear()

        var sampler: OpaquePointer?
        try check { uniecg_sampler_create(options.sampling.c, Int32(vocabularySize), &sampler, $0) }
        defer { uniecg_sampler_free(sampler) }
        for id in ids { uniecg_sampler_accept(sampler, id) }
        let detokenizer = try Detokenizer(tokenizer: tokenizer, skipSpecial: true)
        var stops = StopStringFilter(options.stopStrings)

        let clock = ContinuousClock()
        let start = clock.now
        var summary = GenerationSummary(promptTokens: ids.count, generatedTokens: 0, promptSeconds: 0,
                                        generationSeconds: 0, stopReason: .maxTokens)
        func finish(_ reason: StopReason) -> GenerationSummary {
            summary.stopReason = reason
            summary.generationSeconds = (clock.now - start).seconds - summary.promptSeconds
            return summary
        }

        try rewind(to: 0)
        var logits = [Float](repeating: 0, count: vocabularySize)
        do {
            if let embeddings = input.embeddings {
                logits = try evaluate(tokens: ids, embeddings: embeddings, useEmbedding: input.useEmbedding, allLogits: false).logits
            } else {
                try evaluate(tokens: ids, logits: &logits, allLogits: false)
            }
        } catch .cancelled {
            return finish(.cancelled)
        }
        summary.promptSeconds = (clock.now - start).seconds

        while summary.generatedTokens < options.maxTokens {
            if cancelFlag.isSet { return finish(.cancelled) }
            var token: Int32 = 0
            let status = uniecg_sampler_sample(sampler, &logits, &token)
            guard status == UNIECG_OK else {
                throw .range("the model produced NaN logits at generated token \(summary.generatedTokens + 1)")
            }
            summary.generatedTokens += 1
            if let first = group.first, token == first {
                guard position + group.count < contextLength else { return finish(.contextFull) }
                let out: (logits: [Float], hidden: [Float])
                do {
                    out = try evaluate(tokens: group, allLogits: false)
                } catch .cancelled {
                    return finish(.cancelled)
                }
                do { try onGroup(out.hidden) } catch {
                    throw (error as? UniECGError) ?? .invalidArgument("\(error)")
                }
                for id in group { uniecg_sampler_accept(sampler, id) }
                summary.generatedTokens += group.count - 1
                logits = out.logits
                continue
            }
            if token == tokenizer.eosID || (tokenizer.isSpecial(token) && token != tokenizer.bosID) {
                let (text, _) = stops.add(try detokenizer.flush(), final: true)
                if !text.isEmpty { onText(text) }
                return finish(.endOfSequence)
            }
            uniecg_sampler_accept(sampler, token)
            let (text, stopped) = stops.add(try detokenizer.push(token), final: false)
            if !text.isEmpty { onText(text) }
            if stopped { return finish(.stopString) }
            if position >= contextLength {
                let (rest, _) = stops.add(try detokenizer.flush(), final: true)
                if !rest.isEmpty { onText(rest) }
                return finish(.contextFull)
            }
            if summary.generatedTokens == options.maxTokens { break }
            do {
                try evaluate(tokens: [token], logits: &logits, allLogits: false)
            } catch .cancelled {
                return finish(.cancelled)
            }
        }
        let (rest, _) = stops.add(try detokenizer.flush(), final: true)
        if !rest.isEmpty { onText(rest) }
        return finish(.maxTokens)
    }
}

/// Holds back text that might be the start of a stop string, and cuts the text at the first
/// stop string. Works on UTF-8 bytes; stop strings begin on a character boundary, so what it
/// releases always ends on one.
struct StopStringFilter {
    let stops: [[UInt8]]
    var pending: [UInt8] = []
    var stopped = false

    init(_ strings: [String]) { stops = strings.filter { !$0.isEmpty }.map { Array($0.utf8) } }

    /// Adds text; returns what may be shown now and whether a stop string was reached.
    mutating func add(_ text: String, final: Bool) -> (String, Bool) {
        if stopped { return ("", true) }
        pending.append(contentsOf: text.utf8)
        if let cut = firstStop() {
            stopped = true
            let out = String(decoding: pending[..<cut], as: UTF8.self)
            pending = []
            return (out, true)
        }
        let hold = final ? 0 : heldBack()
        let out = String(decoding: pending[..<(pending.count - hold)], as: UTF8.self)
        pending.removeFirst(pending.count - hold)
        return (out, false)
    }

    private func firstStop() -> Int? {
        var best: Int?
        for stop in stops where stop.count <= pending.count {
            for start in 0...(pending.count - stop.count) where pending[start..<start + stop.count].elementsEqual(stop) {
                if best == nil || start < best! { best = start }
                break
            }
        }
        return best
    }

    /// The longest end of `pending` that is a proper beginning of a stop string.
    private func heldBack() -> Int {
        var hold = 0
        for stop in stops {
            var k = min(stop.count - 1, pending.count)
            while k > hold {
                if pending[(pending.count - k)...].elementsEqual(stop[..<k]) {
                    hold = k
                    break
                }
                k -= 1
            }
        }
        return hold
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}
