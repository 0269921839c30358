import ArgumentParser
import Foundation
import UniECG

/// Options shared by the commands that run a language model.
struct LanguageModelOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: "The .uecg model file.")
    var model: String

    @Option(help: "Worker threads (0 = physical cores).")
    var threads = 0

    @Option(help: "KV cache positions (0 = the model's context, at most 4096).")
    var context = 0

    @Option(help: "Kernels: auto, portable, avx2, neon, neon-dotprod (auto honours UNIECG_KERNELS).")
    var kernels: KernelVariant = .auto

    func validate() throws {
        guard threads >= 0, context >= 0 else { throw ValidationError("--threads and --context must be >= 0") }
    }

    func load() throws -> LanguageModel {
        var options = LanguageModel.Options()
        options.threads = threads
        options.contextLength = context
        options.kernels = kernels
        do {
            return try LanguageModel(path: model, options: options)
        } catch {
            Terminal.writeError("uniecg: \(model): \(error)\n")
            throw ExitCode.failure
        }
    }
}

extension KernelVariant: ExpressibleByArgument {}

/// Where the bundled teaching model is looked for when --model is not given: $UNIECG_MODEL,
/// else Models/uniecg-tiny.uecg in the working directory, else next to the checkout the binary
/// was built in (.build/<config>/uniecg -> ../../Models).
enum DefaultModel {
    static let relative = "Models/uniecg-tiny.uecg"

    static var path: String {
        if let env = ProcessInfo.processInfo.environment["UNIECG_MODEL"], !env.isEmpty { return env }
        if FileManager.default.fileExists(atPath: relative) { return relative }
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var directory = executable.deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent(relative).path
            if FileManager.default.fileExists(atPath: candidate) { return candidate }
            directory = directory.deletingLastPathComponent()
        }
        return relative
    }
}
