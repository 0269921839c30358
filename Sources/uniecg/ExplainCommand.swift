import ArgumentParser
import Foundation
import UniECG

struct ExplainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "Explain a record (WFDB, CSV or NPY) with the unified model: streamed text, then the measurements it cites.",
        discussion: """
            The record is measured (rate, rhythm, intervals, axis, voltage, ST); the measurements \
            go into the prompt as an evidence block next to the encoded signal, and the model's \
            explanation is streamed sentence by sentence. A sentence that states a number the \
            evidence block does not hold for that quantity, or an impression naming a finding \
            whose simplified criteria the measurements do not meet, is left out and marked \
            (--json keeps the model's whole text in model_text and lists what was left out). \
            Then the measurement table is printed, with the evidence each value rests on and the \
            criteria met. \
            \(UniECGVersion.notice)

            A photo on its own: with --image and no record, a model trained to read photos \
            (prompt.photo_template, as the bundled one) explains the picture of the printout. \
            Nothing is measured from a photo, so that text names what the model reads in words \
            and a sentence stating a number is left out; load the recording to measure it.

            Examples:
              uniecg explain Models/examples/atrial_fibrillation.hea
              uniecg explain record.csv --question "Is the rhythm regular?"
              uniecg explain record.hea --json
              uniecg explain --image Models/examples/rbbb.jpg
            """
    )

    @Argument(help: "A WFDB header (.hea), CSV or NPY file (leave out to explain an --image photo on its own).")
    var record: String?

    @Option(name: .shortAndLong, help: "The .uecg unified model (default: \(DefaultModel.path)).")
    var model: String = DefaultModel.path

    @Option(help: "A photo or scan (PNG or JPEG) of an ECG printout: on its own, or beside the record for a model trained on both.")
    var image: String?

    @Option(help: "The question to answer (default: the model's).")
    var question: String?

    @Option(help: "Sample rate in Hz, for a CSV without a time column or an NPY file.")
    var sampleRate: Double?

    @Option(help: "Most tokens to write.")
    var maxTokens = 200

    @Option(help: "Sampling temperature (0 = greedy, the default: the same record gives the same text).")
    var temperature: Float = 0

    @Option(help: "Random seed for sampling.")
    var seed: UInt64 = 0

    @Flag(help: "Print one JSON object (explanation, model_text, left_out, findings, evidence, notice) instead of text.")
    var json = false

    @Option(help: "Worker threads (0 = physical cores).")
    var threads = 0

    func validate() throws {
        guard record != nil || image != nil else { throw ValidationError("give a record to explain, or a photo with --image") }
        guard maxTokens > 0 else { throw ValidationError("--max-tokens must be at least 1") }
        guard temperature >= 0, temperature.isFinite else { throw ValidationError("--temperature must be >= 0") }
        guard threads >= 0 else { throw ValidationError("--threads must be >= 0") }
    }

    private func emit(_ text: String) { FileHandle.standardOutput.write(Data(text.utf8)) }

    /// What stands in the text for a sentence left out, keeping the white space that followed it.
    static func leftOutNote(_ s: CheckedExplanation.Sentence, photo: Bool = false) -> String {
        let space = String(s.text.reversed().prefix { $0.isWhitespace }.reversed())
        let what = photo ? "a number, and nothing was measured from the photo" : "a sentence that disagrees with the measurements"
        return "[left out: \(what) (\(s.disagreements.joined(separator: "; ")))]" + space
    }

    var generationOptions: GenerationOptions {
        var options = GenerationOptions()
        options.maxTokens = maxTokens
        options.sampling = temperature == 0 ? .greedy : SamplingOptions()
        if temperature > 0 { options.sampling.temperature = temperature }
        options.sampling.seed = seed
        return options
    }

    func loadModel() throws -> UnifiedModel {
        do {
            return try UnifiedModel(path: model, options: ComputeOptions(threads: threads))
        } catch {
            Terminal.writeError("uniecg explain: \(model): \(error)\n")
            throw ExitCode.failure
        }
    }

    func readPhoto(_ path: String) throws -> (photo: RGBImage, warnings: [String]) {
        do {
            let photo = try ImageFile.read(path)
            return (photo, ImagePreparation.paperWarnings(photo).map { "\(path): \($0)" })
        } catch {
            Terminal.writeError("uniecg explain: \(path): \(error)\n")
            throw ExitCode.failure
        }
    }

    /// Streams the model's answer to `input` (built inside, so its errors are reported the same
    /// way) through `checked`: text mode shows each sentence as it completes, a left-out one as
    /// its note, after `heading`.
    func stream(_ unified: UnifiedModel, _ makeInput: () throws -> PromptInput, checked: inout CheckedExplanation,
                heading: String, photo: Bool) throws -> GenerationSummary {
        let show = { (sentences: [CheckedExplanation.Sentence]) in
            guard !json else { return }
            for s in sentences { emit(s.grounded ? s.text : Self.leftOutNote(s, photo: photo)) }
        }
        do {
            let input = try makeInput()
            // One writer for stdout: print() buffers, the streamed pieces must come after the heading.
            if !json { emit(heading) }
            let summary = try unified.language.generate(input: input, options: generationOptions) { piece in
                show(checked.add(piece))
            }
            show(checked.finish())
            return summary
        } catch {
            Terminal.writeError("\nuniecg explain: \(error)\n")
            throw ExitCode.failure
        }
    }

    /// The JSON fields of the text itself: what was shown, the model's whole text, what was left out.
    static func textFields(_ checked: CheckedExplanation) -> [String: Any] {
        let leftOut = checked.sentences.filter { !$0.grounded }.map { s -> [String: Any] in
            ["sentence": s.text.trimmingCharacters(in: .whitespacesAndNewlines), "disagreements": s.disagreements]
        }
        return ["explanation": checked.groundedText.trimmingCharacters(in: .whitespacesAndNewlines),
                "model_text": checked.modelText.trimmingCharacters(in: .whitespacesAndNewlines),
                "left_out": leftOut, "impression": ECGCriteria.impression(in: checked.groundedText) ?? NSNull(),
                "notice": UniECGVersion.notice]
    }

    func printJSON(_ root: [String: Any]) throws {
        let data = try JSONSerialization.data(withJSONObject: root, options: [.prettyPrinted, .sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }

    /// The model description and the speed line that end the text form.
    func finishText(_ unified: UnifiedModel, _ summary: GenerationSummary) {
        if !unified.modelDescription.isEmpty { emit("Model: \(unified.modelDescription)\n") }
        Terminal.writeError(String(format: "-- %d tokens, %.1f tokens/s\n", summary.generatedTokens, summary.tokensPerSecond))
    }

    /// A photo on its own: the photo prompt, no evidence block. Every number would be unmeasured,
    /// so the check against an empty evidence block leaves out any sentence that states one.
    func explainPhoto(_ path: String) throws {
        let (photo, warnings) = try readPhoto(path)
        if !json { for warning in warnings { Terminal.writeError("warning: \(warning)\n") } }
        let unified = try loadModel()
        var checked = CheckedExplanation(evidence: "")
        let summary = try stream(unified, { try unified.photoInput(photo, question: question) }, checked: &checked,
                                 heading: "Explanation of the photo (UniECG teaching model; nothing was measured):\n", photo: true)
        let caveat = "Read from the picture alone: no intervals, rate or axis were measured, and no criteria were checked. "
            + "Explain the recording itself (uniecg explain RECORD) to measure it."
        if json {
            return try printJSON(Self.textFields(checked).merging(
                ["image": path, "measured": false, "caveat": caveat, "warnings": warnings, "model": unified.modelDescription]) { a, _ in a })
        }
        emit("\n\n\(caveat)\n\(UniECGVersion.notice)\n")
        finishText(unified, summary)
    }

    func run() throws {
        guard let record else { return try explainPhoto(image!) }
        let read: WFDB.ReadResult, full: ECGRecord, measurements: Measurements
        do {
            read = try RecordFile.read(record, sampleRate: sampleRate)
            full = Preparation.deriveLimbLeads(read.record).0
            measurements = try Measurements.measure(full)
        } catch {
            Terminal.writeError("uniecg explain: \(record): \(error)\n")
            throw ExitCode.failure
        }
        if !json { for warning in read.warnings { Terminal.writeError("warning: \(warning)\n") } }
        let unified = try loadModel()
        var photo: RGBImage?
        if let image {
            let (read, warnings) = try readPhoto(image)
            photo = read
            for warning in warnings { Terminal.writeError("warning: \(warning)\n") }
        }

        // The text streams sentence by sentence: each is checked against the evidence block
        // first, and one that states a number the measurements do not hold, or concludes a
        // finding they do not meet, is left out, visibly.
        let evidence = Evidence.render(measurements)
        var checked = CheckedExplanation(evidence: evidence, measurements: measurements)
        let summary = try stream(unified, {
            try unified.explainInput(record: full, measurements: measurements, question: question, image: photo)
        }, checked: &checked, heading: "Explanation (UniECG teaching model):\n", photo: false)
        if json {
            return try printJSON(Self.textFields(checked).merging(
                ["record": record, "evidence": evidence, "findings": measurements.findings.map(\.jsonObject),
                 "criteria": ECGCriteria.met(by: measurements).map { $0.map(\.id) as Any } ?? NSNull(),
                 "warnings": read.warnings + measurements.warnings, "model": unified.modelDescription]) { a, _ in a })
        }
        emit("\n\nMeasurements the explanation rests on:\n")
        emit(MeasurementTable.render(measurements, record: full) + "\n")
        finishText(unified, summary)
    }
}
