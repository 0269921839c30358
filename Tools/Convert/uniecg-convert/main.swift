import ArgumentParser
import Foundation
import ModelConversion
import UniECG

struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "uniecg-convert",
        abstract: "Convert a Hugging Face model directory into a UniECG .uecg model file.",
        discussion: """
            Reads config.json, model.safetensors (or the shards of model.safetensors.index.json), \
            tokenizer.json and tokenizer_config.json of a Llama or Qwen2 model, and writes one \
            .uecg file (see ModelFormat.md) holding the weights, the tokenizer and the metadata.

            ECG signal encoder: when the directory holds signal_config.json and \
            signal_encoder.safetensors (an open_clip-style 1-D ECG tower such as GEM's ECG-CoCa, \
            open_clip tensor names, plus its projector), the encoder goes into the file too; with \
            those two files and no config.json the file holds the signal encoder alone. The JSON \
            layout and the name mapping are in ModelFormat.md ("Signal encoder").

            ECG image encoder: image_config.json and image_encoder.safetensors (a Hugging Face \
            CLIPVisionModel tower, or LLaVA's with its key prefix, plus the projector) add a CLIP \
            image encoder the same way; see ModelFormat.md ("Image encoder").

            Latent diffusion (DiffuSETS family): a config.json with "unet" and/or "vae" sections \
            beside unet.safetensors / vae.safetensors holding the published tensor names (see \
            ModelFormat.md, "Latent U-Net" and "VAE"; Tools/train/export_diffusion.py writes it).

            Retuning a converted model: with a .uecg file instead of a directory, the file is \
            copied with the metadata that --set names changed (existing bool, integer, number or \
            string keys only, for example the sampling defaults unet.schedule.sampler, \
            unet.schedule.steps and unet.guidance_scale); the tensors are copied bit for bit, and \
            --name and --description set general.name and general.description.

            Examples:
              uniecg-convert Tests/Fixtures/decoder/qwen2-bias-tied-hd80 -o tiny-qwen2.uecg
              uniecg-convert Tests/Fixtures/diffusets/small -o diffusion.uecg
              uniecg-convert ~/models/qwen2.5-0.5b -o qwen.uecg --quant none --zstd-level 3
              uniecg-convert model.uecg -o retuned.uecg --set unet.schedule.sampler=ddpm --set unet.schedule.steps=250
            """
    )

    @Argument(help: "The model directory (Hugging Face decoder, signal encoder, and/or diffusion U-Net and VAE), or a .uecg file to retune with --set.")
    var directory: String

    @Option(name: .shortAndLong, help: "The .uecg file to write.")
    var output: String

    @Option(name: .customLong("quant"), help: "Weight matrices: q8 (int8, one f16 scale per 32) or none (keep the source dtype).")
    var quantization: Converter.WeightFormat = .q8

    @Option(help: "zstd compression level, 1 (fast) to 22 (small).")
    var zstdLevel: Int = 9

    @Option(help: "The model's name in its metadata (default: the directory's name).")
    var name: String?

    @Option(help: "What the model is and how it was trained (general.description).")
    var description: String?

    @Option(name: .customLong("set"), help: "KEY=VALUE: change an existing metadata key of a .uecg input (repeatable).")
    var settings: [String] = []

    var retuning: Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) && !isDirectory.boolValue
    }

    func validate() throws {
        guard (1...22).contains(zstdLevel) else { throw ValidationError("--zstd-level must be 1...22") }
        if !settings.isEmpty && !retuning { throw ValidationError("--set changes a .uecg file; \(directory) is not one") }
    }

    func retune() throws {
        do {
            var all = try settings.map { s throws(ConversionError) in try MetadataRetune.Setting(parsing: s) }
            if let name { all.append(try MetadataRetune.Setting(parsing: "general.name=\(name)")) }
            if let description { all.append(try MetadataRetune.Setting(parsing: "general.description=\(description)")) }
            let changed = try MetadataRetune.copy(from: directory, to: output, settings: all, zstdLevel: zstdLevel)
            print("wrote \(output): the tensors of \(directory)" + (changed.isEmpty ? ", metadata unchanged" : ", with"))
            for c in changed { print("  \(c.key): \(Self.shown(c.old)) -> \(Self.shown(c.new))") }
        } catch {
            Terminal.writeError("uniecg-convert: error: \(error)\n")
            throw ExitCode.failure
        }
    }

    /// The scalar values --set can change, as a user would type them.
    static func shown(_ value: MetadataValue) -> String {
        switch value {
        case .bool(let v): "\(v)"
        case .int(let v): "\(v)"
        case .double(let v): "\(v)"
        case .string(let v): v.count > 60 ? "\"\(v.prefix(57))...\"" : "\"\(v)\""
        default: value.typeName
        }
    }

    func run() throws {
        if retuning { return try retune() }
        var options = Converter.Options()
        options.weights = quantization
        options.zstdLevel = zstdLevel
        options.name = name
        options.description = description
        let bar = ProgressBar(label: "converting")
        let summary: Converter.Summary
        do {
            summary = try Converter(directory: directory, options: options).convert(to: output) { p in
                bar.update(fraction: p.bytesTotal > 0 ? Double(p.bytesDone) / Double(p.bytesTotal) : 1, detail: p.tensorName)
            }
        } catch {
            bar.finish()
            Terminal.writeError("uniecg-convert: error: \(error)\n")
            throw ExitCode.failure
        }
        bar.finish()
        print("""
            wrote \(output)
              architecture   \(summary.architecture)
              tensors        \(summary.tensors)
              parameters     \(summary.parameters)
              source bytes   \(Terminal.bytes(summary.sourceBytes))
              file bytes     \(Terminal.bytes(summary.outputBytes)) (\(String(format: "%.2f", Double(summary.sourceBytes) / Double(max(summary.outputBytes, 1))))x smaller than the source)
              time           \(String(format: "%.2f", summary.seconds)) s
              peak memory    \(Terminal.bytes(Terminal.peakResidentBytes))
            """)
    }
}

extension Converter.WeightFormat: ExpressibleByArgument {}

ConvertCommand.main()
