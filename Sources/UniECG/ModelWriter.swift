import CUniECG

/// Writes a .uecg file tensor by tensor (ModelFormat.md). Payloads go to "<path>.partial" as
/// they are added; `finish()` writes metadata, table and header and moves the file into place.
/// A writer dropped before `finish()` leaves no file behind.
public final class ModelWriter {
    private let handle: OpaquePointer
    public let path: String

    public init(path: String, zstdLevel: Int = 9) throws(UniECGError) {
        var params = uniecg_writer_default_params()
        params.zstd_level = Int32(clamping: zstdLevel)
        var created: OpaquePointer?
        try check { uniecg_model_writer_create(path, params, &created, $0) }
        handle = created!
        self.path = path
    }

    deinit { uniecg_model_writer_free(handle) }

    private func checked(_ status: uniecg_status) throws(UniECGError) {
        guard status == UNIECG_OK else {
            throw UniECGError(status: status, message: String(cString: uniecg_model_writer_last_error(handle)))
        }
    }

    public func set(_ key: String, _ value: MetadataValue) throws(UniECGError) {
        switch value {
        case .bool(let v): try checked(uniecg_model_writer_set_bool(handle, key, v))
        case .int(let v): try checked(uniecg_model_writer_set_i64(handle, key, v))
        case .double(let v): try checked(uniecg_model_writer_set_f64(handle, key, v))
        case .string(let v):
            var s = v
            let status = s.withUTF8 { uniecg_model_writer_set_string(handle, key, $0.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) }, UInt64($0.count)) }
            try checked(status)
        case .int32Array(let v): try checked(v.withUnsafeBytes { uniecg_model_writer_set_array(handle, key, UNIECG_META_I32_ARRAY, $0.baseAddress, UInt64(v.count)) })
        case .int64Array(let v): try checked(v.withUnsafeBytes { uniecg_model_writer_set_array(handle, key, UNIECG_META_I64_ARRAY, $0.baseAddress, UInt64(v.count)) })
        case .float32Array(let v): try checked(v.withUnsafeBytes { uniecg_model_writer_set_array(handle, key, UNIECG_META_F32_ARRAY, $0.baseAddress, UInt64(v.count)) })
        case .float64Array(let v): try checked(v.withUnsafeBytes { uniecg_model_writer_set_array(handle, key, UNIECG_META_F64_ARRAY, $0.baseAddress, UInt64(v.count)) })
        case .stringArray(let strings):
            // One contiguous UTF-8 blob plus offsets, so the C call sees stable pointers.
            var blob: [UInt8] = []
            var lengths: [UInt64] = []
            lengths.reserveCapacity(strings.count)
            for s in strings {
                blob.append(contentsOf: s.utf8)
                lengths.append(UInt64(s.utf8.count))
            }
            let status = blob.withUnsafeBufferPointer { bytes -> uniecg_status in
                let base = UnsafeRawPointer(bytes.baseAddress ?? UnsafePointer(bitPattern: 1)!).assumingMemoryBound(to: CChar.self)
                var offset = 0
                let pointers: [UnsafePointer<CChar>?] = lengths.map { length in
                    defer { offset += Int(length) }
                    return base + offset
                }
                return uniecg_model_writer_set_string_array(handle, key, pointers, lengths, UInt64(strings.count))
            }
            try checked(status)
        }
    }

    /// Adds a tensor whose payload `bytes` is already in `dtype` (for q8: see `Quantization`).
    @discardableResult
    public func addTensor(name: String, dtype: DType, shape: [Int], bytes: UnsafeRawBufferPointer,
                          encoding: PayloadEncoding = .auto) throws(UniECGError) -> TensorInfo {
        let dims = shape.map { UInt64(clamping: $0) }
        var written = uniecg_tensor_info()
        let status = name.withCString { cName in
            uniecg_model_writer_add_tensor(handle, cName, dtype.c, UInt32(clamping: dims.count), dims,
                                           bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 64)!, UInt64(bytes.count),
                                           encoding.c, &written)
        }
        try checked(status)
        return name.withCString { cName in
            written.name = cName
            return TensorInfo(written)
        }
    }

    public func finish() throws(UniECGError) {
        try checked(uniecg_model_writer_finish(handle))
    }
}

/// Element conversions of the C core, for Swift callers (converter, tests).
public enum Quantization {
    /// q8 payload (ModelFormat.md §6) of `rows` x `cols` values in `dtype` (f32, f16 or bf16).
    public static func quantizeQ8(_ source: UnsafeRawBufferPointer, dtype: DType, rows: Int, cols: Int) throws(UniECGError) -> [UInt8] {
        guard let size = DType.q8.payloadSize(count: rows * cols) else {
            throw .invalidArgument("q8 needs a column count divisible by 32, got \(cols)")
        }
        guard let need = dtype.payloadSize(count: rows * cols), source.count >= need else {
            throw .invalidArgument("source holds \(source.count) bytes, \(rows)x\(cols) \(dtype) needs more")
        }
        var out = [UInt8](repeating: 0, count: size)
        var error = uniecg_error()
        let status = out.withUnsafeMutableBytes { dst in
            uniecg_quantize_q8(source.baseAddress, dtype.c, UInt64(rows), UInt64(cols), dst.baseAddress, &error)
        }
        guard status == UNIECG_OK else { throw UniECGError(error) }
        return out
    }

    public static func f16Bits(_ value: Float) -> UInt16 { uniecg_f32_to_f16(value) }
    public static func float(f16Bits bits: UInt16) -> Float { uniecg_f16_to_f32(bits) }
    public static func bf16Bits(_ value: Float) -> UInt16 { uniecg_f32_to_bf16(value) }
    public static func float(bf16Bits bits: UInt16) -> Float { uniecg_bf16_to_f32(bits) }

    /// All `count` elements of a payload in `dtype` as Float.
    public static func floats(_ payload: UnsafeRawBufferPointer, dtype: DType, count: Int) -> [Float] {
        [Float](unsafeUninitializedCapacity: count) { buffer, n in
            _ = uniecg_to_f32(payload.baseAddress, dtype.c, UInt64(count), buffer.baseAddress)
            n = count
        }
    }

    public static func xxh64(_ bytes: UnsafeRawBufferPointer, seed: UInt64 = 0) -> UInt64 {
        uniecg_xxh64(bytes.baseAddress, bytes.count, seed)
    }
}
