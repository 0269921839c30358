import ArgumentParser
import Foundation
import UniECG

struct CompleteCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "complete",
        abstract: "Continue a text prompt with the model's language model, streaming the text.",
        discussion: """
            Prints the continuation as it is generated, then (on stderr) a line with the token \
            counts and speeds. \(UniECGVersion.notice)

            Examples:
              uniecg complete --model tiny.uecg "The QT interval"
              uniecg complete --model tiny.uecg --temperature 0 --max-tokens 40 "Sinus rhythm"
            """
    )

    @OptionGroup var model: LanguageModelOptions

    @Argument(help: "The prompt.")
    var prompt: String

    @Option(help: "Tokens to generate at most.")
    var maxTokens = 128

    @Option(help: "Sampling temperature; 0 = greedy.")
    var temperature: Float = 0.8

    @Option(help: "Keep the k most likely tokens (0 = off).")
    var topK = 40

    @Option(help: "Nucleus mass (1 = off).")
    var topP: Float = 0.95

    @Option(help: "Drop tokens below this fraction of the best one's probability (0 = off).")
    var minP: Float = 0.05

    @Option(help: "Repetition penalty (1 = off).")
    var repetitionPenalty: Float = 1.1

    @Option(help: "Random seed: the same seed gives the same text.")
    var seed: UInt64 = 0

    @Option(name: .customLong("stop"), help: "Stop before this text (repeatable).")
    var stopStrings: [String] = []

    @Flag(help: "Do not add the tokenizer's BOS/EOS around the prompt.")
    var noSpecialTokens = false

    func validate() throws {
        guard !prompt.isEmpty else { throw ValidationError("the prompt is empty") }
        guard maxTokens >= 0 else { throw ValidationError("--max-tokens must be >= 0") }
        guard temperature >= 0, temperature.isFinite else { throw ValidationError("--temperature must be >= 0") }
        guard topK >= 0, topP > 0, topP <= 1, minP >= 0, minP <= 1, repetitionPenalty > 0 else {
            throw ValidationError("need --top-k >= 0, 0 < --top-p <= 1, 0 <= --min-p <= 1, --repetition-penalty > 0")
        }
    }

    func run() throws {
        let lm = try model.load()
        var options = GenerationOptions()
        options.maxTokens = maxTokens
        options.sampling.temperature = temperature
        options.sampling.topK = topK
        options.sampling.topP = topP
        options.sampling.minP = minP
        options.sampling.repetitionPenalty = repetitionPenalty
        options.sampling.seed = seed
        options.stopStrings = stopStrings
        options.addSpecialTokens = !noSpecialTokens

        // Ctrl-C stops the generation cleanly and still prints the summary.
        signal(SIGINT, SIG_IGN)
        let interrupt = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        interrupt.setEventHandler { lm.cancelGeneration() }
        interrupt.resume()
        defer { interrupt.cancel() }

        let summary: GenerationSummary
        do {
            summary = try lm.generate(prompt: prompt, options: options) { piece in
                FileHandle.standardOutput.write(Data(piece.utf8))
            }
        } catch {
            Terminal.writeError("\nuniecg complete: \(error)\n")
            throw ExitCode.failure
        }
        print()
        Terminal.writeError(String(
            format: "-- %d prompt tokens (%.1f tokens/s), %d generated (%.1f tokens/s), stopped: %@, kernels %@, %d threads\n",
            summary.promptTokens, summary.promptTokensPerSecond, summary.generatedTokens, summary.tokensPerSecond,
            summary.stopReason.rawValue, lm.kernels.rawValue, lm.threads))
        Terminal.writeError("-- \(UniECGVersion.notice)\n")
    }
}
