import Foundation

/// ECG records as CSV: a header row of lead names (optionally a leading time column), one row
/// per sample.
public enum ECGCSV {
    /// "time_s,I,II,...": seconds, then millivolts.
    public static func write(_ record: ECGRecord) -> String {
        var out = "time_s," + record.leads.map(\.rawValue).joined(separator: ",") + "\n"
        out.reserveCapacity(record.sampleCount * (10 + 9 * record.leads.count))
        for s in 0..<record.sampleCount {
            out += String(format: "%.4f", Double(s) / record.sampleRate)
            for signal in record.signals { out += "," + String(format: "%.4f", signal[s]) }
            out += "\n"
        }
        return out
    }

    public enum Units: String, Sendable { case millivolts = "mV", microvolts = "uV", volts = "V" }

    /// Reads a CSV with a header row. A first column named time/t/time_s/seconds gives the sample
    /// rate (it must be uniform); otherwise `sampleRate` is required.
    public static func read(_ text: String, sampleRate: Double? = nil, units: Units = .millivolts) throws -> WFDB.ReadResult {
        var lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard lines.count >= 2 else { throw ECGRecordError.unreadable("CSV needs a header row and at least one sample row") }
        let separator: Character = lines[0].contains(",") ? "," : lines[0].contains(";") ? ";" : "\t"
        let header = lines.removeFirst().split(separator: separator, omittingEmptySubsequences: false)
            .map { $0.trimmingCharacters(in: CharacterSet(charactersIn: " \"")) }
        let timeNames: Set<String> = ["time", "t", "time_s", "seconds", "time (s)"]
        let hasTime = timeNames.contains(header[0].lowercased())
        let scale: Float = units == .millivolts ? 1 : units == .microvolts ? 0.001 : 1000
        var columns = [[Float]](repeating: [], count: header.count)
        for (row, line) in lines.enumerated() {
            let fields = line.split(separator: separator, omittingEmptySubsequences: false)
            guard fields.count == header.count else {
                throw ECGRecordError.unreadable("CSV row \(row + 2) has \(fields.count) fields, the header has \(header.count)")
            }
            for (c, field) in fields.enumerated() {
                let trimmed = field.trimmingCharacters(in: .whitespaces)
                if trimmed.isEmpty || trimmed.lowercased() == "nan" { columns[c].append(.nan); continue }
                guard let v = Float(trimmed) else {
                    throw ECGRecordError.unreadable("CSV row \(row + 2), column '\(header[c])': '\(trimmed)' is not a number")
                }
                columns[c].append(v)
            }
        }
        var rate = sampleRate
        if hasTime {
            let t = columns[0]
            guard t.count >= 2 else { throw ECGRecordError.unreadable("a time column needs at least two rows") }
            let step = Double(t[t.count - 1] - t[0]) / Double(t.count - 1)
            guard step > 0 else { throw ECGRecordError.unreadable("the time column does not increase") }
            for i in 1..<t.count where abs(Double(t[i] - t[i - 1]) - step) > max(1e-4, step * 0.01) {
                throw ECGRecordError.unreadable("the time column is not uniformly sampled near row \(i + 2)")
            }
            let derived = 1 / step
            if let given = sampleRate, abs(given - derived) > given * 0.01 {
                throw ECGRecordError.inconsistent("sample rate \(given) Hz given, the time column says \(derived.rounded()) Hz")
            }
            rate = sampleRate ?? derived.rounded()
        }
        guard let rate else { throw ECGRecordError.unreadable("CSV has no time column: give the sample rate") }
        var leads: [Lead] = [], signals: [[Float]] = [], warnings: [String] = []
        for c in (hasTime ? 1 : 0)..<header.count {
            guard let lead = Lead(name: header[c]) else {
                warnings.append("column '\(header[c])' is not a standard 12-lead name: skipped")
                continue
            }
            guard !leads.contains(lead) else { throw ECGRecordError.inconsistent("lead \(lead.rawValue) appears twice") }
            leads.append(lead)
            signals.append(columns[c].map { $0 * scale })
        }
        guard !leads.isEmpty else { throw ECGRecordError.unsupported("no column is named like a standard ECG lead") }
        return WFDB.ReadResult(record: try ECGRecord(leads: leads, signals: signals, sampleRate: rate), warnings: warnings)
    }
}
