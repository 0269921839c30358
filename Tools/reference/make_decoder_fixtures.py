"""Golden fixtures for the text decoder, from Hugging Face transformers (the oracle).

For each of three random-weight shapes it writes, under Tests/Fixtures/decoder/<name>/:
  - a Hugging Face model directory (config.json, model.safetensors in float16,
    tokenizer.json, tokenizer_config.json) that `uniecg-convert` converts;
  - tokens.txt: a teacher-forced sequence of 64 token ids (comma-separated);
  - logits.npy: float32 (64, vocab) logits computed by transformers in float32 from the
    very weights stored in float16 (so the unquantized runtime sees identical values).

Shapes cover GQA, tied and untied embeddings, QKV bias, head dims 64 and 80.
Run from the repository root:  /opt/uniecg-venv/bin/python Tools/reference/make_decoder_fixtures.py
Deterministic: fixed seeds, so reruns give identical files.
"""
import json
import os
import shutil

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "decoder")

CORPUS = [
    "Sinus rhythm at 72 bpm with a normal axis.",
    "Atrial fibrillation: irregularly irregular RR intervals, no P waves.",
    "QTc 452 ms is borderline prolonged in a woman.",
    "ST elevation of 2 mm in II, III and aVF suggests an inferior pattern.",
    "Right bundle branch block: rsR' in V1 and a wide S wave in I and V6.",
    "The PR interval is 0.22 s: first-degree AV block.",
    "Low voltage: limb-lead QRS amplitudes below 0.5 mV.",
    "Sinus bradycardia at 48 bpm in a fit young athlete.",
    "Left axis deviation: QRS positive in I, negative in II and aVF.",
    "Premature ventricular complexes are wide, early and followed by a compensatory pause.",
    "ST depression of 1 mm in V4 to V6 during exercise.",
] * 20


HELD_OUT = [
    "Sinus tachycardia at 112 bpm; the QRS is narrow and the axis is normal.",
    "Atrial flutter with 2:1 conduction shows sawtooth waves in II, III and aVF.",
    "A long QT interval (QTc 500 ms) is a risk marker worth teaching early.",
    "Left bundle branch block widens the QRS beyond 120 ms with broad R waves in V6.",
]


def train(model, tokenizer, steps=150, length=48):
    """A short training run on the corpus: random initialisation gives near-uniform next-token
    distributions, where top-1 agreement is a coin toss between near-ties; a briefly trained
    model predicts with the confidence of a real one, so the q8 bars measure something."""
    ids = torch.tensor(tokenizer.encode(" ".join(CORPUS)).ids)
    generator = torch.Generator().manual_seed(7)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        starts = torch.randint(0, len(ids) - length - 1, (8,), generator=generator)
        batch = torch.stack([ids[s:s + length] for s in starts])
        loss = model(batch, labels=batch).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return float(loss.detach())


def write_tensor_summary(directory):
    """tensors.json: what torch reads from the saved safetensors, for the converter tests."""
    from safetensors.torch import load_file
    tensors = load_file(os.path.join(directory, "model.safetensors"))
    summary = {}
    for name, t in sorted(tensors.items()):
        f = t.to(torch.float64).flatten()
        summary[name] = {"dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape),
                         "sum": float(f.sum()), "abs_sum": float(f.abs().sum()),
                         "first": [float(v) for v in f[:8]], "last": [float(v) for v in f[-8:]]}
    with open(os.path.join(directory, "tensors.json"), "w") as out:
        json.dump(summary, out, indent=1, sort_keys=True)


def make_tokenizer(vocab_size):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS, trainer=trainer)
    return tok


SHAPES = {
    # name: (family, config kwargs)
    "llama-gqa-untied-hd64": ("llama", dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                                            num_key_value_heads=1, head_dim=64, intermediate_size=192,
                                            tie_word_embeddings=False, rope_theta=10000.0, rms_norm_eps=1e-5)),
    "qwen2-bias-tied-hd80": ("qwen2", dict(hidden_size=160, num_hidden_layers=2, num_attention_heads=2,
                                           num_key_value_heads=2, intermediate_size=224,
                                           tie_word_embeddings=True, rope_theta=1000000.0, rms_norm_eps=1e-6)),
    "qwen2-gqa-untied-hd32": ("qwen2", dict(hidden_size=128, num_hidden_layers=3, num_attention_heads=4,
                                            num_key_value_heads=2, intermediate_size=160,
                                            tie_word_embeddings=False, rope_theta=10000.0, rms_norm_eps=1e-6)),
}


def main():
    tokenizer = make_tokenizer(320)
    vocab = tokenizer.get_vocab_size()
    for index, (name, (family, kwargs)) in enumerate(SHAPES.items()):
        torch.manual_seed(1234 + index)
        common = dict(vocab_size=vocab, max_position_embeddings=256, hidden_act="silu",
                      bos_token_id=None, eos_token_id=0, pad_token_id=None)
        if family == "llama":
            model = LlamaForCausalLM(LlamaConfig(**common, **kwargs, attention_bias=False))
        else:
            model = Qwen2ForCausalLM(Qwen2Config(**common, **kwargs))
        train(model, tokenizer)
        model.eval()
        with torch.no_grad():
            for p in model.parameters():  # exactly representable in the stored f16
                p.copy_(p.to(torch.float16).to(torch.float32))
        directory = os.path.join(OUT, name)
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory)
        tokenizer.save(os.path.join(directory, "tokenizer.json"))
        with open(os.path.join(directory, "tokenizer_config.json"), "w") as f:
            json.dump({"eos_token": "<|endoftext|>", "add_bos_token": False}, f, indent=1)
        tokens = tokenizer.encode(" ".join(HELD_OUT)).ids[:64]
        assert len(tokens) == 64
        with torch.no_grad():
            logits = model(torch.tensor([tokens])).logits[0].to(torch.float32).numpy()
        np.save(os.path.join(directory, "logits.npy"), logits.astype(np.float32))
        # Saved only after the logits: casting the model also rounds its RoPE inv_freq buffer.
        model.to(torch.float16).save_pretrained(directory, safe_serialization=True)
        write_tensor_summary(directory)
        with open(os.path.join(directory, "tokens.txt"), "w") as f:
            f.write(",".join(str(t) for t in tokens) + "\n")
        size = sum(os.path.getsize(os.path.join(directory, n)) for n in os.listdir(directory))
        print(f"{name}: vocab {vocab}, {sum(p.numel() for p in model.parameters())} parameters, {size} bytes")


if __name__ == "__main__":
    main()
