import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Errors of the conversion path; each message names the file, tensor or key at fault.
public struct ConversionError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A tensor inside a safetensors file: where its bytes are and what they hold.
public struct SourceTensor: Sendable {
    public enum DType: String, Sendable { case f32 = "F32", f16 = "F16", bf16 = "BF16" }
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    /// Byte range inside the file's data section.
    public let begin: Int, end: Int
    public var elementCount: Int { shape.reduce(1, *) }
}

/// One safetensors file, mapped read-only. Layout: u64 little-endian header length N, N bytes
/// of JSON (name -> dtype, shape, data_offsets; optional "__metadata__"), then the data.
public final class SafeTensorsFile {
    public let path: String
    public let tensors: [String: SourceTensor]
    private let base: UnsafeMutableRawPointer
    private let size: Int
    private let dataStart: Int

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw ConversionError("cannot open '\(path)': \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw ConversionError("cannot stat '\(path)'") }
        size = Int(st.st_size)
        guard size >= 8 else { throw ConversionError("'\(path)' is \(size) bytes: too short for a safetensors file") }
        guard let map = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), map != MAP_FAILED else {
            throw ConversionError("cannot map '\(path)': \(String(cString: strerror(errno)))")
        }
        base = map
        do {
            let headerLength = Int(littleEndian: map.loadUnaligned(as: Int.self))
            guard headerLength > 0, headerLength <= 100_000_000, 8 + headerLength <= size else {
                throw ConversionError("'\(path)': header length \(headerLength) does not fit the \(size)-byte file")
            }
            dataStart = 8 + headerLength
            let json = Data(bytes: map + 8, count: headerLength)
            guard let header = try? JSONSerialization.jsonObject(with: json) as? [String: Any] else {
                throw ConversionError("'\(path)': header is not a JSON object")
            }
            let dataSize = size - dataStart
            var parsed: [String: SourceTensor] = [:]
            for (name, value) in header where name != "__metadata__" {
                guard let entry = value as? [String: Any], let dtypeName = entry["dtype"] as? String,
                      let shape = entry["shape"] as? [Int], let offsets = entry["data_offsets"] as? [Int], offsets.count == 2
                else { throw ConversionError("'\(path)': tensor '\(name)' has a malformed header entry") }
                guard let dtype = SourceTensor.DType(rawValue: dtypeName) else {
                    throw ConversionError("'\(path)': tensor '\(name)' has dtype \(dtypeName); only F32, F16 and BF16 are supported")
                }
                guard shape.allSatisfy({ $0 >= 0 }) else { throw ConversionError("'\(path)': tensor '\(name)' has a negative dimension") }
                var count = 1
                for d in shape {
                    let (product, overflow) = count.multipliedReportingOverflow(by: d)
                    guard !overflow else { throw ConversionError("'\(path)': tensor '\(name)' shape \(shape) overflows") }
                    count = product
                }
                let width = dtype == .f32 ? 4 : 2
                let (begin, end) = (offsets[0], offsets[1])
                guard begin >= 0, begin <= end, end <= dataSize, end - begin == count * width else {
                    throw ConversionError("'\(path)': tensor '\(name)' data_offsets \(offsets) do not match shape \(shape) \(dtypeName) inside \(dataSize) data bytes")
                }
                parsed[name] = SourceTensor(name: name, dtype: dtype, shape: shape, begin: begin, end: end)
            }
            tensors = parsed
        } catch {
            munmap(map, size)
            throw error
        }
    }

    deinit { munmap(base, size) }

    /// The tensor's bytes, valid while this file is alive.
    public func bytes(of tensor: SourceTensor) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base + dataStart + tensor.begin, count: tensor.end - tensor.begin)
    }

    /// Lets the kernel drop the tensor's pages once converted, so the converter's memory stays
    /// near one tensor rather than the whole model.
    public func release(_ tensor: SourceTensor) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (dataStart + tensor.begin) / page * page
        let end = dataStart + tensor.end
        if end > start { madvise(base + start, end - start, Int32(MADV_DONTNEED)) }
    }
}

/// The weights of a Hugging Face model directory: `model.safetensors`, or the shards listed by
/// `model.safetensors.index.json`.
public final class SafeTensorsArchive {
    public let files: [SafeTensorsFile]
    private let owner: [String: Int]

    public init(directory: String) throws {
        let fm = FileManager.default
        let single = directory + "/model.safetensors"
        let index = directory + "/model.safetensors.index.json"
        var shardNames: [String]
        if fm.fileExists(atPath: index) {
            guard let data = fm.contents(atPath: index),
                  let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let map = json["weight_map"] as? [String: String]
            else { throw ConversionError("'\(index)' has no weight_map object") }
            shardNames = Array(Set(map.values)).sorted()
        } else if fm.fileExists(atPath: single) {
            shardNames = ["model.safetensors"]
        } else {
            throw ConversionError("'\(directory)' has neither model.safetensors nor model.safetensors.index.json")
        }
        var files: [SafeTensorsFile] = []
        var owner: [String: Int] = [:]
        for name in shardNames {
            guard !name.contains("/") else { throw ConversionError("shard name '\(name)' leaves the model directory") }
            let file = try SafeTensorsFile(path: directory + "/" + name)
            for tensorName in file.tensors.keys {
                if owner[tensorName] != nil { throw ConversionError("tensor '\(tensorName)' appears in two shards") }
                owner[tensorName] = files.count
            }
            files.append(file)
        }
        self.files = files
        self.owner = owner
    }

    public var tensorNames: [String] { owner.keys.sorted() }

    public func tensor(_ name: String) -> (SafeTensorsFile, SourceTensor)? {
        guard let i = owner[name], let t = files[i].tensors[name] else { return nil }
        return (files[i], t)
    }
}
