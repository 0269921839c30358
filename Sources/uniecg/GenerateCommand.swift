import ArgumentParser
import Foundation
import UniECG

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate a synthetic 12-lead ECG from a learning objective (or a condition file).",
        discussion: """
            With an objective, the unified model's language model answers it with its ECG \
            generation tokens; the aligner turns their hidden states into the U-Net's condition, \
            and the rate, age and sex the model wrote after them complete it (--sex, --age and \
            --heart-rate override them). Then the guided diffusion sample runs and NAME.hea and \
            NAME.dat (WFDB format 16), NAME.csv and NAME.svg (standard ECG paper) are written. The \
            ECG is synthetic: \(UniECGVersion.notice)

            With an objective, up to 16 samples are drawn by default (--candidates; seeds SEED, \
            SEED+1, ...) and the best by the measurements is kept: the first that meets both the \
            simplified criteria of the finding the objective asks for (the model's intent head \
            names it) and a measured rate within 10 % of the requested ends the draws \
            (--all-candidates draws all and keeps the nearest rate among those); else one that \
            meets either, the measured rate nearest the requested deciding between equals. The \
            small bundled generator does not draw the rhythm and rate reliably in one go. With \
            --condition one sample is drawn unless --candidates says otherwise.

            Without an objective, --condition gives the condition directly (any file with a U-Net \
            and a VAE):
              - JSON: {"embedding": [cond_dim floats], "sex": "male", "age": 60, "heart_rate": 72}
                (sex, age and heart_rate optional; sex is "male" or "female");
              - .npy: float32, the full condition vector [embedding, sex (1 male / 0 otherwise),
                age, heart rate].

            Examples:
              uniecg generate "Show me atrial fibrillation at 120 bpm in a 70-year-old man" -o out/af
              uniecg generate --model diffusets.uecg --condition cond.json -o out/ecg
              uniecg generate --model diffusets.uecg --condition cond.npy --steps 50 --seed 7 --age 45
            """
    )

    @Argument(help: "The learning objective (needs a unified model).")
    var objective: String?

    @Option(name: .shortAndLong, help: "The .uecg model file (default: \(DefaultModel.path)).")
    var model: String = DefaultModel.path

    @Option(name: .shortAndLong, help: "The condition: a JSON file or a float32 .npy vector (instead of an objective).")
    var condition: String?

    @Option(name: .shortAndLong, help: "Output path without extension (NAME.hea/.dat/.csv/.svg).")
    var output = "generated"

    @Option(help: "Denoising steps (default: the file's schedule).")
    var steps: Int?

    @Option(help: "Sampler: ddpm, ddim or dpmpp_2m (default: the file's).")
    var sampler: ECGSampler?

    @Option(help: "Classifier-free guidance scale (1 = off; default: the model file's, else 2).")
    var guidance: Float?

    @Option(help: "Random seed: the same seed gives the same ECG.")
    var seed: UInt64 = 0

    @Option(help: "Samples to draw, keeping the best by the measurements (see above; default: up to 16 with an objective, 1 with --condition).")
    var candidates: Int?

    @Flag(help: "Draw every candidate, even after one meets the criteria and the rate (default: stop there).")
    var allCandidates = false

    @Option(help: "Sex condition: male or female.")
    var sex: Sex?

    @Option(help: "Age condition in years (0-120).")
    var age: Double?

    @Option(help: "Heart-rate condition in beats per minute (20-300).")
    var heartRate: Double?

    @Option(help: "Worker threads (0 = physical cores).")
    var threads = 0

    @Option(help: "Kernels: auto, portable, avx2, neon, neon-dotprod (auto honours UNIECG_KERNELS).")
    var kernels: KernelVariant = .auto

    func validate() throws {
        guard (objective == nil) != (condition == nil) else {
            throw ValidationError("give either a learning objective or --condition FILE")
        }
        if let objective, objective.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            throw ValidationError("the learning objective is empty")
        }
        if let steps, steps < 1 { throw ValidationError("--steps must be at least 1") }
        if let guidance, !(guidance.isFinite && guidance >= 0) { throw ValidationError("--guidance must be >= 0 (1 = off)") }
        guard threads >= 0 else { throw ValidationError("--threads must be >= 0") }
        if let candidates, !(1...64).contains(candidates) { throw ValidationError("--candidates must be 1...64") }
    }

    func run() throws {
        // Refuse a missing output directory before sampling, not after.
        let directory = URL(fileURLWithPath: output).deletingLastPathComponent().path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            Terminal.writeError("uniecg generate: output directory '\(directory)' does not exist\n")
            throw ExitCode.failure
        }
        do {
            var modelOptions = ECGGenerator.Options()
            modelOptions.threads = threads
            modelOptions.kernels = kernels
            let generator: ECGGenerator
            var cond: ECGCondition
            var intent: String?
            if let objective {
                let unified = try UnifiedModel(path: model, options: modelOptions)
                var textOptions = GenerationOptions()
                textOptions.maxTokens = 48
                textOptions.sampling = .greedy
                let plan = try unified.plan(objective: objective, options: textOptions)
                guard let planned = plan.condition else {
                    Terminal.writeError("uniecg generate: the model did not answer with ECG generation tokens; it wrote: \(plan.reply)\n")
                    throw ExitCode.failure
                }
                if !unified.modelDescription.isEmpty { print("model: \(unified.modelDescription)") }
                print("model's answer: \(plan.reply.trimmingCharacters(in: .whitespacesAndNewlines))")
                intent = plan.intent
                if let intent {
                    print("the objective asks for (the aligner's intent head): \(ECGCriteria.displayName(intent))")
                }
                cond = planned
                generator = unified.generator
            } else {
                cond = try Self.readCondition(condition!)
                generator = try ECGGenerator(path: model, options: modelOptions)
            }
            if let sex { cond.sex = sex }
            if let age { cond.age = age }
            if let heartRate { cond.heartRate = heartRate }
            print("condition: sex \(cond.sex?.rawValue ?? "unset"), age \(cond.age.map { String(format: "%.0f", $0) } ?? "unset"), heart rate \(cond.heartRate.map { String(format: "%.0f bpm", $0) } ?? "unset")")
            var options = ECGGenerationOptions()
            options.steps = steps
            options.sampler = sampler
            options.guidance = guidance
            options.seed = seed

            // Ctrl-C stops before the next step; nothing is written then.
            signal(SIGINT, SIG_IGN)
            let interrupt = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
            interrupt.setEventHandler { generator.cancelGeneration() }
            interrupt.resume()
            defer { interrupt.cancel() }

            let draws = candidates ?? (objective == nil ? 1 : 16)
            let bar = ProgressBar(label: "generate")
            // Known intents only: a name the criteria do not know cannot be checked.
            let wanted = intent.flatMap { $0 == "normal_sinus_rhythm" || ECGCriteria.names[$0] != nil ? $0 : nil }
            let started = DispatchTime.now()
            let (record, summary, chosen, drawn) = try generator.generateBest(condition: cond, candidates: draws, options: options,
                                                                             wanted: wanted, stopAtFirstMatch: !allCandidates) { i, n in
                bar.update(fraction: Double(i) / Double(n), detail: "step \(i) of \(n)")
            }
            bar.finish()
            let totalSeconds = Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1e9
            if draws > 1 {
                let rates = drawn.map { $0.measuredRate.map { String(format: "%.0f", $0) } ?? "-" }.joined(separator: ", ")
                let shows = wanted == nil ? "" : "; \(drawn.filter { $0.showsWanted == true }.count) of them meet the criteria of what was asked"
                let stopped = drawn.count < draws ? " (stopped at the first that meets the criteria and the rate and no other finding's)" : ""
                print("kept sample \(chosen + 1) of \(drawn.count) drawn of up to \(draws)\(stopped), seed \(summary.seed); measured rates \(rates) bpm"
                      + (cond.heartRate.map { String(format: " for %.0f requested", $0) } ?? "") + shows)
            }
            let title = "Synthetic ECG — seed \(summary.seed), \(summary.steps) \(summary.sampler.rawValue) steps, guidance \(summary.guidance)"
            for path in try RecordFile.writeAll(record, base: output, title: title) { print("wrote \(path)") }
            // Best effort: a synthetic record may have no beats the detector accepts. The
            // measurements of the result let the teacher check it against the objective.
            if let m = try? Measurements.measure(record), let rate = m.heartRate {
                print(String(format: "measured heart rate: %.0f bpm", rate))
                print("measured, as the evidence block reads it: " + Evidence.render(m).replacingOccurrences(of: "\n", with: "; "))
                print("criteria the result meets (simplified textbook rules): " + ECGCriteria.summary(m))
            } else {
                print("measured heart rate: not measurable")
            }
            Terminal.writeError(String(format: "-- %d steps in %.2f s, decoded in %.3f s%@, kernels %@, %d threads\n",
                                       summary.steps, summary.samplingSeconds, summary.decodingSeconds,
                                       draws > 1 ? String(format: " (the kept sample; all %d drawn and measured: %.2f s)", drawn.count, totalSeconds) : "",
                                       generator.kernels.rawValue, generator.threads))
            print(UniECGVersion.notice)
        } catch let exit as ExitCode {
            throw exit
        } catch UniECGError.cancelled {
            Terminal.writeError("\nuniecg generate: cancelled; nothing written\n")
            throw ExitCode(130)
        } catch {
            Terminal.writeError("\nuniecg generate: \(error)\n")
            throw ExitCode.failure
        }
    }

    /// A condition from a JSON object or a float32 .npy vector.
    static func readCondition(_ path: String) throws -> ECGCondition {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ValidationError("cannot read the condition file '\(path)'")
        }
        if path.lowercased().hasSuffix(".npy") {
            let array = try NPY.readFloat32(data)
            guard array.shape.count == 1 || (array.shape.count == 2 && array.shape[0] == 1) else {
                throw ValidationError("'\(path)': a condition .npy is one vector (shape (n,) or (1, n)), not \(array.shape)")
            }
            return try ECGCondition(vector: array.values)
        }
        let json: Any
        do { json = try JSONSerialization.jsonObject(with: data) } catch {
            throw ValidationError("'\(path)' is not valid JSON (\(error.localizedDescription))")
        }
        guard let object = json as? [String: Any] else {
            throw ValidationError("'\(path)': the condition must be a JSON object with an \"embedding\" array")
        }
        let known: Set = ["embedding", "sex", "age", "heart_rate"]
        if let unknown = object.keys.sorted().first(where: { !known.contains($0) }) {
            throw ValidationError("'\(path)': unknown key \"\(unknown)\" (expected embedding, sex, age, heart_rate)")
        }
        guard let values = object["embedding"] as? [Any], !values.isEmpty else {
            throw ValidationError("'\(path)': \"embedding\" must be a non-empty array of numbers")
        }
        var embedding: [Float] = []
        for (i, value) in values.enumerated() {
            guard let number = value as? NSNumber else {
                throw ValidationError("'\(path)': embedding[\(i)] is not a number")
            }
            embedding.append(number.floatValue)
        }
        var condition = ECGCondition(embedding: embedding)
        if let sex = object["sex"] {
            guard let text = sex as? String, let parsed = Sex(rawValue: text.lowercased()) else {
                throw ValidationError("'\(path)': \"sex\" must be \"male\" or \"female\"")
            }
            condition.sex = parsed
        }
        func number(_ key: String) throws -> Double? {
            guard let value = object[key] else { return nil }
            guard let number = value as? NSNumber else { throw ValidationError("'\(path)': \"\(key)\" must be a number") }
            return number.doubleValue
        }
        condition.age = try number("age")
        condition.heartRate = try number("heart_rate")
        return condition
    }
}

extension ECGSampler: ExpressibleByArgument {}
extension Sex: ExpressibleByArgument {}
