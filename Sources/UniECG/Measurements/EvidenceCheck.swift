import Foundation

/// Holds an explanation to the evidence block it was given: every number a sentence states must
/// be the block's value for the quantity the sentence is about ("QRS 132 ms" beside "QRS: 156 ms"
/// disagrees even when 132 is the PR; "aVR -0.69 mV" disagrees when aVR is not among the ST
/// leads). A small language model copies numbers imperfectly; a teaching aid must not show a
/// number its own measurement table does not hold, so callers leave such sentences out and say
/// so. The same rules, in Python, score the bundled model (Tools/train/explain_text.py,
/// `contradictions`); the two are kept in step by EvidenceCheckTests.
public struct EvidenceCheck: Sendable {
    /// Which evidence line a sentence's numbers must come from: the first keyword (in this order)
    /// the sentence holds picks it ("QTc" before "QRS", "QRS voltage" before "QRS").
    static let quantities: [(keyword: String, line: String)] = [
        ("QTc", "QTc:"), ("PR", "PR:"), ("variation", "RR variation:"), ("vary irregularly", "RR variation:"),
        ("voltage", "QRS voltage:"), ("limb leads", "QRS voltage:"), ("depression", "ST "), ("elevation", "ST "),
        ("raised", "ST "), ("QRS axis", "axis:"), ("xis", "axis:"), ("QRS", "QRS:"), ("premature", "premature beats:"),
        ("early", "premature beats:"), ("ST", "ST "), ("bpm", "rate:"), ("/min", "rate:"),
        ("beats per minute", "rate:"), ("rate", "rate:"),
    ]
    /// Reference limits an explanation may cite beside the measured values: rate 60-100 bpm,
    /// PR 200 ms, QTc 470 ms, axis -30..+90 degrees, ST 0.1 mV, voltage 0.5 / 1.0 mV, 12 leads, 10 s.
    static let referenceValues: Set<String> = ["60", "100", "200", "470", "30", "-30", "+90", "90", "0.1", "0.5", "1.0", "12", "10"]

    // A number, not the digits of a lead name (V1) or of "12-lead".
    private static let number = try! NSRegularExpression(pattern: #"(?<![A-Za-z\d.])[-+]?\d+(?:\.\d+)?(?!\d|-lead)"#)
    private static let anyNumber = try! NSRegularExpression(pattern: #"[-+]?\d+(?:\.\d+)?"#)
    private static let stValue = try! NSRegularExpression(pattern: #"\b(I|II|III|aVR|aVL|aVF|V[1-6]) ([-+]\d\.\d\d) mV"#)

    let lines: [String]

    public init(evidence: String) {
        lines = evidence.split(separator: "\n").map(String.init)
    }

    /// Why `sentence` disagrees with the evidence; empty when every number it states is the
    /// measured value of its quantity (or a reference limit).
    public func disagreements(in sentence: String) -> [String] {
        let numbers = Self.matches(Self.number, in: sentence).map { $0[0] }
            .filter { !Self.referenceValues.contains($0) && !Self.referenceValues.contains(Self.unsigned($0)) }
        if numbers.isEmpty { return [] }
        guard let line = Self.quantities.first(where: { sentence.contains($0.keyword) })?.line else {
            return ["numbers without a measured quantity"]
        }
        let source = lines.filter { $0.hasPrefix(line) }.joined(separator: " ")
        if line == "ST " {
            return Self.matches(Self.stValue, in: sentence).compactMap { m in
                source.contains("\(m[1]) \(m[2])") ? nil : "ST \(m[1]) \(m[2]) is not measured"
            }
        }
        var measured = Set(Self.matches(Self.anyNumber, in: source).map { $0[0] })
        measured.formUnion(measured.map(Self.unsigned))
        let name = line.hasSuffix(":") ? String(line.dropLast()) : line
        return numbers.filter { !measured.contains($0) && !measured.contains(Self.unsigned($0)) }
            .map { "\($0) is not the measured \(name)" }
    }

    private static func unsigned(_ s: String) -> String {
        s.hasPrefix("+") ? String(s.dropFirst()) : s
    }

    /// Each match's groups (0 = the whole match) as strings.
    private static func matches(_ re: NSRegularExpression, in s: String) -> [[String]] {
        let ns = s as NSString
        return re.matches(in: s, range: NSRange(location: 0, length: ns.length)).map { m in
            (0..<m.numberOfRanges).map { m.range(at: $0).location == NSNotFound ? "" : ns.substring(with: m.range(at: $0)) }
        }
    }
}

/// An explanation checked sentence by sentence as it streams: pieces go in, complete sentences
/// come out with what (if anything) disagrees with the evidence. A sentence ends at "." or ";"
/// followed by white space, so "0.13 mV" does not end one. Given the measurements too, an
/// impression ("Impression: X.", "This ECG shows X.", ...) that names a finding whose simplified
/// criteria (ECGCriteria) they do not meet disagrees as well: the model may name what the
/// record's label would be, but a teaching aid must not conclude what its own table does not show.
public struct CheckedExplanation: Sendable {
    public struct Sentence: Sendable, Equatable {
        /// The sentence with the white space that followed it, so the pieces join to the model's text.
        public var text: String
        public var disagreements: [String]
        public var grounded: Bool { disagreements.isEmpty }
    }

    let check: EvidenceCheck
    let measurements: Measurements?
    private var pending = ""
    /// Every sentence so far, in order.
    public private(set) var sentences: [Sentence] = []

    public init(evidence: String, measurements: Measurements? = nil) {
        check = EvidenceCheck(evidence: evidence)
        self.measurements = measurements
    }

    /// Adds a streamed piece; returns the sentences it completed.
    public mutating func add(_ piece: String) -> [Sentence] {
        pending += piece
        var done: [Sentence] = []
        while let end = Self.sentenceEnd(in: pending) {
            done.append(sentence(String(pending[..<end])))
            pending = String(pending[end...])
        }
        sentences += done
        return done
    }

    /// Ends the text: the rest, if any, as a last sentence.
    public mutating func finish() -> [Sentence] {
        guard !pending.isEmpty else { return [] }
        let last = sentence(pending)
        pending = ""
        sentences.append(last)
        return [last]
    }

    /// The model's text with the sentences that disagree with the evidence left out.
    public var groundedText: String { sentences.filter(\.grounded).map(\.text).joined() }
    public var modelText: String { sentences.map(\.text).joined() + pending }

    private func sentence(_ text: String) -> Sentence {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        var why = check.disagreements(in: trimmed)
        if let m = measurements, let named = ECGCriteria.impression(in: trimmed), ECGCriteria.meets(named, m) == false {
            why.append("the measurements do not meet the simplified criteria for \(ECGCriteria.displayName(named, article: true)); they meet: \(ECGCriteria.summary(m))")
        }
        return Sentence(text: text, disagreements: why)
    }

    /// The index just past the white space that follows the first sentence end, when that white
    /// space is followed by more text (or a newline), so a sentence is complete.
    private static func sentenceEnd(in s: String) -> String.Index? {
        var i = s.startIndex
        while i < s.endIndex {
            if s[i] == "." || s[i] == ";" {
                var j = s.index(after: i)
                var sawSpace = false
                while j < s.endIndex, s[j].isWhitespace { j = s.index(after: j); sawSpace = true }
                if sawSpace && j < s.endIndex { return j }
                if !sawSpace && j < s.endIndex { i = j; continue }
                return nil   // the text so far ends in the middle of this boundary
            }
            i = s.index(after: i)
        }
        return nil
    }
}
