import Foundation
import ModelConversion
import Testing

/// Paths and helpers shared by the test suites.
enum Fixtures {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let directory = repository.appendingPathComponent("Tests/Fixtures")

    static func url(_ relative: String) -> URL { directory.appendingPathComponent(relative) }

    static func json(_ relative: String) throws -> Any {
        let data = try Data(contentsOf: url(relative))
        return try JSONSerialization.jsonObject(with: data)
    }

    /// One JSON object per non-empty line (the .jsonl case files the Python references write).
    static func jsonLines(_ relative: String) throws -> [[String: Any]] {
        try String(contentsOf: url(relative), encoding: .utf8).split(separator: "\n").filter { !$0.isEmpty }.map { line in
            guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                throw CocoaError(.coderReadCorrupt, userInfo: [NSDebugDescriptionErrorKey: "\(relative): a line is not a JSON object"])
            }
            return object
        }
    }

    /// A fresh directory removed when the returned object is released.
    static func temporaryDirectory() throws -> TemporaryDirectory { try TemporaryDirectory() }

    /// The built executable `name`, next to the test bundle.
    static func executable(_ name: String) throws -> URL {
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [bundle, bundle.deletingLastPathComponent()] {
            let url = candidate.appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        throw TestFailure("executable '\(name)' not found beside \(bundle.path); run `swift build` first")
    }

    /// Runs an executable, returning exit status, stdout and stderr.
    static func run(_ executable: URL, _ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
    }
}

extension Fixtures {
    /// Converts the source directory `source` with `uniecg-convert`'s converter into `output`.
    @discardableResult
    static func convert(_ source: String, weights: Converter.WeightFormat, to output: String) throws -> String {
        var options = Converter.Options()
        options.weights = weights
        _ = try Converter(directory: source, options: options).convert(to: output)
        return output
    }
}

/// How close a result is to its reference, the two measures the fixture bars use.
enum Agreement {
    /// max |got - ref| / max |ref|.
    static func maxRelative(_ got: [Float], _ ref: [Float]) -> Double {
        let scale = ref.map { abs(Double($0)) }.max() ?? 1
        return zip(got, ref).map { abs(Double($0) - Double($1)) }.max()! / max(scale, 1e-30)
    }

    /// The Pearson correlation.
    static func correlation(_ a: [Float], _ b: [Float]) -> Double {
        let n = Double(a.count)
        let ma = a.reduce(0) { $0 + Double($1) } / n, mb = b.reduce(0) { $0 + Double($1) } / n
        var ab = 0.0, aa = 0.0, bb = 0.0
        for (x, y) in zip(a, b) {
            ab += (Double(x) - ma) * (Double(y) - mb)
            aa += (Double(x) - ma) * (Double(x) - ma)
            bb += (Double(y) - mb) * (Double(y) - mb)
        }
        return ab / (aa * bb).squareRoot()
    }

    static func compare(_ got: [Float], _ ref: [Float]) -> (relative: Double, correlation: Double) {
        (maxRelative(got, ref), correlation(got, ref))
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

final class TemporaryDirectory: Sendable {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("uniecg-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
    deinit { try? FileManager.default.removeItem(at: url) }
}

/// Bit patterns parsed from the fixtures' hex strings ("0x3c00" or "3c00").
func hex<T: FixedWidthInteger>(_ text: String, as: T.Type = T.self) -> T? {
    T(text.hasPrefix("0x") ? String(text.dropFirst(2)) : text, radix: 16)
}
