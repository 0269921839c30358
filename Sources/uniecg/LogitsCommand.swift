import ArgumentParser
import Foundation
import UniECG

struct LogitsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logits",
        abstract: "Teacher-forced logits for given token ids, to check a conversion against another implementation.",
        discussion: """
            Writes a float32 .npy of shape (tokens, vocab) with -o; otherwise prints each position's \
            top 5 tokens.

            Example:
              uniecg logits --model tiny.uecg --tokens 5,17,42,7 -o logits.npy
            """
    )

    @OptionGroup var options: LanguageModelOptions

    @Option(help: "Comma-separated token ids.")
    var tokens: String

    @Option(name: .shortAndLong, help: "Write the logits to this .npy file.")
    var output: String?

    func run() throws {
        var ids: [Int32] = []
        for part in tokens.split(separator: ",", omittingEmptySubsequences: false) {
            guard let id = Int32(part.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("'\(part)' in --tokens is not an integer token id")
            }
            ids.append(id)
        }
        let lm = try options.load()
        let logits: [Float]
        do {
            logits = try lm.logits(tokens: ids)
        } catch {
            Terminal.writeError("uniecg logits: \(error)\n")
            throw ExitCode.failure
        }
        let vocab = lm.vocabularySize
        if let output {
            try NPY.float32(logits, shape: [ids.count, vocab]).write(to: URL(fileURLWithPath: output))
            print("wrote \(output): float32 (\(ids.count), \(vocab))")
            return
        }
        for (t, id) in ids.enumerated() {
            let row = logits[t * vocab..<(t + 1) * vocab]
            let top = row.indices.sorted { row[$0] > row[$1] }.prefix(5)
            print("position \(t) (token \(id)): " + top.map { "\($0 - t * vocab):\(String(format: "%.3f", row[$0]))" }.joined(separator: " "))
        }
    }
}
