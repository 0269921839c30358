"""Golden fixtures for the C tokenizer, from Hugging Face `tokenizers` (the oracle).

For each fixture tokenizer it writes, under Tests/Fixtures/tokenizer/:
  - <name>.meta.txt   the tokenizer.* metadata that uniecg-convert writes into a model file
                      (a Python port of Tools/Convert/ModelConversion/TokenizerExport.swift);
                      CRuntime/tests/test_tokenizer.c turns it into a tokenizer-only .uecg;
  - <name>.cases.txt  one line per test string (at least 500):
                      text TAB ids TAB ids_special TAB ids_literal TAB decoded TAB decoded_skip
                        ids           encode(text, add_special_tokens=False)
                        ids_special   encode(text, add_special_tokens=True), or "+" when that is
                                      [bos if add_bos] + ids + [eos if add_eos] (checked here)
                        ids_literal   the same with encode_special_tokens=True (special tokens in
                                      the text are plain text), or "=" when equal to ids
                        decoded       decode(ids), or "%=" when it equals text
                        decoded_skip  decode(ids, skip_special_tokens=True), or "%=" when equal
                                      to decoded (no escaped string can be "%=")
  - <name>.decode.txt random id sequences (byte tokens, specials, anything):
                      ids TAB decode(ids) TAB decode(ids, skip_special_tokens=True)
Strings are UTF-8 with the bytes < 0x20, 0x7F and '%' written as %XX; ids are space-separated.

Fixture tokenizers:
  tiny-llama, tiny-qwen2  Tests/Fixtures/models/<name>/ (the converter fixtures);
  large-bytelevel         a byte-level BPE (Llama 3 split pattern, vocab ~4000) trained here on
                          generated text, saved as Tests/Fixtures/tokenizer/large-bytelevel/;
  gpt2-bytelevel          the decoder fixtures' tokenizer (ByteLevel with the GPT-2 regex), on the
                          hand-written strings only.

Run from the repository root:
  /opt/uniecg-venv/bin/python Tools/reference/make_tokenizer_fixtures.py [--models DIR]
Deterministic: fixed seeds.
"""
import argparse
import json
import os
import random
import re

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "tokenizer")

QWEN2_PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
LLAMA3_PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""

# ------------------------------------------------------------------------------------------
# Text

ECG = [
    "QTc 452 ms", "V1–V6", "ST↑ 2 mm in II, III, aVF", "PR 0.18 s", "≥ 120 ms", "μV", "µV", "QRS ≤ 0.12 s",
    "RR 800 ms → HR 75 bpm", "ST↓ 1 mm V4–V6", "T-wave inversion in V1-V3", "aVR", "aVL", "I, II, III",
    "Sinus rhythm at 72 bpm with a normal axis.", "Atrial fibrillation: irregularly irregular RR intervals, no P waves.",
    "Right bundle branch block: rsR' in V1 and a wide S wave in I and V6.", "The PR interval is 0.22 s: first-degree AV block.",
    "Low voltage: limb-lead QRS amplitudes below 0.5 mV.", "QTc = QT / √RR (Bazett)", "Axis −30° to +90°",
    "25 mm/s, 10 mm/mV", "Δ-wave (WPW)", "Mobitz I (Wenckebach)", "2:1 AV block", "HR ≈ 300 / large squares",
    "ST elevation ≥ 1 mm in ≥ 2 contiguous leads", "U waves ± hypokalaemia", "QTc 500 ms ⚠️", "P-pulmonale > 2.5 mm",
]

BASE = [
    "", " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "\r", " \n ", "\t\t", " \t\n\r ", "a", "A", "z", "0", "9", ".",
    "hello", "Hello", "HELLO", " hello", "hello ", "  hello  ", "hello world", "Hello, world!", "hello\nworld",
    "hello\r\nworld", "hello\tworld", "hello  world", "hello   world", "hello \n world", "line1\n\nline2\n\n\nline3",
    "trailing spaces   ", "   leading spaces", "a b c d e f g", "The quick brown fox jumps over the lazy dog.",
    "it's", "It's", "IT'S", "we'll", "We'LL", "they're", "I've", "I'm", "you'd", "don't", "DON'T", "can't",
    "'s", "'S", "''s", "'ll go", "rock'n'roll", "O'Neill's", "it'ſ", "'K", "x'Ks", "l'été", "’s curly",
    "café", "naïve", "Ångström", "résumé", "Crème brûlée", "façade", "Øresund", "straße", "STRASSE", "İstanbul",
    "cafe\u0301", "A\u030a", "e\u0301\u0300", "\u0301a", "o\u0308\u0304", "\u1100\u1161\u11a8", "\u1100\u1161",
    "Ko\u0308ln", "n\u0303", "\u212b", "\u2126", "\u00c5", "\u1e9b\u0323", "q\u0307\u0323", "\uac00\u11a8",
    "Tiếng Việt có dấu", "Ελληνικά κείμενα", "Русский текст", "العربية", "עברית", "हिन्दी पाठ", "ภาษาไทย",
    "中文文本测试", "日本語のテキスト", "ひらがなとカタカナ", "한국어 텍스트", "漢字かなまじり文", "你好，世界！",
    "心电图显示窦性心律。", "心電図：洞調律、心拍数72回/分", "심전도 판독", "ECG心电图 test テスト 테스트",
    "😀", "😀😀😀", "👍🏽", "👍🏿 ok", "👨‍👩‍👧‍👦", "👩🏽‍⚕️", "🏳️‍🌈", "🇫🇷🇩🇪", "1️⃣", "❤️", "❤", "✅ done",
    "🫀 heart", "💓💔", "emoji😀in😀text", "🧑‍💻 coding", "a🏽", "\u200d", "\ufe0f",
    "1234567890", "3.14159", "1,000,000", "12345678901234567890", "0.000001", "-42", "+7", "1e-3", "2024-05-17",
    "12:30:45", "v1.2.3", "٣٤٥", "①②③", "Ⅻ", "½", "²³", "100%", "$19.99", "€10", "£5", "¥100", "#1", "No. 5",
    "!!!", "...", "…", "—", "–", "-", "«guillemets»", "“quoted”", "‘single’", "(a)", "[1]", "{x}", "@#$%^&*",
    "<>", "a<b>c", "x=y+z", "a/b\\c", "|pipe|", "~tilde~", "`code`", "__init__", "snake_case_name", "camelCaseName",
    "http://example.com/path?q=1&r=2", "user@example.com", "C:\\Windows\\System32", "#include <stdio.h>",
    "def f(x):\n    return x + 1\n", "int main(void) { return 0; }", "if (a && b) || !c:", "x += 1; y -= 2;",
    "\x00", "\x01\x02", "\x7f", "\u0085", "\u00a0", "\u00a0\u00a0", "a\u00a0b", "\u1680", "\u2003", "\u3000",
    "\u2028", "\u2029", "\u200b", "\ufeff", "\u00ad", "\ue000", "\uffff", "\U0010ffff", "\U0001d11e", "\u0378",
    "\U000105c0", "\u0019", "a\u000bb", "a\u000cb", "\u3000text\u3000", "tab\tseparated\tvalues", "a \u00a0 b",
    "<s>", "</s>", "<unk>", "<s>hello</s>", "<s> hello", "hello</s>", "<|endoftext|>", "<|im_start|>", "<|im_end|>",
    "<|im_start|>user\nWhat is a normal QTc?<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>system\nYou teach ECG reading.<|im_end|>\n<|im_start|>user\nExplain ST↑ 2 mm in II, III, aVF<|im_end|>",
    "<|im_start|><|im_end|>", "<|im_start", "im_start|>", "<|im_start|>x<|im_end|>y<|endoftext|>", "<<|im_end|>>",
    "<|begin_of_text|>Hi", "<|end_of_text|>", "<ecg>", "<ecg>QTc</ecg>", "text <ecg> text", "<s>[INST] hi [/INST]",
    "<0x41>", "<0xFF>", "▁", "▁▁", "▁hello", "Ġhello", "Ċ", "a▁b",
    "'ß", "'ſT'RE", "\r\n\r\n", " \r\n", "a\r\nb", "!!!\n\n", " ?!\r\n", "1 2  3", "x\u00a0\u00a0y", "\u3000\u3000a",
]


def random_strings(rng, count):
    pools = [
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789", " ", "  \t\n\r", ".,;:!?'\"()-[]{}<>/\\@#%&*+=_|~^`$",
        "éèêëàâäôöûüçñÅåØøßÉÈ", "αβγδεζηθλμπσωΔΣΩ", "абвгдежзийклмнопрстуфхцчшщыэюя", "一二三四五六七八九十心电图窦性律",
        "あいうえおかきくけこアイウエオ", "가나다라마바사아자차카타파하", "😀😁😂🤣😃😄👍👎🏽🏿❤️‍🔥", "\u0300\u0301\u0302\u0308\u0323\u200d\ufe0f",
        "→←↑↓≥≤±×÷√∞µμ°–—…“”‘’«»€£¥", "\u00a0\u3000\u2003\u2009\u200b\u0085", "٠١٢٣٤٥٦٧٨٩①②Ⅻ½",
        "'s't're've'm'll'd", "<|im_start|><|im_end|><s></s><unk>",
    ]
    out = []
    for _ in range(count):
        n = rng.randint(1, 24)
        s = []
        while len(s) < n:
            pool = rng.choice(pools)
            if pool.startswith("'s") or pool.startswith("<|"):
                chunk = rng.choice(["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL"] if pool.startswith("'")
                                   else ["<|im_start|>", "<|im_end|>", "<s>", "</s>", "<unk>", "<|endoftext|>"])
                s.append(chunk)
            else:
                s.extend(rng.choice(pool) for _ in range(rng.randint(1, 6)))
        out.append("".join(s))
    return out


def long_strings():
    para = " ".join(ECG[14:24]) + "\n"
    return [
        para * 3,                      # ~1.2 KB of prose
        " " * 300 + "x",
        "\n" * 50,
        "\t \n" * 40,
        "9" * 500,
        "a" * 400,
        "ab" * 200,
        "😀" * 50,
        "心电图" * 60,
        "word " * 120,
        "x" + " " * 50 + "y" + "\n" * 3 + " " * 7 + "z",
    ]


def test_strings():
    rng = random.Random(1234)
    strings = list(BASE) + list(ECG) + long_strings()
    # every ECG phrase in context
    for phrase in ECG[:14]:
        strings.append(f"The report says: {phrase}.")
        strings.append(f"{phrase}\n")
    strings += random_strings(rng, 230)
    seen, unique = set(), []
    for s in strings:
        if s not in seen:
            seen.add(s)
            unique.append(s)
    return unique


def fill(template, values):
    return re.sub(r"\{([a-i])\}", lambda m: str(values[m.group(1)]), template)


def training_corpus(rng, target_bytes=300_000):
    """Varied generated text: ECG prose with numbers, multilingual lines, code, emoji."""
    subjects = ["Sinus rhythm", "Atrial flutter", "Atrial fibrillation", "Sinus bradycardia", "Sinus tachycardia",
                "First-degree AV block", "Left bundle branch block", "Right bundle branch block", "Ventricular tachycardia",
                "Junctional rhythm", "Inferior STEMI", "Anterior STEMI", "Pericarditis", "Hyperkalaemia", "Long QT"]
    findings = ["QTc {a} ms", "PR {b} s", "QRS {c} ms", "HR {d} bpm", "ST↑ {e} mm in II, III, aVF", "ST↓ {e} mm in V4–V6",
                "axis {f}°", "T waves inverted in V1–V{g}", "P waves {h} μV", "RR {i} ms", "≥ {c} ms", "delta wave"]
    multilingual = ["Le rythme sinusal est régulier à {d} bpm.", "Der QTc-Wert beträgt {a} ms.", "El intervalo PR mide {b} s.",
                    "心电图显示窦性心律，心率{d}次/分。", "心電図は洞調律で、QTcは{a}ミリ秒です。", "심전도는 동리듬이며 심박수는 {d}회입니다.",
                    "ЭКГ: синусовый ритм, ЧСС {d} уд/мин.", "Ο ρυθμός είναι φλεβοκομβικός.", "إيقاع جيبي طبيعي", "नाड़ी {d} प्रति मिनट",
                    "Nhịp xoang đều, tần số {d} lần/phút.", "It's {d} bpm; we'll recheck — they're fine, I'm sure."]
    code = ["def qtc(qt, rr):\n    return qt / rr ** 0.5\n", "for (int i = 0; i < n; i++) { sum += x[i]; }\n",
            "if hr > 100:\n\tprint('tachycardia')\n", "{\"lead\": \"V{g}\", \"mv\": {e}}\n", "<ecg rate=\"{d}\"/>\n"]
    emoji = ["❤️", "🫀", "💓", "👍🏽", "👨‍⚕️", "⚠️", "✅", "📈", "😀"]
    # a Zipf-distributed lexicon of pseudo-words, so that BPE has thousands of merges to learn
    onsets = ["", "b", "c", "d", "f", "g", "h", "l", "m", "n", "p", "r", "s", "t", "v", "w", "br", "cl", "st", "tr",
              "ch", "sh", "th", "pr", "gr", "sp", "k", "z", "j", "qu"]
    vowels = ["a", "e", "i", "o", "u", "ea", "io", "ou", "ai", "y", "é", "ä", "ö"]
    codas = ["", "", "n", "r", "s", "t", "l", "m", "nd", "st", "ng", "ck", "x", "rt", "ph"]
    lexicon = sorted({"".join(rng.choice(onsets) + rng.choice(vowels) + rng.choice(codas)
                              for _ in range(rng.randint(1, 4))) for _ in range(6000)})
    rng.shuffle(lexicon)
    weights = [1.0 / (k + 1) for k in range(len(lexicon))]
    parts, size = [], 0
    while size < target_bytes:
        v = dict(a=rng.randint(340, 520), b=f"0.{rng.randint(10, 30):02d}", c=rng.randint(60, 180), d=rng.randint(30, 190),
                 e=rng.choice(["0.5", "1", "1.5", "2", "3"]), f=rng.randint(-90, 180), g=rng.randint(2, 6),
                 h=rng.randint(50, 300), i=rng.randint(300, 1500))
        kind = rng.random()
        if kind < 0.45:
            words = rng.choices(lexicon, weights, k=rng.randint(4, 18))
            if rng.random() < 0.3:
                words[0] = words[0].capitalize()
            line = " ".join(words) + rng.choice([".", ",", "!", "?", ";", ":", "", "'s", " —"])
        elif kind < 0.7:
            line = f"{rng.choice(subjects)}: " + fill(", ".join(rng.choice(findings) for _ in range(rng.randint(1, 4))), v) + "."
        elif kind < 0.85:
            line = fill(rng.choice(multilingual), v)
        elif kind < 0.95:
            line = fill(rng.choice(code), v)
        else:
            line = " ".join(rng.choice(emoji) for _ in range(rng.randint(1, 4))) + f" {rng.choice(subjects).lower()}"
        if rng.random() < 0.1:
            line = "  " + line + "   "
        parts.append(line)
        size += len(line.encode()) + 1
    return parts


# ------------------------------------------------------------------------------------------
# Tokenizers

def train_large(directory):
    rng = random.Random(99)
    corpus = training_corpus(rng)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    trainer = trainers.BpeTrainer(vocab_size=4000, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|begin_of_text|>", "<|end_of_text|>", "<|im_start|>", "<|im_end|>"])
    tok.train_from_iterator(corpus, trainer=trainer)
    tok.add_tokens([AddedToken("<ecg>", special=False, normalized=False), AddedToken("</ecg>", special=False, normalized=False)])
    tok.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A <|end_of_text|>",
        special_tokens=[("<|begin_of_text|>", tok.token_to_id("<|begin_of_text|>")),
                        ("<|end_of_text|>", tok.token_to_id("<|end_of_text|>"))])
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "tokenizer.json"), "w", encoding="utf-8") as f:
        f.write(tok.to_str() + "\n")  # compact: the fixture budget is small
    with open(os.path.join(directory, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>", "add_bos_token": True,
                   "add_eos_token": True}, f, indent=1)
        f.write("\n")


def build_stand_ins(directory):
    """The converter fixtures' recipe (used only when Tests/Fixtures/models is not there yet)."""
    rng = random.Random(5)
    corpus = training_corpus(rng, 60_000)
    # tiny-llama: SentencePiece-style BPE, byte fallback, Prepend+Replace normaliser
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False,
                                  limit_alphabet=80)
    tok.train_from_iterator(corpus, trainer=trainer)
    data = json.loads(tok.to_str())
    trained = data["model"]["vocab"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    for text, _ in sorted(trained.items(), key=lambda kv: kv[1]):
        if text not in vocab:
            vocab[text] = len(vocab)
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in data["model"]["merges"]]
    llama = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    llama.normalizer = tok.normalizer
    llama.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                       decoders.Strip(" ", 1, 0)])
    llama.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in ["<unk>", "<s>", "</s>"]])
    llama.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    d = os.path.join(directory, "tiny-llama")
    os.makedirs(d, exist_ok=True)
    llama.save(os.path.join(d, "tokenizer.json"))
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": True,
                   "add_eos_token": False}, f)
    # tiny-qwen2: byte-level BPE, Qwen2 split regex, NFC
    qwen = Tokenizer(models.BPE())
    qwen.normalizer = normalizers.NFC()
    qwen.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    qwen.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    trainer = trainers.BpeTrainer(vocab_size=600, show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    qwen.train_from_iterator(corpus, trainer=trainer)
    qwen.post_processor = processors.ByteLevel(trim_offsets=False)
    d = os.path.join(directory, "tiny-qwen2")
    os.makedirs(d, exist_ok=True)
    qwen.save(os.path.join(d, "tokenizer.json"))
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "add_bos_token": False}, f)


# ------------------------------------------------------------------------------------------
# The converter's metadata (TokenizerExport.swift)

def uses_byte_level(section):
    if not isinstance(section, dict):
        return False
    if section.get("type") == "ByteLevel":
        return True
    children = section.get("pretokenizers") or section.get("decoders") or []
    return any(uses_byte_level(c) for c in children)


def json_text(value):
    if value is None:
        return "null"
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def export_metadata(directory):
    with open(os.path.join(directory, "tokenizer.json"), encoding="utf-8") as f:
        data = json.load(f)
    model = data["model"]
    assert model["type"] == "BPE"
    vocab = model["vocab"]
    added = data.get("added_tokens") or []
    max_id = max(list(vocab.values()) + [t["id"] for t in added])
    tokens = [None] * (max_id + 1)
    for text, i in vocab.items():
        tokens[i] = text
    added_texts, added_ids, added_special = [], [], []
    for t in added:
        if tokens[t["id"]] is None:
            tokens[t["id"]] = t["content"]
        added_texts.append(t["content"])
        added_ids.append(t["id"])
        added_special.append(1 if t.get("special") else 0)
    assert all(t is not None for t in tokens)
    merges = [m if isinstance(m, str) else m[0] + " " + m[1] for m in model.get("merges") or []]
    config = {}
    config_path = os.path.join(directory, "tokenizer_config.json")
    if os.path.exists(config_path):
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
    ids = {}
    for i, t in enumerate(tokens):
        ids.setdefault(t, i)

    def special_id(key):
        v = config.get(key)
        text = v if isinstance(v, str) else (v.get("content") if isinstance(v, dict) else None)
        return ids.get(text, -1) if text is not None else -1

    unk = special_id("unk_token")
    if unk < 0:
        unk = ids.get(model.get("unk_token"), -1) if model.get("unk_token") is not None else -1
    kind = "bpe-byte-level" if uses_byte_level(data.get("pre_tokenizer")) or uses_byte_level(data.get("decoder")) \
        else "bpe-sentencepiece"
    entries = [
        ("str", "tokenizer.model", kind),
        ("strs", "tokenizer.tokens", tokens),
        ("strs", "tokenizer.merges", merges),
        ("bool", "tokenizer.byte_fallback", bool(model.get("byte_fallback", False))),
        ("str", "tokenizer.normalizer", json_text(data.get("normalizer"))),
        ("str", "tokenizer.pre_tokenizer", json_text(data.get("pre_tokenizer"))),
        ("str", "tokenizer.decoder", json_text(data.get("decoder"))),
        ("strs", "tokenizer.added_tokens", added_texts),
        ("i32s", "tokenizer.added_token_ids", added_ids),
        ("i32s", "tokenizer.added_token_special", added_special),
        ("i64", "tokenizer.bos_id", special_id("bos_token")),
        ("i64", "tokenizer.eos_id", special_id("eos_token")),
        ("i64", "tokenizer.unk_id", unk),
        ("i64", "tokenizer.pad_id", special_id("pad_token")),
        ("bool", "tokenizer.add_bos", config.get("add_bos_token") is True),
        ("bool", "tokenizer.add_eos", config.get("add_eos_token") is True),
    ]
    if isinstance(config.get("chat_template"), str):
        entries.append(("str", "tokenizer.chat_template", config["chat_template"]))
    return entries


# ------------------------------------------------------------------------------------------
# Writing

def esc(s):
    out = []
    for ch in s:
        o = ord(ch)
        out.append("%%%02X" % o if o < 0x20 or o == 0x7F or ch == "%" else ch)
    return "".join(out)


def write_meta(path, entries):
    lines = ["# tokenizer.* metadata as uniecg-convert writes it; see make_tokenizer_fixtures.py"]
    for kind, key, value in entries:
        if kind == "str":
            lines.append(f"str {key} {esc(value)}")
        elif kind == "bool":
            lines.append(f"bool {key} {1 if value else 0}")
        elif kind == "i64":
            lines.append(f"i64 {key} {value}")
        elif kind == "i32s":
            lines.append(f"i32s {key} {len(value)}" + "".join(f" {v}" for v in value))
        elif kind == "strs":
            lines.append(f"strs {key} {len(value)}")
            lines.extend(esc(v) for v in value)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")


def ids_text(ids):
    return " ".join(str(i) for i in ids)


def make_fixture(name, directory, strings, summary):
    entries = export_metadata(directory)
    meta = {key: value for _, key, value in entries}
    write_meta(os.path.join(OUT, f"{name}.meta.txt"), entries)
    tok = Tokenizer.from_file(os.path.join(directory, "tokenizer.json"))
    bos, eos = meta["tokenizer.bos_id"], meta["tokenizer.eos_id"]
    prefix = [bos] if meta["tokenizer.add_bos"] else []
    suffix = [eos] if meta["tokenizer.add_eos"] else []
    lines, round_trips = [], 0
    for s in strings:
        tok.encode_special_tokens = False
        ids = tok.encode(s, add_special_tokens=False).ids
        with_special = tok.encode(s, add_special_tokens=True).ids
        tok.encode_special_tokens = True
        literal = tok.encode(s, add_special_tokens=False).ids
        tok.encode_special_tokens = False
        if with_special != prefix + ids + suffix:
            raise SystemExit(f"{name}: add_special_tokens=True for {s!r} gives {with_special}, which the model file's "
                             f"add_bos/add_eos cannot express")
        decoded = tok.decode(ids, skip_special_tokens=False)
        skipped = tok.decode(ids, skip_special_tokens=True)
        round_trips += decoded == s
        lines.append("\t".join([esc(s), ids_text(ids), "+", "=" if literal == ids else ids_text(literal),
                                "%=" if decoded == s else esc(decoded), "%=" if skipped == decoded else esc(skipped)]))
    with open(os.path.join(OUT, f"{name}.cases.txt"), "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")
    # random id sequences for the decoder
    rng = random.Random(sum(map(ord, name)))
    vocab = len(meta["tokenizer.tokens"])
    tokens = meta["tokenizer.tokens"]
    byte_ids = [i for i, t in enumerate(tokens) if len(t) == 6 and t.startswith("<0x") and t.endswith(">")]
    special_ids = [i for i, s in zip(meta["tokenizer.added_token_ids"], meta["tokenizer.added_token_special"]) if s]
    seqs = []
    for k in range(120):
        n = rng.randint(1, 24)
        seq = []
        for _ in range(n):
            r = rng.random()
            if byte_ids and r < 0.35:
                seq.append(rng.choice(byte_ids))
            elif special_ids and r < 0.45:
                seq.append(rng.choice(special_ids))
            else:
                seq.append(rng.randrange(vocab))
        seqs.append(seq)
    dec_lines = ["\t".join([ids_text(seq), esc(tok.decode(seq, skip_special_tokens=False)),
                            esc(tok.decode(seq, skip_special_tokens=True))]) for seq in seqs]
    with open(os.path.join(OUT, f"{name}.decode.txt"), "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(dec_lines) + "\n")
    summary.append(f"{name}: vocab {vocab}, {len(meta['tokenizer.merges'])} merges, {len(strings)} strings "
                   f"({round_trips} round-trip in Hugging Face), {len(seqs)} decode sequences")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default=os.path.join(ROOT, "Tests", "Fixtures", "models"),
                        help="directory with tiny-llama/ and tiny-qwen2/ (tokenizer.json, tokenizer_config.json)")
    parser.add_argument("--build-stand-ins", action="store_true",
                        help="first write stand-in tiny-llama / tiny-qwen2 tokenizers into --models")
    args = parser.parse_args()
    if args.build_stand_ins:
        build_stand_ins(args.models)
    os.makedirs(OUT, exist_ok=True)
    large = os.path.join(OUT, "large-bytelevel")
    train_large(large)
    strings = test_strings()
    summary = []
    for name, directory in [("tiny-llama", os.path.join(args.models, "tiny-llama")),
                            ("tiny-qwen2", os.path.join(args.models, "tiny-qwen2")),
                            ("large-bytelevel", large),
                            ("gpt2-bytelevel", os.path.join(ROOT, "Tests", "Fixtures", "decoder", "qwen2-gqa-untied-hd32"))]:
        # the small extra GPT-2-style fixture gets the hand-written strings only (size budget)
        make_fixture(name, directory, strings if name != "gpt2-bytelevel" else strings[:len(strings) - 230], summary)
    print("\n".join(summary))


if __name__ == "__main__":
    main()
