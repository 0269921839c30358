import ArgumentParser
import Foundation
import UniECG

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show a model file's metadata and tensors; --verify checks every checksum.",
        discussion: """
            Examples:
              uniecg inspect Models/tiny.uecg
              uniecg inspect Models/tiny.uecg --verify
              uniecg inspect Models/tiny.uecg --json > tiny.json
            """
    )

    @Argument(help: "A .uecg model file.")
    var file: String

    @Flag(help: "Print JSON instead of tables (arrays in full).")
    var json = false

    @Flag(help: "Decode every tensor and check its XXH64; exit 1 naming any damaged tensor.")
    var verify = false

    func run() throws {
        let model: ModelFile
        do {
            model = try ModelFile(path: file, options: .init(loadTensors: false, verifyChecksums: false))
        } catch {
            Terminal.writeError("uniecg inspect: \(file): \(error)\n")
            throw ExitCode.failure
        }
        var damaged: [(String, String)] = []
        if verify {
            let bar = ProgressBar(label: "verifying")
            for (i, tensor) in model.tensors.enumerated() {
                bar.update(fraction: Double(i) / Double(max(model.tensors.count, 1)), detail: tensor.name)
                do { try model.verifyTensor(named: tensor.name) } catch { damaged.append((tensor.name, error.message)) }
            }
            bar.finish()
        }
        if json {
            try printJSON(model, damaged: verify ? damaged : nil)
        } else {
            printTables(model)
            if verify {
                if damaged.isEmpty {
                    print("verify: all \(model.tensors.count) tensor checksums match")
                } else {
                    for (_, message) in damaged { print("verify: DAMAGED \(message)") }
                }
            }
        }
        if !damaged.isEmpty { throw ExitCode.failure }
    }

    private func printTables(_ model: ModelFile) {
        print("\(model.path): UniECG model format \(model.formatVersion.major).\(model.formatVersion.minor), \(Terminal.bytes(Int(model.fileSize))), \(model.metadataKeys.count) metadata entries, \(model.tensors.count) tensors")
        print("\nmetadata")
        let keyWidth = min(max(model.metadataKeys.map(\.count).max() ?? 0, 3), 40)
        for (key, value) in model.metadata {
            print("  \(pad(key, keyWidth))  \(pad(value.typeName, 8))  \(summary(value))")
        }
        print("\ntensors")
        let nameWidth = min(max(model.tensors.map(\.name).map(\.count).max() ?? 0, 4), 48)
        let header = "  \(pad("name", nameWidth))  \(pad("dtype", 5))  \(pad("shape", 14))  \(pad("encoding", 8))  \(lpad("stored", 10))  \(lpad("raw", 10))  \(lpad("ratio", 6))"
        print(header)
        var stored: UInt64 = 0, raw: UInt64 = 0, parameters = 0
        for t in model.tensors {
            stored += t.storedSize
            raw += t.rawSize
            parameters += t.elementCount
            let shape = t.shape.map(String.init).joined(separator: "x")
            print("  \(pad(t.name, nameWidth))  \(pad(t.dtype.rawValue, 5))  \(pad(shape, 14))  \(pad(t.encoding.rawValue, 8))  \(lpad(Terminal.bytes(Int(t.storedSize)), 10))  \(lpad(Terminal.bytes(Int(t.rawSize)), 10))  \(lpad(ratio(t.rawSize, t.storedSize), 6))")
        }
        print("  \(pad("total: \(parameters) parameters", nameWidth + 35))  \(lpad(Terminal.bytes(Int(stored)), 10))  \(lpad(Terminal.bytes(Int(raw)), 10))  \(lpad(ratio(raw, stored), 6))")
    }

    private func ratio(_ raw: UInt64, _ stored: UInt64) -> String {
        String(format: "%.2f", Double(raw) / Double(max(stored, 1)))
    }

    private func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
    }

    private func lpad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s : String(repeating: " ", count: width - s.count) + s
    }

    private func summary(_ value: MetadataValue) -> String {
        func list<T>(_ items: [T], _ show: (T) -> String) -> String {
            let head = items.prefix(4).map(show).joined(separator: ", ")
            return "\(items.count) items" + (items.isEmpty ? "" : ": \(head)\(items.count > 4 ? ", …" : "")")
        }
        switch value {
        case .bool(let v): return String(v)
        case .int(let v): return String(v)
        case .double(let v): return String(v)
        case .string(let s):
            let line = s.replacingOccurrences(of: "\n", with: "⏎")
            return line.count > 70 ? String(line.prefix(70)) + "… (\(s.utf8.count) bytes)" : line
        case .int32Array(let a): return list(a) { String($0) }
        case .int64Array(let a): return list(a) { String($0) }
        case .float32Array(let a): return list(a) { String($0) }
        case .float64Array(let a): return list(a) { String($0) }
        case .stringArray(let a): return list(a) { "\"\($0)\"" }
        }
    }

    private func printJSON(_ model: ModelFile, damaged: [(String, String)]?) throws {
        func encode(_ value: MetadataValue) -> Any {
            switch value {
            case .bool(let v): return v
            case .int(let v): return v
            case .double(let v): return v
            case .string(let v): return v
            case .int32Array(let v): return v.map { Int($0) }
            case .int64Array(let v): return v
            case .float32Array(let v): return v.map { Double($0) }
            case .float64Array(let v): return v
            case .stringArray(let v): return v
            }
        }
        var metadata: [[String: Any]] = []
        for (key, value) in model.metadata {
            metadata.append(["key": key, "type": value.typeName, "value": encode(value)])
        }
        let tensors: [[String: Any]] = model.tensors.map { t in
            ["name": t.name, "dtype": t.dtype.rawValue, "shape": t.shape, "encoding": t.encoding.rawValue,
             "offset": t.offset, "stored_bytes": t.storedSize, "raw_bytes": t.rawSize,
             "xxh64": String(format: "%016llx", t.hash)]
        }
        var root: [String: Any] = [
            "path": model.path,
            "format_version": "\(model.formatVersion.major).\(model.formatVersion.minor)",
            "file_bytes": model.fileSize,
            "metadata": metadata,
            "tensors": tensors,
        ]
        if let damaged {
            root["verify"] = ["ok": damaged.isEmpty, "damaged": damaged.map { ["tensor": $0.0, "message": $0.1] }]
        }
        let data = try JSONSerialization.data(withJSONObject: root, options: [.prettyPrinted, .sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }
}
