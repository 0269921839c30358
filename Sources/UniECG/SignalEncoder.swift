import CUniECG
import Foundation

/// The projected tokens of one ECG: `tokens` rows of `dimension` values (row-major), ready to
/// replace the `<ecg>` placeholder rows of a prompt (`LanguageModel.evaluate(tokens:embeddings:)`).
public struct SignalEmbeddings: Sendable, Equatable {
    public let values: [Float]
    public let tokens: Int
    public let dimension: Int
    /// Limb leads computed from I and II (or two other limb leads) because the record lacked them.
    public let derivedLeads: [Lead]
    /// Samples per lead after resampling to the model's rate, and what the model takes: fewer
    /// are zero-padded, more are truncated (as GEM prepares its input).
    public let recordSamples: Int
    public let modelSamples: Int

    /// Token `t`'s embedding.
    public func row(_ t: Int) -> ArraySlice<Float> { values[(t * dimension)..<((t + 1) * dimension)] }
}

/// The ECG signal encoder of a model file (GEM's ECG-CoCa family: a 1-D patch transformer and its
/// projector), running in the C core. It prepares a record the way the file says: resampled to
/// the model's rate, leads in the model's order (missing limb leads derived where Einthoven's
/// and Goldberger's relations allow), millivolts as they are.
///
/// One encode at a time per encoder (the C encoder keeps scratch buffers); calls are serialised.
public final class SignalEncoder: @unchecked Sendable {
    public typealias Options = ComputeOptions

    public let file: ModelFile
    let handle: OpaquePointer
    let lock = NSLock()
    /// The model's input rows, in order, as the file names them (signal.leads).
    public let leadNames: [String]
    public let sampleRate: Double
    /// Samples per lead the model takes.
    public let samples: Int
    public let tokens: Int
    public let width: Int
    /// Width of each output embedding.
    public let dimension: Int
    public let kernels: KernelVariant
    public let threads: Int

    public convenience init(path: String, options: Options = Options()) throws(UniECGError) {
        try self.init(file: ModelFile(path: path), options: options)
    }

    public init(file: ModelFile, options: Options = Options()) throws(UniECGError) {
        self.file = file
        var params = uniecg_signal_encoder_default_params()
        params.n_threads = Int32(clamping: options.threads)
        params.kernels = options.kernels.c
        var created: OpaquePointer?
        try check { uniecg_signal_encoder_create(file.handle, params, &created, $0) }
        handle = created!
        var info = uniecg_signal_encoder_info()
        uniecg_signal_encoder_get_info(handle, &info)
        leadNames = (0..<info.n_leads).map { String(cString: uniecg_signal_encoder_lead_name(created, $0)) }
        sampleRate = info.sample_rate
        samples = Int(info.samples)
        tokens = Int(info.tokens)
        width = Int(info.width)
        dimension = Int(info.output_dim)
        kernels = KernelVariant(info.kernels)
        threads = Int(info.n_threads)
    }

    deinit { uniecg_signal_encoder_free(handle) }

    /// Encodes a record: resampled to the model's rate, rows in the model's lead order. Refuses a
    /// record that lacks a lead the model needs (and cannot be derived) or holds NaN or infinite
    /// samples in one, naming them.
    public func encode(_ record: ECGRecord) throws(UniECGError) -> SignalEmbeddings {
        var wanted: [Lead] = []
        for name in leadNames {
            guard let lead = Lead(name: name) else {
                throw .invalidArgument("the signal encoder takes lead '\(name)', which is not one of the 12 standard leads")
            }
            wanted.append(lead)
        }
        // Non-finite samples are refused before resampling, which would smooth them over.
        for (lead, values) in zip(record.leads, record.signals) where wanted.contains(lead) {
            if let i = values.firstIndex(where: { !$0.isFinite }) {
                throw .range("lead \(lead.rawValue) has a non-finite sample (\(values[i])) at sample \(i) (\(String(format: "%.3f", Double(i) / record.sampleRate)) s); the signal encoder needs finite millivolts")
            }
        }
        let (complete, derivedAll) = Preparation.deriveLimbLeads(record)
        let missing = wanted.filter { !complete.leads.contains($0) }
        guard missing.isEmpty else {
            throw .invalidArgument("the record lacks lead\(missing.count > 1 ? "s" : "") \(missing.map(\.rawValue).joined(separator: ", ")), which the signal encoder needs (it takes \(leadNames.joined(separator: ", ")))")
        }
        let prepared: ECGRecord
        do {
            prepared = try Preparation.resample(complete, to: sampleRate)
        } catch {
            throw .invalidArgument("cannot resample the record to \(sampleRate) Hz: \(error)")
        }
        let n = prepared.sampleCount
        guard n > 0 else { throw .invalidArgument("the record holds no samples at \(sampleRate) Hz") }
        var rows = [Float]()
        rows.reserveCapacity(wanted.count * n)
        for lead in wanted { rows += prepared.signal(lead)! }
        let values = try encode(signal: rows, samples: n).embeddings
        return SignalEmbeddings(values: values, tokens: tokens, dimension: dimension,
                                derivedLeads: derivedAll.filter { wanted.contains($0) && !record.leads.contains($0) },
                                recordSamples: n, modelSamples: samples)
    }

    /// Encodes `leadNames.count` rows of `samples` values (mV, the model's rate and lead order):
    /// the projected tokens (tokens x dimension) and the last transformer layer's tokens before
    /// the projector (tokens x width).
    public func encode(signal: [Float], samples n: Int) throws(UniECGError) -> (embeddings: [Float], hidden: [Float]) {
        guard n > 0, signal.count == leadNames.count * n else {
            throw .invalidArgument("the signal holds \(signal.count) values, \(leadNames.count) leads of \(n) samples need \(leadNames.count * n)")
        }
        var embeddings = [Float](repeating: 0, count: tokens * dimension)
        var hidden = [Float](repeating: 0, count: tokens * width)
        var error = uniecg_error()
        lock.lock()
        let status = signal.withUnsafeBufferPointer { x in
            embeddings.withUnsafeMutableBufferPointer { e in
                hidden.withUnsafeMutableBufferPointer { h in
                    uniecg_signal_encoder_encode(handle, x.baseAddress, Int64(n), e.baseAddress, h.baseAddress, &error)
                }
            }
        }
        lock.unlock()
        guard status == UNIECG_OK else { throw UniECGError(error) }
        return (embeddings, hidden)
    }
}
