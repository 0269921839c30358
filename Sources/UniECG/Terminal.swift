import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Small helpers for command-line tools: a progress bar on stderr, byte formatting, peak memory.
public enum Terminal {
    public static func writeError(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }

    public static var stderrIsTerminal: Bool { isatty(2) != 0 }

    /// "12.3 MiB"
    public static func bytes(_ n: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(n), unit = 0
        while value >= 1024, unit < units.count - 1 { value /= 1024; unit += 1 }
        return unit == 0 ? "\(n) B" : String(format: "%.1f %@", value, units[unit])
    }

    /// Peak resident memory of this process so far, in bytes.
    public static var peakResidentBytes: Int {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return usage.ru_maxrss * 1024  // Linux reports KiB
    }
}

/// A one-line progress bar redrawn in place on a terminal; on a pipe it prints a line every 25 %.
public final class ProgressBar {
    private let label: String
    private var lastQuarter = -1
    private let interactive = Terminal.stderrIsTerminal

    public init(label: String) { self.label = label }

    public func update(fraction: Double, detail: String) {
        let f = min(max(fraction, 0), 1)
        if interactive {
            let width = 30, filled = Int(f * Double(width))
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            let shown = detail.count > 40 ? String(detail.prefix(40)) : detail
            Terminal.writeError("\r\(label) [\(bar)] \(String(format: "%3d", Int(f * 100)))% \(shown)\u{1B}[K")
        } else {
            let quarter = Int(f * 4)
            if quarter != lastQuarter {
                lastQuarter = quarter
                Terminal.writeError("\(label): \(quarter * 25)%\n")
            }
        }
    }

    public func finish() {
        if interactive { Terminal.writeError("\r\u{1B}[K") }
    }
}
