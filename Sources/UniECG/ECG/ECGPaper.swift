import Foundation

/// Draws a record on standard ECG paper as SVG: 25 mm/s, 10 mm/mV, 1 mm and 5 mm grid, the
/// 3 x 4 layout (2.5 s per column) with a 10 s lead II rhythm strip, lead labels, a 1 mV
/// calibration pulse on every row, and a caption carrying the not-for-diagnosis notice.
public enum ECGPaper {
    static let layout: [[Lead]] = [[.I, .aVR, .V1, .V4], [.II, .aVL, .V2, .V5], [.III, .aVF, .V3, .V6]]
    static let mmPerSecond = 25.0, mmPerMillivolt = 10.0
    static let rowHeight = 25.0, left = 10.0, top = 5.0

    public static func svg(_ record: ECGRecord, title: String) -> String {
        let seconds = 10.0
        let width = left + seconds * mmPerSecond + 5, rows = 4.0
        let height = top + rows * rowHeight + 17
        var s = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(fmt(width))mm" height="\(fmt(height))mm" viewBox="0 0 \(fmt(width)) \(fmt(height))">
            <rect width="100%" height="100%" fill="#fffafa"/>

            """
        // Grid: 1 mm minor lines, 5 mm major lines.
        s += "<g stroke=\"#f4b6b6\" stroke-width=\"0.08\">"
        var x = 0.0
        while x <= width { if Int(x.rounded()) % 5 != 0 { s += line(x, 0, x, height - 17) }; x += 1 }
        var y = 0.0
        while y <= height - 17 { if Int(y.rounded()) % 5 != 0 { s += line(0, y, width, y) }; y += 1 }
        s += "</g>\n<g stroke=\"#e58a8a\" stroke-width=\"0.2\">"
        x = 0
        while x <= width { s += line(x, 0, x, height - 17); x += 5 }
        y = 0
        while y <= height - 17 { s += line(0, y, width, y); y += 5 }
        s += "</g>\n"

        let strips: [(Lead, Double, Double, Double)] =  // lead, row, start s, duration s
            layout.enumerated().flatMap { row, leads in leads.enumerated().map { ($1, Double(row), Double($0) * 2.5, 2.5) } }
            + [(.II, 3, 0, 10)]
        for (lead, row, start, duration) in strips {
            let baseline = top + row * rowHeight + rowHeight / 2
            if start == 0 { s += calibration(baseline) }
            s += "<text x=\"\(fmt(left + start * mmPerSecond + 1))\" y=\"\(fmt(baseline - 8))\" font-family=\"sans-serif\" font-size=\"3\">\(lead.rawValue)</text>\n"
            guard let signal = record.signal(lead) else {
                s += "<text x=\"\(fmt(left + start * mmPerSecond + 8))\" y=\"\(fmt(baseline))\" font-family=\"sans-serif\" font-size=\"2.5\" fill=\"#888\">(not recorded)</text>\n"
                continue
            }
            s += trace(signal, rate: record.sampleRate, start: start, duration: duration, x0: left + start * mmPerSecond, baseline: baseline)
        }
        let notice = UniECGVersion.notice
        s += "<text x=\"\(fmt(left))\" y=\"\(fmt(height - 10))\" font-family=\"sans-serif\" font-size=\"3\">\(escape(title))</text>\n"
        s += "<text x=\"\(fmt(left))\" y=\"\(fmt(height - 5))\" font-family=\"sans-serif\" font-size=\"2.6\" fill=\"#a00\">25 mm/s · 10 mm/mV · \(fmt(record.sampleRate)) Hz · \(escape(notice)) Not for diagnosis.</text>\n"
        s += "</svg>\n"
        return s
    }

    static func trace(_ signal: [Float], rate: Double, start: Double, duration: Double, x0: Double, baseline: Double) -> String {
        let first = Int((start * rate).rounded()), count = Int((duration * rate).rounded())
        guard first < signal.count else { return "" }
        var path = "", pen = false
        for i in first..<min(signal.count, first + count) {
            let v = Double(signal[i])
            guard v.isFinite else { pen = false; continue }
            let px = x0 + Double(i - first) / rate * mmPerSecond
            // Tall waves may reach into the next row, as on printed ECGs, but no further.
            let py = baseline - max(-2.5, min(2.5, v)) * mmPerMillivolt
            path += (pen ? "L" : "M") + fmt(px) + " " + fmt(py)
            pen = true
        }
        return "<path d=\"\(path)\" fill=\"none\" stroke=\"#000\" stroke-width=\"0.25\" stroke-linejoin=\"round\"/>\n"
    }

    /// 1 mV for 200 ms: 10 mm tall, 5 mm wide, in the margin before each row.
    static func calibration(_ baseline: Double) -> String {
        let x = 2.0, h = mmPerMillivolt
        return "<path d=\"M\(fmt(x)) \(fmt(baseline))h1v\(fmt(-h))h5v\(fmt(h))h1\" fill=\"none\" stroke=\"#000\" stroke-width=\"0.25\"/>\n"
    }

    static func line(_ x1: Double, _ y1: Double, _ x2: Double, _ y2: Double) -> String {
        "<line x1=\"\(fmt(x1))\" y1=\"\(fmt(y1))\" x2=\"\(fmt(x2))\" y2=\"\(fmt(y2))\"/>"
    }

    static func fmt(_ v: Double) -> String {
        let r = (v * 100).rounded() / 100
        return r == r.rounded() ? String(Int(r)) : String(r)
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
