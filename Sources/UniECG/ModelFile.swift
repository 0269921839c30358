import CUniECG

/// A typed metadata value (ModelFormat.md §4).
public enum MetadataValue: Equatable, Sendable {
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case int32Array([Int32])
    case int64Array([Int64])
    case float32Array([Float])
    case float64Array([Double])
    case stringArray([String])

    /// The format's name of the value type ("i64", "string[]", ...).
    public var typeName: String {
        switch self {
        case .bool: "bool"
        case .int: "i64"
        case .double: "f64"
        case .string: "string"
        case .int32Array: "i32[]"
        case .int64Array: "i64[]"
        case .float32Array: "f32[]"
        case .float64Array: "f64[]"
        case .stringArray: "string[]"
        }
    }
}

/// One entry of a model file's tensor table.
public struct TensorInfo: Sendable, Equatable {
    public let name: String
    public let dtype: DType
    public let encoding: PayloadEncoding
    /// Outermost dimension first, e.g. [out, in] for a weight matrix.
    public let shape: [Int]
    public let elementCount: Int
    public let offset: UInt64
    public let storedSize: UInt64
    public let rawSize: UInt64
    /// XXH64 of the decoded payload.
    public let hash: UInt64

    init(_ t: uniecg_tensor_info) {
        name = String(cString: t.name)
        dtype = DType(t.dtype)!  // the reader rejects unknown dtypes
        encoding = t.encoding == UNIECG_ENCODING_ZSTD ? .zstd : .raw
        shape = withUnsafeBytes(of: t.shape) { raw in
            Array(raw.bindMemory(to: UInt64.self).prefix(Int(t.rank)).map { Int($0) })
        }
        elementCount = Int(t.element_count)
        offset = t.offset
        storedSize = t.stored_size
        rawSize = t.raw_size
        hash = t.hash
    }
}

/// A .uecg model file opened for reading. Opening validates the header, metadata and tensor
/// table completely; with `loadTensors` it also maps or decompresses every payload (checking
/// its hash when `verifyChecksums`). Immutable once open, so it may be shared across threads.
public final class ModelFile: @unchecked Sendable {
    public struct Options: Sendable {
        public var loadTensors = true
        public var verifyChecksums = true
        public init(loadTensors: Bool = true, verifyChecksums: Bool = true) {
            self.loadTensors = loadTensors
            self.verifyChecksums = verifyChecksums
        }
    }

    let handle: OpaquePointer
    public let path: String
    public let formatVersion: (major: Int, minor: Int)
    public let fileSize: UInt64
    public let metadataBytes: UInt64
    public let tableBytes: UInt64
    public let tensors: [TensorInfo]
    public let metadataKeys: [String]
    private let tensorIndex: [String: Int]
    private let tensorsLoaded: Bool

    public init(path: String, options: Options = Options()) throws(UniECGError) {
        var params = uniecg_open_default_params()
        params.load_tensors = options.loadTensors
        params.verify_checksums = options.verifyChecksums
        var opened: OpaquePointer?
        try check { uniecg_model_file_open(path, params, &opened, $0) }
        handle = opened!
        self.path = path
        tensorsLoaded = options.loadTensors
        var summary = uniecg_file_summary()
        uniecg_model_file_summary(handle, &summary)
        formatVersion = (Int(summary.major), Int(summary.minor))
        fileSize = summary.file_size
        metadataBytes = summary.metadata_bytes
        tableBytes = summary.table_bytes
        var infos: [TensorInfo] = []
        infos.reserveCapacity(Int(summary.tensor_count))
        for i in 0..<summary.tensor_count {
            var t = uniecg_tensor_info()
            uniecg_model_file_tensor_at(handle, i, &t)
            infos.append(TensorInfo(t))
        }
        tensors = infos
        tensorIndex = Dictionary(uniqueKeysWithValues: infos.enumerated().map { ($1.name, $0) })
        var keys: [String] = []
        for i in 0..<summary.metadata_count {
            var e = uniecg_meta_entry()
            uniecg_model_file_meta_at(handle, i, &e)
            keys.append(String(cString: e.key))
        }
        metadataKeys = keys
    }

    deinit { uniecg_model_file_free(handle) }

    public func tensor(named name: String) -> TensorInfo? {
        tensorIndex[name].map { tensors[$0] }
    }

    /// The value of a metadata key, nil when absent.
    public func metadata(_ key: String) -> MetadataValue? {
        guard let index = metadataKeys.firstIndex(of: key) else { return nil }
        return metadataValue(at: index)
    }

    /// Every metadata entry in file order.
    public var metadata: [(key: String, value: MetadataValue)] {
        metadataKeys.indices.map { (metadataKeys[$0], metadataValue(at: $0)) }
    }

    private func metadataValue(at index: Int) -> MetadataValue {
        var e = uniecg_meta_entry()
        uniecg_model_file_meta_at(handle, UInt32(index), &e)
        let count = Int(e.count)
        switch e.type {
        case UNIECG_META_BOOL: return .bool(e.bool_value)
        case UNIECG_META_I64: return .int(e.i64_value)
        case UNIECG_META_F64: return .double(e.f64_value)
        case UNIECG_META_STRING:
            return .string(String(decoding: UnsafeRawBufferPointer(start: e.string_value, count: Int(e.string_length)), as: UTF8.self))
        case UNIECG_META_I32_ARRAY:
            return .int32Array(Array(UnsafeBufferPointer(start: e.array?.assumingMemoryBound(to: Int32.self), count: count)))
        case UNIECG_META_I64_ARRAY:
            return .int64Array(Array(UnsafeBufferPointer(start: e.array?.assumingMemoryBound(to: Int64.self), count: count)))
        case UNIECG_META_F32_ARRAY:
            return .float32Array(Array(UnsafeBufferPointer(start: e.array?.assumingMemoryBound(to: Float.self), count: count)))
        case UNIECG_META_F64_ARRAY:
            return .float64Array(Array(UnsafeBufferPointer(start: e.array?.assumingMemoryBound(to: Double.self), count: count)))
        default:
            var items: [String] = []
            items.reserveCapacity(count)
            for item in 0..<UInt64(count) {
                var pointer: UnsafePointer<CChar>?
                var length: UInt64 = 0
                uniecg_model_file_meta_string_at(handle, UInt32(index), item, &pointer, &length)
                items.append(String(decoding: UnsafeRawBufferPointer(start: pointer, count: Int(length)), as: UTF8.self))
            }
            return .stringArray(items)
        }
    }

    /// Decodes the tensor afresh and checks its XXH64; throws `.checksum` or `.compression`
    /// naming the tensor when it is damaged.
    public func verifyTensor(named name: String) throws(UniECGError) {
        guard let index = tensorIndex[name] else { throw .notFound("no tensor named '\(name)'") }
        try check { uniecg_model_file_verify_tensor(handle, UInt32(index), $0) }
    }

    /// The decoded payload bytes of a loaded tensor (valid while this file is alive).
    public func withPayload<R>(of name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        var t = uniecg_tensor_info()
        guard uniecg_model_file_tensor_find(handle, name, &t) == UNIECG_OK else {
            throw UniECGError.notFound("no tensor named '\(name)'")
        }
        guard let data = t.data else {
            throw UniECGError.state("tensor '\(name)' is not loaded (open with loadTensors)")
        }
        return try body(UnsafeRawBufferPointer(start: data, count: Int(t.raw_size)))
    }

    /// The tensor's elements as Float (q8 dequantized), row-major.
    public func floats(of name: String) throws -> [Float] {
        guard let info = tensor(named: name) else { throw UniECGError.notFound("no tensor named '\(name)'") }
        return try withPayload(of: name) { raw in
            [Float](unsafeUninitializedCapacity: info.elementCount) { buffer, count in
                _ = uniecg_to_f32(raw.baseAddress, info.dtype.c, UInt64(info.elementCount), buffer.baseAddress)
                count = info.elementCount
            }
        }
    }
}
