import CUniECG
import Foundation

/// The DiffuSETS VAE running in the C core from a .uecg file's vae.* component: a latent
/// (channels-major, scaled as the U-Net produces it) to a 12-lead ECG, and back.
///
/// One call at a time (the activations are held by the instance); calls are serialised.
public final class VAE: @unchecked Sendable {
    public typealias Options = ComputeOptions

    public let file: ModelFile
    let handle: OpaquePointer
    let lock = NSLock()
    public let signalChannels: Int, signalLength: Int
    public let latentChannels: Int, latentLength: Int
    /// Samples per second of the decoded signal.
    public let sampleRate: Double
    public let threads: Int
    public let kernels: KernelVariant
    /// The pool the VAE runs on when it was given one (kept alive as long as the VAE).
    let pool: ThreadPool?

    public var latentCount: Int { latentChannels * latentLength }

    public convenience init(path: String, options: Options = Options()) throws(UniECGError) {
        try self.init(file: ModelFile(path: path), options: options)
    }

    public convenience init(file: ModelFile, options: Options = Options()) throws(UniECGError) {
        try self.init(file: file, options: options, pool: nil)
    }

    /// With `pool`, the VAE runs on it (and `options.threads` is not used); else on its own.
    init(file: ModelFile, options: Options, pool: ThreadPool?) throws(UniECGError) {
        self.file = file
        self.pool = pool
        var params = uniecg_vae_default_params()
        params.pool = pool?.handle
        params.n_threads = Int32(clamping: options.threads)
        params.kernels = options.kernels.c
        var created: OpaquePointer?
        try check { uniecg_vae_create(file.handle, params, &created, $0) }
        handle = created!
        var info = uniecg_vae_info()
        uniecg_vae_get_info(handle, &info)
        signalChannels = Int(info.signal_channels)
        signalLength = Int(info.signal_length)
        latentChannels = Int(info.latent_channels)
        latentLength = Int(info.latent_length)
        sampleRate = info.sample_rate
        threads = Int(info.n_threads)
        kernels = KernelVariant(info.kernels)
    }

    deinit { uniecg_vae_free(handle) }

    /// The raw decoder output: signalChannels rows of signalLength samples (mV), row-major.
    public func decodeSamples(latent: [Float]) throws(UniECGError) -> [Float] {
        guard latent.count == latentCount else {
            throw .invalidArgument("a latent of \(latentChannels) x \(latentLength) = \(latentCount) values is needed, not \(latent.count)")
        }
        var out = [Float](repeating: 0, count: signalChannels * signalLength)
        lock.lock()
        defer { lock.unlock() }
        try latent.withUnsafeBufferPointer { z throws(UniECGError) in
            try out.withUnsafeMutableBufferPointer { y throws(UniECGError) in
                try check { uniecg_vae_decode(handle, z.baseAddress, y.baseAddress, $0) }
            }
        }
        return out
    }

    /// Decodes a latent into a 12-lead record in the standard lead order (DiffuSETS' order:
    /// I, II, III, aVR, aVL, aVF, V1-V6) at the model's sample rate.
    public func decode(latent: [Float]) throws(UniECGError) -> ECGRecord {
        guard signalChannels == Lead.allCases.count else {
            throw .version("the VAE produces \(signalChannels) channels; a record needs the 12 standard leads")
        }
        let samples = try decodeSamples(latent: latent)
        let rows = (0..<signalChannels).map { Array(samples[$0 * signalLength..<($0 + 1) * signalLength]) }
        do {
            return try ECGRecord(leads: Lead.allCases, signals: rows, sampleRate: sampleRate,
                                 comments: ["decoded by the DiffuSETS VAE (\(file.path))"])
        } catch {
            throw .range("the decoded record is inconsistent: \(error)")
        }
    }

    /// Encodes a record with the 12 standard leads, exactly signalLength samples each at the
    /// model's rate (resample first with Preparation.resample). `noise` (latentCount standard
    /// normals) draws a sample from the posterior; nil gives the mean. The latent is scaled.
    public func encode(_ record: ECGRecord, noise: [Float]? = nil) throws(UniECGError) -> [Float] {
        guard abs(record.sampleRate - sampleRate) <= 1e-9 * sampleRate else {
            throw .invalidArgument("the record is at \(record.sampleRate) Hz; the VAE takes \(sampleRate) Hz (resample first)")
        }
        guard record.sampleCount == signalLength else {
            throw .invalidArgument("the record has \(record.sampleCount) samples per lead; the VAE takes \(signalLength)")
        }
        var signal: [Float] = []
        signal.reserveCapacity(signalChannels * signalLength)
        for lead in Lead.allCases.prefix(signalChannels) {
            guard let row = record.signal(lead) else { throw .invalidArgument("the record lacks lead \(lead.rawValue)") }
            signal += row
        }
        return try encode(samples: signal, noise: noise)
    }

    /// Encodes signalChannels x signalLength samples (row-major, mV).
    public func encode(samples signal: [Float], noise: [Float]? = nil) throws(UniECGError) -> [Float] {
        guard signal.count == signalChannels * signalLength else {
            throw .invalidArgument("a signal of \(signalChannels) x \(signalLength) values is needed, not \(signal.count)")
        }
        if let noise, noise.count != latentCount {
            throw .invalidArgument("noise of \(latentCount) values is needed, not \(noise.count)")
        }
        var latent = [Float](repeating: 0, count: latentCount)
        lock.lock()
        defer { lock.unlock() }
        try signal.withUnsafeBufferPointer { x throws(UniECGError) in
            try latent.withUnsafeMutableBufferPointer { z throws(UniECGError) in
                if let noise {
                    try noise.withUnsafeBufferPointer { n throws(UniECGError) in
                        try check { uniecg_vae_encode(handle, x.baseAddress, n.baseAddress, z.baseAddress, nil, nil, $0) }
                    }
                } else {
                    try check { uniecg_vae_encode(handle, x.baseAddress, nil, z.baseAddress, nil, nil, $0) }
                }
            }
        }
        return latent
    }
}
