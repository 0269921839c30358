import ArgumentParser
import Foundation
import UniECG

struct MeasureCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "measure",
        abstract: "Measure a record (WFDB, CSV or NPY): rate, rhythm, intervals, axis, ST, with the evidence of each.",
        discussion: """
            With several records, prints one JSON object per line (a record that cannot be read or \
            measured gives {"record": ..., "error": ...} and the others go on).

            Example:
              uniecg measure record.hea
              uniecg measure record.csv --json
              uniecg measure record.hea --evidence      # the evidence block the language model reads
              uniecg measure --sample-rate 500 a.npy b.npy c.npy
            """
    )

    @Argument(help: "WFDB headers (.hea), CSV or NPY files.")
    var records: [String]

    @Option(help: "Sample rate in Hz, for a CSV without a time column or an NPY file.")
    var sampleRate: Double?

    @Flag(help: "Print JSON.")
    var json = false

    @Flag(help: "Print the evidence block the language model sees in its prompt.")
    var evidence = false

    func validate() throws {
        guard !records.isEmpty else { throw ValidationError("name at least one record") }
    }

    func run() throws {
        if records.count > 1 {
            var failed = 0
            for record in records {
                var root: [String: Any]
                do {
                    let (read, m) = try measure(record)
                    root = jsonObject(record, read: read, m: m)
                } catch {
                    root = ["record": record, "error": "\(error)"]
                    failed += 1
                }
                let data = try JSONSerialization.data(withJSONObject: root, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            }
            if failed == records.count { throw ExitCode.failure }
            return
        }
        let read: WFDB.ReadResult, m: Measurements
        do {
            (read, m) = try measure(records[0])
            for warning in read.warnings { Terminal.writeError("warning: \(warning)\n") }
        } catch {
            Terminal.writeError("uniecg measure: \(error)\n")
            throw ExitCode.failure
        }
        if json {
            let data = try JSONSerialization.data(withJSONObject: jsonObject(records[0], read: read, m: m), options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else if evidence {
            print(Evidence.render(m))
        } else {
            print(MeasurementTable.render(m, record: read.record))
        }
    }

    private func measure(_ path: String) throws -> (WFDB.ReadResult, Measurements) {
        let read = try RecordFile.read(path, sampleRate: sampleRate)
        let (full, derived) = Preparation.deriveLimbLeads(read.record)
        if !derived.isEmpty && records.count == 1 {
            Terminal.writeError("note: derived \(derived.map(\.rawValue).joined(separator: ", ")) from the other limb leads\n")
        }
        return (read, try Measurements.measure(full))
    }

    private func jsonObject(_ path: String, read: WFDB.ReadResult, m: Measurements) -> [String: Any] {
        return ["record": path, "r_peaks": m.rPeaks, "findings": m.findings.map(\.jsonObject), "evidence": Evidence.render(m),
                "criteria": ECGCriteria.met(by: m).map { $0.map(\.id) as Any } ?? NSNull(), "warnings": read.warnings + m.warnings,
                "notice": UniECGVersion.notice]
    }
}

extension Finding {
    /// One finding as the commands' --json output writes it (measure and explain alike).
    var jsonObject: [String: Any] {
        ["name": name, "value": value, "unit": unit, "confidence": confidence,
         "leads": leads.map(\.rawValue), "beats": beats, "method": method]
    }
}
