import Foundation

/// Reading and writing NumPy .npy files (format version 1.0, little-endian, C order).
public enum NPY {
    /// Bytes of a float32 array of `shape`.
    public static func float32(_ values: [Float], shape: [Int]) -> Data {
        precondition(values.count == shape.reduce(1, *), "values do not fill the shape")
        let dims = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': \(dims), }"
        let unpadded = 10 + header.utf8.count + 1  // magic+version+length, header, newline
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
        let length = UInt16(header.utf8.count)
        data.append(contentsOf: [UInt8(length & 0xFF), UInt8(length >> 8)])
        data.append(contentsOf: Array(header.utf8))
        values.withUnsafeBytes { data.append(contentsOf: $0) }
        return data
    }

    public struct Array32: Equatable {
        public let shape: [Int]
        public let values: [Float]
    }

    /// Reads a little-endian C-order .npy of float32, float64 or int16 as Float.
    public static func readFloat32(_ data: Data) throws -> Array32 {
        let bytes = [UInt8](data)
        guard bytes.count >= 10, bytes[0] == 0x93, Array(bytes[1..<6]) == Array("NUMPY".utf8) else {
            throw UniECGError.format("not an .npy file")
        }
        let major = bytes[6]
        let headerLength: Int, start: Int
        if major == 1 {
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            start = 10
        } else {
            guard bytes.count >= 12 else { throw UniECGError.format(".npy header truncated") }
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
            start = 12
        }
        guard start + headerLength <= bytes.count else { throw UniECGError.format(".npy header truncated") }
        let header = String(decoding: bytes[start..<start + headerLength], as: UTF8.self)
        guard header.contains("'fortran_order': False"),
              let open = header.range(of: "'shape': ("), let close = header[open.upperBound...].firstIndex(of: ")")
        else { throw UniECGError.format(".npy is not a C-order array with a shape: \(header)") }
        let width: Int
        if header.contains("'descr': '<f4'") { width = 4 }
        else if header.contains("'descr': '<f8'") { width = 8 }
        else if header.contains("'descr': '<i2'") { width = 2 }
        else { throw UniECGError.format(".npy dtype is not little-endian float32, float64 or int16: \(header)") }
        var shape: [Int] = []
        for part in header[open.upperBound..<close].split(separator: ",") {
            let text = part.trimmingCharacters(in: .whitespaces)
            if text.isEmpty { continue }
            guard let d = Int(text), d >= 0, d < 1 << 31 else { throw UniECGError.format(".npy shape '\(text)' is not a dimension") }
            shape.append(d)
        }
        var count = 1
        for d in shape {
            let (p, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow, p < 1 << 31 else { throw UniECGError.limit(".npy shape \(shape) is too large") }
            count = p
        }
        let body = start + headerLength
        guard bytes.count - body == count * width else {
            throw UniECGError.format(".npy holds \(bytes.count - body) data bytes, shape \(shape) needs \(count * width)")
        }
        let values = [Float](unsafeUninitializedCapacity: count) { buffer, n in
            bytes[body...].withUnsafeBytes { raw in
                for i in 0..<count {
                    switch width {
                    case 4: buffer[i] = raw.loadUnaligned(fromByteOffset: i * 4, as: Float.self)
                    case 8: buffer[i] = Float(raw.loadUnaligned(fromByteOffset: i * 8, as: Double.self))
                    default: buffer[i] = Float(raw.loadUnaligned(fromByteOffset: i * 2, as: Int16.self))
                    }
                }
            }
            n = count
        }
        return Array32(shape: shape, values: values)
    }
}
