import Foundation
import Testing
@testable import UniECG

/// The runtime's evidence check against the Python rules that score the bundled model
/// (Tools/train/explain_text.py `contradictions`), through cases that script wrote
/// (Tools/train/make_evidence_check_cases.py): training explanations, which agree with their
/// evidence, and copies with one wrong number, an ST value moved to another lead, or the QRS
/// width stated as the PR.
@Suite struct EvidenceCheckTests {
    static func checked(_ text: String, evidence: String, pieceLength: Int? = nil) -> CheckedExplanation {
        var c = CheckedExplanation(evidence: evidence)
        if let pieceLength {
            var rest = Substring(text)
            while !rest.isEmpty {
                _ = c.add(String(rest.prefix(pieceLength)))
                rest = rest.dropFirst(pieceLength)
            }
        } else {
            _ = c.add(text)
        }
        _ = c.finish()
        return c
    }

    @Test("every sentence and reason is the one the Python scoring finds, on 149 explanations")
    func sameAsPython() throws {
        let lines = try Fixtures.jsonLines("bundled/evidence_check_cases.jsonl")
        #expect(lines.count > 100)
        var withDisagreements = 0
        for object in lines {
            let evidence = try #require(object["evidence"] as? String)
            let text = try #require(object["text"] as? String)
            let expected = try #require(object["found"] as? [[String]]).map { $0.joined(separator: " | ") }
            let c = Self.checked(text, evidence: evidence)
            let got = c.sentences.flatMap { s in
                s.disagreements.map { "\(s.text.trimmingCharacters(in: .whitespacesAndNewlines)) | \($0)" }
            }
            #expect(got == expected, "\(text)\nevidence:\n\(evidence)")
            #expect(c.modelText == text)
            if !expected.isEmpty { withDisagreements += 1 }
        }
        #expect(withDisagreements > 50)
    }

    @Test("streamed in pieces of any length, the text splits into the same sentences; the grounded text leaves out the wrong one")
    func streaming() {
        let evidence = "rate: 94 bpm\nPR: 132 ms\nQRS: 156 ms\nST elevation: II +0.12, V5 +0.15\nST depression: V1 -0.13"
        let text = "The rate is 94 bpm. The PR is 132 ms; the QRS is 150 ms. ST elevation in II +0.12 mV. Reciprocal depression in aVL -0.13 mV. Impression: a test."
        let whole = Self.checked(text, evidence: evidence)
        #expect(whole.sentences.count == 6)
        #expect(whole.sentences.map(\.grounded) == [true, true, false, true, false, true])
        #expect(whole.sentences[2].disagreements == ["150 is not the measured QRS"])
        #expect(whole.sentences[4].disagreements == ["ST aVL -0.13 is not measured"])
        #expect(whole.groundedText == "The rate is 94 bpm. The PR is 132 ms; ST elevation in II +0.12 mV. Impression: a test.")
        for length in [1, 2, 3, 7, 40] {
            #expect(Self.checked(text, evidence: evidence, pieceLength: length).sentences == whole.sentences, "pieces of \(length)")
        }
        // A sentence is not complete until text follows its end: "0." may go on as "0.13".
        var c = CheckedExplanation(evidence: evidence)
        #expect(c.add("ST elevation in V5 +0.").isEmpty)
        #expect(c.add("15 mV. ").isEmpty)
        #expect(c.add("Next").map(\.grounded) == [true])
        #expect(c.finish().map(\.text) == ["Next"])
    }

    @Test("given the measurements, an impression they do not meet the criteria of is left out, one they meet is kept")
    func impressionAgainstCriteria() throws {
        let m = try Measurements.measure(SimulatedRecordTests.load("rbbb").0)
        let evidence = Evidence.render(m)
        func check(_ text: String) -> CheckedExplanation {
            var c = CheckedExplanation(evidence: evidence, measurements: m)
            _ = c.add(text)
            _ = c.finish()
            return c
        }
        let wrong = check("The QRS is wide. Impression: left bundle branch block. Not a diagnosis.")
        #expect(wrong.sentences.map(\.grounded) == [true, false, true])
        #expect(wrong.sentences[1].disagreements
            == ["the measurements do not meet the simplified criteria for left bundle branch block; they meet: \(ECGCriteria.summary(m))"])
        #expect(wrong.groundedText == "The QRS is wide. Not a diagnosis.")
        #expect(check("The QRS is wide. This ECG shows right bundle branch block. Not a diagnosis.").sentences.allSatisfy { $0.grounded })
        #expect(!check("Conclusion: normal sinus rhythm. ").sentences[0].grounded)
        // Without the measurements only the numbers are checked, as before.
        var numbersOnly = CheckedExplanation(evidence: evidence)
        _ = numbersOnly.add("Impression: left bundle branch block. ")
        _ = numbersOnly.finish()
        #expect(numbersOnly.sentences.count == 1 && numbersOnly.sentences.allSatisfy { $0.grounded })
    }
}
