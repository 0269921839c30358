import Foundation

/// One measured quantity with what it rests on, so an explanation can cite it.
public struct Finding: Sendable, Equatable, Codable {
    public let name: String
    public let value: Double
    public let unit: String
    /// 0 (a guess) ... 1 (solid): from the number of beats and the signal quality.
    public let confidence: Double
    /// Leads and beats (indices into `Measurements.rPeaks`) the value was computed from.
    public let leads: [Lead]
    public let beats: [Int]
    public let method: String
}

/// Deterministic ECG measurements (algorithms in `Measurements.measure`'s documentation).
public struct Measurements: Sendable, Equatable {
    public var rPeaks: [Int] = []          // sample indices
    public var heartRate: Double?          // bpm
    public var rrMean: Double?             // ms
    public var rrStandardDeviation: Double? // ms
    public var rrVariation: Double?        // coefficient of variation of RR
    public var irregular: Bool?
    public var pWavePresent: Bool?
    public var pr: Double?                 // ms
    public var qrs: Double?                // ms
    public var qt: Double?                 // ms
    public var qtcBazett: Double?          // ms
    public var qtcFridericia: Double?      // ms
    public var axis: Double?               // degrees, frontal plane
    public var st: [Lead: Double] = [:]    // mV at J + 60 ms, against the PR segment
    public var qrsAmplitude: [Lead: Double] = [:] // mV, peak to peak of the median QRS
    public var v1TerminalArea: Double?     // mV·ms, net area of the last 40 ms of the QRS in V1
    public var prematureBeats: [Int] = []  // indices into rPeaks
    public var findings: [Finding] = []
    public var warnings: [String] = []

    public func finding(_ name: String) -> Finding? { findings.first { $0.name == name } }
}

public enum MeasurementError: Error, Equatable, CustomStringConvertible {
    case tooShort(Double)
    case sampleRateTooLow(Double)
    case flat
    case noBeats

    public var description: String {
        switch self {
        case .tooShort(let s): "the record lasts \(String(format: "%.1f", s)) s; measurements need at least 2 s"
        case .sampleRateTooLow(let r): "sample rate \(r) Hz is below the 100 Hz measurements need"
        case .flat: "the signal is flat: no lead varies by more than 0.02 mV"
        case .noBeats: "no heartbeat could be found"
        }
    }
}

extension Measurements {
    /// Measures a record:
    /// 1. Conditioning: each lead band-passed 0.5–40 Hz, zero phase (baseline wander and noise).
    /// 2. R peaks (Pan–Tompkins class): 5–15 Hz band, derivative, squared and summed over leads,
    ///    150 ms moving-window integration, adaptive signal/noise thresholds with a 200 ms
    ///    refractory period and search-back after 1.66 mean RR; each peak moved to the maximum
    ///    of the summed squared signal within 150 ms before it; peaks within 60 ms of the record's
    ///    start or end (complexes cut by the record's edge) are dropped.
    /// 3. Rate and rhythm from RR intervals: heart rate 60000 / mean RR; irregular when the
    ///    coefficient of variation of RR exceeds 0.10.
    /// 4. A median beat per lead (450 ms before to 650 ms after R) of every beat with a full window.
    /// 5. QRS onset where the spatial velocity (sum over leads of |slope|) of the median beats
    ///    stays below 10 % of its peak for 10 ms before it, offset where it stays below 20 % for
    ///    30 ms after it; QRS = offset − onset.
    /// 6. P wave: present when lead II's (or V1's) median beat holds a deflection between 400 ms (or
    ///    the previous T end; without a T end, the end of a QTc-440 ms T) and 60 ms before QRS onset,
    ///    measured from a line joining the window start and the PR segment, larger than 4 % of that
    ///    lead's QRS (0.015–0.05 mV), that recurs beat to beat (mean correlation > 0.5) and is not
    ///    followed or preceded, ≥ 120 ms away, by a second deflection of the same polarity ≥ 60 % of
    ///    its size (flutter waves); P onset where that deflection falls to 5 % of its height above
    ///    the TP level (median of the 60 ms ending 80 ms before the P peak; at fast rates, with no
    ///    room for that span, the trough between the previous T wave and the P wave, searched
    ///    from 40 ms before the window, and no earlier than it); PR = QRS onset − P onset.
    /// 7. T end on the lead with the largest T wave (II, V2, V3 or V5), on a 20 ms moving average of
    ///    the median beat: after the T wave's steepest return toward the baseline (the descent ends
    ///    where the signal turns back by more than 3 % of the T amplitude), the first point where
    ///    its slope has flattened to 25 % of that steepest slope; the window ends at 0.8 median RR.
    ///    QT = T end − QRS onset; QTc by Bazett (QT/√RR) and Fridericia (QT/∛RR), RR in seconds.
    ///    Without a P wave (AF, flutter) QT and QTc get a confidence of at most 0.3 and a warning.
    /// 8. Frontal axis = atan2(net QRS area in aVF, net QRS area in I).
    /// 9. ST deviation per lead at J + 60 ms against the PR segment (40–10 ms before QRS onset).
    /// 10. QRS voltage: peak-to-peak of each lead's median beat between QRS onset and offset; the
    ///    largest limb-lead and precordial values are reported (low voltage: < 0.5 / < 1.0 mV).
    /// 11. V1 terminal QRS: net area of the last 40 ms of the QRS in V1 (positive in an rSR'
    ///    right bundle branch block, negative in the QS/rS of a left one).
    /// 12. Premature beats: an RR below 80 % of the median RR followed by one above 115 % of it
    ///    (a compensatory pause); counted only in a rhythm that is otherwise regular.
    public static func measure(_ record: ECGRecord) throws -> Measurements {
        let rate = record.sampleRate
        guard rate >= 100 else { throw MeasurementError.sampleRateTooLow(rate) }
        guard record.duration >= 2 else { throw MeasurementError.tooShort(record.duration) }
        var result = Measurements()
        let nanCount = record.signals.reduce(0) { $0 + $1.filter { !$0.isFinite }.count }
        if nanCount > 0 { result.warnings.append("\(nanCount) missing samples (NaN) were treated as 0 mV") }
        let ranges = record.signals.map { s in (s.filter(\.isFinite).max() ?? 0) - (s.filter(\.isFinite).min() ?? 0) }
        guard ranges.contains(where: { $0 > 0.02 }) else { throw MeasurementError.flat }
        for (lead, signal) in zip(record.leads, record.signals) {
            guard let top = signal.filter(\.isFinite).max(), top > 0.3 else { continue }
            let atTop = signal.filter { $0 == top }.count
            if atTop > signal.count / 100 { result.warnings.append("lead \(lead.rawValue) looks clipped at \(top) mV") }
        }

        let filtered = record.signals.map { Filters.bandPass($0, rate: rate) }
        // A complex cut by the record's start or end (R within 60 ms of it) is dropped: the located
        // maximum is then the part of the complex inside the record, not its R peak, and that one
        // misplaced beat moved the rate by 2 bpm in a 3 s simulated RBBB record.
        let edge = Int(0.06 * rate)
        let peaks = detectRPeaks(filtered, rate: rate).filter { $0.index >= edge && $0.index < record.sampleCount - edge }
        guard peaks.count >= 2 else { throw MeasurementError.noBeats }
        result.rPeaks = peaks.map(\.index)
        let allBeats = Array(peaks.indices)
        let searchBackShare = Double(peaks.filter(\.searchBack).count) / Double(peaks.count)

        // Rate and rhythm.
        let rr = zip(peaks.dropFirst(), peaks).map { Double($0.index - $1.index) / rate * 1000 }
        let rrMean = rr.reduce(0, +) / Double(rr.count)
        let rrSD = (rr.map { ($0 - rrMean) * ($0 - rrMean) }.reduce(0, +) / Double(rr.count)).squareRoot()
        result.rrMean = rrMean
        result.rrStandardDeviation = rrSD
        result.rrVariation = rrSD / rrMean
        result.heartRate = 60000 / rrMean
        result.irregular = rrSD / rrMean > 0.10
        let rateConfidence = min(1, Double(rr.count) / 6) * (1 - searchBackShare * 0.5)
        result.findings.append(Finding(name: "heart rate", value: 60000 / rrMean, unit: "bpm", confidence: rateConfidence,
                                       leads: record.leads, beats: allBeats, method: "60000 / mean of \(rr.count) RR intervals"))
        result.findings.append(Finding(name: "RR variation", value: rrSD / rrMean, unit: "", confidence: rateConfidence,
                                       leads: record.leads, beats: allBeats, method: "standard deviation / mean of RR"))

        // Premature beats: early, then a pause. In AF every short RR may be followed by a long
        // one, so the count is only kept when the remaining rhythm is regular.
        let sortedRR = rr.sorted(), medianRR = sortedRR[sortedRR.count / 2]
        var premature: [Int] = []
        for i in 0..<max(0, rr.count - 1) where rr[i] < 0.80 * medianRR && rr[i + 1] > 1.15 * medianRR { premature.append(i + 1) }
        let others = rr.indices.filter { i in !premature.contains(i + 1) && !premature.contains(i) }.map { rr[$0] }
        if !premature.isEmpty, others.count >= 2 {
            let m = others.reduce(0, +) / Double(others.count)
            let sd = (others.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(others.count)).squareRoot()
            if sd / m < 0.10 {
                result.prematureBeats = premature
                result.findings.append(Finding(name: "premature beats", value: Double(premature.count), unit: "beats", confidence: rateConfidence,
                                               leads: record.leads, beats: premature, method: "RR < 80 % of the median RR followed by RR > 115 %"))
            }
        }

        // Median beat.
        // 450 ms before R: room for a P wave of a first-degree AV block (PR up to ~380 ms); with
        // 300 ms, P onsets of PR > 250 ms lay outside the median beat (simulated: PR 240 for 326).
        let pre = Int(0.45 * rate), post = Int(0.65 * rate)
        let windowBeats = peaks.indices.filter { peaks[$0].index - pre >= 0 && peaks[$0].index + post < record.sampleCount }
        guard windowBeats.count >= 1 else {
            result.warnings.append("no beat has a full window for interval measurements")
            return result
        }
        let median: [[Double]] = filtered.map { lead in
            (0..<(pre + post)).map { k in Filters.median(windowBeats.map { lead[peaks[$0].index - pre + k] }) }
        }
        let beatConfidence = min(1, Double(windowBeats.count) / 5)
        let ms = { (samples: Double) in samples / rate * 1000 }

        // QRS onset and offset from the spatial velocity.
        var velocity = [Double](repeating: 0, count: pre + post - 1)
        for lead in median { for k in 0..<velocity.count { velocity[k] += abs(lead[k + 1] - lead[k]) } }
        let around = max(0, pre - Int(0.08 * rate))..<min(velocity.count, pre + Int(0.08 * rate))
        let vmax = around.map { velocity[$0] }.max() ?? 0
        // Onset: below 10 % for 10 ms, low enough to keep a small q wave. Offset: below 20 % for
        // 30 ms; at 10 % the QRS read ~11 ms longer than the simulator's wave edges on every
        // condition (the 40 Hz low-pass spreads the end), and the 30 ms hold keeps the slurred
        // terminal R' of right bundle branch block, which a 20 % threshold held 10 ms cut by
        // ~50 ms (Tools/train/eval_measurements.py: within 12 ms of the truth on 99 % of 170
        // records instead of 80 %).
        let onsetThreshold = 0.10 * vmax, onsetHold = max(1, Int(0.010 * rate))
        let offsetThreshold = 0.20 * vmax, offsetHold = max(1, Int(0.030 * rate))
        var onset = around.lowerBound, offset = around.upperBound - 1
        var k = pre
        while k > onsetHold {
            if (k - onsetHold..<k).allSatisfy({ velocity[$0] < onsetThreshold }) { onset = k; break }
            k -= 1
        }
        k = pre
        while k + offsetHold < velocity.count {
            if (k..<k + offsetHold).allSatisfy({ velocity[$0] < offsetThreshold }) { offset = k; break }
            k += 1
        }
        let qrs = ms(Double(offset - onset))
        result.qrs = qrs
        result.findings.append(Finding(name: "QRS duration", value: qrs, unit: "ms", confidence: beatConfidence, leads: record.leads,
                                       beats: windowBeats, method: "spatial velocity of the median beat: onset 10 %, offset 20 % of its peak"))

        // Baselines: the PR segment of every lead.
        let prSegment = max(0, onset - Int(0.040 * rate))..<max(1, onset - Int(0.010 * rate))
        let baseline = median.map { lead in prSegment.map { lead[$0] }.reduce(0, +) / Double(prSegment.count) }

        // T end and QT.
        // The T window and the previous beat's T end use the median RR, not the mean: with an
        // irregular rhythm (flutter with variable conduction) the median beat already holds the
        // next QRS where most beats have it, and a mean-RR window reached into it (no T end found).
        let rrSamples = Int(Filters.median(rr) / 1000 * rate)
        let tWindow = tWaveWindow(qrsOffset: offset, rPeak: pre, beatLength: pre + post, rrSamples: rrSamples, rate: rate)
        var tEndSample: Double? = nil
        if !tWindow.isEmpty {
            let candidates = [Lead.II, .V2, .V3, .V5].compactMap { record.leads.firstIndex(of: $0) }
            // The lead with the largest deviation in the T window, normally its T wave; where some
            // leads show a T wave rising out of a depressed (or raised) ST segment (`tPeak`), the
            // one with the tallest such T: elsewhere the ST segment may still be the largest.
            let peaks = candidates.map { (lead: $0, peak: tPeak(median[$0], base: baseline[$0], window: tWindow, rate: rate)!) }
            let pool = peaks.contains { $0.peak.outOfST } ? peaks.filter { $0.peak.outOfST } : peaks
            let height = { (lead: Int, at: Int) in abs(median[lead][at] - baseline[lead]) }
            let pick = pool.max { height($0.lead, $0.peak.index) < height($1.lead, $1.peak.index) }?.lead
            if let t = pick {
                // The T wave is analysed on a 20 ms moving average of the median beat: T is a slow
                // wave (nothing of it is lost), while ripples of a few µV on its flat top used to
                // end the "descent" one sample after the peak (simulated RBBB record: QT 273 ms,
                // truth 332).
                let lead = Filters.movingAverage(median[t], width: max(1, Int(0.02 * rate))), base = baseline[t]
                if let end = slopeTEnd(lead, base: base, window: tWindow, rate: rate) {
                    let tEnd = Double(end) + 0.5
                    tEndSample = tEnd
                    let qt = ms(tEnd - Double(onset))
                    let rrSeconds = rrMean / 1000
                    result.qt = qt
                    result.qtcBazett = qt / rrSeconds.squareRoot()
                    result.qtcFridericia = qt / pow(rrSeconds, 1.0 / 3.0)
                    let method = "T-wave slope flattening (25 %) on \(record.leads[t].rawValue)'s median beat"
                    result.findings.append(Finding(name: "QT interval", value: qt, unit: "ms", confidence: beatConfidence, leads: [record.leads[t]], beats: windowBeats, method: method))
                    result.findings.append(Finding(name: "QTc (Bazett)", value: result.qtcBazett!, unit: "ms", confidence: beatConfidence * rateConfidence, leads: [record.leads[t]], beats: windowBeats, method: "QT / sqrt(RR)"))
                    result.findings.append(Finding(name: "QTc (Fridericia)", value: result.qtcFridericia!, unit: "ms", confidence: beatConfidence * rateConfidence, leads: [record.leads[t]], beats: windowBeats, method: "QT / cbrt(RR)"))
                }
            }
        }

        // P wave.
        if let pLeadIndex = record.leads.firstIndex(of: .II) ?? record.leads.firstIndex(of: .V1) {
            let lead = median[pLeadIndex], base = baseline[pLeadIndex]
            // Not before the previous beat's T wave has ended.
            var earliest = onset - Int(0.40 * rate)
            if let tEnd = tEndSample {
                earliest = max(earliest, Int(tEnd) - rrSamples + Int(0.02 * rate))
            } else {
                // No T end measured: assume the previous T wave lasts as long as a QTc of 440 ms
                // allows, so the previous T is not taken for a P wave (simulated flutter record
                // with variable conduction: the previous T wave read as a "P", PR 232 ms).
                let qtEstimate = 0.44 * (Double(rrSamples) / rate).squareRoot() * rate
                earliest = max(earliest, onset - rrSamples + Int(qtEstimate) + Int(0.02 * rate))
            }
            let lo = max(0, earliest)
            let window = lo..<max(lo + 1, onset - Int(0.06 * rate))
            // Reference level: a straight line from the start of the window (the TP segment, before
            // the P wave) to the PR segment. The PR segment alone is no baseline for the P wave:
            // when the P wave runs into it (a long P, a short PR segment) the PR-segment level sits
            // on the P wave, the P "onset" search then ran back through the TP segment to the window
            // start (simulated right-axis record: PR 254 ms, truth 120).
            let startSpan = lo..<min(window.upperBound, lo + max(1, Int(0.02 * rate)))
            let startLevel = startSpan.map { lead[$0] }.reduce(0, +) / Double(startSpan.count)
            let x0 = Double(startSpan.lowerBound + startSpan.upperBound - 1) / 2
            let x1 = Double(prSegment.lowerBound + prSegment.upperBound - 1) / 2
            let reference = { (i: Int) -> Double in x1 > x0 + 1 ? startLevel + (base - startLevel) * (Double(i) - x0) / (x1 - x0) : base }
            let deviation = { (i: Int) -> Double in lead[i] - reference(i) }
            let peakIndex = window.max { abs(deviation($0)) < abs(deviation($1)) } ?? window.lowerBound
            let amplitude = abs(deviation(peakIndex))
            // Recurrence: correlation of each beat's P window with the median's.
            let template = window.map { lead[$0] - base }
            var correlations: [Double] = []
            for b in windowBeats {
                let beat = window.map { filtered[pLeadIndex][peaks[b].index - pre + $0] - base }
                correlations.append(correlation(template, beat))
            }
            let consistency = correlations.isEmpty ? 0 : correlations.reduce(0, +) / Double(correlations.count)
            // The size a P wave must reach scales with the lead's QRS: 0.05 mV for a QRS of 1.25 mV
            // or more, 4 % of the QRS below that, at least 0.015 mV. In low-voltage records
            // everything is small, P waves included (simulated low-voltage record: P of 0.025 mV
            // in II, reported absent); the beat-to-beat correlation still rejects noise.
            let qrsValues = (onset...offset).map { lead[$0] }
            let qrsSize = (qrsValues.max() ?? 0) - (qrsValues.min() ?? 0)
            let minimumP = min(0.05, max(0.015, 0.04 * qrsSize))
            // Flutter waves recur every 170-250 ms and, conducted 2:1 or 4:1, line up with the QRS
            // like P waves do. A second deflection of the same polarity at least 120 ms away from
            // the first and at least 60 % of its size means atrial waves run through the whole
            // interval: not a P wave (simulated flutter record: "P" found, PR 232 ms).
            let polarity: Double = deviation(peakIndex) >= 0 ? 1 : -1
            let away = window.filter { abs($0 - peakIndex) >= Int(0.12 * rate) }
            let second = away.map { deviation($0) * polarity }.max() ?? 0
            let repetitive = amplitude > 0 && second >= 0.6 * amplitude
            let present = amplitude > minimumP && consistency > 0.5 && !repetitive
            result.pWavePresent = present
            var pMethod = String(format: "median-beat deflection %.2f mV (needs %.2f), beat-to-beat correlation %.2f", amplitude, minimumP, consistency)
            if repetitive { pMethod += String(format: "; a second deflection of %.2f mV in the same interval (atrial waves, not a P wave)", second) }
            result.findings.append(Finding(name: "P wave", value: present ? 1 : 0, unit: "present", confidence: beatConfidence * min(1, max(0.3, abs(consistency))),
                                           leads: [record.leads[pLeadIndex]], beats: windowBeats, method: pMethod))
            if present {
                // P onset against the level before the P wave, not the line:
                // the line's far end sits on the P wave's tail when that runs into the PR segment,
                // which moved the onset late (right-axis record: PR 92 ms, truth 120).
                // The level before the P wave: the median of the 60 ms that end 80 ms before the P
                // peak (the end of the TP segment; more samples than the 20 ms at the window start,
                // so noise moves it less in low-voltage records), or that start span if there is
                // no room. The whole window from its start put the level on the previous T wave's
                // tail in slower rhythms and the onset late: PR within 12 ms of the simulator's on
                // 88 % of 170 corpus records, 96 % with the 60 ms (eval_measurements.py).
                let tpEnd = max(lo, peakIndex - Int(0.08 * rate))
                let tpSpan = max(lo, tpEnd - Int(0.06 * rate))..<tpEnd
                var preLevel = tpSpan.count >= startSpan.count ? Filters.median(tpSpan.map { lead[$0] }) : startLevel
                var searchFrom = window.lowerBound
                if tpSpan.count < startSpan.count {
                    // No TP segment (fast rates): the P wave rises out of the previous T wave's tail,
                    // often before the 20 ms margin after that T end where the window starts, so the
                    // window's first samples are on the P wave itself (simulated sinus tachycardia:
                    // PR 13 ms short). The P starts at the trough between the two waves, searched
                    // from 40 ms before the window.
                    let from = max(0, lo - Int(0.04 * rate))
                    if from < peakIndex, let trough = (from..<peakIndex).min(by: { lead[$0] * polarity < lead[$1] * polarity }) {
                        preLevel = lead[trough]
                        searchFrom = trough
                    }
                }
                let height = abs(lead[peakIndex] - preLevel)
                var pOnset = peakIndex
                while pOnset > searchFrom, abs(lead[pOnset] - preLevel) > pOnsetFraction * height { pOnset -= 1 }
                let pr = ms(Double(onset - pOnset))
                result.pr = pr
                result.findings.append(Finding(name: "PR interval", value: pr, unit: "ms", confidence: beatConfidence,
                                               leads: [record.leads[pLeadIndex]], beats: windowBeats, method: "P onset to QRS onset on the median beat"))
            } else if result.qt != nil {
                // Without P waves the rhythm is usually AF or flutter, whose f/F waves run through
                // the T wave: the slope-flattening T end can land on an F wave (simulated flutter
                // records: QT 317 ms for 254, QTc 638 ms). The QT is kept but marked uncertain.
                let uncertain: Set<String> = ["QT interval", "QTc (Bazett)", "QTc (Fridericia)"]
                result.findings = result.findings.map { f in
                    guard uncertain.contains(f.name) else { return f }
                    return Finding(name: f.name, value: f.value, unit: f.unit, confidence: min(f.confidence, 0.3), leads: f.leads, beats: f.beats,
                                   method: f.method + "; uncertain: no P wave, atrial f/F waves may hide the T end")
                }
                result.warnings.append("no P wave: atrial (f/F) waves may run through the T wave, so the QT is uncertain")
            }
        }

        // Frontal axis.
        if let i = record.leads.firstIndex(of: .I), let f = record.leads.firstIndex(of: .aVF) {
            let area = { (l: Int) in (onset...offset).map { median[l][$0] - baseline[l] }.reduce(0, +) }
            let axis = atan2(area(f), area(i)) * 180 / .pi
            result.axis = axis
            result.findings.append(Finding(name: "QRS axis", value: axis, unit: "degrees", confidence: beatConfidence, leads: [.I, .aVF],
                                           beats: windowBeats, method: "atan2 of net QRS areas in aVF and I"))
        }

        // ST deviation at J + 60 ms.
        let j60 = offset + Int(0.06 * rate)
        if j60 < pre + post {
            for (l, lead) in record.leads.enumerated() {
                let deviation = median[l][j60] - baseline[l]
                result.st[lead] = deviation
                result.findings.append(Finding(name: "ST \(lead.rawValue)", value: deviation, unit: "mV", confidence: beatConfidence, leads: [lead],
                                               beats: windowBeats, method: "median beat at J+60 ms minus the PR segment"))
            }
        }
        // QRS voltage and the V1 terminal force.
        for (l, lead) in record.leads.enumerated() {
            let complex = (onset...offset).map { median[l][$0] }
            result.qrsAmplitude[lead] = (complex.max() ?? 0) - (complex.min() ?? 0)
        }
        let limb = record.leads.filter { [.I, .II, .III, .aVR, .aVL, .aVF].contains($0) }
        let chest = record.leads.filter { [.V1, .V2, .V3, .V4, .V5, .V6].contains($0) }
        for (name, group) in [("QRS voltage (limb)", limb), ("QRS voltage (chest)", chest)] where !group.isEmpty {
            let top = group.max { result.qrsAmplitude[$0]! < result.qrsAmplitude[$1]! }!
            result.findings.append(Finding(name: name, value: result.qrsAmplitude[top]!, unit: "mV", confidence: beatConfidence, leads: [top],
                                           beats: windowBeats, method: "largest peak-to-peak QRS of the median beats"))
        }
        if let v1 = record.leads.firstIndex(of: .V1) {
            let from = max(onset, offset - Int(0.040 * rate))
            let area = (from...offset).map { median[v1][$0] - baseline[v1] }.reduce(0, +) / rate * 1000
            result.v1TerminalArea = area
            result.findings.append(Finding(name: "V1 terminal QRS", value: area, unit: "mV·ms", confidence: beatConfidence, leads: [.V1],
                                           beats: windowBeats, method: "net area of the last 40 ms of the median QRS"))
        }
        return result
    }

    /// Where the T wave is searched in the median beat: from 60 ms after the QRS offset to 0.8 of
    /// the median RR after the R peak (at least 200 ms), inside the beat. Empty when the QRS
    /// offset lies too late for that (a generated low-voltage sample whose spatial velocity stayed
    /// high long after the R peak made this range's bounds cross and stopped the program).
    static func tWaveWindow(qrsOffset: Int, rPeak: Int, beatLength: Int, rrSamples: Int, rate: Double) -> Range<Int> {
        let start = qrsOffset + Int(0.06 * rate)
        let end = min(beatLength - 1, rPeak + max(Int(0.2 * rate), Int(Double(rrSamples) * 0.8)))
        return start..<max(start, end)
    }

    /// The T wave's peak in `window` (which opens 60 ms after the QRS, in the ST segment) and the
    /// side of `base` it lies on: the largest deviation from `base`, unless the window already
    /// opens at `tSegmentShare` of that deviation (a depressed or raised ST segment is the largest
    /// deviation) and a lobe against it within `tLobeSpan` stands out by `tLaterLobe` of it from
    /// the signal that follows: that lobe is the T wave rising out of the ST segment (simulated
    /// ST depression with an upright T: the T peak was taken for the T end, QT ~50 ms short).
    /// The lobe is measured from what follows it, not from `base`: after a long ST depression the
    /// 0.5 Hz high-pass leaves the TP segment up to 0.08 mV below the PR segment.
    static func tPeak(_ lead: [Double], base: Double, window: Range<Int>, rate: Double) -> (index: Int, sign: Double, outOfST: Bool)? {
        guard !window.isEmpty else { return nil }
        let largest = window.max { abs(lead[$0] - base) < abs(lead[$1] - base) }!
        let sign: Double = lead[largest] > base ? 1 : -1
        let deviation = abs(lead[largest] - base)
        guard (lead[window.lowerBound] - base) * sign >= tSegmentShare * deviation else { return (largest, sign, false) }
        let span = largest..<min(window.upperBound, largest + Int(tLobeSpan * rate))
        let later = span.max { lead[$0] * -sign < lead[$1] * -sign }!
        let fallBack = lead[later] * -sign - (later..<span.upperBound).map { lead[$0] * -sign }.min()!
        return fallBack >= tLaterLobe * deviation ? (later, -sign, true) : (largest, sign, false)
    }

    /// T end on a lead's smoothed median beat (step 7 of `measure`): after the T wave's (`tPeak`)
    /// steepest return toward `base`, the first point where the slope has flattened to `tFlattening` of
    /// that steepest slope. Nil when the wave never returns toward the baseline.
    static func slopeTEnd(_ lead: [Double], base: Double, window: Range<Int>, rate: Double) -> Int? {
        guard let (peak, sign, _) = tPeak(lead, base: base, window: window, rate: rate) else { return nil }
        // Steepest return toward the baseline on the T wave's descent, then the first point
        // where the slope has flattened to `tFlattening` of that steepest slope: independent
        // of small baseline offsets. The descent ends where the signal turns back by more than a
        // noise tolerance (3 % of the T amplitude, at least 5 µV) from its lowest point so
        // far, so a following P wave is never taken while noise cannot stop it early.
        let tolerance = max(0.005, 0.03 * abs(lead[peak] - base))
        var descentEnd = peak, lowest = lead[peak] * sign
        var i = peak
        while i + 1 < window.upperBound {
            i += 1
            let v = lead[i] * sign
            if v < lowest { lowest = v; descentEnd = i } else if v > lowest + tolerance { break }
        }
        var steepest = peak, slope = 0.0
        for i in peak..<descentEnd {
            let d = (lead[i + 1] - lead[i]) * sign
            if d < slope { slope = d; steepest = i }
        }
        guard slope < 0 else { return nil }
        var end = steepest
        while end < descentEnd, (lead[end + 1] - lead[end]) * sign < tFlattening * slope { end += 1 }
        return end
    }

    /// T end: where the T wave's slope has flattened to this share of its steepest return. For a
    /// Gaussian-shaped T wave the slope falls to 5 % of its steepest about 3 σ past the peak, where
    /// the wave is at ~1 % of its amplitude; 15 % is reached at ~2.5 σ, where the wave is at ~5 %
    /// of its amplitude, the usual amplitude-threshold definition of T end (and the simulator's):
    /// with 5 % QT read 10-35 ms long on the simulated records (LBBB +31 ms, long QT +21 ms).
    /// 25 %: on 170 corpus records (Tools/train/eval_measurements.py) 15 % left the QT 7.5 ms long
    /// on average and within 12 ms of the truth on 53 %; 25 % gives -0.3 ms and 93 %, and the
    /// raised-cosine T waves of MeasurementTests stay within 12 ms (35 % ended a flutter record's T
    /// wave early enough that an F wave was taken for a P wave).
    static let tFlattening = 0.25
    /// A lobe against a T window's opening ST deviation is the T wave when it stands out by this
    /// share of that deviation (`tPeak`; set on the simulated ST depressions with
    /// Tools/train/eval_measurements.py).
    static let tLaterLobe = 0.35
    /// A T window that opens at this share of its largest deviation opens on that deviation's
    /// plateau: an ST segment, not a T wave (`tPeak`).
    static let tSegmentShare = 0.7
    /// Seconds after the ST segment's largest deviation in which the T wave rising out of it, and
    /// its fall back, are looked for (`tPeak`): further on come the next beat's P wave and QRS,
    /// and measured against them a small dip after an LBBB's T wave passed for a lobe (QT +80 ms).
    static let tLobeSpan = 0.25
    /// P onset: where the P deflection has fallen to this share of its height above the TP level
    /// (the usual 5 % amplitude threshold; with 10 % PR read 10-28 ms short on simulated records).
    static let pOnsetFraction = 0.05

    struct Peak {
        let index: Int
        let searchBack: Bool
    }

    /// Pan–Tompkins-class QRS detection over all leads.
    static func detectRPeaks(_ leads: [[Double]], rate: Double) -> [Peak] {
        let n = leads[0].count
        var energy = [Double](repeating: 0, count: n)
        var squared = [Double](repeating: 0, count: n)
        for lead in leads {
            let band = Filters.Biquad(lowPass: true, cutoff: 15, rate: rate).zeroPhase(Filters.Biquad(lowPass: false, cutoff: 5, rate: rate).zeroPhase(lead))
            for i in 1..<n {
                let d = band[i] - band[i - 1]
                energy[i] += d * d
                squared[i] += lead[i] * lead[i]
            }
        }
        let integrated = Filters.movingAverage(energy, width: Int(0.150 * rate))
        let refractory = Int(0.200 * rate)
        // Local maxima of the integrated signal at least a refractory period apart.
        var candidates: [Int] = []
        for i in 1..<(n - 1) where integrated[i] > integrated[i - 1] && integrated[i] >= integrated[i + 1] {
            if let last = candidates.last, i - last < refractory {
                if integrated[i] > integrated[last] { candidates[candidates.count - 1] = i }
            } else {
                candidates.append(i)
            }
        }
        let learn = Int(2 * rate)
        var signalLevel = 0.25 * (integrated.prefix(learn).max() ?? 0)
        var noiseLevel = 0.5 * integrated.prefix(learn).reduce(0, +) / Double(min(learn, n))
        var accepted: [(Int, Bool)] = []
        var rrAverage: Double? = nil
        var lastIndex = 0
        for c in candidates {
            let threshold = noiseLevel + 0.25 * (signalLevel - noiseLevel)
            // Search back: a long gap without a beat means one was missed; take the best
            // candidate above half the threshold in that gap.
            if let rr = rrAverage, Double(c - (accepted.last?.0 ?? 0)) > 1.66 * rr {
                let gap = candidates.filter { $0 > (accepted.last?.0 ?? 0) + refractory && $0 < c - refractory }
                if let best = gap.max(by: { integrated[$0] < integrated[$1] }), integrated[best] > threshold / 2 {
                    accepted.append((best, true))
                    signalLevel = 0.25 * integrated[best] + 0.75 * signalLevel
                }
            }
            if integrated[c] > threshold {
                if let last = accepted.last, c - last.0 < refractory { continue }
                accepted.append((c, false))
                signalLevel = 0.125 * integrated[c] + 0.875 * signalLevel
                if accepted.count >= 2 {
                    let recent = accepted.suffix(9)
                    let intervals = zip(recent.dropFirst(), recent).map { Double($0.0 - $1.0) }
                    rrAverage = intervals.reduce(0, +) / Double(intervals.count)
                }
            } else {
                noiseLevel = 0.125 * integrated[c] + 0.875 * noiseLevel
            }
            lastIndex = c
        }
        _ = lastIndex
        // Move each detection to the energy maximum within the 150 ms integration lag.
        let lag = Int(0.150 * rate)
        var peaks: [Peak] = []
        for (c, back) in accepted.sorted(by: { $0.0 < $1.0 }) {
            let lo = max(0, c - lag), hi = min(n - 1, c + Int(0.03 * rate))
            let r = (lo...hi).max { squared[$0] < squared[$1] } ?? c
            if let last = peaks.last, r - last.index < refractory { continue }
            peaks.append(Peak(index: r, searchBack: back))
        }
        return peaks
    }

    static func correlation(_ a: [Double], _ b: [Double]) -> Double {
        let n = Double(a.count)
        guard n > 1 else { return 0 }
        let ma = a.reduce(0, +) / n, mb = b.reduce(0, +) / n
        var sab = 0.0, saa = 0.0, sbb = 0.0
        for (x, y) in zip(a, b) { sab += (x - ma) * (y - mb); saa += (x - ma) * (x - ma); sbb += (y - mb) * (y - mb) }
        return saa > 0 && sbb > 0 ? sab / (saa * sbb).squareRoot() : 0
    }
}
