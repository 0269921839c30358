import ArgumentParser
import UniECG

@main
struct UniECGCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "uniecg",
        abstract: "UniECG — an offline ECG teaching engine. \(UniECGVersion.notice)",
        version: UniECGVersion.string,
        subcommands: [InspectCommand.self, CompleteCommand.self, LogitsCommand.self, BenchCommand.self, PlotCommand.self,
                      RecordCommand.self, MeasureCommand.self, ExplainCommand.self, GenerateCommand.self]
    )
}
