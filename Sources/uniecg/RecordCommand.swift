import ArgumentParser
import Foundation
import UniECG

struct RecordCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "record",
        abstract: "Rewrite a record (WFDB, CSV or NPY) as WFDB + CSV + SVG, optionally resampled.",
        discussion: """
            Writes NAME.hea and NAME.dat (WFDB format 16, 1 µV resolution), NAME.csv (a header \
            row of lead names, then millivolts) and NAME.svg (standard ECG paper).

            Examples:
              uniecg record rec.hea -o out/rec
              uniecg record rec.csv --sample-rate 500 --resample 102.4 --derive-limb-leads -o rec-small
            """
    )

    @Argument(help: "A WFDB header (.hea), CSV or NPY file.")
    var record: String

    @Option(name: .shortAndLong, help: "Output path without extension (NAME.hea/.dat/.csv/.svg).")
    var output: String

    @Option(help: "Sample rate in Hz, for a CSV without a time column or an NPY file.")
    var sampleRate: Double?

    @Option(help: "Resample to this rate (Hz) with the anti-aliased resampler.")
    var resample: Double?

    @Flag(help: "Derive missing limb leads (III, aVR, aVL, aVF) from two of I, II, III.")
    var deriveLimbLeads = false

    func run() throws {
        do {
            let result = try RecordFile.read(record, sampleRate: sampleRate)
            for warning in result.warnings { Terminal.writeError("warning: \(warning)\n") }
            var ecg = result.record
            if deriveLimbLeads {
                let (derived, leads) = Preparation.deriveLimbLeads(ecg)
                ecg = derived
                if !leads.isEmpty { Terminal.writeError("derived: \(leads.map(\.rawValue).joined(separator: ", "))\n") }
            }
            if let resample { ecg = try Preparation.resample(ecg, to: resample) }
            let title = "\(URL(fileURLWithPath: record).lastPathComponent) — \(ecg.leads.count) leads, "
                + "\(String(format: "%.1f", ecg.duration)) s at \(String(format: "%g", ecg.sampleRate)) Hz"
            for path in try RecordFile.writeAll(ecg, base: output, title: title) { print("wrote \(path)") }
        } catch {
            Terminal.writeError("uniecg record: \(error)\n")
            throw ExitCode.failure
        }
    }
}
