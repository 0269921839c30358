import Foundation
import Testing
@testable import UniECG

/// The writer and reader through the Swift API: every dtype and encoding, every metadata type,
/// and the errors a user sees for damaged files.
@Suite struct FormatTests {
    func payload(_ dtype: DType, count: Int, seed: UInt64) -> [UInt8] {
        var state = seed
        func next() -> Float {  // xorshift, deterministic
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return Float(Int64(bitPattern: state % 2001) - 1000) / 250
        }
        let values = (0..<count).map { _ in next() }
        switch dtype {
        case .f32: return values.withUnsafeBytes { Array($0) }
        case .f16: return values.map { Quantization.f16Bits($0) }.withUnsafeBytes { Array($0) }
        case .bf16: return values.map { Quantization.bf16Bits($0) }.withUnsafeBytes { Array($0) }
        case .q8: return try! values.withUnsafeBytes { try Quantization.quantizeQ8($0, dtype: .f32, rows: count / 64, cols: 64) }
        }
    }

    @Test("every dtype and encoding round-trips byte for byte", arguments: DType.allCases)
    func roundTrip(dtype: DType) throws {
        let dir = try Fixtures.temporaryDirectory()
        let path = dir.path("model.uecg")
        let shape = [8, 64]
        var written: [String: [UInt8]] = [:]
        do {
            let writer = try ModelWriter(path: path, zstdLevel: 3)
            for (i, encoding) in [PayloadEncoding.raw, .zstd, .auto].enumerated() {
                let bytes = payload(dtype, count: 512, seed: UInt64(i + 1))
                written["t.\(encoding.rawValue)"] = bytes
                try bytes.withUnsafeBytes { _ = try writer.addTensor(name: "t.\(encoding.rawValue)", dtype: dtype, shape: shape, bytes: $0, encoding: encoding) }
            }
            try writer.finish()
        }
        let file = try ModelFile(path: path)
        #expect(file.tensors.count == 3)
        for (name, bytes) in written {
            let info = try #require(file.tensor(named: name))
            #expect(info.dtype == dtype)
            #expect(info.shape == shape)
            #expect(info.rawSize == UInt64(bytes.count))
            try file.withPayload(of: name) { raw in
                #expect(Array(raw) == bytes)
                #expect(Int(bitPattern: raw.baseAddress) % 64 == 0)
            }
        }
        #expect(file.tensor(named: "t.raw")?.encoding == .raw)
        #expect(file.tensor(named: "t.zstd")?.encoding == .zstd)
    }

    @Test("metadata of every type round-trips")
    func metadataRoundTrip() throws {
        let dir = try Fixtures.temporaryDirectory()
        let path = dir.path("meta.uecg")
        let values: [(String, MetadataValue)] = [
            ("a.bool", .bool(true)), ("a.int", .int(-42)), ("a.double", .double(1e-6)),
            ("a.string", .string("ST↑ 2 mm in II, III, aVF")), ("a.empty", .string("")),
            ("a.i32", .int32Array([1, -2, 3])), ("a.i64", .int64Array([Int64.min, 0, Int64.max])),
            ("a.f32", .float32Array([0.5, -1.25])), ("a.f64", .float64Array([])),
            ("a.strings", .stringArray(["V1–V6", "", "QTc 452 ms", "心电图"])),
        ]
        do {
            let writer = try ModelWriter(path: path)
            for (key, value) in values { try writer.set(key, value) }
            try writer.finish()
        }
        let file = try ModelFile(path: path)
        #expect(file.metadataKeys == values.map(\.0))
        for (key, value) in values { #expect(file.metadata(key) == value) }
        #expect(file.metadata("missing") == nil)
    }

    @Test("a writer dropped before finish leaves no file behind")
    func abandonedWriter() throws {
        let dir = try Fixtures.temporaryDirectory()
        let path = dir.path("abandoned.uecg")
        do {
            let writer = try ModelWriter(path: path)
            try writer.set("general.architecture", .string("llama"))
        }
        #expect(!FileManager.default.fileExists(atPath: path))
        #expect(!FileManager.default.fileExists(atPath: path + ".partial"))
    }

    @Test("writer misuse is refused with a message")
    func writerMisuse() throws {
        let dir = try Fixtures.temporaryDirectory()
        let writer = try ModelWriter(path: dir.path("misuse.uecg"))
        try writer.set("general.name", .string("x"))
        #expect(throws: UniECGError.self) { try writer.set("general.name", .string("again")) }
        #expect(throws: UniECGError.self) { try writer.set("Bad Key", .int(1)) }
        let bytes = [UInt8](repeating: 0, count: 12)
        do {
            try bytes.withUnsafeBytes { _ = try writer.addTensor(name: "w", dtype: .f32, shape: [2, 2], bytes: $0) }
            Issue.record("a payload of the wrong size was accepted")
        } catch let error as UniECGError {
            #expect(error.message.contains("need 16"))
        }
    }

    /// Writes a small valid file and returns its bytes.
    func validFile(in dir: TemporaryDirectory) throws -> (path: String, bytes: [UInt8], info: TensorInfo) {
        let path = dir.path("valid.uecg")
        let info: TensorInfo
        do {
            let writer = try ModelWriter(path: path)
            try writer.set("general.architecture", .string("demo"))
            let values = [Float](repeating: 0.25, count: 64)
            info = try values.withUnsafeBytes { try writer.addTensor(name: "w", dtype: .f32, shape: [64], bytes: $0, encoding: .raw) }
            try writer.finish()
        }
        return (path, Array(try Data(contentsOf: URL(fileURLWithPath: path))), info)
    }

    @Test("damaged files are refused with an error that names the problem")
    func damagedFiles() throws {
        let dir = try Fixtures.temporaryDirectory()
        let (_, valid, info) = try validFile(in: dir)
        func open(_ bytes: [UInt8], verify: Bool = true) -> UniECGError? {
            let path = dir.path("damaged.uecg")
            #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
            do {
                _ = try ModelFile(path: path, options: .init(loadTensors: true, verifyChecksums: verify))
                return nil
            } catch { return error }
        }
        #expect(open(valid) == nil)

        let truncated = open(Array(valid.prefix(valid.count - 10)))
        #expect(truncated?.message.contains("truncated") == true)

        var magic = valid
        magic[1] = UInt8(ascii: "X")
        #expect(open(magic) == .format("not a UniECG model file (wrong magic bytes)"))

        var flipped = valid
        flipped[Int(info.offset) + 5] ^= 0x40
        guard case .checksum(let message)? = open(flipped) else {
            Issue.record("a flipped payload byte was not reported as a checksum error")
            return
        }
        #expect(message.contains("'w'"))
        #expect(open(flipped, verify: false) == nil)

        #expect(open([])?.message.contains("shorter than") == true)
        #expect(open([UInt8](repeating: 0, count: 10))?.message.contains("shorter than") == true)
    }

    @Test("a missing file is an I/O error naming the path")
    func missingFile() {
        #expect(throws: UniECGError.io("cannot open '/nonexistent/model.uecg': No such file or directory")) {
            _ = try ModelFile(path: "/nonexistent/model.uecg")
        }
    }
}
