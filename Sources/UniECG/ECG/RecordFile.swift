import Foundation

/// Reads a record from a path by its extension: WFDB (`.hea`, or a record name with a `.hea`
/// beside it) or CSV.
public enum RecordFile {
    public static func read(_ path: String, sampleRate: Double? = nil) throws -> WFDB.ReadResult {
        let url = URL(fileURLWithPath: path)
        switch url.pathExtension.lowercased() {
        case "hea": return try WFDB.read(header: url)
        case "dat": return try WFDB.read(header: url.deletingPathExtension().appendingPathExtension("hea"))
        case "csv", "txt", "tsv":
            guard let text = try? String(contentsOf: url, encoding: .utf8) else {
                throw ECGRecordError.unreadable("cannot read '\(path)' as UTF-8 text")
            }
            return try ECGCSV.read(text, sampleRate: sampleRate)
        case "npy":
            guard let rate = sampleRate else { throw ECGRecordError.unreadable("'\(path)': an .npy record needs its sample rate") }
            guard let data = try? Data(contentsOf: url) else { throw ECGRecordError.unreadable("cannot read '\(path)'") }
            return try npy(data, sampleRate: rate)
        case "":
            return try WFDB.read(header: url.appendingPathExtension("hea"))
        default:
            throw ECGRecordError.unsupported("'\(path)': unknown record type (.hea WFDB, .csv or .npy)")
        }
    }

    /// A 2-D .npy of the 12 standard leads in the conventional order, either leads x samples or
    /// samples x leads (the axis of length 12 is the lead axis; 12 x 12 is read as leads x samples).
    public static func npy(_ data: Data, sampleRate: Double, leads: [Lead] = Lead.allCases) throws -> WFDB.ReadResult {
        let array: NPY.Array32
        do { array = try NPY.readFloat32(data) } catch { throw ECGRecordError.unreadable("\(error)") }
        guard array.shape.count == 2 else { throw ECGRecordError.unsupported(".npy record must be 2-D, got shape \(array.shape)") }
        let (rows, cols) = (array.shape[0], array.shape[1])
        let leadsFirst: Bool
        if rows == leads.count { leadsFirst = true }
        else if cols == leads.count { leadsFirst = false }
        else { throw ECGRecordError.inconsistent(".npy shape \(array.shape) has no axis of \(leads.count) leads") }
        let samples = leadsFirst ? cols : rows
        let signals = (0..<leads.count).map { l in
            (0..<samples).map { s in leadsFirst ? array.values[l * cols + s] : array.values[s * cols + l] }
        }
        return WFDB.ReadResult(record: try ECGRecord(leads: leads, signals: signals, sampleRate: sampleRate), warnings: [])
    }
}

extension RecordFile {
    /// Writes `base.hea` + `base.dat` (WFDB format 16), `base.csv` and `base.svg` (ECG paper),
    /// the set every command that produces a record writes. `base` is a path without extension;
    /// its directory must exist. The files are written into a temporary directory beside them
    /// and renamed into place, so a failure never leaves a half-written record under the final
    /// names. Returns the paths written.
    @discardableResult
    public static func writeAll(_ record: ECGRecord, base: String, title: String) throws -> [String] {
        let url = URL(fileURLWithPath: base)
        let directory = url.deletingLastPathComponent(), name = url.lastPathComponent
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ECGRecordError.unreadable("output directory '\(directory.path)' does not exist")
        }
        let staging = directory.appendingPathComponent(".\(name).partial-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(at: staging) }
        try WFDB.write(record, name: name, directory: staging)
        try ECGCSV.write(record).write(to: staging.appendingPathComponent("\(name).csv"), atomically: false, encoding: .utf8)
        try ECGPaper.svg(record, title: title).write(to: staging.appendingPathComponent("\(name).svg"), atomically: false,
                                                     encoding: .utf8)
        var written: [String] = []
        for ext in ["dat", "hea", "csv", "svg"] {  // the signal before the header that names it
            let from = staging.appendingPathComponent("\(name).\(ext)"), to = directory.appendingPathComponent("\(name).\(ext)")
            guard rename(from.path, to.path) == 0 else {
                throw ECGRecordError.unreadable("cannot move '\(name).\(ext)' into '\(directory.path)': \(String(cString: strerror(errno)))")
            }
            written.append(to.path)
        }
        return written
    }
}
