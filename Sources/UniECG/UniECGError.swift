import CUniECG

/// Every failure of the C core, mapped in one place from its status codes. The message names
/// the problem (which file, section, tensor or key) as the core reported it.
public enum UniECGError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidArgument(String)
    case io(String)
    case format(String)
    case version(String)
    case checksum(String)
    case compression(String)
    case outOfMemory(String)
    case notFound(String)
    case type(String)
    case limit(String)
    case range(String)
    case state(String)
    /// The caller stopped the work (a cancelled task or stream).
    case cancelled(String)

    init(status: uniecg_status, message: String) {
        let text = message.isEmpty ? String(cString: uniecg_status_string(status)) : message
        switch status {
        case UNIECG_ERR_IO: self = .io(text)
        case UNIECG_ERR_FORMAT: self = .format(text)
        case UNIECG_ERR_VERSION: self = .version(text)
        case UNIECG_ERR_CHECKSUM: self = .checksum(text)
        case UNIECG_ERR_COMPRESSION: self = .compression(text)
        case UNIECG_ERR_OUT_OF_MEMORY: self = .outOfMemory(text)
        case UNIECG_ERR_NOT_FOUND: self = .notFound(text)
        case UNIECG_ERR_TYPE: self = .type(text)
        case UNIECG_ERR_LIMIT: self = .limit(text)
        case UNIECG_ERR_RANGE: self = .range(text)
        case UNIECG_ERR_STATE: self = .state(text)
        case UNIECG_ERR_CANCELLED: self = .cancelled(text)
        default: self = .invalidArgument(text)
        }
    }

    init(_ error: uniecg_error) {
        var copy = error
        let message = withUnsafeBytes(of: &copy.message) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        self.init(status: error.status, message: message)
    }

    /// The message alone, without the kind.
    public var message: String {
        switch self {
        case .invalidArgument(let m), .io(let m), .format(let m), .version(let m), .checksum(let m),
             .compression(let m), .outOfMemory(let m), .notFound(let m), .type(let m), .limit(let m),
             .range(let m), .state(let m), .cancelled(let m):
            return m
        }
    }

    public var description: String { message }
}

/// Runs a C call that fills a `uniecg_error`, throwing it when the status is not OK.
@inline(__always)
func check(_ body: (UnsafeMutablePointer<uniecg_error>) -> uniecg_status) throws(UniECGError) {
    var error = uniecg_error()
    let status = body(&error)
    if status != UNIECG_OK {
        if error.status == status { throw UniECGError(error) }
        throw UniECGError(status: status, message: "")
    }
}
