import Foundation
import Testing
@testable import UniECG

@Suite struct PromptFormatTests {
    static func format(parameters: String = "rate {rate} bpm, age {age}, sex {sex}") throws -> PromptFormat {
        try PromptFormat(explainTemplate: "<|user|>\n<ecg>\n{evidence}\n{question}<|end|>\n<|assistant|>\n",
                         generateTemplate: "<|user|>\n{objective}<|end|>\n<|assistant|>\n", ecgPlaceholder: "<ecg>",
                         generationTokens: ["<g0>", "<g1>"], generationParameters: parameters, endOfTurn: "<|end|>",
                         defaultQuestion: "Explain this ECG.")
    }

    @Test("the rate, age and sex after the generation tokens are read back; anything else gives nil")
    func parameters() throws {
        let f = try Self.format()
        let p = f.parameters(in: "rate 118 bpm, age 70, sex male")
        #expect(p.sex == .male && p.age == 70 && p.heartRate == 118)
        let q = f.parameters(in: " rate 47.5 bpm, age 23, sex female trailing")
        #expect(q.sex == .female && q.age == 23 && q.heartRate == 47.5)
        let none = f.parameters(in: "I cannot draw that.")
        #expect(none.sex == nil && none.age == nil && none.heartRate == nil)
        // The order comes from the pattern, not from a fixed convention.
        let swapped = try Self.format(parameters: "{sex}, {age} years, {rate}/min")
        let s = swapped.parameters(in: "female, 64 years, 88/min")
        #expect(s.sex == .female && s.age == 64 && s.heartRate == 88)
    }

    @Test("a photo template needs the image placeholder and the question exactly once")
    func photoTemplate() throws {
        try PromptFormat.checkPhotoTemplate("<|user|>\n<image>\n{question}<|end|>\n", imagePlaceholder: "<image>")
        #expect(throws: UniECGError.format("prompt.photo_template needs prompt.image_placeholder")) {
            try PromptFormat.checkPhotoTemplate("<image>{question}", imagePlaceholder: nil)
        }
        #expect(throws: UniECGError.format("prompt.photo_template must hold {question} exactly once")) {
            try PromptFormat.checkPhotoTemplate("<image>{question}{question}", imagePlaceholder: "<image>")
        }
        #expect(throws: UniECGError.format("prompt.photo_template must hold <image> exactly once")) {
            try PromptFormat.checkPhotoTemplate("{question}", imagePlaceholder: "<image>")
        }
    }

    @Test("a template without its fields is refused, naming the field")
    func badTemplates() throws {
        #expect(throws: UniECGError.format("prompt.explain_template must hold {question} exactly once")) {
            try PromptFormat(explainTemplate: "<ecg>{evidence}", generateTemplate: "{objective}", ecgPlaceholder: "<ecg>",
                             generationTokens: ["<g>"], generationParameters: "rate {rate}", endOfTurn: "<e>", defaultQuestion: "q")
        }
        #expect(throws: UniECGError.format("prompt.generate_template must hold {objective} exactly once")) {
            try PromptFormat(explainTemplate: "<ecg>{evidence}{question}", generateTemplate: "no field", ecgPlaceholder: "<ecg>",
                             generationTokens: ["<g>"], generationParameters: "rate {rate}", endOfTurn: "<e>", defaultQuestion: "q")
        }
    }
}
