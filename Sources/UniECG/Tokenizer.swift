import CUniECG

/// The model's BPE tokenizer (byte-level or SentencePiece-style), read from the file's
/// `tokenizer.*` metadata by the C core; ids are those of Hugging Face `tokenizers`.
///
/// Immutable once created, so one tokenizer may be used from several threads.
public final class Tokenizer: @unchecked Sendable {
    let handle: OpaquePointer
    public let vocabularySize: Int
    /// Beginning / end of sequence, unknown and padding ids; nil when the model has none.
    public let bosID: Int32?, eosID: Int32?, unknownID: Int32?, paddingID: Int32?
    /// Whether `encode(_:addSpecial: true)` adds BOS / EOS.
    public let addsBOS: Bool, addsEOS: Bool
    /// True for GPT-2 / Qwen2 / Llama-3 style byte-level BPE; false for SentencePiece style.
    public let isByteLevel: Bool

    public init(file: ModelFile) throws(UniECGError) {
        var created: OpaquePointer?
        try check { uniecg_tokenizer_create(file.handle, &created, $0) }
        handle = created!
        var info = uniecg_tokenizer_info()
        uniecg_tokenizer_get_info(handle, &info)
        vocabularySize = Int(info.vocab_size)
        func id(_ v: Int32) -> Int32? { v < 0 ? nil : v }
        bosID = id(info.bos_id)
        eosID = id(info.eos_id)
        unknownID = id(info.unk_id)
        paddingID = id(info.pad_id)
        addsBOS = info.add_bos
        addsEOS = info.add_eos
        isByteLevel = info.byte_level
    }

    deinit { uniecg_tokenizer_free(handle) }

    /// Token ids of `text`. `addSpecial` adds BOS/EOS as the model says; `parseSpecial` turns
    /// special tokens written in the text (`<|im_start|>`) into their ids, otherwise they are
    /// tokenized as plain text.
    public func encode(_ text: String, addSpecial: Bool = true, parseSpecial: Bool = false) throws(UniECGError)
        -> [Int32]
    {
        var utf8 = Array(text.utf8)
        utf8.append(0)
        let length = utf8.count - 1
        // Guess a capacity, and ask again with the exact count when it was too small.
        var capacity = length + 8
        while true {
            var ids = [Int32](repeating: 0, count: capacity)
            var count = 0
            var error = uniecg_error()
            let status = utf8.withUnsafeBufferPointer { bytes in
                ids.withUnsafeMutableBufferPointer { out in
                    bytes.withMemoryRebound(to: CChar.self) { chars in
                        uniecg_tokenizer_encode(handle, chars.baseAddress, length, addSpecial, parseSpecial,
                                                out.baseAddress, capacity, &count, &error)
                    }
                }
            }
            if status == UNIECG_ERR_LIMIT, count > capacity {
                capacity = count
                continue
            }
            guard status == UNIECG_OK else { throw UniECGError(error) }
            return Array(ids.prefix(count))
        }
    }

    /// The text of `ids`, exactly as Hugging Face's `decode`; `skipSpecial` drops special tokens.
    public func decode(_ ids: [Int32], skipSpecial: Bool = false) throws(UniECGError) -> String {
        var capacity = 16 * ids.count + 16
        while true {
            var buffer = [CChar](repeating: 0, count: capacity)
            var length = 0
            var error = uniecg_error()
            let status = ids.withUnsafeBufferPointer { input in
                buffer.withUnsafeMutableBufferPointer { out in
                    uniecg_tokenizer_decode(handle, input.baseAddress, input.count, skipSpecial, out.baseAddress,
                                            capacity, &length, &error)
                }
            }
            if status == UNIECG_ERR_LIMIT, length + 1 > capacity {
                capacity = length + 1
                continue
            }
            guard status == UNIECG_OK else { throw UniECGError(error) }
            return String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }

    /// Whether `id` is a special added token (`<s>`, `<|im_end|>`, ...).
    public func isSpecial(_ id: Int32) -> Bool { uniecg_tokenizer_is_special(handle, id) }

    /// The stored text of a token (`Ġthe`, `▁the`, `<0x0A>`), for display.
    public func tokenText(_ id: Int32) throws(UniECGError) -> String {
        var text: UnsafePointer<CChar>?
        var length = 0
        guard uniecg_tokenizer_token_text(handle, id, &text, &length) == UNIECG_OK, let text else {
            throw .invalidArgument("token id \(id) is outside the vocabulary of \(vocabularySize)")
        }
        return String(decoding: UnsafeRawBufferPointer(start: text, count: length), as: UTF8.self)
    }
}

/// Turns generated ids into text one token at a time, never splitting a UTF-8 character: bytes
/// of a character spread over several tokens are held back until it is complete.
/// Concatenating every `push` and the final `flush` equals `Tokenizer.decode` of the same ids.
public final class Detokenizer {
    let tokenizer: Tokenizer
    let handle: OpaquePointer

    public init(tokenizer: Tokenizer, skipSpecial: Bool = true) throws(UniECGError) {
        self.tokenizer = tokenizer
        var created: OpaquePointer?
        try check { uniecg_detokenizer_create(tokenizer.handle, skipSpecial, &created, $0) }
        handle = created!
    }

    deinit { uniecg_detokenizer_free(handle) }

    /// The text this token completes ("" while a character is incomplete).
    public func push(_ id: Int32) throws(UniECGError) -> String {
        var text: UnsafePointer<CChar>?
        var length = 0
        try check { uniecg_detokenizer_push(handle, id, &text, &length, $0) }
        return Self.string(text, length)
    }

    /// Ends the text, returning anything held back (an incomplete character becomes U+FFFD).
    public func flush() throws(UniECGError) -> String {
        var text: UnsafePointer<CChar>?
        var length = 0
        try check { uniecg_detokenizer_flush(handle, &text, &length, $0) }
        return Self.string(text, length)
    }

    public func reset() { uniecg_detokenizer_reset(handle) }

    static func string(_ text: UnsafePointer<CChar>?, _ length: Int) -> String {
        guard let text, length > 0 else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: text, count: length), as: UTF8.self)
    }
}
