import Foundation

/// Zero-phase IIR filters for ECG conditioning: second-order Butterworth sections designed with
/// the bilinear transform and run forward then backward (so waves do not shift in time).
enum Filters {
    struct Biquad {
        var b0, b1, b2, a1, a2: Double

        /// Butterworth low-pass or high-pass at `cutoff` Hz for sampling rate `rate`.
        init(lowPass: Bool, cutoff: Double, rate: Double) {
            let k = tan(Double.pi * min(cutoff, rate * 0.49) / rate)
            let q = 1 / 2.0.squareRoot()
            let norm = 1 / (1 + k / q + k * k)
            if lowPass {
                b0 = k * k * norm; b1 = 2 * b0; b2 = b0
            } else {
                b0 = norm; b1 = -2 * norm; b2 = norm
            }
            a1 = 2 * (k * k - 1) * norm
            a2 = (1 - k / q + k * k) * norm
        }

        func run(_ x: [Double]) -> [Double] {
            guard let first = x.first else { return [] }
            var y = [Double](repeating: 0, count: x.count)
            // Start from the steady state of the first sample to avoid an edge transient.
            let dc = (b0 + b1 + b2) / (1 + a1 + a2)
            var x1 = first, x2 = first, y1 = first * dc, y2 = first * dc
            for i in 0..<x.count {
                let v = b0 * x[i] + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2
                x2 = x1; x1 = x[i]; y2 = y1; y1 = v
                y[i] = v
            }
            return y
        }

        func zeroPhase(_ x: [Double]) -> [Double] {
            Array(run(Array(run(x).reversed())).reversed())
        }
    }

    /// Baseline wander and high-frequency noise removed: 0.5–40 Hz band, zero phase.
    static func bandPass(_ x: [Float], rate: Double, low: Double = 0.5, high: Double = 40) -> [Double] {
        var v = x.map { $0.isFinite ? Double($0) : 0 }
        v = Biquad(lowPass: false, cutoff: low, rate: rate).zeroPhase(v)
        if high < rate / 2 { v = Biquad(lowPass: true, cutoff: high, rate: rate).zeroPhase(v) }
        return v
    }

    /// Centered moving average over `width` samples.
    static func movingAverage(_ x: [Double], width: Int) -> [Double] {
        guard width > 1, !x.isEmpty else { return x }
        var prefix = [Double](repeating: 0, count: x.count + 1)
        for i in 0..<x.count { prefix[i + 1] = prefix[i] + x[i] }
        let half = width / 2
        return (0..<x.count).map { i in
            let lo = max(0, i - half), hi = min(x.count, i + half + 1)
            return (prefix[hi] - prefix[lo]) / Double(hi - lo)
        }
    }

    static func median(_ values: [Double]) -> Double {
        guard !values.isEmpty else { return .nan }
        let s = values.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
}
