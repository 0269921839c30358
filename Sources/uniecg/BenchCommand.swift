import ArgumentParser
import Foundation
import UniECG

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Decoder speed on random q8 weights against this machine's memory roofline.",
        discussion: """
            For each shape and thread count: prompt processing (one batch) and token generation \
            in tokens/s, the read bandwidth measured in the same run with the same threads, the \
            roofline (bandwidth / weight bytes per token) and the fraction of it reached, and the \
            time to open the file and create the decoder ("load"). \
            Build with -c release for meaningful numbers. No test depends on these timings.

            Example:
              swift run -c release uniecg bench --shape 0.5B --threads 1,2
            """
    )

    @Option(help: "Shapes: 110M, 0.5B, or all.")
    var shape = "all"

    @Option(help: "Comma-separated thread counts.")
    var threads = "1,2"

    @Option(help: "Prompt tokens per measurement.")
    var prompt = 128

    @Option(help: "Generated tokens per measurement.")
    var generate = 128

    @Option(help: "Directory for the temporary random model files.")
    var scratch = FileManager.default.temporaryDirectory.path

    @Flag(help: "Keep the random model files (their paths are printed).")
    var keepModel = false

    func run() throws {
        let shapes: [DecoderBenchmark.Shape] = switch shape.lowercased() {
        case "110m": [.llama110M]
        case "0.5b": [.qwen05B]
        case "all": [.llama110M, .qwen05B]
        default: throw ValidationError("--shape must be 110M, 0.5B or all")
        }
        let counts = threads.split(separator: ",").compactMap { Int($0) }
        guard !counts.isEmpty, counts.allSatisfy({ $0 > 0 }) else { throw ValidationError("--threads needs positive counts") }
        #if DEBUG
        print("note: this is a debug build; use `swift run -c release uniecg bench` for real numbers")
        #endif
        print("shape  threads  load s  prompt t/s  gen t/s  bandwidth GB/s  roofline t/s  gen/roofline")
        for s in shapes {
            let path = scratch + "/uniecg-bench-\(s.name)-\(ProcessInfo.processInfo.processIdentifier).uecg"
            defer { if !keepModel { try? FileManager.default.removeItem(atPath: path) } }
            Terminal.writeError("writing random \(s.name) model (\(s.parameters / 1_000_000)M parameters)…\n")
            try DecoderBenchmark.writeRandomModel(s, to: path)
            if keepModel { Terminal.writeError("kept \(path)\n") }
            for t in counts {
                let bandwidth = try DecoderBenchmark.readBandwidth(threads: t)
                let r = try DecoderBenchmark.run(model: path, shape: s, threads: t, promptTokens: prompt,
                                                 generatedTokens: generate, bandwidth: bandwidth)
                print(String(format: "%-5@  %7d  %6.2f  %10.1f  %7.1f  %14.2f  %12.1f  %12.2f", s.name, t,
                             r.loadSeconds, r.promptTokensPerSecond, r.generationTokensPerSecond, r.bandwidth / 1e9, r.roofline,
                             r.rooflineFraction))
            }
        }
        print("peak RSS \(Terminal.bytes(Terminal.peakResidentBytes))")
    }
}
