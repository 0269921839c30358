import Foundation
import Testing
@testable import UniECG

/// Measurements on a real recording: two 15 s excerpts of MIT-BIH record 208 (lead MLII) as it
/// ships inside Debian's python3-scipy package (Tools/reference/make_real_ecg_fixture.py
/// explains the source and licence). Reference R peaks come from wfdb-python's XQRS detector,
/// an implementation independent of ours, plus two premature beats it missed, added on review.
@Suite struct RealRecordingTests {
    static func load(_ name: String) throws -> (record: ECGRecord, reference: [Int]) {
        let header = Fixtures.url("ecg/\(name).hea")
        let record = try WFDB.read(header: header).record
        let text = try String(contentsOf: Fixtures.url("ecg/\(name).xqrs.txt"), encoding: .utf8)
        // "index" per beat; "index +" for beats added on review where XQRS missed them
        let reference = text.split(separator: "\n").filter { !$0.hasPrefix("#") }
            .compactMap { $0.split(separator: " ").first.flatMap { Int($0) } }
        return (record, reference)
    }

    /// Beats found by both within `tolerance` samples: (sensitivity, positive predictivity).
    static func agreement(_ found: [Int], _ reference: [Int], tolerance: Int) -> (Double, Double) {
        var matched = 0
        var used = Set<Int>()
        for r in reference {
            if let hit = found.firstIndex(where: { abs($0 - r) <= tolerance && !used.contains($0) }) {
                used.insert(found[hit])
                matched += 1
            }
        }
        return (Double(matched) / Double(reference.count), Double(matched) / Double(max(found.count, 1)))
    }

    @Test("WFDB reader: MIT-BIH 208 excerpt in millivolts at 360 Hz, 15 s")
    func readsRecord() throws {
        let (record, _) = try Self.load("mitdb208-000s")
        #expect(record.sampleRate == 360 && record.leads == [.II])
        #expect(record.signals[0].count == 5400)
        // first ADC value 975 with zero 1024 and gain 200/mV
        #expect(abs(record.signals[0][0] - (975 - 1024) / 200) < 1e-6)
    }

    @Test("R peaks agree with XQRS within 50 ms; rate within 2 bpm; regular sinus vs ectopy",
          arguments: [("mitdb208-000s", false), ("mitdb208-150s", true)])
    func rPeaksAgree(name: String, ectopy: Bool) throws {
        let (record, reference) = try Self.load(name)
        let m = try Measurements.measure(record)
        // XQRS does not report the first and last half second reliably; compare inside.
        let margin = Int(0.5 * record.sampleRate), end = record.signals[0].count - margin
        let ours = m.rPeaks.filter { $0 >= margin && $0 < end }
        let theirs = reference.filter { $0 >= margin && $0 < end }
        let (sensitivity, ppv) = Self.agreement(ours, theirs, tolerance: Int(0.05 * record.sampleRate))
        #expect(sensitivity >= 0.95 && ppv >= 0.95, "\(name): sensitivity \(sensitivity), PPV \(ppv)")
        let rr = zip(reference.dropFirst(), reference).map { Double($0 - $1) / record.sampleRate }
        let referenceRate = 60 / (rr.reduce(0, +) / Double(rr.count))
        let rate = try #require(m.heartRate)
        #expect(abs(rate - referenceRate) <= 2, "\(name): \(rate) bpm, XQRS \(referenceRate)")
        // premature beats with compensatory pauses make the rhythm irregular; the sinus stretch is not
        #expect(m.irregular == ectopy, "\(name): irregular \(String(describing: m.irregular)), RR CV \(m.rrVariation ?? -1)")
        print("\(name): \(ours.count) beats, sensitivity \(sensitivity), PPV \(ppv), \(rate) bpm (XQRS \(referenceRate))")
    }
}
