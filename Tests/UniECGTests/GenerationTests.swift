import Foundation
import ModelConversion
import Testing
@testable import UniECG

/// The tokenizer wrapper and text generation on a converted decoder fixture (whose tokenizer the
/// C tests check against Hugging Face token by token; here: the Swift API around it).
@Suite struct GenerationTests {
    static let name = "qwen2-bias-tied-hd80"

    /// One converted model shared by the tests of this suite (conversion takes a moment).
    static let shared: (directory: TemporaryDirectory, path: String) = {
        let dir = try! TemporaryDirectory()
        let path = try! DecoderTests.convert(name, weights: .q8, into: dir)
        return (dir, path)
    }()

    static func model() throws -> LanguageModel { try DecoderTests.model(shared.path, kernels: .portable, threads: 1) }

    static let samples = [
        "Sinus rhythm at 72 bpm.", "QTc 452 ms", "ST↑ 2 mm in II, III, aVF", "V1–V6", "naïve café 心电图 🫀", "  two  spaces\n",
    ]

    @Test("encode and decode round-trip; the streaming detokenizer gives decode's text piece by piece")
    func tokenizerRoundTrip() throws {
        let lm = try Self.model()
        let tokenizer = try #require(lm.tokenizer)
        #expect(tokenizer.vocabularySize <= lm.vocabularySize)
        for text in Self.samples {
            let ids = try tokenizer.encode(text, addSpecial: false)
            #expect(!ids.isEmpty)
            #expect(try tokenizer.decode(ids) == text)
            let stream = try Detokenizer(tokenizer: tokenizer, skipSpecial: false)
            var pieces = ""
            for id in ids {
                let piece = try stream.push(id)
                pieces += piece
            }
            pieces += try stream.flush()
            #expect(pieces == text)
        }
        // A long text needs more ids than the first capacity guess of the wrapper when special
        // tokens are parsed from it.
        let long = String(repeating: "<|endoftext|>", count: 50)
        let specials = try tokenizer.encode(long, addSpecial: false, parseSpecial: true)
        #expect(specials.count == 50 && specials.allSatisfy(tokenizer.isSpecial))
        #expect(try tokenizer.decode(specials, skipSpecial: true) == "")
        #expect(try tokenizer.tokenText(specials[0]) == "<|endoftext|>")
        #expect(throws: UniECGError.self) { try tokenizer.decode([Int32(tokenizer.vocabularySize + 5)]) }
        #expect(throws: UniECGError.self) { try tokenizer.tokenText(-1) }
    }

    /// Greedy continuation computed independently of the generation loop: teacher-forced
    /// logits of the whole sequence, argmax of the last row, one token at a time.
    static func greedyByLogits(_ lm: LanguageModel, prompt: [Int32], count: Int) throws -> [Int32] {
        var sequence = prompt
        for _ in 0..<count {
            try lm.rewind(to: 0)
            let logits = try lm.logits(tokens: sequence)
            let last = logits[(sequence.count - 1) * lm.vocabularySize..<sequence.count * lm.vocabularySize]
            var best = last.startIndex
            for i in last.indices where last[i] > last[best] { best = i }
            sequence.append(Int32(best - last.startIndex))
        }
        return Array(sequence.dropFirst(prompt.count))
    }

    @Test("greedy generation streams exactly the argmax continuation")
    func greedyMatchesArgmax() async throws {
        let lm = try Self.model()
        let tokenizer = try #require(lm.tokenizer)
        let prompt = "Sinus rhythm"
        var options = GenerationOptions()
        options.sampling = .greedy
        options.maxTokens = 20
        var text = ""
        var summary: GenerationSummary?
        for try await event in lm.generate(prompt: prompt, options: options) {
            switch event {
            case .text(let piece): text += piece
            case .finished(let s): summary = s
            }
        }
        let s = try #require(summary)
        let ids = try tokenizer.encode(prompt)
        #expect(s.promptTokens == ids.count)
        let expected = try Self.greedyByLogits(lm, prompt: ids, count: s.generatedTokens)
        let end = expected.firstIndex { tokenizer.isSpecial($0) } ?? expected.count
        #expect(text == (try tokenizer.decode(Array(expected[..<end]), skipSpecial: true)))
        #expect(s.stopReason == (end < expected.count ? .endOfSequence : .maxTokens))
        #expect(s.generatedTokens <= 20)
    }

    @Test("the same seed gives the same text; stop strings cut the text before them")
    func seedsAndStops() throws {
        let lm = try Self.model()
        var options = GenerationOptions()
        options.maxTokens = 40
        options.sampling.seed = 7
        func run(_ options: GenerationOptions) throws -> (String, GenerationSummary) {
            var text = ""
            let summary = try lm.generate(prompt: "The QT interval", options: options) { text += $0 }
            return (text, summary)
        }
        let (first, firstSummary) = try run(options)
        let (again, _) = try run(options)
        #expect(first == again)
        var seeds = Set([first])
        for seed in 1...4 {
            options.sampling.seed = UInt64(seed) * 1000
            seeds.insert(try run(options).0)
        }
        #expect(seeds.count > 1, "five seeds gave one text")

        // A stop string taken from the middle of the text ends it there.
        options.sampling.seed = 7
        let characters = Array(first)
        try #require(characters.count >= 12, "text too short: \(first)")
        let stop = String(characters[6..<9])
        options.stopStrings = [stop]
        let (cut, summary) = try run(options)
        let expected = String(first[..<first.range(of: stop)!.lowerBound])
        #expect(cut == expected)
        #expect(summary.stopReason == .stopString)
        #expect(summary.generatedTokens <= firstSummary.generatedTokens)
    }

    @Test("stop-string filter holds back a possible beginning and releases it when it is not one")
    func stopFilter() {
        var filter = StopStringFilter(["END", "ST↑"])
        #expect(filter.add("abc E", final: false) == ("abc ", false))
        #expect(filter.add("N", final: false) == ("", false))
        #expect(filter.add("x", final: false) == ("ENx", false))
        #expect(filter.add("S", final: false) == ("", false))
        #expect(filter.add("T", final: false) == ("", false))
        #expect(filter.add("↑ 2 mm", final: false) == ("", true))
        var tail = StopStringFilter(["END"])
        #expect(tail.add("the EN", final: true) == ("the EN", false))
        var none = StopStringFilter([])
        #expect(none.add("text", final: false) == ("text", false))
    }

    @Test("cancellation stops generation, reaches the C decoder, and leaves the model usable")
    func cancellation() async throws {
        let lm = try Self.model()
        var options = GenerationOptions()
        options.sampling = .greedy
        options.sampling.repetitionPenalty = 1.3  // keeps the text going
        options.maxTokens = 10_000
        var pieces = 0
        let summary = try lm.generate(prompt: "Sinus", options: options) { _ in
            pieces += 1
            if pieces == 3 { lm.cancelGeneration() }
        }
        #expect(summary.stopReason == .cancelled || summary.stopReason == .endOfSequence)
        if summary.stopReason == .cancelled { #expect(summary.generatedTokens <= 4) }

        // The flag reaches the C loop: a decode started while it is set stops with .cancelled.
        lm.cancelFlag.set()
        #expect(throws: UniECGError.cancelled("")) {
            do { _ = try lm.logits(tokens: [1, 2, 3]) } catch UniECGError.cancelled { throw UniECGError.cancelled("") }
        }
        lm.cancelFlag.clear()

        // Cancelling the consuming task ends the stream early and releases the model.
        let streamOptions = options
        let consumer = Task {
            var pieces = 0
            for try await event in lm.generate(prompt: "Sinus", options: streamOptions) {
                if case .text = event { pieces += 1 }
                if pieces == 1 { withUnsafeCurrentTask { $0?.cancel() } }
            }
            return pieces
        }
        _ = try await consumer.value
        var ready = false
        for _ in 0..<500 where !ready {
            do {
                options.maxTokens = 2
                _ = try lm.generate(prompt: "Sinus", options: options) { _ in }
                ready = true
            } catch UniECGError.state {
                try await Task.sleep(nanoseconds: 10_000_000)
            }
        }
        #expect(ready)
    }

    /// The error `body` throws, nil when it succeeds.
    static func refusal(_ body: () throws(UniECGError) -> Void) -> UniECGError? {
        do throws(UniECGError) {
            try body()
            return nil
        } catch {
            return error
        }
    }

    @Test("bad prompts and concurrent use get clear errors")
    func badInput() throws {
        let lm = try Self.model()
        let empty = Self.refusal { () throws(UniECGError) in _ = try lm.generate(prompt: "", options: GenerationOptions()) { _ in } }
        #expect(empty == .invalidArgument("the prompt is empty"))
        let huge = String(repeating: "QTc 452 ms ", count: 2000)
        let tooLong = Self.refusal { () throws(UniECGError) in _ = try lm.generate(prompt: huge, options: GenerationOptions()) { _ in } }
        guard case .limit(let message) = tooLong else {
            Issue.record("a prompt longer than the context was not refused: \(String(describing: tooLong))")
            return
        }
        #expect(message.contains("context"))

        var options = GenerationOptions()
        options.maxTokens = 3
        options.sampling = .greedy
        var nested: UniECGError?
        let outer = Self.refusal { () throws(UniECGError) in
            _ = try lm.generate(prompt: "Sinus", options: options) { _ in
                if nested == nil { nested = Self.refusal { () throws(UniECGError) in _ = try lm.generate(prompt: "x", options: options) { _ in } } }
            }
        }
        #expect(outer == nil)
        guard case .state = nested else {
            Issue.record("a nested generation was not refused: \(String(describing: nested))")
            return
        }
    }

    @Test("uniecg complete streams text and ends with a speed line and the notice")
    func completeCommand() throws {
        let exe = try Fixtures.executable("uniecg")
        let run = try Fixtures.run(exe, ["complete", "--model", Self.shared.path, "--temperature", "0", "--max-tokens", "12",
                                         "--kernels", "portable", "Sinus rhythm"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(!run.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)
        #expect(run.stderr.contains("tokens/s") && run.stderr.contains("not a diagnostic device"))
        let empty = try Fixtures.run(exe, ["complete", "--model", Self.shared.path, ""])
        #expect(empty.status != 0 && empty.stderr.contains("empty"))
    }
}
