import CUniECG

/// Element types of tensors in a model file (ModelFormat.md §6).
public enum DType: String, Sendable, CaseIterable, Codable {
    case f32, f16, bf16, q8

    init?(_ c: uniecg_dtype) {
        switch c {
        case UNIECG_DTYPE_F32: self = .f32
        case UNIECG_DTYPE_F16: self = .f16
        case UNIECG_DTYPE_BF16: self = .bf16
        case UNIECG_DTYPE_Q8: self = .q8
        default: return nil
        }
    }

    public var c: uniecg_dtype {
        switch self {
        case .f32: UNIECG_DTYPE_F32
        case .f16: UNIECG_DTYPE_F16
        case .bf16: UNIECG_DTYPE_BF16
        case .q8: UNIECG_DTYPE_Q8
        }
    }

    /// Bytes of a payload of `count` elements, nil when it cannot hold them (q8 needs whole groups).
    public func payloadSize(count: Int) -> Int? {
        var bytes: UInt64 = 0
        guard count >= 0, uniecg_dtype_payload_size(c, UInt64(count), &bytes) == UNIECG_OK else { return nil }
        return Int(exactly: bytes)
    }
}

/// How a tensor's payload is stored.
public enum PayloadEncoding: String, Sendable, Codable {
    /// Bytes as they are, 64-byte aligned, mapped in place.
    case raw
    /// One zstd frame.
    case zstd
    /// Writer only: zstd, unless that saves less than 10 %.
    case auto

    var c: uniecg_encoding {
        switch self {
        case .raw: UNIECG_ENCODING_RAW
        case .zstd: UNIECG_ENCODING_ZSTD
        case .auto: UNIECG_ENCODING_AUTO
        }
    }
}
