import CUniECG
import Foundation
import Synchronization

/// What a generated ECG is conditioned on: DiffuSETS' condition vector
/// [text embedding (cond_dim), sex (1 male / 0 otherwise), age (years), heart rate (bpm)].
/// A scalar left nil is 0, the value it has in the null condition of guidance (all zeros).
public struct ECGCondition: Sendable, Equatable {
    public var embedding: [Float]
    public var sex: Sex?
    public var age: Double?
    public var heartRate: Double?

    public init(embedding: [Float], sex: Sex? = nil, age: Double? = nil, heartRate: Double? = nil) {
        self.embedding = embedding
        self.sex = sex
        self.age = age
        self.heartRate = heartRate
    }

    /// Splits a full condition vector (embedding, then sex, age, heart rate). The sex entry must
    /// be 1 (male) or 0 (unknown or female: the vector does not tell them apart, so nil).
    public init(vector: [Float]) throws(UniECGError) {
        guard vector.count >= 4 else {
            throw .invalidArgument("a condition vector holds an embedding and 3 scalars (sex, age, heart rate); this one has \(vector.count) values")
        }
        let d = vector.count - 3
        switch vector[d] {
        case 1: sex = .male
        case 0: sex = nil
        default: throw .invalidArgument("the condition's sex entry (index \(d)) is \(vector[d]); it must be 1 (male) or 0 (otherwise)")
        }
        embedding = Array(vector[..<d])
        age = Double(vector[d + 1])
        heartRate = Double(vector[d + 2])
    }

    /// Ages and heart rates outside these ranges are refused (they are far outside anything a
    /// model was trained on, and most likely a unit or field mix-up).
    public static let ageRange = 0.0...120.0
    public static let heartRateRange = 20.0...300.0

    /// The validated vector for a model whose embedding is `embeddingWidth` wide.
    public func vector(embeddingWidth: Int) throws(UniECGError) -> [Float] {
        guard embedding.count == embeddingWidth else {
            throw .invalidArgument("the condition embedding has \(embedding.count) values; the model takes \(embeddingWidth) (unet.cond_dim)")
        }
        if let bad = embedding.firstIndex(where: { !$0.isFinite }) {
            throw .range("the condition embedding has a non-finite value (\(embedding[bad])) at index \(bad)")
        }
        if let age {
            guard age.isFinite, Self.ageRange.contains(age) else {
                throw .range("age \(age) is outside \(Int(Self.ageRange.lowerBound))...\(Int(Self.ageRange.upperBound)) years")
            }
        }
        if let heartRate {
            guard heartRate.isFinite, Self.heartRateRange.contains(heartRate) else {
                throw .range("heart rate \(heartRate) is outside \(Int(Self.heartRateRange.lowerBound))...\(Int(Self.heartRateRange.upperBound)) bpm")
            }
        }
        return embedding + [sex == .male ? 1 : 0, Float(age ?? 0), Float(heartRate ?? 0)]
    }
}

/// The C core's samplers (see uniecg.h, "Schedulers").
public enum ECGSampler: String, Sendable, CaseIterable {
    case ddpm, ddim
    case dpmSolverPlusPlus2M = "dpmpp_2m"

    init(_ c: uniecg_scheduler_kind) {
        switch c {
        case UNIECG_SCHEDULER_DDPM: self = .ddpm
        case UNIECG_SCHEDULER_DDIM: self = .ddim
        default: self = .dpmSolverPlusPlus2M
        }
    }

    var c: uniecg_scheduler_kind {
        switch self {
        case .ddpm: UNIECG_SCHEDULER_DDPM
        case .ddim: UNIECG_SCHEDULER_DDIM
        case .dpmSolverPlusPlus2M: UNIECG_SCHEDULER_DPMPP_2M
        }
    }
}

public struct ECGGenerationOptions: Sendable {
    /// Inference steps; nil = the file's schedule (unet.schedule.steps).
    public var steps: Int?
    /// nil = the file's sampler (unet.schedule.sampler). The noise table, prediction type,
    /// clipping and eta stay the file's whatever the sampler.
    public var sampler: ECGSampler?
    /// Classifier-free guidance scale: eps_null + scale * (eps_cond - eps_null); 1 = off (one
    /// U-Net call per step instead of two). nil = the file's unet.guidance_scale, or 2 (the
    /// scale of DiffuSETS' fixtures) when the file has none.
    public var guidance: Float?
    /// The same seed, condition and options give the same ECG (bit for bit on the portable kernels).
    public var seed: UInt64 = 0
    /// Stream a decoded preview after every k-th step (not after the last: `.finished` carries
    /// it); nil = none. Each preview costs one VAE decode.
    public var previewEvery: Int?
    public init() {}
}

public struct ECGGenerationSummary: Sendable {
    public var seed: UInt64
    public var steps: Int
    public var sampler: ECGSampler
    public var guidance: Float
    /// The final latent (latent channels x latent length, scaled as the U-Net produces it).
    public var latent: [Float]
    public var samplingSeconds: Double
    public var decodingSeconds: Double
}

public enum ECGGenerationEvent: Sendable {
    /// `index` of `of` denoising steps are done (1...n, in order).
    case step(Int, of: Int)
    /// The current latent decoded after `step` of `of` steps (see `previewEvery`).
    case preview(ECGRecord, step: Int, of: Int)
    /// The last event of a generation that was not cancelled.
    case finished(ECGRecord, ECGGenerationSummary)
}

/// Generates 12-lead ECGs with the DiffuSETS latent U-Net and VAE of one .uecg file (its unet.*
/// and vae.* components), in the C core. An educational aid: the output is a synthetic ECG,
/// never a recording of anyone.
///
/// One generation at a time per generator (the U-Net holds its workspace); a second concurrent
/// call fails with `.state`.
public final class ECGGenerator: @unchecked Sendable {
    /// Threads and kernels of both the U-Net and the VAE.
    public typealias Options = ComputeOptions

    public let file: ModelFile
    let unet: OpaquePointer
    public let vae: VAE
    /// One pool for the U-Net and the VAE, which run one after the other.
    let pool: ThreadPool
    /// Width of the condition's text embedding (unet.cond_dim).
    public let embeddingWidth: Int
    /// The whole condition vector: embedding + the scalar conditions.
    public let conditionLength: Int
    public let latentChannels: Int, latentLength: Int
    public let trainSteps: Int
    /// The file's default sampler and steps.
    public let defaultSampler: ECGSampler
    public let defaultSteps: Int
    /// unet.guidance_scale, else 2.
    public let defaultGuidance: Float
    public let threads: Int
    public let kernels: KernelVariant
    /// The cancel flag of the running generation, if any.
    let running = Mutex<CancelFlag?>(nil)

    public var sampleRate: Double { vae.sampleRate }

    public convenience init(path: String, options: Options = Options()) throws(UniECGError) {
        try self.init(file: ModelFile(path: path), options: options)
    }

    public init(file: ModelFile, options: Options = Options()) throws(UniECGError) {
        // Say which half is missing before the C core reports its first missing key: a
        // generator needs both, and a decoder-only or VAE-only file is the likely mistake.
        let hasUNet = file.metadataKeys.contains { $0.hasPrefix("unet.") }
        let hasVAE = file.metadataKeys.contains { $0.hasPrefix("vae.") }
        guard hasUNet, hasVAE else {
            let missing = [hasUNet ? nil : "latent U-Net (unet.*)", hasVAE ? nil : "VAE (vae.*)"].compactMap { $0 }
            throw .notFound("\(file.path) holds no \(missing.joined(separator: " and no ")); generating an ECG needs both in one file "
                + "(convert a directory holding unet.safetensors and vae.safetensors)")
        }
        self.file = file
        pool = try ThreadPool(threads: options.threads)
        var params = uniecg_unet_default_params()
        params.pool = pool.handle
        params.kernels = options.kernels.c
        var created: OpaquePointer?
        try check { uniecg_unet_create(file.handle, params, &created, $0) }
        unet = created!
        do {
            vae = try VAE(file: file, options: options, pool: pool)
        } catch {
            uniecg_unet_free(created)
            throw error
        }
        var info = uniecg_unet_info()
        uniecg_unet_get_info(unet, &info)
        embeddingWidth = Int(info.cond_dim)
        conditionLength = Int(info.cond_length)
        latentChannels = Int(info.latent_channels)
        latentLength = Int(info.latent_length)
        trainSteps = Int(info.train_steps)
        threads = Int(info.n_threads)
        kernels = KernelVariant(info.kernels)
        var schedule = uniecg_scheduler_params()
        _ = uniecg_unet_schedule(unet, &schedule)
        defaultSampler = ECGSampler(schedule.kind)
        defaultSteps = Int(schedule.steps)
        if case .double(let scale)? = file.metadata("unet.guidance_scale"), scale.isFinite, scale >= 0 {
            defaultGuidance = Float(scale)
        } else {
            defaultGuidance = 2
        }
        // The condition layout [embedding, sex, age, heart rate] is what ECGCondition builds;
        // a U-Net with other scalar conditions would silently get the wrong meaning. (Every
        // stored property is set here, so a throw runs deinit, which frees the U-Net.)
        guard info.extra_conditions == 3, vae.latentChannels == latentChannels, vae.latentLength == latentLength,
              vae.signalChannels == Lead.allCases.count
        else {
            throw .format("\(file.path): the U-Net takes \(info.extra_conditions) scalar conditions on a \(latentChannels) x \(latentLength) latent "
                + "and the VAE gives \(vae.signalChannels) leads from a \(vae.latentChannels) x \(vae.latentLength) latent; the generator needs "
                + "3 scalar conditions (sex, age, heart rate), matching latents and the 12 standard leads")
        }
    }

    deinit { uniecg_unet_free(unet) }

    /// Stops a running generation from any thread (a stream's cancellation does this too).
    public func cancelGeneration() { running.withLock { $0?.set() } }

    /// Streams a generation: `.step` after each denoising step, then `.finished`. The work runs
    /// on its own thread; cancelling the consuming task (or dropping the stream) stops it
    /// before the next step, and the stream then ends without a record.
    public func generate(condition: ECGCondition, options: ECGGenerationOptions = ECGGenerationOptions())
        -> AsyncThrowingStream<ECGGenerationEvent, any Error>
    {
        AsyncThrowingStream<ECGGenerationEvent, any Error> { continuation in
            // A flag of this generation's own, set up before the thread starts, so a
            // cancellation that arrives early is never lost.
            let flag = CancelFlag()
            continuation.onTermination = { termination in
                if case .cancelled = termination { flag.set() }
            }
            let thread = Thread { [self] in stream(condition: condition, options: options, flag: flag, into: continuation) }
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    private func stream(condition: ECGCondition, options: ECGGenerationOptions, flag: CancelFlag,
                        into continuation: AsyncThrowingStream<ECGGenerationEvent, any Error>.Continuation)
    {
        do {
            let (record, summary) = try run(condition: condition, options: options, flag: flag, onStep: { i, n in
                _ = continuation.yield(.step(i, of: n))
            }, onPreview: { record, i, n in
                _ = continuation.yield(.preview(record, step: i, of: n))
            })
            continuation.yield(.finished(record, summary))
            continuation.finish()
        } catch .cancelled {
            continuation.finish()
        } catch {
            continuation.finish(throwing: error)
        }
    }

    /// The synchronous form: `onStep(i, n)` runs on the calling thread after step i of n.
    /// A cancellation (`cancelGeneration()`) throws `.cancelled`. (`onStep` has no default so
    /// that a call without it is the stream, never ambiguous.)
    public func generate(condition: ECGCondition, options: ECGGenerationOptions = ECGGenerationOptions(),
                         onStep: (Int, Int) -> Void) throws(UniECGError) -> ECGRecord
    {
        try run(condition: condition, options: options, flag: CancelFlag(), onStep: onStep).record
    }

    /// Like `generate(condition:options:onStep:)`, also returning the summary (latent, timings).
    public func generateWithSummary(condition: ECGCondition, options: ECGGenerationOptions = ECGGenerationOptions(),
                                    onStep: (Int, Int) -> Void = { _, _ in }) throws(UniECGError)
        -> (record: ECGRecord, summary: ECGGenerationSummary)
    {
        try run(condition: condition, options: options, flag: CancelFlag(), onStep: onStep)
    }

    /// One sample of a best-of-N generation, as the measurement code read it.
    public struct Candidate: Sendable {
        public var seed: UInt64
        /// The measured heart rate; nil when no beats could be measured.
        public var measuredRate: Double?
        /// Whether its measurements meet the criteria of the wanted finding; nil without one.
        public var showsWanted: Bool?
        /// With a wanted finding, the other findings whose criteria it meets too (ids, in
        /// ECGCriteria's order); nil without a wanted finding or when it could not be measured.
        public var extraFindings: [String]?
    }

    /// Draws `candidates` samples (seeds `options.seed`, `options.seed + 1`, ...) and keeps the
    /// best by the project's own measurements, the check a teacher would make: fewest misses of
    /// the two asks, meeting the simplified criteria (ECGCriteria) of the `wanted` finding (an
    /// id such as "first_degree_av_block" or "normal_sinus_rhythm", e.g. the unified model's
    /// plan intent) and a measured heart rate within 10 % of the condition's; among equals, with a
    /// wanted finding, the fewest other findings met as well (a teaching example of sinus
    /// bradycardia should not also show a first-degree block); then the rate nearest the
    /// condition's (relative difference; unmeasurable samples last), then the first. A small
    /// generator draws the requested rhythm and rate only some of the time; the seeds make the
    /// choice reproducible.
    /// With `stopAtFirstMatch` the draws end at the first sample that meets both asks and shows
    /// nothing else (later ones could only come nearer in rate), which saves most of the time
    /// when the generator often gets it right. `onStep` gets (step, total) over all candidates, and (total, total) at such
    /// an early end.
    public func generateBest(condition: ECGCondition, candidates: Int, options: ECGGenerationOptions = ECGGenerationOptions(),
                             wanted: String? = nil, stopAtFirstMatch: Bool = false,
                             onStep: (Int, Int) -> Void = { _, _ in }) throws(UniECGError)
        -> (record: ECGRecord, summary: ECGGenerationSummary, chosen: Int, candidates: [Candidate])
    {
        guard (1...64).contains(candidates) else { throw .invalidArgument("candidates must be 1...64, not \(candidates)") }
        if let wanted, wanted != "normal_sinus_rhythm", ECGCriteria.names[wanted] == nil {
            throw .invalidArgument("no criteria are known for the finding '\(wanted)'")
        }
        var best: (record: ECGRecord, summary: ECGGenerationSummary, index: Int, score: (Int, Int, Double))?
        var drawn: [Candidate] = []
        let flag = CancelFlag()   // one for all candidates: a cancellation between two is not lost
        for k in 0..<candidates {
            var o = options
            o.seed = options.seed &+ UInt64(k)
            let (record, summary) = try run(condition: condition, options: o, flag: flag) { i, n in
                onStep(k * n + i, candidates * n)
            }
            let m = try? Measurements.measure(record)
            let rate = m?.heartRate
            let met = m.flatMap { ECGCriteria.met(by: $0) }
            let shows = wanted.map { id in met.map { ECGCriteria.meets(id, in: $0) } ?? false }
            let extras = wanted.flatMap { id in met?.map(\.id).filter { $0 != id } }
            drawn.append(Candidate(seed: o.seed, measuredRate: rate, showsWanted: shows, extraFindings: extras))
            // Unmeasurable samples rank last; without a requested rate every measurable one ties.
            let rateError = rate.map { r in condition.heartRate.map { abs(r - $0) / $0 } ?? 0 } ?? .infinity
            let misses = (shows == false ? 1 : 0) + (rateError <= 0.10 ? 0 : 1)
            let score = (misses, wanted == nil ? 0 : extras?.count ?? Int.max, rateError)
            if best == nil || score < best!.score { best = (record, summary, k, score) }
            // No misses implies a measured rate: an unmeasurable sample has an infinite rate error.
            if stopAtFirstMatch && score.0 == 0 && score.1 == 0 {
                onStep(candidates * summary.steps, candidates * summary.steps)
                break
            }
        }
        return (best!.record, best!.summary, best!.index, drawn)
    }

    /// Carries the step callback and the cancel flag through the C progress callback's
    /// user_data (a C function pointer cannot capture).
    private final class Progress {
        let flag: CancelFlag
        let onStep: (Int, Int) -> Void
        let previewEvery: Int?
        let onPreview: ((Int, Int, UnsafePointer<Float>) -> Void)?
        init(flag: CancelFlag, onStep: @escaping (Int, Int) -> Void, previewEvery: Int?,
             onPreview: ((Int, Int, UnsafePointer<Float>) -> Void)?) {
            self.flag = flag
            self.onStep = onStep
            self.previewEvery = previewEvery
            self.onPreview = onPreview
        }
    }

    func run(condition: ECGCondition, options: ECGGenerationOptions, flag: CancelFlag,
             onStep: (Int, Int) -> Void, onPreview: ((ECGRecord, Int, Int) -> Void)? = nil) throws(UniECGError)
        -> (record: ECGRecord, summary: ECGGenerationSummary)
    {
        let cond = try condition.vector(embeddingWidth: embeddingWidth)
        if let steps = options.steps, steps < 1 { throw .invalidArgument("steps must be at least 1, not \(steps)") }
        if let k = options.previewEvery, k < 1 { throw .invalidArgument("previewEvery must be at least 1, not \(k)") }
        let guidance = options.guidance ?? defaultGuidance
        guard guidance.isFinite, guidance >= 0 else {
            throw .invalidArgument("the guidance scale must be finite and >= 0 (1 = off), not \(guidance)")
        }
        var schedule = uniecg_scheduler_params()
        let scheduleStatus = uniecg_unet_schedule(unet, &schedule)
        guard scheduleStatus == UNIECG_OK else {
            throw UniECGError(status: scheduleStatus, message: "\(file.path): the file's sampling schedule (unet.schedule.*) is unusable")
        }
        schedule.kind = (options.sampler ?? defaultSampler).c
        if let steps = options.steps { schedule.steps = Int32(clamping: steps) }
        guard running.withLock({ current in
            if current != nil { return false }
            current = flag
            return true
        }) else { throw .state("this generator is already generating; one generation at a time") }
        defer { running.withLock { $0 = nil } }

        var latent = [Float](repeating: 0, count: latentChannels * latentLength)
        let clock = ContinuousClock()
        let start = clock.now
        var error = uniecg_error()
        let latentCount = latentChannels * latentLength
        // Previews decode the latent the C loop hands to its progress callback; a failed
        // preview decode is skipped (the sample itself goes on and reports its own errors).
        let decodePreview: (Int, Int, UnsafePointer<Float>) -> Void = { [vae] step, steps, latent in
            guard let onPreview else { return }
            let values = Array(UnsafeBufferPointer(start: latent, count: latentCount))
            if var record = try? vae.decode(latent: values) {
                record.comments = ["preview after step \(step) of \(steps)", UniECGVersion.notice]
                onPreview(record, step, steps)
            }
        }
        let status = withoutActuallyEscaping(onStep) { onStep in
            let progress = Progress(flag: flag, onStep: onStep, previewEvery: onPreview == nil ? nil : options.previewEvery,
                                    onPreview: decodePreview)
            return withExtendedLifetime(progress) {
                withUnsafePointer(to: &schedule) { sp in
                    var params = uniecg_diffusion_sample_default_params()
                    params.scheduler = sp
                    params.guidance_scale = guidance
                    params.seed = options.seed
                    params.progress_user_data = Unmanaged.passUnretained(progress).toOpaque()
                    // Called before step i with (i, n) and once with (n, n) at the end: step i
                    // is done when the call for i + 1 comes. Returning true cancels.
                    params.progress = { step, steps, latent, user in
                        let progress = Unmanaged<Progress>.fromOpaque(user!).takeUnretainedValue()
                        if step > 0 { progress.onStep(Int(step), Int(steps)) }
                        if let k = progress.previewEvery, let latent, step > 0, step < steps, step % Int32(k) == 0,
                           !progress.flag.isSet {
                            progress.onPreview?(Int(step), Int(steps), latent)
                        }
                        return progress.flag.isSet
                    }
                    return cond.withUnsafeBufferPointer { c in
                        latent.withUnsafeMutableBufferPointer { out in
                            // A NULL null condition is zeros, DiffuSETS' null condition.
                            uniecg_diffusion_sample(unet, &params, c.baseAddress, nil, out.baseAddress, &error)
                        }
                    }
                }
            }
        }
        if status != UNIECG_OK {
            throw error.status == status ? UniECGError(error) : UniECGError(status: status, message: "")
        }
        let sampled = clock.now
        var record = try vae.decode(latent: latent)
        let decoded = clock.now
        let sampler = options.sampler ?? defaultSampler
        let steps = Int(schedule.steps)
        record.sex = condition.sex
        record.age = condition.age.map { Int($0.rounded()) }
        record.comments = [
            "generated by UniECG \(UniECGVersion.string) from \(URL(fileURLWithPath: file.path).lastPathComponent)",
            "seed \(options.seed), \(steps) \(sampler.rawValue) steps, guidance \(guidance)",
            UniECGVersion.notice,
        ]
        let summary = ECGGenerationSummary(seed: options.seed, steps: steps, sampler: sampler, guidance: guidance,
                                           latent: latent, samplingSeconds: (sampled - start).seconds,
                                           decodingSeconds: (decoded - sampled).seconds)
        return (record, summary)
    }
}
