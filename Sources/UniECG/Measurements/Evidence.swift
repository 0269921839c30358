import Foundation

/// The measurements as the language model reads them in its prompt: one short line per quantity,
/// in a fixed order and fixed number formats, so the model that was trained on this text
/// (Tools/train, which obtains it from `uniecg measure --evidence`) sees exactly the same
/// wording at run time. Quantities that could not be measured are left out.
public enum Evidence {
    /// ST deviations at or beyond this size (mV) are listed; smaller ones are summarised.
    public static let stThreshold = 0.1

    public static func render(_ m: Measurements) -> String {
        var lines: [String] = []
        if let hr = m.heartRate { lines.append("rate: \(Int(hr.rounded())) bpm") }
        if let cv = m.rrVariation {
            lines.append(String(format: "RR variation: %.2f (%@)", cv, m.irregular == true ? "irregular" : "regular"))
        }
        if !m.prematureBeats.isEmpty { lines.append("premature beats: \(m.prematureBeats.count)") }
        if let p = m.pWavePresent { lines.append("P waves: \(p ? "present" : "absent")") }
        if let pr = m.pr { lines.append("PR: \(Int(pr.rounded())) ms") }
        if let qrs = m.qrs { lines.append("QRS: \(Int(qrs.rounded())) ms") }
        if let qtc = m.qtcBazett { lines.append("QTc: \(Int(qtc.rounded())) ms") }
        if let axis = m.axis { lines.append(String(format: "axis: %+d degrees", Int(axis.rounded()))) }
        if let limb = m.finding("QRS voltage (limb)"), let chest = m.finding("QRS voltage (chest)") {
            lines.append(String(format: "QRS voltage: limb %.2f mV, chest %.2f mV", limb.value, chest.value))
        }
        if let v1 = m.v1TerminalArea { lines.append("V1 terminal QRS: \(v1 >= 0 ? "positive" : "negative")") }
        if !m.st.isEmpty {
            let ordered = Lead.allCases.compactMap { lead in m.st[lead].map { (lead, $0) } }
            let up = ordered.filter { $0.1 >= stThreshold }, down = ordered.filter { $0.1 <= -stThreshold }
            let list = { (items: [(Lead, Double)]) in items.map { String(format: "%@ %+.2f", $0.0.rawValue, $0.1) }.joined(separator: ", ") }
            if up.isEmpty && down.isEmpty { lines.append("ST: no deviation of 0.1 mV or more") }
            if !up.isEmpty { lines.append("ST elevation: " + list(up)) }
            if !down.isEmpty { lines.append("ST depression: " + list(down)) }
        }
        return lines.joined(separator: "\n")
    }
}
