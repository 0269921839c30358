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

    /// Reads a float32 little-endian C-order .npy.
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
        guard header.contains("'descr': '<f4'"), header.contains("'fortran_order': False"),
              let open = header.range(of: "'shape': ("), let close = header[open.upperBound...].firstIndex(of: ")")
        else { throw UniECGError.format(".npy is not a little-endian float32 C-order array: \(header)") }
        let shape = header[open.upperBound..<close].split(separator: ",").compactMap {
            Int($0.trimmingCharacters(in: .whitespaces))
        }
        let count = shape.reduce(1, *)
        let body = start + headerLength
        guard bytes.count - body == count * 4 else {
            throw UniECGError.format(".npy holds \(bytes.count - body) data bytes, shape \(shape) needs \(count * 4)")
        }
        let values = [Float](unsafeUninitializedCapacity: count) { buffer, n in
            bytes[body...].withUnsafeBytes { raw in UnsafeMutableRawBufferPointer(buffer).copyMemory(from: raw) }
            n = count
        }
        return Array32(shape: shape, values: values)
    }
}
