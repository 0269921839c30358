import Foundation

/// The twelve standard leads, in the conventional order.
public enum Lead: String, CaseIterable, Sendable, Codable {
    case I, II, III, aVR, aVL, aVF, V1, V2, V3, V4, V5, V6

    /// Parses common spellings ("avr", "AVR", "aVR", "v1", "MLII" is not a standard 12-lead name).
    public init?(name: String) {
        let key = name.trimmingCharacters(in: .whitespaces).uppercased()
        guard let lead = Lead.allCases.first(where: { $0.rawValue.uppercased() == key }) else { return nil }
        self = lead
    }
}

public enum Sex: String, Sendable, Codable { case male, female }

/// A multi-lead ECG in physical units (millivolts), the value type every part of UniECG
/// exchanges: readers produce it, the generator returns it, writers and the plotter consume it.
public struct ECGRecord: Sendable, Equatable {
    /// Lead order of `signals`.
    public var leads: [Lead]
    /// One array of samples (mV) per lead, all of equal length.
    public var signals: [[Float]]
    /// Samples per second.
    public var sampleRate: Double
    public var age: Int?
    public var sex: Sex?
    /// Free text carried into file headers (e.g. what generated the record).
    public var comments: [String]

    public init(leads: [Lead], signals: [[Float]], sampleRate: Double, age: Int? = nil, sex: Sex? = nil,
                comments: [String] = []) throws(ECGRecordError) {
        guard !leads.isEmpty, leads.count == signals.count else {
            throw .inconsistent("\(leads.count) lead names for \(signals.count) signals")
        }
        guard Set(leads).count == leads.count else { throw .inconsistent("a lead appears twice") }
        let length = signals[0].count
        guard signals.allSatisfy({ $0.count == length }) else { throw .inconsistent("leads have different lengths") }
        guard sampleRate.isFinite, sampleRate > 0 else { throw .inconsistent("sample rate \(sampleRate) Hz") }
        self.leads = leads
        self.signals = signals
        self.sampleRate = sampleRate
        self.age = age
        self.sex = sex
        self.comments = comments
    }

    public var sampleCount: Int { signals.first?.count ?? 0 }
    public var duration: Double { Double(sampleCount) / sampleRate }

    public func signal(_ lead: Lead) -> [Float]? {
        leads.firstIndex(of: lead).map { signals[$0] }
    }
}

public enum ECGRecordError: Error, Equatable, Sendable, CustomStringConvertible {
    case inconsistent(String)
    case unreadable(String)
    case unsupported(String)

    public var description: String {
        switch self {
        case .inconsistent(let m): "inconsistent record: \(m)"
        case .unreadable(let m): "unreadable record: \(m)"
        case .unsupported(let m): "unsupported record: \(m)"
        }
    }
}
