import Foundation
import Testing
@testable import UniECG

/// `uniecg record`: any record in, WFDB + CSV + SVG out (the writer set `uniecg generate` uses).
/// Tools/reference/check_wfdb_output.py checks the same output with wfdb-python.
@Suite struct RecordCommandTests {
    @Test("a record is rewritten as WFDB, CSV and SVG that read back to the same millivolts")
    func rewrite() throws {
        let dir = try TemporaryDirectory()
        let exe = try Fixtures.executable("uniecg")
        let source = Fixtures.url("ecg/mitdb208-000s.hea").path
        let run = try Fixtures.run(exe, ["record", source, "-o", dir.path("copy")])
        #expect(run.status == 0, "\(run.stderr)")
        for ext in ["hea", "dat", "csv", "svg"] {
            #expect(FileManager.default.fileExists(atPath: dir.path("copy.\(ext)")), "copy.\(ext) missing")
        }
        // written through a staging directory that is gone afterwards
        let left = try FileManager.default.contentsOfDirectory(atPath: dir.url.path).sorted()
        #expect(left == ["copy.csv", "copy.dat", "copy.hea", "copy.svg"], "\(left)")
        let original = try WFDB.read(header: URL(fileURLWithPath: source)).record
        let wfdb = try WFDB.read(header: URL(fileURLWithPath: dir.path("copy.hea"))).record
        let csv = try RecordFile.read(dir.path("copy.csv")).record
        #expect(wfdb.sampleRate == 360 && csv.sampleRate == 360 && wfdb.leads == [.II])
        let worst = zip(original.signals[0], wfdb.signals[0]).map { abs($0 - $1) }.max() ?? 1
        let worstCSV = zip(csv.signals[0], wfdb.signals[0]).map { abs($0 - $1) }.max() ?? 1
        #expect(worst <= 0.0005 + 1e-6 && worstCSV <= 0.00055 + 1e-6)
        let svg = try String(contentsOfFile: dir.path("copy.svg"), encoding: .utf8)
        #expect(svg.contains("not a diagnostic device") || svg.contains("educational"))

        let resampled = try Fixtures.run(exe, ["record", source, "--resample", "500", "-o", dir.path("r500")])
        #expect(resampled.status == 0, "\(resampled.stderr)")
        let r500 = try WFDB.read(header: URL(fileURLWithPath: dir.path("r500.hea"))).record
        #expect(r500.sampleRate == 500 && r500.signals[0].count == 7500)
    }

    @Test("missing input, missing output directory and a bad rate are refused with a message")
    func refusals() throws {
        let exe = try Fixtures.executable("uniecg")
        let dir = try TemporaryDirectory()
        let missing = try Fixtures.run(exe, ["record", dir.path("none.hea"), "-o", dir.path("x")])
        #expect(missing.status != 0 && missing.stderr.contains("none.hea"))
        let source = Fixtures.url("ecg/mitdb208-000s.hea").path
        let noDir = try Fixtures.run(exe, ["record", source, "-o", dir.path("sub/x")])
        #expect(noDir.status != 0 && noDir.stderr.contains("does not exist"))
        let badRate = try Fixtures.run(exe, ["record", source, "--resample", "-5", "-o", dir.path("y")])
        #expect(badRate.status != 0 && !badRate.stderr.isEmpty)
        #expect(!FileManager.default.fileExists(atPath: dir.path("y.hea")))
    }
}
