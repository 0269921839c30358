import Foundation
import Testing
@testable import UniECG

/// End to end on the bundled teaching model (Models/uniecg-tiny.uecg, trained only on synthetic
/// data by Tools/train) and its example records (Models/examples): the two things the README's
/// quick start does, through the `uniecg` binary, plus the library calls under them.
@Suite struct BundledModelTests {
    static let model = Fixtures.repository.appendingPathComponent("Models/uniecg-tiny.uecg").path
    static let examples = Fixtures.repository.appendingPathComponent("Models/examples")
    /// Each example's condition and the name its explanation must conclude with
    /// (Tools/train/explain_text.py NAMES).
    static let cases: [(String, String)] = [
        ("atrial_fibrillation", "atrial fibrillation"), ("stemi_inferior", "inferior ST elevation"),
        ("rbbb", "right bundle branch block"), ("first_degree_av_block", "first-degree AV block"),
    ]

    /// Runs the tool with arguments that ask for --json, expects it to succeed, and returns the
    /// JSON object it printed.
    static func runJSON(_ tool: URL, _ arguments: [String]) throws -> [String: Any] {
        let result = try Fixtures.run(tool, arguments)
        #expect(result.status == 0, "stderr: \(result.stderr)")
        return try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
    }

    @Test("uniecg explain names each example's finding, states only its own measurements, and ends with the notice",
          arguments: cases)
    func explain(example: (String, String)) throws {
        let (name, finding) = example
        let tool = try Fixtures.executable("uniecg")
        let record = Self.examples.appendingPathComponent("\(name).hea").path
        let object = try Self.runJSON(tool, ["explain", record, "--model", Self.model, "--json"])
        let text = try #require(object["explanation"] as? String)
        let modelText = try #require(object["model_text"] as? String)
        let evidence = try #require(object["evidence"] as? String)
        print("explain \(name): \(modelText)")
        #expect(text.contains(": \(finding).") || text.contains("shows \(finding)."), "\(name): \(text)")
        // The model itself, not only the runtime's check, states each example's own numbers.
        var check = CheckedExplanation(evidence: evidence)
        _ = check.add(modelText)
        _ = check.finish()
        let wrong = check.sentences.filter { !$0.grounded }
        #expect(wrong.isEmpty, "\(name): \(wrong)\nevidence:\n\(evidence)")
        #expect(text == modelText && (object["left_out"] as? [Any])?.isEmpty == true)
        #expect(object["notice"] as? String == UniECGVersion.notice)
        #expect((object["model"] as? String)?.contains("synthetic") == true)

        // The text form streams the explanation, then the table with its evidence and the notice.
        let plain = try Fixtures.run(tool, ["explain", record, "--model", Self.model, "--max-tokens", "40"])
        #expect(plain.status == 0, "stderr: \(plain.stderr)")
        #expect(plain.stdout.contains("Measurements the explanation rests on:"))
        #expect(plain.stdout.contains("heart rate") && plain.stdout.contains(UniECGVersion.notice))
    }

    @Test("uniecg explain refuses a missing record, a record too short to measure and a missing model, naming each")
    func explainBadInput() throws {
        let tool = try Fixtures.executable("uniecg")
        let dir = try Fixtures.temporaryDirectory()
        let missing = try Fixtures.run(tool, ["explain", dir.path("nothing.hea"), "--model", Self.model])
        #expect(missing.status != 0 && missing.stderr.contains("nothing.hea"), "\(missing.stderr)")
        // One second of a real example: measurements need two.
        let full = try RecordFile.read(Self.examples.appendingPathComponent("rbbb.hea").path, sampleRate: nil).record
        let short = try ECGRecord(leads: full.leads, signals: full.signals.map { Array($0.prefix(500)) }, sampleRate: full.sampleRate)
        _ = try RecordFile.writeAll(short, base: dir.path("short"), title: "short")
        let tooShort = try Fixtures.run(tool, ["explain", dir.path("short.hea"), "--model", Self.model])
        #expect(tooShort.status != 0 && tooShort.stderr.contains("at least 2 s"), "\(tooShort.stderr)")
        let noModel = try Fixtures.run(tool, ["explain", Self.examples.appendingPathComponent("rbbb.hea").path, "--model", dir.path("none.uecg")])
        #expect(noModel.status != 0 && noModel.stderr.contains("none.uecg"), "\(noModel.stderr)")
        let empty = try Fixtures.run(tool, ["generate", "   ", "--model", Self.model, "-o", dir.path("x")])
        #expect(empty.status != 0 && empty.stderr.contains("empty"), "\(empty.stderr)")
    }

    @Test("uniecg generate OBJECTIVE: the language model's generation tokens condition the U-Net; WFDB, CSV and SVG are written")
    func generate() throws {
        let tool = try Fixtures.executable("uniecg")
        let dir = try Fixtures.temporaryDirectory()
        let base = dir.path("brady")
        let result = try Fixtures.run(tool, ["generate", "Show me sinus bradycardia at 48 bpm in a 70-year-old man",
                                             "--model", Self.model, "-o", base, "--seed", "7"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        print("generate: \(result.stdout)")
        // The model copies the requested rate, age and sex after its generation tokens.
        #expect(result.stdout.contains("condition: sex male, age 70, heart rate 48 bpm"), "\(result.stdout)")
        for ext in ["hea", "dat", "csv", "svg"] {
            #expect(FileManager.default.fileExists(atPath: "\(base).\(ext)"), "\(base).\(ext) missing")
        }
        #expect(result.stdout.contains(UniECGVersion.notice))
        let record = try RecordFile.read("\(base).hea", sampleRate: nil).record
        #expect(record.leads.count == 12 && record.duration >= 9.9)
        #expect(record.age == 70 && record.sex == .male)
        // Up to 16 candidates by default; the teacher sees what was drawn and which criteria it meets.
        #expect(result.stdout.contains("kept sample") && result.stdout.contains("of up to 16"), "\(result.stdout)")
        let m = try Measurements.measure(record)
        #expect(result.stdout.contains("criteria the result meets (simplified textbook rules): " + ECGCriteria.summary(m)), "\(result.stdout)")
    }

    @Test("uniecg explain --image: a photo of each example's printout is read on its own, with no number stated and the caveat that nothing was measured",
          arguments: cases)
    func explainPhoto(example: (String, String)) throws {
        let (name, _) = example
        let tool = try Fixtures.executable("uniecg")
        let photo = Self.examples.appendingPathComponent("\(name).jpg").path
        let object = try Self.runJSON(tool, ["explain", "--image", photo, "--model", Self.model, "--json"])
        let text = try #require(object["explanation"] as? String)
        print("explain photo \(name): \(text) [impression: \(object["impression"] ?? "none")]")
        #expect(object["measured"] as? Bool == false)
        #expect((object["caveat"] as? String)?.contains("no intervals, rate or axis were measured") == true)
        #expect(object["notice"] as? String == UniECGVersion.notice)
        // The model was trained to read a photo in words (lead names aside, no digits): it states no
        // measurement, so the runtime leaves nothing out, and it concludes with a finding the criteria know (right or wrong: a photo is not measured).
        #expect((object["left_out"] as? [Any])?.isEmpty == true, "\(object["left_out"] ?? "")")
        #expect(object["impression"] is String, "\(text)")

        let plain = try Fixtures.run(tool, ["explain", "--image", photo, "--model", Self.model])
        #expect(plain.status == 0, "stderr: \(plain.stderr)")
        #expect(plain.stdout.contains("nothing was measured") && plain.stdout.contains(UniECGVersion.notice), "\(plain.stdout)")
        // Trained on a record or a photo, never on both in one prompt: both together are refused.
        let both = try Fixtures.run(tool, ["explain", Self.examples.appendingPathComponent("\(name).hea").path,
                                           "--image", photo, "--model", Self.model])
        #expect(both.status != 0 && both.stderr.contains("not both together"), "\(both.stderr)")
    }

    @Test("uniecg measure --json lists the criteria the measurements meet")
    func measureCriteria() throws {
        let tool = try Fixtures.executable("uniecg")
        let record = Self.examples.appendingPathComponent("rbbb.hea").path
        let object = try Self.runJSON(tool, ["measure", record, "--json"])
        #expect(object["criteria"] as? [String] == ["rbbb"], "\(object["criteria"] ?? "none")")
        let text = try Fixtures.run(tool, ["measure", record])
        #expect(text.stdout.contains("criteria met (simplified textbook rules): right bundle branch block"), "\(text.stdout)")
    }

    @Test("the library: the aligner's condition is a unit vector of the U-Net's width; bad objectives and records are refused")
    func library() throws {
        let unified = try UnifiedModel(path: Self.model, options: ComputeOptions(threads: 1))
        var options = GenerationOptions()
        options.sampling = .greedy
        options.maxTokens = 48
        let plan = try unified.plan(objective: "An example of atrial fibrillation.", options: options)
        let condition = try #require(plan.condition, "reply without generation tokens: \(plan.reply)")
        #expect(condition.embedding.count == unified.generator.embeddingWidth)
        let norm = condition.embedding.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot()
        #expect(abs(norm - 1) < 1e-3)
        #expect(condition.heartRate != nil && condition.age != nil && condition.sex != nil, "\(plan.reply)")

        #expect(throws: UniECGError.invalidArgument("the learning objective is empty")) {
            try unified.plan(objective: "  \n", options: options)
        }
        // A record with the chest leads missing cannot be encoded: the error names them.
        let full = try RecordFile.read(Self.examples.appendingPathComponent("rbbb.hea").path, sampleRate: nil).record
        let limbOnly = try ECGRecord(leads: Array(full.leads.prefix(6)), signals: Array(full.signals.prefix(6)), sampleRate: full.sampleRate)
        let m = try Measurements.measure(full)
        do {
            _ = try unified.explainInput(record: limbOnly, measurements: m)
            Issue.record("a record without V1-V6 was accepted")
        } catch {
            #expect("\(error)".contains("V1, V2, V3, V4, V5, V6"), "\(error)")
        }
        // This model reads a photo on its own, not beside a record: both together are refused, not ignored.
        #expect(unified.readsPhotos)
        let photo = try RGBImage(width: 64, height: 64, pixels: [UInt8](repeating: 200, count: 64 * 64 * 3))
        do {
            _ = try unified.explainInput(record: full, measurements: m, image: photo)
            Issue.record("a photo beside a record was accepted by a model trained on one or the other")
        } catch {
            #expect("\(error)".contains("not both together"), "\(error)")
        }
    }

    @Test("best of N: the kept sample is the candidate whose measured rate is nearest the request, and its seed reproduces it")
    func bestOfCandidates() throws {
        let unified = try UnifiedModel(path: Self.model, options: ComputeOptions(threads: 1))
        var text = GenerationOptions()
        text.sampling = .greedy
        text.maxTokens = 48
        let condition = try #require(try unified.plan(objective: "Show me sinus tachycardia at 125 bpm", options: text).condition)
        let requested = try #require(condition.heartRate)
        var options = ECGGenerationOptions()
        options.seed = 11
        var steps: [(Int, Int)] = []
        let best = try unified.generator.generateBest(condition: condition, candidates: 3, options: options) { steps.append(($0, $1)) }
        #expect(best.candidates.map(\.seed) == [11, 12, 13])
        #expect(steps.last.map { $0.0 == $0.1 } == true && steps.count == 3 * best.summary.steps)
        let error = { (c: ECGGenerator.Candidate) in c.measuredRate.map { abs($0 - requested) } ?? .infinity }
        let nearest = best.candidates.map(error).min()!
        #expect(error(best.candidates[best.chosen]) == nearest, "\(best.candidates), requested \(requested)")
        #expect(best.summary.seed == 11 + UInt64(best.chosen))
        // The kept record is exactly what a single draw with its seed gives.
        options.seed = best.summary.seed
        let single = try unified.generator.generateWithSummary(condition: condition, options: options)
        #expect(single.record.signals == best.record.signals)
        // With a wanted finding, the fewest misses of (its criteria, rate within 10 %) come first,
        // then the fewest other findings met, then the rate.
        options.seed = 11
        let wanted = try unified.generator.generateBest(condition: condition, candidates: 3, options: options,
                                                        wanted: "sinus_tachycardia")
        let misses = { (c: ECGGenerator.Candidate) in (c.showsWanted == true ? 0 : 1) + (error(c) <= 0.10 * requested ? 0 : 1) }
        let rank = { (c: ECGGenerator.Candidate) in 10 * misses(c) + (c.extraFindings?.count ?? 9) }
        let fewest = wanted.candidates.map(rank).min()!
        #expect(rank(wanted.candidates[wanted.chosen]) == fewest)
        #expect(error(wanted.candidates[wanted.chosen]) == wanted.candidates.filter { rank($0) == fewest }.map(error).min()!)
        for (c, record) in zip(wanted.candidates, try (0..<3).map { k -> ECGRecord in
            var o = options
            o.seed = 11 + UInt64(k)
            return try unified.generator.generateWithSummary(condition: condition, options: o).record
        }) {
            let m = try Measurements.measure(record)
            #expect(c.showsWanted == (ECGCriteria.meets("sinus_tachycardia", m) ?? false))
            #expect(c.extraFindings == ECGCriteria.met(by: m)?.map(\.id).filter { $0 != "sinus_tachycardia" })
        }
        #expect(best.candidates.allSatisfy { $0.extraFindings == nil })
        // Stopping at the first sample that meets both asks and shows nothing else draws a prefix
        // of the same seeds and keeps that sample; without one it draws them all and keeps the
        // same as before.
        var earlySteps: [(Int, Int)] = []
        let early = try unified.generator.generateBest(condition: condition, candidates: 3, options: options,
                                                       wanted: "sinus_tachycardia", stopAtFirstMatch: true) { earlySteps.append(($0, $1)) }
        let prefix = Array(wanted.candidates.prefix(early.candidates.count))
        #expect(early.candidates.map(\.seed) == prefix.map(\.seed) && early.candidates.map(\.measuredRate) == prefix.map(\.measuredRate))
        if let first = wanted.candidates.firstIndex(where: { rank($0) == 0 }) {
            #expect(early.candidates.count == first + 1 && early.chosen == first)
        } else {
            #expect(early.candidates.count == 3 && early.chosen == wanted.chosen)
        }
        #expect(earlySteps.last.map { $0.0 == $0.1 } == true)
        #expect(throws: UniECGError.invalidArgument("no criteria are known for the finding 'tachy'")) {
            try unified.generator.generateBest(condition: condition, candidates: 1, wanted: "tachy")
        }
        #expect(throws: UniECGError.invalidArgument("candidates must be 1...64, not 0")) {
            try unified.generator.generateBest(condition: condition, candidates: 0)
        }
    }

    @Test("the explain stream yields the text, then a summary that ends at the end-of-turn token")
    func explainStream() async throws {
        let unified = try UnifiedModel(path: Self.model, options: ComputeOptions(threads: 1))
        let record = try RecordFile.read(Self.examples.appendingPathComponent("atrial_fibrillation.hea").path, sampleRate: nil).record
        var options = GenerationOptions()
        options.sampling = .greedy
        options.maxTokens = 200
        var text = ""
        var summary: GenerationSummary?
        for try await event in try unified.explain(record: record, measurements: try Measurements.measure(record), options: options) {
            switch event {
            case .text(let piece): text += piece
            case .finished(let s): summary = s
            }
        }
        #expect(text.contains("atrial fibrillation"), "\(text)")
        #expect(summary?.stopReason == .endOfSequence)
        #expect((summary?.promptTokens ?? 0) > unified.signalEncoder.tokens)
    }

    /// Tests/Fixtures/bundled/tokenizer_cases.jsonl: ids from Hugging Face `tokenizers` on the
    /// tokenizer.json the model was trained with (Tools/train/make_tokenizer_cases.py).
    @Test("the model file's tokenizer gives Hugging Face's ids on evidence blocks, explanations, objectives and prompts")
    func tokenizer() throws {
        let file = try ModelFile(path: Self.model)
        let tokenizer = try Tokenizer(file: file)
        let lines = try Fixtures.jsonLines("bundled/tokenizer_cases.jsonl")
        #expect(lines.count > 150)
        var mismatches = 0
        for object in lines {
            let text = try #require(object["text"] as? String)
            let expected = try #require(object["ids"] as? [Int]).map(Int32.init)
            let got = text.isEmpty ? [] : try tokenizer.encode(text, addSpecial: false, parseSpecial: true)
            if got != expected {
                mismatches += 1
                Issue.record("\(text.debugDescription): \(got) vs Hugging Face \(expected)")
            }
        }
        #expect(mismatches == 0)
    }
}
