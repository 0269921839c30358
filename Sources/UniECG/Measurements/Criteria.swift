import Foundation

/// The textbook findings a set of measurements meets, by simplified criteria: the rules by which
/// the project's simulator labels its records and the bundled model is scored
/// (Tools/train/explain_text.py, `_signatures`; CriteriaTests keeps the two in step). They are a
/// teaching aid beside the measurement table, so a student (or a teacher checking a generated
/// ECG) sees which criteria the numbers meet; they are not a diagnosis.
public enum ECGCriteria {
    /// The measured values the rules read.
    public struct Input: Sendable, Equatable {
        public var heartRate: Double?
        public var rrVariation: Double?
        public var pWaves: Bool?
        public var pr: Double?
        public var qrs: Double?
        public var qtc: Double?
        public var axis: Double?
        public var limbVoltage: Double?
        public var chestVoltage: Double?
        public var v1TerminalArea: Double?
        public var prematureBeats = 0
        /// ST deviation (mV) per lead name.
        public var st: [String: Double] = [:]

        public init() {}

        public init(_ m: Measurements) {
            heartRate = m.heartRate
            rrVariation = m.rrVariation
            pWaves = m.pWavePresent
            pr = m.pr
            qrs = m.qrs
            qtc = m.qtcBazett
            axis = m.axis
            limbVoltage = m.finding("QRS voltage (limb)")?.value
            chestVoltage = m.finding("QRS voltage (chest)")?.value
            v1TerminalArea = m.v1TerminalArea
            prematureBeats = m.prematureBeats.count
            st = Dictionary(uniqueKeysWithValues: m.st.map { ($0.key.rawValue, $0.value) })
        }
    }

    /// One finding whose criteria are met: the simulator's condition id and its name.
    public struct Met: Sendable, Equatable {
        public let id: String
        public let name: String
    }

    /// Display name of each finding id.
    public static let names: [String: String] = [
        "sinus_bradycardia": "sinus bradycardia", "sinus_tachycardia": "sinus tachycardia",
        "atrial_fibrillation": "atrial fibrillation", "atrial_flutter": "atrial flutter",
        "first_degree_av_block": "first-degree AV block", "rbbb": "right bundle branch block",
        "lbbb": "left bundle branch block", "left_axis_deviation": "left axis deviation",
        "right_axis_deviation": "right axis deviation", "pvc": "premature ventricular complexes",
        "stemi_inferior": "inferior ST elevation", "stemi_anterior": "anterior ST elevation",
        "stemi_lateral": "lateral ST elevation", "st_depression": "widespread ST depression",
        "long_qt": "a long QT interval", "low_voltage": "low QRS voltage",
    ]
    /// The display name of a condition id, normal sinus rhythm included ("a normal sinus rhythm"
    /// with `article`); the id itself when unknown.
    public static func displayName(_ id: String, article: Bool = false) -> String {
        id == "normal_sinus_rhythm" ? (article ? "a normal sinus rhythm" : "normal sinus rhythm") : names[id] ?? id
    }

    /// Leads of each ST-elevation territory, in the order the rules break ties.
    static let territories: [(id: String, leads: [String])] = [
        ("stemi_inferior", ["II", "III", "aVF"]), ("stemi_anterior", ["V1", "V2", "V3", "V4"]),
        ("stemi_lateral", ["I", "aVL", "V5", "V6"]),
    ]

    /// One line for a person: the findings met, or that the numbers meet none of them.
    public static func summary(_ m: Measurements) -> String {
        guard let met = met(by: m) else { return "not measurable (no rate or QRS)" }
        return met.isEmpty ? "none of the listed findings (a normal sinus rhythm by these rules)" : met.map(\.name).joined(separator: ", ")
    }

    /// The finding an explanation's impression names ("Impression: X.", "This ECG shows X.",
    /// "Conclusion: X.", "Interpretation: X."), as a condition id; "normal_sinus_rhythm" for a
    /// normal sinus rhythm; nil when the text has no impression with a name these rules know.
    public static func impression(in text: String) -> String? {
        let pattern = #"(?:Impression|This ECG shows|Conclusion|Interpretation):? ([^.]*)\."#
        guard let re = try? NSRegularExpression(pattern: pattern),
              let m = re.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)),
              let r = Range(m.range(at: 1), in: text) else { return nil }
        let said = text[r].trimmingCharacters(in: .whitespaces).lowercased()
        if said == "normal sinus rhythm" { return "normal_sinus_rhythm" }
        return names.first { $0.value.lowercased() == said }?.key
    }

    /// Whether the measurements meet the criteria of `id` (a normal sinus rhythm: none met);
    /// nil when nothing can be said.
    public static func meets(_ id: String, _ m: Measurements) -> Bool? {
        met(by: m).map { meets(id, in: $0) }
    }

    /// Whether findings already found met (`met(by:)`) include `id` (a normal sinus rhythm: none).
    public static func meets(_ id: String, in met: [Met]) -> Bool {
        id == "normal_sinus_rhythm" ? met.isEmpty : met.contains { $0.id == id }
    }

    /// The findings met, in a fixed order; empty for a normal sinus rhythm; nil when the rate or
    /// the QRS could not be measured (nothing can be said).
    public static func met(by m: Measurements) -> [Met]? { met(Input(m)) }

    public static func met(_ v: Input) -> [Met]? {
        guard let rate = v.heartRate, let qrs = v.qrs else { return nil }
        var ids: [String] = []
        let irregular = (v.rrVariation ?? 0) > 0.10
        if irregular && v.pWaves == false { ids.append("atrial_fibrillation") }
        else if v.pWaves == false { ids.append("atrial_flutter") }
        else if rate < 60 { ids.append("sinus_bradycardia") }
        else if rate > 100 { ids.append("sinus_tachycardia") }
        if let pr = v.pr, pr > 200 { ids.append("first_degree_av_block") }
        if qrs >= 120 && v.prematureBeats == 0 { ids.append((v.v1TerminalArea ?? 0) > 0 ? "rbbb" : "lbbb") }
        if let axis = v.axis, qrs < 120 {
            if axis < -30 { ids.append("left_axis_deviation") } else if axis > 90 { ids.append("right_axis_deviation") }
        }
        if v.prematureBeats > 0 { ids.append("pvc") }
        if let qtc = v.qtc, qtc > 470, qrs < 120, v.pWaves != false { ids.append("long_qt") }
        if let limb = v.limbVoltage, limb < 0.5, (v.chestVoltage ?? 9) < 1.0 { ids.append("low_voltage") }
        if qrs < 120 {
            // An injury current raises one territory and lowers the opposite leads (the
            // simulator's fast sinus rhythms raise V2-V4 a little with nothing reciprocal): ST
            // elevation in two leads of a territory plus reciprocal depression somewhere; the
            // territory whose leads are highest on average when several qualify.
            let threshold = Evidence.stThreshold
            let up = Set(v.st.filter { $0.value >= threshold }.keys)
            let down = v.st.filter { $0.value <= -threshold }
            let deviating = v.st.filter { abs($0.value) >= threshold }
            let mean = { (leads: [String]) in leads.map { deviating[$0] ?? 0 }.reduce(0, +) / Double(leads.count) }
            let hit = territories.filter { up.intersection($0.leads).count >= 2 }
            if !hit.isEmpty && !down.isEmpty {
                // max by mean, the first of equals (Python's max keeps the first)
                var best = hit[0]
                for t in hit.dropFirst() where mean(t.leads) > mean(best.leads) { best = t }
                ids.append(best.id)
            }
            if down.keys.filter({ $0 != "aVR" }).count >= 3 && !ids.contains(where: { $0.hasPrefix("stemi_") }) {
                ids.append("st_depression")
            }
        }
        return ids.map { Met(id: $0, name: names[$0]!) }
    }
}
