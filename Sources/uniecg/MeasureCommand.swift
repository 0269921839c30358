import ArgumentParser
import Foundation
import UniECG

struct MeasureCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "measure",
        abstract: "Measure a record (WFDB, CSV or NPY): rate, rhythm, intervals, axis, ST, with the evidence of each.",
        discussion: """
            Example:
              uniecg measure record.hea
              uniecg measure record.csv --json
            """
    )

    @Argument(help: "A WFDB header (.hea), CSV or NPY file.")
    var record: String

    @Option(help: "Sample rate in Hz, for a CSV without a time column or an NPY file.")
    var sampleRate: Double?

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        let read: WFDB.ReadResult, m: Measurements
        do {
            read = try RecordFile.read(record, sampleRate: sampleRate)
            let (full, derived) = Preparation.deriveLimbLeads(read.record)
            m = try Measurements.measure(full)
            for warning in read.warnings { Terminal.writeError("warning: \(warning)\n") }
            if !derived.isEmpty { Terminal.writeError("note: derived \(derived.map(\.rawValue).joined(separator: ", ")) from the other limb leads\n") }
        } catch {
            Terminal.writeError("uniecg measure: \(error)\n")
            throw ExitCode.failure
        }
        if json {
            let findings = m.findings.map { f -> [String: Any] in
                ["name": f.name, "value": f.value, "unit": f.unit, "confidence": f.confidence,
                 "leads": f.leads.map(\.rawValue), "beats": f.beats, "method": f.method]
            }
            let root: [String: Any] = ["record": record, "r_peaks": m.rPeaks, "findings": findings,
                                       "warnings": m.warnings, "notice": UniECGVersion.notice]
            let data = try JSONSerialization.data(withJSONObject: root, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        print(MeasurementTable.render(m, record: read.record))
    }
}
