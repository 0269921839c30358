import ArgumentParser
import Foundation
import UniECG

struct PlotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plot",
        abstract: "Draw a record (WFDB or CSV) on standard ECG paper as SVG.",
        discussion: """
            25 mm/s, 10 mm/mV, a 3 x 4 layout with a lead II rhythm strip and calibration pulses.

            Example:
              uniecg plot record.hea -o record.svg
            """
    )

    @Argument(help: "A WFDB header (.hea) or CSV file.")
    var record: String

    @Option(name: .shortAndLong, help: "The SVG file to write.")
    var output: String

    @Option(help: "Sample rate in Hz, for a CSV without a time column.")
    var sampleRate: Double?

    func run() throws {
        do {
            let result = try RecordFile.read(record, sampleRate: sampleRate)
            for warning in result.warnings { Terminal.writeError("warning: \(warning)\n") }
            let title = "\(URL(fileURLWithPath: record).lastPathComponent) — \(result.record.leads.count) leads, \(String(format: "%.1f", result.record.duration)) s"
            try ECGPaper.svg(result.record, title: title).write(toFile: output, atomically: true, encoding: .utf8)
            print("wrote \(output)")
        } catch {
            Terminal.writeError("uniecg plot: \(error)\n")
            throw ExitCode.failure
        }
    }
}
