import ArgumentParser
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
