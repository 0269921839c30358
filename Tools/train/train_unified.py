#!/usr/bin/env python3
"""Stage 2 of the bundled teaching model (issue 7 point 4): one small decoder language model
that explains a record from its signal (signal encoder + projector, spliced at the `<ecg>`
placeholder) and its measured evidence, and that answers a learning objective with K ECG
generation tokens whose last-layer hidden states pass the aligner into stage 1's text
conditioning space (all-MiniLM-L6-v2), followed by the rate, age and sex to ask the U-Net for.
Synthetic data only; the result is a teaching demonstration.

    python Tools/train/train_unified.py --data WORK/data2 --run WORK/run2 [--steps 3000] [--max-minutes 45]
    python Tools/train/train_unified.py --data WORK/data2 --run WORK/run2 --export WORK/export2

    python Tools/train/train_unified.py ... --images WORK/images     # also the photo path (below)
    python Tools/train/train_unified.py ... --images WORK/images --image-tower TOWER.pt   # its tower pretrained
           (probe_image_tower.py --pool max --save TOWER.pt); --init-from OTHER_RUN starts from another run's weights
    python Tools/train/train_unified.py ... --image-tower TOWER.pt --freeze-tower ...   # ... and kept fixed

Prompts (the Swift runtime builds the same strings from the model file's prompt.* keys):
  explain   <|user|>\\n<ecg>\\n{evidence}\\n{question}<|end|>\\n<|assistant|>\\n  ->  {explanation}<|end|>
  photo     <|user|>\\n<image>\\n{question}<|end|>\\n<|assistant|>\\n  ->  {photo explanation}<|end|>
  generate  <|user|>\\n{objective}<|end|>\\n<|assistant|>\\n  ->  <ecg_gen_0>..<ecg_gen_{K-1}>rate R bpm, age A, sex S<|end|>
`<ecg>` stands for the signal encoder's T tokens: the prompt holds it once and the runtime
repeats it T times, then overwrites those rows with the projected signal tokens. `<image>` does
the same with the image encoder's patch tokens (a small CLIP ViT, transformers' CLIPVisionModel,
plus a projector) of a photo of the printout (image_data.py: the record drawn by `uniecg plot`,
clean or photographed); a photo comes without measurements, so its explanation
(explain_text.photo_explanation) describes what the paper shows in words and states no number.

Training: cross-entropy on the assistant's part of every kind of sequence, plus the alignment
loss (1 - cosine + squared error of the unit vectors, the aligner's output is L2-normalised) between the
aligner's output on the generation tokens' hidden states and the MiniLM embedding of the
objective. AdamW, warm-up then cosine decay (over --steps or --max-minutes, whichever ends sooner), gradient clip 1; checkpoints (atomic) every
--save-every steps, on SIGTERM/SIGINT and when --max-minutes (summed over resumed sessions) runs out.
"""
import argparse
import json
import math
import os
import shutil
import signal
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
from make_signal_encoder_fixtures import EcgTower, Projector  # noqa: E402
from make_aligner_fixtures import Aligner  # noqa: E402
import make_image_encoder_fixtures as image_fixtures  # noqa: E402
import explain_text  # noqa: E402
from ecgsim import CONDITIONS  # noqa: E402

K = 4
SPECIAL = ["<|endoftext|>", "<|user|>", "<|assistant|>", "<|end|>", "<ecg>"] + [f"<ecg_gen_{k}>" for k in range(K)] + ["<image>"]
EXPLAIN = "<|user|>\n<ecg>\n{evidence}\n{question}<|end|>\n<|assistant|>\n"
PHOTO = "<|user|>\n<image>\n{question}<|end|>\n<|assistant|>\n"
PHOTO_QUESTIONS = ["Explain this photo of an ECG.", "What does this ECG printout show?", "Read this picture of an ECG.",
                   "Explain this ECG.", "What does this ECG show?", "Describe the rhythm and the findings on this paper ECG."]
GENERATE = "<|user|>\n{objective}<|end|>\n<|assistant|>\n"
QUESTIONS = ["Explain this ECG.", "What does this ECG show?", "Interpret this 12-lead ECG.",
             "Describe the rhythm and the findings.", "Please explain this tracing for a student.",
             "What is the diagnosis pattern here?", "Read this ECG step by step.", "Explain the ECG."]
SIGNAL = dict(seq_length=1024, lead_num=12, patch_size=32, width=128, layers=2, heads=4, mlp_ratio=2.0)
SIGNAL_RATE = 102.4
LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
TOKENS = SIGNAL["seq_length"] // SIGNAL["patch_size"] + 1
LM = dict(vocab=1024, dim=256, layers=4, heads=4, kv_heads=2, ffn=704, context=448)
# The photo path's tower: 224 px (image_data.py --size), 16 px patches -> 196 patch tokens; the
# layout of make_image_encoder_fixtures.config_json (the converter's image_config.json).
IMAGE = dict(image_size=224, patch_size=16, width=128, layers=3, heads=4, ffn=256, act="gelu", select_layer=-1,
             feature="patch", dims=[128, LM["dim"], LM["dim"]], activations=["gelu"], prefix="vision_model.")
IMAGE_TOKENS = (IMAGE["image_size"] // IMAGE["patch_size"]) ** 2
ALIGNER = dict(tokens=K, input_dim=LM["dim"], hidden_dim=512, n_layers=2, output_dim=384, pooling="flatten",
               layer_norm=False, norm_eps=1e-5, normalize=True)


def generation_answer(scalars):
    sex, age, rate = scalars
    return "".join(f"<ecg_gen_{k}>" for k in range(K)) + \
        f"rate {int(round(rate))} bpm, age {int(round(age))}, sex {'male' if sex >= 0.5 else 'female'}<|end|>"


def load_data(path):
    shards = sorted(f for f in os.listdir(path) if f.startswith("ushard-") and f.endswith(".npz"))
    parts = [np.load(os.path.join(path, f)) for f in shards]
    keys = ["signals", "scalars", "condition", "evidence", "explanations", "consistent", "objectives",
            "objective_embeddings", "ids"]
    return {k: np.concatenate([p[k] for p in parts]) for k in keys}


def load_images(path, data):
    """image_data.py's shards: uint8 (n, variants, S, S, 3) for the first n records of `data`
    (the shards hold the records of the ushards in the same order; checked by id)."""
    shards = sorted(f for f in os.listdir(path) if f.startswith("ishard-") and f.endswith(".npz"))
    images, ids = [], []
    for f in shards:
        z = np.load(os.path.join(path, f))
        images.append(z["images"])
        ids.extend(str(x) for x in z["ids"])
    if not images:
        raise SystemExit(f"{path} holds no ishard-*.npz (image_data.py --out)")
    if ids != [str(x) for x in data["ids"][:len(ids)]]:
        raise SystemExit(f"{path}: the image shards do not follow the records of the stage 2 data in order")
    images = np.concatenate(images)
    if images.shape[2] != IMAGE["image_size"]:
        raise SystemExit(f"{path}: images are {images.shape[2]} px, the tower takes {IMAGE['image_size']}")
    return images


def pixel_values(images):
    """uint8 (B, S, S, 3) -> the tower's input (B, 3, S, S), normalised like the runtime's
    ImagePreparation (CLIP mean and std)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255).permute(0, 3, 1, 2)
    mean = torch.tensor(image_fixtures.CLIP_MEAN)[None, :, None, None]
    std = torch.tensor(image_fixtures.CLIP_STD)[None, :, None, None]
    return (x - mean) / std


def train_tokenizer(data, out_dir):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    # Digits one by one: a number is then the same tokens wherever it stands ("rate: 156" and
    # "(156 ms" would otherwise be " 156" and "15"+"6"), which is what lets a model this small
    # copy the evidence block's numbers into its explanation exactly.
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=LM["vocab"], special_tokens=SPECIAL, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())

    def texts():
        for e in data["evidence"][:4000]:
            yield str(e)
        for row in data["explanations"][:4000]:
            for e in row:
                if e:
                    yield str(e)
        for row in data["objectives"][:4000]:
            for o in row:
                yield str(o)
        yield from QUESTIONS
        yield from PHOTO_QUESTIONS
        rng = np.random.default_rng(0)
        for c in range(len(CONDITIONS) * 20):
            yield explain_text.photo_explanation(rng, CONDITIONS[c % len(CONDITIONS)])
        for s in data["scalars"][:2000]:
            yield generation_answer(s)
    tok.train_from_iterator(texts(), trainer)
    os.makedirs(out_dir, exist_ok=True)
    tok.save(os.path.join(out_dir, "tokenizer.json"))
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump({"eos_token": "<|end|>", "pad_token": "<|endoftext|>", "add_bos_token": False,
                   "add_eos_token": False, "model_max_length": LM["context"]}, f, indent=1)
    return tok


class Unified(torch.nn.Module):
    def __init__(self):
        super().__init__()
        from transformers import LlamaConfig, LlamaForCausalLM
        self.lm_config = LlamaConfig(vocab_size=LM["vocab"], hidden_size=LM["dim"], intermediate_size=LM["ffn"],
                                     num_hidden_layers=LM["layers"], num_attention_heads=LM["heads"],
                                     num_key_value_heads=LM["kv_heads"], max_position_embeddings=LM["context"],
                                     rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=True,
                                     bos_token_id=None, eos_token_id=3, pad_token_id=0)
        self.lm = LlamaForCausalLM(self.lm_config)
        s = SIGNAL
        self.tower = EcgTower(s["seq_length"], s["lead_num"], s["patch_size"], s["width"], s["layers"], s["heads"],
                              s["mlp_ratio"], embed_dim=16)
        self.projector = Projector([s["width"], LM["dim"], LM["dim"]], ["gelu"])
        self.aligner = Aligner(ALIGNER)
        self.image_tower = image_fixtures.CLIPVisionModel(image_fixtures.clip_config(IMAGE))
        self.image_projector = image_fixtures.Projector(IMAGE["dims"], IMAGE["activations"])

    def image_tokens(self, pixels):
        """The projected patch tokens of a batch of prepared images (B, IMAGE_TOKENS, dim)."""
        return self.image_projector(tower_features(self.image_tower, pixels))


def tower_features(tower, pixels):
    """The image tower's selected hidden states (IMAGE select_layer and feature), as the runtime
    takes them: (B, IMAGE_TOKENS, width)."""
    hidden = tower(pixel_values=pixels, output_hidden_states=True).hidden_states[IMAGE["select_layer"]]
    return hidden[:, 1:] if IMAGE["feature"] == "patch" else hidden


def pack_rows(lengths, capacity):
    """First-fit decreasing: lists of sequence indices whose lengths add up to at most capacity."""
    rows, room = [], []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for r in range(len(rows)):
            if room[r] >= lengths[i]:
                rows[r].append(i)
                room[r] -= lengths[i]
                break
        else:
            rows.append([i])
            room.append(capacity - lengths[i])
    return rows


class Packed:
    """Training sequences packed side by side into rows of at most the context, each attending
    only to itself (block-diagonal causal mask, positions restarting at 0). Padding every sequence
    to the longest of its batch spent a quarter of the step on pad tokens (explain prompts vary
    from ~200 to ~320 tokens, generate prompts are ~45); packed, the same losses (within float
    rounding) cost a fifth less time (README, "Training speed")."""

    def __init__(self, seqs, capacity):
        rows = pack_rows([len(q) for q in seqs], capacity)
        width = max(sum(len(seqs[i]) for i in r) for r in rows)
        self.ids = torch.zeros(len(rows), width, dtype=torch.long)
        self.pos = torch.zeros(len(rows), width, dtype=torch.long)
        segment = torch.full((len(rows), width), -1, dtype=torch.long)   # padding: segment -1
        self.where = [None] * len(seqs)                                 # (row, first column)
        for r, members in enumerate(rows):
            at = 0
            for i in members:
                n = len(seqs[i])
                self.ids[r, at:at + n] = torch.tensor(seqs[i])
                self.pos[r, at:at + n] = torch.arange(n)
                segment[r, at:at + n] = i
                self.where[i] = (r, at)
                at += n
        causal = torch.tril(torch.ones(width, width, dtype=torch.bool))
        self.mask = (causal & (segment[:, :, None] == segment[:, None, :]))[:, None]

    def index(self, picks):
        """Rows and columns of [(sequence, offset in it), ...], for index_put and gathers."""
        rc = [(self.where[i][0], self.where[i][1] + o) for i, o in picks]
        return torch.tensor([r for r, _ in rc]), torch.tensor([c for _, c in rc])


def forward_loss(model, tok, batch, ecg_id, gen_ids):
    """Returns (loss, parts) for one batch: explain, photo and generate sequences, packed into
    shared rows; each kind's cross-entropy is the mean over its own answer tokens."""
    lm = model.lm
    seqs, answer, kind = [], [], []            # token ids; 1 where the loss counts; kind per sequence
    splices = {"explain": [], "photo": []}     # (sequence, first placeholder, n) in the encoder's order
    encoder_out = {}
    for name, placeholder, n_tokens in (("explain", ecg_id, TOKENS), ("photo", tok.token_to_id("<image>"), IMAGE_TOKENS)):
        if not batch.get(name):
            continue
        prompts, answers, inputs = zip(*batch[name])
        for p, a in zip(prompts, answers):
            pi = tok.encode(p).ids
            at = pi.index(placeholder)
            pi = pi[:at] + [placeholder] * n_tokens + pi[at + 1:]
            ai = tok.encode(a).ids
            splices[name].append((len(seqs), at, n_tokens))
            seqs.append((pi + ai)[:LM["context"]])
            answer.append(([0] * len(pi) + [1] * len(ai))[:LM["context"]])
            kind.append(name)
        if name == "explain":
            encoder_out[name] = model.projector(model.tower(torch.from_numpy(np.stack(inputs).astype(np.float32))))
        elif torch.is_tensor(inputs[0]):   # the frozen tower's patch tokens, computed once (--freeze-tower)
            encoder_out[name] = model.image_projector(torch.stack(inputs))
        else:
            encoder_out[name] = model.image_tokens(pixel_values(np.stack(inputs)))
    generate = []
    if batch["generate"]:
        prompts, answers, targets = zip(*batch["generate"])
        for p, a in zip(prompts, answers):
            pi, ai = tok.encode(p).ids, tok.encode(a).ids
            generate.append(len(seqs))
            seqs.append(pi + ai)
            answer.append([0] * len(pi) + [1] * len(ai))
            kind.append("generate")
    packed = Packed(seqs, LM["context"])
    x = lm.get_input_embeddings()(packed.ids)
    for name, spl in splices.items():
        if spl:
            rows, cols = packed.index([(i, at + j) for i, at, n in spl for j in range(n)])
            x = x.index_put((rows, cols), encoder_out[name].reshape(-1, x.shape[-1]).to(x.dtype))
    last = lm.model(inputs_embeds=x, attention_mask=packed.mask, position_ids=packed.pos).last_hidden_state
    # a token's loss is the prediction of the next token of the same sequence; logits only there
    picks = [(i, j) for i in range(len(seqs)) for j in range(len(seqs[i]) - 1) if answer[i][j + 1]]
    rows, cols = packed.index(picks)
    ce = F.cross_entropy(lm.lm_head(last[rows, cols]), packed.ids[rows, cols + 1], reduction="none")
    of_kind = np.array([kind[i] for i, _ in picks])
    parts = {f"{k}_ce": ce[torch.from_numpy(of_kind == k)].mean() for k in ("explain", "photo", "generate") if k in kind}
    total = sum(parts.values())
    if generate:
        gen = set(gen_ids.tolist())
        spots = [(i, j) for i in generate for j, t in enumerate(seqs[i]) if t in gen]
        rows, cols = packed.index(spots)
        h = last[rows, cols].reshape(len(generate), K, -1)                    # after the final norm
        pred = model.aligner(h)
        tgt = torch.from_numpy(np.stack(targets)).float()
        cos = F.cosine_similarity(pred, tgt, dim=-1)
        parts["align_cos"] = cos.mean()
        total = total + 2.0 * ((1 - cos).mean() + ((pred - tgt) ** 2).sum(-1).mean())
    return total, parts


def make_batch(data, rng, train_idx, n_explain, n_generate, images=None, n_photo=0):
    batch = {"explain": [], "generate": [], "photo": []}
    good = train_idx[data["consistent"][train_idx]]
    for i in rng.choice(good, n_explain):
        e = data["explanations"][i][rng.integers(data["explanations"].shape[1])]
        p = EXPLAIN.format(evidence=data["evidence"][i], question=QUESTIONS[rng.integers(len(QUESTIONS))])
        batch["explain"].append((p, str(e) + "<|end|>", data["signals"][i]))
    for i in rng.choice(train_idx, n_generate):
        k = rng.integers(data["objectives"].shape[1])
        p = GENERATE.format(objective=data["objectives"][i][k])
        batch["generate"].append((p, generation_answer(data["scalars"][i]), data["objective_embeddings"][i][k]))
    if images is not None and n_photo:
        for i in rng.choice(min(len(images), len(train_idx)), n_photo):
            v = rng.integers(images.shape[1])
            p = PHOTO.format(question=PHOTO_QUESTIONS[rng.integers(len(PHOTO_QUESTIONS))])
            answer = explain_text.photo_explanation(rng, CONDITIONS[data["condition"][i]])
            batch["photo"].append((p, answer + "<|end|>", images[i, v]))
    return batch


def intent_head(data, train_idx, held_out_idx):
    """A linear head over the condition space naming the simulator condition an objective asks
    for (aligner.intents in ModelFormat.md): multinomial logistic regression on the MiniLM
    embeddings of the training objectives, full batch, deterministic. The runtime applies it to
    the aligner's output (which approximates those embeddings) to choose among generated
    samples by that condition's measurement criteria."""
    E, C = data["objective_embeddings"], data["condition"]
    x = torch.from_numpy(E[train_idx].reshape(-1, E.shape[-1]).astype(np.float32))
    y = torch.from_numpy(np.repeat(C[train_idx], E.shape[1]).astype(np.int64))
    torch.manual_seed(0)
    head = torch.nn.Linear(x.shape[1], len(CONDITIONS))
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    for _ in range(600):
        # inputs scaled by 10 (unit vectors give small logits); folded into the weight below
        loss = F.cross_entropy(head(10 * x), y) + 1e-4 * (head.weight ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    xt = torch.from_numpy(E[held_out_idx].reshape(-1, E.shape[-1]).astype(np.float32))
    yt = torch.from_numpy(np.repeat(C[held_out_idx], E.shape[1]).astype(np.int64))
    with torch.no_grad():
        acc = (head(10 * xt).argmax(1) == yt).float().mean().item()
        print(f"intent head: {len(CONDITIONS)} conditions, held-out objectives named correctly {acc:.3f}")
        return (10 * head.weight).contiguous(), head.bias.detach().clone().contiguous()


def export(model, tok, run, out, intents=None, with_images=False):
    """Converter input: HF Llama directory + signal encoder + aligner (+ intent head) + prompt config
    (+ the image encoder and the photo template when the run trained the photo path)."""
    from safetensors.torch import save_file
    os.makedirs(out, exist_ok=True)
    model.lm.save_pretrained(out, safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        with open(os.path.join(run, name)) as src, open(os.path.join(out, name), "w") as dst:
            dst.write(src.read())
    tensors = {k: v.detach().contiguous() for k, v in model.tower.state_dict().items()}
    for src, lin in zip(model.projector.sources(), [m for m in model.projector.seq if isinstance(m, torch.nn.Linear)]):
        tensors[src + ".weight"] = lin.weight.detach().contiguous()
        tensors[src + ".bias"] = lin.bias.detach().contiguous()
    save_file(tensors, os.path.join(out, "signal_encoder.safetensors"))
    s = SIGNAL
    with open(os.path.join(out, "signal_config.json"), "w") as f:
        json.dump({"ecg_cfg": {"seq_length": s["seq_length"], "lead_num": s["lead_num"], "layers": s["layers"],
                               "width": s["width"], "patch_size": s["patch_size"], "head_width": s["width"] // s["heads"],
                               "mlp_ratio": s["mlp_ratio"]},
                   "sample_rate": SIGNAL_RATE, "leads": LEADS, "layer_norm_eps": 1e-5, "tower_prefix": "",
                   "projector": {"dims": [s["width"], LM["dim"], LM["dim"]], "activations": ["gelu"],
                                 "sources": model.projector.sources()}}, f, indent=1)
    aligner = {k: v.detach().contiguous() for k, v in model.aligner.state_dict().items()}
    config = dict(ALIGNER)
    if intents is not None:
        aligner["intent_head.weight"], aligner["intent_head.bias"] = intents
        config["intents"] = list(CONDITIONS)
    save_file(aligner, os.path.join(out, "aligner.safetensors"))
    with open(os.path.join(out, "aligner_config.json"), "w") as f:
        json.dump(config, f, indent=1)
    prompt = {"explain_template": EXPLAIN, "generate_template": GENERATE, "ecg_placeholder": "<ecg>",
              "generation_tokens": [f"<ecg_gen_{k}>" for k in range(K)], "end_of_turn": "<|end|>",
              "default_question": QUESTIONS[0]}
    written = ["model.safetensors", "signal_encoder.safetensors", "aligner.safetensors"]
    if with_images:
        tensors = {IMAGE["prefix"] + image_fixtures.strip(k): v.detach().contiguous()
                   for k, v in model.image_tower.state_dict().items() if not k.endswith("position_ids")}
        for i, lin in model.image_projector.linears():
            tensors[f"projector.{i}.weight"] = lin.weight.detach().contiguous()
            tensors[f"projector.{i}.bias"] = lin.bias.detach().contiguous()
        save_file(tensors, os.path.join(out, "image_encoder.safetensors"))
        with open(os.path.join(out, "image_config.json"), "w") as f:
            json.dump(image_fixtures.config_json(IMAGE, None), f, indent=1)
        prompt.update(image_placeholder="<image>", photo_template=PHOTO)
        written.append("image_encoder.safetensors")
    with open(os.path.join(out, "prompt_config.json"), "w") as f:
        json.dump(prompt, f, indent=1)
    for p in written:
        os.chmod(os.path.join(out, p), 0o644)
    print(f"exported to {out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--run", required=True)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--max-minutes", type=float, default=45)
    ap.add_argument("--explain-batch", type=int, default=12)
    ap.add_argument("--generate-batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--add-thread-when", metavar="PATH",
                    help="take one more thread as soon as PATH exists (train_all.sh: stage 1 has finished and "
                         "left its core free)")
    ap.add_argument("--save-every", type=int, default=200)
    ap.add_argument("--held-out", type=int, default=500, help="last N records are not trained on")
    ap.add_argument("--export", help="write the converter input directory from the checkpoint and stop")
    ap.add_argument("--images", help="image_data.py's output: also train the photo path on these images")
    ap.add_argument("--without-photo", action="store_true",
                    help="--export: leave the image tower and the photo template out (a photo path not good enough to ship)")
    ap.add_argument("--photo-batch", type=int, default=6)
    ap.add_argument("--tower-batch", type=int, default=16,
                    help="photos per step for the image tower's auxiliary condition classifier")
    ap.add_argument("--init-from", metavar="RUN",
                    help="a new run starts from another run's weights and tokenizer (fresh optimiser and schedule)")
    ap.add_argument("--freeze-tower", action="store_true",
                    help="keep the (pretrained) image tower fixed: its patch tokens are computed once for every "
                         "picture (~40 s for 4,000); no auxiliary head")
    ap.add_argument("--image-tower", metavar="TOWER_PT",
                    help="a new run takes its image tower and condition head from probe_image_tower.py --save")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.run, exist_ok=True)
    fresh = not os.path.exists(os.path.join(args.run, "unified.pt"))
    if args.freeze_tower and fresh and not (args.image_tower or args.init_from):
        raise SystemExit("--freeze-tower keeps the image tower as it starts: give a pretrained one with "
                         "--image-tower TOWER.pt (or --init-from RUN); a fresh tower would stay random")
    if args.init_from and fresh:
        for name in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copyfile(os.path.join(args.init_from, name), os.path.join(args.run, name))
    data = load_data(args.data)
    n = len(data["ids"])
    train_idx = np.arange(n - args.held_out)
    from tokenizers import Tokenizer
    tok_path = os.path.join(args.run, "tokenizer.json")
    tok = Tokenizer.from_file(tok_path) if os.path.exists(tok_path) else train_tokenizer(
        {k: data[k][train_idx] for k in data}, args.run)
    ecg_id = tok.token_to_id("<ecg>")
    gen_ids = torch.tensor([tok.token_to_id(f"<ecg_gen_{k}>") for k in range(K)])

    torch.manual_seed(args.seed)
    model = Unified()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01, betas=(0.9, 0.98))
    # Training only, not exported: a linear condition classifier on the image tower's patch
    # tokens (their maximum). Through the language model alone the tower learned nothing in 800
    # steps (every photo got the same impression); a direct label per photo gives it a gradient
    # of its own.
    tower_head = torch.nn.Linear(IMAGE["width"], len(CONDITIONS))
    tower_opt = torch.optim.AdamW(tower_head.parameters(), lr=args.lr, weight_decay=0.01)
    ckpt = os.path.join(args.run, "unified.pt")
    state = {"step": 0, "minutes": 0.0, "history": []}
    rng = np.random.default_rng([args.seed, 77])
    if fresh and args.init_from:
        model.load_state_dict(torch.load(os.path.join(args.init_from, "unified.pt"), weights_only=False)["model"])
        state["init_from"] = args.init_from
        print(f"weights from {args.init_from}")
    if fresh and args.image_tower:
        t = torch.load(args.image_tower, weights_only=False)
        if t.get("pool") != "max":
            raise SystemExit(f"{args.image_tower}: a tower trained with {t.get('pool')} pooling; this head pools with the max")
        model.image_tower.load_state_dict(t["image_tower"])
        tower_head.load_state_dict(t["tower_head"])
        state["image_tower"] = args.image_tower
        print(f"image tower and its head from {args.image_tower} ({t['steps']} steps)")
    if os.path.exists(ckpt):
        c = torch.load(ckpt, weights_only=False)
        model.load_state_dict(c["model"])
        opt.load_state_dict(c["opt"])
        if "tower_head" in c:
            tower_head.load_state_dict(c["tower_head"])
            tower_opt.load_state_dict(c["tower_opt"])
        state = c["state"]
        rng.bit_generator.state = c["rng"]
        torch.set_rng_state(c["torch_rng"])
        print(f"resumed at step {state['step']} ({state['minutes']:.1f} min trained)")
    if args.export:
        model.eval()
        export(model, tok, args.run, args.export, intents=intent_head(data, train_idx, np.arange(n - args.held_out, n)),
               with_images=state.get("photo", False) and not args.without_photo)
        return
    images = load_images(args.images, data) if args.images else None
    if images is not None:
        state["photo"] = True
        print(f"photo path: {len(images)} records x {images.shape[1]} images, {IMAGE_TOKENS} image tokens", flush=True)
        if args.freeze_tower:
            # Trained inside the language model the pretrained tower forgot what it had learned
            # (its own loss rose from 0.77 to 2.0 at lr 2e-3; README, "The whole training in one
            # command"). Not a speed-up: the photo sequences' 196 tokens in the decoder cost the
            # time, the tower's pass only ~4 % of a step.
            t0 = time.time()
            for p in model.image_tower.parameters():
                p.requires_grad_(False)
            model.image_tower.eval()
            with torch.no_grad():
                images = torch.stack([torch.cat([tower_features(model.image_tower, pixel_values(images[i:i + 64, v]))
                                                 for i in range(0, len(images), 64)]) for v in range(images.shape[1])], 1)
            print(f"frozen image tower: patch tokens of {images.shape[0]} x {images.shape[1]} pictures in "
                  f"{time.time() - t0:.0f} s", flush=True)
    params = sum(p.numel() for p in model.parameters())
    print(f"{n} records ({len(train_idx)} for training, {int(data['consistent'][train_idx].sum())} explainable); "
          f"{params:,} parameters; vocabulary {tok.get_vocab_size()}; ECG tokens {TOKENS}", flush=True)

    def save():
        tmp = ckpt + ".tmp"
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "state": state,
                    "tower_head": tower_head.state_dict(), "tower_opt": tower_opt.state_dict(),
                    "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state()}, tmp)
        os.replace(tmp, ckpt)

    stop = {"now": False}
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, lambda *_: stop.update(now=True))
    warm = 150
    t_session = time.time()
    minutes0 = state["minutes"]
    model.train()
    while state["step"] < args.steps and not stop["now"]:
        minutes = minutes0 + (time.time() - t_session) / 60
        if minutes >= args.max_minutes:
            print(f"time budget of {args.max_minutes} min reached")
            break
        step = state["step"]
        # the cosine runs on whichever budget is nearer its end, so a run the clock stops still ends
        # at the low learning rate (a step-only schedule left it mid-decay when the minutes ran out)
        progress = min(1, max(step / args.steps, minutes / args.max_minutes))
        lr = args.lr * min(1, (step + 1) / warm) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
        for g in opt.param_groups:
            g["lr"] = lr
        if args.add_thread_when and torch.get_num_threads() == args.threads and os.path.exists(args.add_thread_when):
            torch.set_num_threads(args.threads + 1)
            print(f"{args.add_thread_when} exists: {args.threads + 1} threads from step {step}", flush=True)
        batch = make_batch(data, rng, train_idx, args.explain_batch, args.generate_batch, images, args.photo_batch)
        loss, parts = forward_loss(model, tok, batch, ecg_id, gen_ids)
        if images is not None and args.tower_batch and not args.freeze_tower:
            pick = rng.choice(min(len(images), len(train_idx)), args.tower_batch)
            views = images[pick, rng.integers(images.shape[1], size=len(pick))]
            # the maximum over the patch tokens: their mean is nearly the same for every printout
            # (same amount of ink) and gave the head no gradient (README, "the photo path")
            pooled = tower_features(model.image_tower, pixel_values(views)).amax(1)
            labels = torch.from_numpy(data["condition"][pick].astype(np.int64))
            logits = tower_head(pooled)
            parts["tower_ce"] = F.cross_entropy(logits, labels)
            parts["tower_acc"] = (logits.argmax(1) == labels).float().mean()
            loss = loss + parts["tower_ce"]
        tower_opt.zero_grad()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        tower_opt.step()
        state["step"] += 1
        state["minutes"] = minutes0 + (time.time() - t_session) / 60
        if state["step"] % 25 == 0 or state["step"] == 1:
            rec = {"step": state["step"], "loss": loss.item(), **{k: float(v.detach()) for k, v in parts.items()},
                   "minutes": round(state["minutes"], 2)}
            state["history"].append(rec)
            print(json.dumps(rec), flush=True)
        if state["step"] % args.save_every == 0:
            save()
    save()
    print(f"saved at step {state['step']} after {state['minutes']:.1f} min")


if __name__ == "__main__":
    main()
