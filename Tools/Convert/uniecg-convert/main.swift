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
            --name and --description set general.name and general.description. \
            --replace-from OTHER.uecg with --part unet --part vae takes those parts (every \
            unet.* and vae.* key and tensor) from another converted file instead, for example a \
            retrained diffusion half; the joins (aligner width, latent channels) are checked and \
            the result must load.

            Examples:
              uniecg-convert Tests/Fixtures/decoder/qwen2-bias-tied-hd80 -o tiny-qwen2.uecg
              uniecg-convert Tests/Fixtures/diffusets/small -o diffusion.uecg
              uniecg-convert ~/models/qwen2.5-0.5b -o qwen.uecg --quant none --zstd-level 3
              uniecg-convert model.uecg -o retuned.uecg --set unet.schedule.sampler=ddpm --set unet.schedule.steps=250
              uniecg-convert model.uecg -o swapped.uecg --replace-from diffusion.uecg --part unet --part vae
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

    @Option(help: "With a .uecg input: another .uecg file to take the --part parts from.")
    var replaceFrom: String?

    @Option(help: "A part (metadata and tensor prefix, such as unet or vae) to take from --replace-from (repeatable).")
    var part: [String] = []

    var retuning: Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) && !isDirectory.boolValue
    }

    func validate() throws {
        guard (1...22).contains(zstdLevel) else { throw ValidationError("--zstd-level must be 1...22") }
        if !settings.isEmpty && !retuning { throw ValidationError("--set changes a .uecg file; \(directory) is not one") }
        if (replaceFrom != nil || !part.isEmpty) && !retuning {
            throw ValidationError("--replace-from and --part change a .uecg file; \(directory) is not one")
        }
        if (replaceFrom == nil) != part.isEmpty { throw ValidationError("--replace-from and --part go together") }
    }

    func retune() throws {
        do {
            var all = try settings.map { s throws(ConversionError) in try ModelRetune.Setting(parsing: s) }
            if let name { all.append(try ModelRetune.Setting(parsing: "general.name=\(name)")) }
            if let description { all.append(try ModelRetune.Setting(parsing: "general.description=\(description)")) }
            let replacement = replaceFrom.map { ModelRetune.PartReplacement(donor: $0, parts: part) }
            let changed = try ModelRetune.copy(from: directory, to: output, settings: all, replacing: replacement,
                                               zstdLevel: zstdLevel)
            let taken = replacement.map { " (\($0.parts.joined(separator: ", ")) from \($0.donor))" } ?? ""
            print("wrote \(output): the tensors of \(directory)\(taken)" + (changed.isEmpty ? ", metadata unchanged" : ", with"))
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
