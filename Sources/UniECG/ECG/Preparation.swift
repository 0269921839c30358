import Foundation

/// Getting a record ready for a model: resampling with an anti-aliasing filter, and deriving
/// missing limb leads where Einthoven's and Goldberger's relations allow.
public enum Preparation {
    /// Windowed-sinc (Kaiser, beta 8.6) resampling of each lead. When the rate goes down the
    /// cut-off follows the new Nyquist frequency, so nothing aliases.
    public static func resample(_ record: ECGRecord, to rate: Double) throws(ECGRecordError) -> ECGRecord {
        guard rate.isFinite, rate > 0 else { throw .inconsistent("target sample rate \(rate) Hz") }
        if abs(rate - record.sampleRate) < 1e-9 { return record }
        let ratio = rate / record.sampleRate
        let outCount = Int((Double(record.sampleCount) * ratio).rounded(.down))
        let cutoff = min(1.0, ratio) * 0.95  // fraction of the input Nyquist frequency
        let halfWidth = Int((16.0 / min(1.0, ratio)).rounded(.up))  // taps each side, in input samples
        let beta = 8.6, i0beta = besselI0(beta)
        var signals: [[Float]] = []
        for input in record.signals {
            var output = [Float](repeating: 0, count: outCount)
            for k in 0..<outCount {
                let t = Double(k) / ratio  // position in input samples
                let center = Int(t.rounded(.down))
                var sum = 0.0, weights = 0.0
                for n in max(0, center - halfWidth + 1)...min(input.count - 1, center + halfWidth) {
                    let x = t - Double(n)
                    let r = x / Double(halfWidth)
                    guard abs(r) < 1 else { continue }
                    let window = besselI0(beta * (1 - r * r).squareRoot()) / i0beta
                    let arg = Double.pi * x * cutoff
                    let sinc = abs(arg) < 1e-12 ? 1.0 : sin(arg) / arg
                    let w = cutoff * sinc * window
                    let v = Double(input[n])
                    if v.isFinite { sum += w * v; weights += w }
                }
                // Normalising by the weights keeps DC exact, also near the record's edges.
                output[k] = weights > 1e-9 ? Float(sum / weights) : .nan
            }
            signals.append(output)
        }
        var result = record
        result.signals = signals
        result.sampleRate = rate
        return result
    }

    static func besselI0(_ x: Double) -> Double {
        var sum = 1.0, term = 1.0, k = 1.0
        while term > 1e-12 * sum {
            term *= (x / (2 * k)) * (x / (2 * k))
            sum += term
            k += 1
        }
        return sum
    }

    /// Fills in missing limb leads from two known ones (any two of I, II, III give the third and
    /// all augmented leads). Returns the record and the names of the leads it derived.
    public static func deriveLimbLeads(_ record: ECGRecord) -> (ECGRecord, derived: [Lead]) {
        func get(_ lead: Lead) -> [Float]? { record.signal(lead) }
        var one = get(.I), two = get(.II)
        let three = get(.III)
        var derived: [Lead] = []
        if one == nil, let two, let three { one = zip(two, three).map { $0 - $1 }; derived.append(.I) }
        if two == nil, let one, let three { two = zip(one, three).map { $0 + $1 }; derived.append(.II) }
        guard let i = one, let ii = two else { return (record, []) }
        let formulas: [(Lead, [Float])] = [
            (.I, i), (.II, ii),
            (.III, zip(ii, i).map { $0 - $1 }),
            (.aVR, zip(i, ii).map { -($0 + $1) / 2 }),
            (.aVL, zip(i, ii).map { $0 - $1 / 2 }),
            (.aVF, zip(ii, i).map { $0 - $1 / 2 }),
        ]
        var result = record
        for (lead, values) in formulas where !result.leads.contains(lead) {
            result.leads.append(lead)
            result.signals.append(values)
            if !derived.contains(lead) { derived.append(lead) }
        }
        // Keep the conventional lead order.
        let order = Lead.allCases
        let sorted = zip(result.leads, result.signals).sorted { order.firstIndex(of: $0.0)! < order.firstIndex(of: $1.0)! }
        result.leads = sorted.map(\.0)
        result.signals = sorted.map(\.1)
        return (result, derived)
    }
}
