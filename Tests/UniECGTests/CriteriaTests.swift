import Foundation
import Testing
@testable import UniECG

/// The runtime's textbook criteria against the Python rules that label the simulator's records
/// (Tools/train/explain_text.py `_signatures`), on cases Tools/train/make_criteria_cases.py wrote:
/// 170 simulated records as `uniecg measure` read them, and copies with one value moved across a
/// threshold. Then the simulated fixtures: each record meets its own condition's criteria (not
/// atrial_flutter, whose variable conduction makes it irregular: the rules read that as AF).
@Suite struct CriteriaTests {
    static func input(_ v: [String: Any]) -> ECGCriteria.Input {
        var i = ECGCriteria.Input()
        let number = { (key: String) in (v[key] as? NSNumber)?.doubleValue }
        i.heartRate = number("rate")
        i.rrVariation = number("rr_cv")
        i.pWaves = v["p"] as? Bool
        i.pr = number("pr")
        i.qrs = number("qrs")
        i.qtc = number("qtc")
        i.axis = number("axis")
        i.limbVoltage = number("limb")
        i.chestVoltage = number("chest")
        i.v1TerminalArea = number("v1")
        i.prematureBeats = (v["premature"] as? Int) ?? 0
        for key in ["st_up", "st_down"] {
            for pair in (v[key] as? [[Any]]) ?? [] {
                if let lead = pair[0] as? String, let value = (pair[1] as? NSNumber)?.doubleValue { i.st[lead] = value }
            }
        }
        return i
    }

    @Test("the criteria met are the ones the Python labelling rules give, on 242 cases")
    func sameAsPython() throws {
        let lines = try Fixtures.jsonLines("bundled/criteria_cases.jsonl")
        #expect(lines.count > 200)
        var seen = Set<String>()
        for object in lines {
            let values = try #require(object["values"] as? [String: Any])
            let expected = object["criteria"] as? [String]
            let got = ECGCriteria.met(Self.input(values))?.map(\.id).sorted()
            #expect(got == expected, "\(values)")
            seen.formUnion(expected ?? [])
        }
        // Every finding the rules know occurs in the cases.
        #expect(seen == Set(ECGCriteria.names.keys))
    }

    @Test("each simulated fixture meets its condition's criteria", arguments: [
        ("first_degree_av_block", "first_degree_av_block"), ("long_qt", "long_qt"), ("right_axis_deviation", "right_axis_deviation"),
        ("low_voltage", "low_voltage"), ("rbbb", "rbbb"), ("lbbb", "lbbb"), ("sinus_tachycardia", "sinus_tachycardia"),
        ("atrial_flutter_b", "atrial_flutter"), ("pvc", "pvc"),
    ])
    func fixtures(name: String, condition: String) throws {
        let (record, _) = try SimulatedRecordTests.load(name)
        let met = try #require(ECGCriteria.met(by: try Measurements.measure(record)))
        #expect(met.map(\.id).contains(condition), "\(name): \(met.map(\.id))")
        #expect(ECGCriteria.met(by: try Measurements.measure(SimulatedRecordTests.load("normal_sinus").0)) == [])
    }

    @Test("the impression an explanation names, and whether the measurements meet it")
    func impression() throws {
        #expect(ECGCriteria.impression(in: "Rate 80 bpm. Impression: anterior ST elevation. Not a diagnosis.") == "stemi_anterior")
        #expect(ECGCriteria.impression(in: "This ECG shows atrial fibrillation. For learning only.") == "atrial_fibrillation")
        #expect(ECGCriteria.impression(in: "Conclusion: normal sinus rhythm.") == "normal_sinus_rhythm")
        #expect(ECGCriteria.impression(in: "Impression: something else entirely.") == nil)
        #expect(ECGCriteria.impression(in: "The rate is 80 bpm.") == nil)
        let (record, _) = try SimulatedRecordTests.load("rbbb")
        let m = try Measurements.measure(record)
        #expect(ECGCriteria.meets("rbbb", m) == true)
        #expect(ECGCriteria.meets("lbbb", m) == false)
        #expect(ECGCriteria.meets("normal_sinus_rhythm", m) == false)
    }
}
