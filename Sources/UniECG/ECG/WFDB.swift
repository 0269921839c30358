import Foundation

/// PhysioNet WFDB records: a text header (`NAME.hea`) and binary signal files. Writing uses
/// format 16 (16-bit little-endian, frames interleaved) with a gain of 1000 adu/mV; reading
/// understands formats 16, 212 and 80, gains, baselines, ADC zero, initial values and
/// checksums, several signal files, and single-segment records.
public enum WFDB {
    public static let writeGain: Double = 1000  // adu per mV: 1 µV resolution, ±32.767 mV range

    /// Writes `directory/name.hea` and `directory/name.dat`.
    public static func write(_ record: ECGRecord, name: String, directory: URL) throws {
        guard !name.isEmpty, !name.contains("/"), !name.contains(" ") else {
            throw ECGRecordError.unsupported("record name '\(name)' must be non-empty without spaces or slashes")
        }
        let n = record.sampleCount
        var data = Data(capacity: n * record.leads.count * 2)
        var checksums = [Int](repeating: 0, count: record.leads.count)
        var first = [Int](repeating: 0, count: record.leads.count)
        for s in 0..<n {
            for (l, signal) in record.signals.enumerated() {
                let value = Double(signal[s])
                // Clipped to ±32.767 mV; -32768 is WFDB's code for a missing sample (NaN).
                let clipped = value.isFinite ? Int16(max(-32767, min(32767, (value * writeGain).rounded()))) : Int16.min
                if s == 0 { first[l] = Int(clipped) }
                checksums[l] = (checksums[l] + Int(clipped)) & 0xFFFF
                withUnsafeBytes(of: clipped.littleEndian) { data.append(contentsOf: $0) }
            }
        }
        var header = "\(name) \(record.leads.count) \(formatNumber(record.sampleRate)) \(n)\n"
        for (l, lead) in record.leads.enumerated() {
            let checksum = Int(Int16(truncatingIfNeeded: checksums[l]))
            header += "\(name).dat 16 \(formatNumber(writeGain))(0)/mV 16 0 \(first[l]) \(checksum) 0 \(lead.rawValue)\n"
        }
        if let age = record.age { header += "# age: \(age)\n" }
        if let sex = record.sex { header += "# sex: \(sex == .male ? "M" : "F")\n" }
        for comment in record.comments { header += "# \(comment.replacingOccurrences(of: "\n", with: " "))\n" }
        try data.write(to: directory.appendingPathComponent("\(name).dat"))
        try Data(header.utf8).write(to: directory.appendingPathComponent("\(name).hea"))
    }

    private static func formatNumber(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : String(v)
    }
}

extension WFDB {
    /// What reading a record noticed without failing (e.g. leads with non-standard names).
    public struct ReadResult: Sendable {
        public let record: ECGRecord
        public let warnings: [String]
    }

    struct SignalSpec {
        var file: String
        var format: Int
        var byteOffset: Int
        var gain: Double
        var baseline: Int
        var unitsScale: Double  // to mV
        var initialValue: Int?
        var checksum: Int?
        var description: String
    }

    /// Reads `NAME.hea` and its signal files (paths relative to the header's directory).
    public static func read(header url: URL) throws -> ReadResult {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else {
            throw ECGRecordError.unreadable("cannot read WFDB header '\(url.path)'")
        }
        var lines = text.split(whereSeparator: \.isNewline).map { String($0) }
        let comments = lines.filter { $0.hasPrefix("#") }.map { String($0.dropFirst()).trimmingCharacters(in: .whitespaces) }
        lines = lines.map { $0.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? "" }
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard let recordLine = lines.first else { throw ECGRecordError.unreadable("'\(url.lastPathComponent)' has no record line") }
        let fields = recordLine.split(separator: " ").map(String.init)
        guard fields.count >= 2 else { throw ECGRecordError.unreadable("record line '\(recordLine)' needs a name and a signal count") }
        if fields[0].contains("/") { throw ECGRecordError.unsupported("multi-segment records are not supported ('\(fields[0])')") }
        guard let nsig = Int(fields[1]), nsig > 0, nsig <= 64 else {
            throw ECGRecordError.unreadable("signal count '\(fields[1])' is not an integer in 1...64")
        }
        let rateField = fields.count > 2 ? fields[2].split(separator: "/").first.map(String.init) ?? "" : "250"
        guard let rate = Double(rateField.split(separator: "(").first.map(String.init) ?? ""), rate > 0, rate.isFinite else {
            throw ECGRecordError.unreadable("sampling frequency '\(fields.count > 2 ? fields[2] : "")' is not a positive number")
        }
        var declaredLength: Int? = nil
        if fields.count > 3 {
            guard let n = Int(fields[3]), n >= 0 else { throw ECGRecordError.unreadable("sample count '\(fields[3])' is not an integer") }
            declaredLength = n
        }
        guard lines.count >= 1 + nsig else {
            throw ECGRecordError.unreadable("header declares \(nsig) signals but has \(lines.count - 1) signal lines")
        }
        var specs: [SignalSpec] = []
        for line in lines[1...nsig] { specs.append(try parseSignalLine(line)) }

        // Signals sharing a file are interleaved frame by frame, in header order.
        var samples = [[Int?]](repeating: [], count: nsig)
        var files: [String] = []
        for spec in specs where !files.contains(spec.file) { files.append(spec.file) }
        let directory = url.deletingLastPathComponent()
        for file in files {
            guard !file.contains("/"), file != "~" else { throw ECGRecordError.unsupported("signal file '\(file)' must lie beside the header") }
            let members = specs.indices.filter { specs[$0].file == file }
            let format = specs[members[0]].format
            guard members.allSatisfy({ specs[$0].format == format }) else {
                throw ECGRecordError.unsupported("signals in '\(file)' mix storage formats")
            }
            guard let data = try? Data(contentsOf: directory.appendingPathComponent(file)) else {
                throw ECGRecordError.unreadable("cannot read signal file '\(file)'")
            }
            let offset = specs[members[0]].byteOffset
            guard offset <= data.count else { throw ECGRecordError.unreadable("byte offset \(offset) is past the end of '\(file)'") }
            let values = try decode([UInt8](data[offset...]), format: format, file: file)
            let frames = values.count / members.count
            for (k, index) in members.enumerated() {
                samples[index] = (0..<frames).map { values[$0 * members.count + k] }
            }
        }
        var length = samples.map(\.count).min() ?? 0
        if let declaredLength {
            guard length >= declaredLength else {
                throw ECGRecordError.unreadable("header declares \(declaredLength) samples but the signal files hold \(length) (truncated?)")
            }
            length = declaredLength
        }
        var leads: [Lead] = [], signals: [[Float]] = [], warnings: [String] = []
        for (index, spec) in specs.enumerated() {
            let digital = Array(samples[index].prefix(length))
            if let initial = spec.initialValue, let first = digital.first ?? nil, first != initial {
                throw ECGRecordError.unreadable("signal \(index) ('\(spec.description)'): first sample \(first) differs from the header's initial value \(initial)")
            }
            if let checksum = spec.checksum {
                let sum = digital.reduce(0) { ($0 + ($1 ?? -32768)) & 0xFFFF }
                if Int16(truncatingIfNeeded: sum) != Int16(truncatingIfNeeded: checksum) {
                    throw ECGRecordError.unreadable("signal \(index) ('\(spec.description)'): checksum mismatch (data damaged?)")
                }
            }
            guard let lead = Lead(name: spec.description) else {
                warnings.append("signal \(index) '\(spec.description)' is not a standard 12-lead name: skipped")
                continue
            }
            if leads.contains(lead) {
                warnings.append("lead \(lead.rawValue) appears twice: the second copy is skipped")
                continue
            }
            leads.append(lead)
            signals.append(digital.map { d in d.map { Float(Double($0 - spec.baseline) / spec.gain * spec.unitsScale) } ?? .nan })
        }
        guard !leads.isEmpty else { throw ECGRecordError.unsupported("no standard ECG lead in '\(url.lastPathComponent)'") }
        let (age, sex) = demographics(comments)
        let record = try ECGRecord(leads: leads, signals: signals, sampleRate: rate, age: age, sex: sex, comments: comments)
        return ReadResult(record: record, warnings: warnings)
    }

    static func parseSignalLine(_ line: String) throws -> SignalSpec {
        let f = line.split(separator: " ", maxSplits: 8).map(String.init)
        guard f.count >= 2 else { throw ECGRecordError.unreadable("signal line '\(line)' needs a file name and a format") }
        // format[xspf][:skew][+offset]
        var formatField = f[1], byteOffset = 0
        if let plus = formatField.firstIndex(of: "+") {
            guard let o = Int(formatField[formatField.index(after: plus)...]), o >= 0 else {
                throw ECGRecordError.unreadable("byte offset in '\(f[1])' is not a non-negative integer")
            }
            byteOffset = o
            formatField = String(formatField[..<plus])
        }
        if formatField.contains(":") { throw ECGRecordError.unsupported("skewed signals ('\(f[1])') are not supported") }
        if formatField.contains("x") {
            let spf = formatField.split(separator: "x").last.flatMap { Int($0) } ?? 1
            if spf != 1 { throw ECGRecordError.unsupported("multi-frequency signals ('\(f[1])') are not supported") }
            formatField = String(formatField.split(separator: "x")[0])
        }
        guard let format = Int(formatField), [16, 212, 80].contains(format) else {
            throw ECGRecordError.unsupported("signal format '\(f[1])' is not supported (16, 212, 80)")
        }
        var gain = 200.0, baseline: Int? = nil, unitsScale = 1.0
        if f.count > 2 {
            var g = f[2]
            if let slash = g.firstIndex(of: "/") {
                let units = g[g.index(after: slash)...].lowercased()
                switch units {
                case "mv": unitsScale = 1
                case "uv", "µv", "μv": unitsScale = 0.001
                case "v": unitsScale = 1000
                default: throw ECGRecordError.unsupported("units '\(units)' are not a voltage (mV, uV, V)")
                }
                g = String(g[..<slash])
            }
            if let open = g.firstIndex(of: "("), let close = g.firstIndex(of: ")"), open < close {
                guard let b = Int(g[g.index(after: open)..<close]) else { throw ECGRecordError.unreadable("baseline in '\(f[2])' is not an integer") }
                baseline = b
                g = String(g[..<open])
            }
            guard let value = Double(g), value.isFinite, value >= 0 else { throw ECGRecordError.unreadable("gain '\(f[2])' is not a non-negative number") }
            gain = value == 0 ? 200 : value
        }
        let adcZero = f.count > 4 ? Int(f[4]) ?? 0 : 0
        let initial = f.count > 5 ? Int(f[5]) : nil
        let checksum = f.count > 6 ? Int(f[6]) : nil
        let description = f.count > 8 ? f[8] : ""
        return SignalSpec(file: f[0], format: format, byteOffset: byteOffset, gain: gain, baseline: baseline ?? adcZero,
                          unitsScale: unitsScale, initialValue: initial, checksum: checksum, description: description)
    }

    /// Samples of one file; nil marks WFDB's "missing sample" code.
    static func decode(_ bytes: [UInt8], format: Int, file: String) throws -> [Int?] {
        switch format {
        case 16:
            return stride(from: 0, to: bytes.count - 1, by: 2).map {
                let v = Int(Int16(bitPattern: UInt16(bytes[$0]) | UInt16(bytes[$0 + 1]) << 8))
                return v == -32768 ? nil : v
            }
        case 212:  // two 12-bit samples in three bytes
            var out: [Int?] = []
            out.reserveCapacity(bytes.count * 2 / 3)
            var i = 0
            while i + 2 < bytes.count {
                let a = Int(bytes[i]) | (Int(bytes[i + 1]) & 0x0F) << 8
                let b = Int(bytes[i + 2]) | (Int(bytes[i + 1]) & 0xF0) << 4
                for raw in [a, b] {
                    let v = raw >= 2048 ? raw - 4096 : raw
                    out.append(v == -2048 ? nil : v)
                }
                i += 3
            }
            return out
        case 80:
            return bytes.map { Int($0) - 128 == -128 ? nil : Int($0) - 128 }
        default:
            throw ECGRecordError.unsupported("format \(format) in '\(file)'")
        }
    }

    /// Age and sex from header comments such as "age: 63", "<age>: 63 <sex>: M", "Sex: female".
    static func demographics(_ comments: [String]) -> (Int?, Sex?) {
        var age: Int?, sex: Sex?
        for c in comments {
            let lower = c.lowercased()
            if let r = lower.range(of: #"age>?\s*:?\s*(\d{1,3})"#, options: .regularExpression) {
                age = Int(lower[r].filter(\.isNumber))
            }
            if let r = lower.range(of: #"sex>?\s*:?\s*(male|female|m|f)\b"#, options: .regularExpression) {
                let value = lower[r].split(separator: ":").last.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
                let word = value.split(separator: " ").last.map(String.init) ?? value
                sex = word.hasPrefix("f") ? .female : .male
            }
        }
        return (age, sex)
    }
}
