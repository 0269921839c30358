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
        case "":
            return try WFDB.read(header: url.appendingPathExtension("hea"))
        default:
            throw ECGRecordError.unsupported("'\(path)': unknown record type (.hea WFDB or .csv)")
        }
    }
}
