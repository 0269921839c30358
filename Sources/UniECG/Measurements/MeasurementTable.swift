import Foundation

/// The measurement table a user sees: each value with its confidence and evidence.
public enum MeasurementTable {
    static func pad(_ s: String, _ width: Int) -> String { s.count >= width ? s : s + String(repeating: " ", count: width - s.count) }

    public static func render(_ m: Measurements, record: ECGRecord) -> String {
        var lines = ["measurement         value          confidence  evidence"]
        func row(_ f: Finding) {
            let value: String
            switch f.unit {
            case "present": value = f.value > 0 ? "present" : "absent"
            case "": value = String(format: "%.3f", f.value)
            case "mV" where f.name.hasPrefix("QRS voltage"): value = String(format: "%.2f mV", f.value)
            case "mV": value = String(format: "%+.2f mV", f.value)
            default: value = String(format: "%.0f %@", f.value, f.unit)
            }
            let beats = f.beats.count == m.rPeaks.count ? "all \(f.beats.count) beats" : "\(f.beats.count) beats"
            let leads = f.leads.count >= 12 ? "12 leads" : f.leads.map(\.rawValue).joined(separator: ",")
            lines.append(pad(f.name, 19) + " " + pad(value, 14) + " " + pad(String(format: "%.2f", f.confidence), 11) + " \(f.method) (\(leads); \(beats))")
        }
        for f in m.findings where !f.name.hasPrefix("ST ") { row(f) }
        let st = m.findings.filter { $0.name.hasPrefix("ST ") }
        if !st.isEmpty {
            lines.append("ST at J+60 ms: " + st.map { "\($0.leads[0].rawValue) \(String(format: "%+.2f", $0.value))" }.joined(separator: "  ") + " mV")
        }
        let times = m.rPeaks.prefix(12).map { String(format: "%.2f", Double($0) / record.sampleRate) }
        lines.append("R peaks (s): " + times.joined(separator: " ") + (m.rPeaks.count > 12 ? " …" : ""))
        lines.append("criteria met (simplified textbook rules): " + ECGCriteria.summary(m))
        for w in m.warnings { lines.append("warning: \(w)") }
        lines.append(UniECGVersion.notice)
        return lines.joined(separator: "\n")
    }
}
