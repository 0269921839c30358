"""Golden fixtures for the ECG signal encoder (CRuntime/vision/signal_encoder.c) and its converter
mapping (Tools/Convert/ModelConversion/SignalEncoderExport.swift), from PyTorch (the oracle).

The reference module below is written from the published structure of GEM's ECG-CoCa signal
tower: open_clip's `EcgTransformer` as adapted to 1-D in ECG-Chat (open_clip/open_clip/
transformer.py): Conv1d(leads -> width, kernel = stride = patch, bias=False), a class token
(`class_embedding`), learned positions (`positional_embedding`, patches + 1 rows), `ln_pre`, a
`transformer.resblocks` stack of pre-LN blocks (ln_1, nn.MultiheadAttention `attn` with packed
in_proj, ln_2, `mlp` = c_fc, GELU (erf), c_proj), then `ln_post` and `proj`, which GEM does not
use: it takes every token of the last transformer layer. The projector follows LLaVA's
nn.Sequential naming (`projector.0`, GELU, `projector.2`); GEM's own chain is a Linear(768 ->
1024) ECG projector followed by the shared Linear-GELU-Linear image projector, which the
converter expresses with explicit source prefixes (signal_config.json "projector.sources").

Layout written (the converter's input layout, ModelFormat.md "Signal encoder"):
  Tests/Fixtures/signal_encoder/
    manifest.txt        one case per line: <case> config=<dir> samples=<n> input=<file>
                        hidden=<file> embeddings=<file>  (files are little-endian float32)
    <config>/signal_encoder.safetensors   the tower + projector weights (open_clip names)
    <config>/signal_config.json           open_clip's ecg_cfg + rate, leads and projector
    <case>.input.bin    (leads, samples) mV, row-major; samples may differ from the model's
    <case>.hidden.bin   (tokens, width): the last transformer layer, before ln_post
    <case>.embeddings.bin (tokens, out_dim): after the projector
    gem/keys.txt        "<name> <d0>x<d1>..." of every tensor of GEM's full-size tower and
                        projectors (built on the meta device: no 85M weights are created)
    gem/signal_config.json  the GEM configuration (12 x 5000, patch 50, width 768, 12 layers)

The input is zero-padded or truncated to the model's sample count before the tower, as GEM's
loader does; the expected outputs here are computed from that padded / truncated signal.

Run from the repository root:
  /opt/uniecg-venv/bin/python Tools/reference/make_signal_encoder_fixtures.py
Deterministic (fixed seeds): reruns give identical files.
"""
import json
import os
from collections import OrderedDict

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

OUT = os.path.join("Tests", "Fixtures", "signal_encoder")
LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]


class ResidualAttentionBlock(nn.Module):
    """open_clip's pre-LN block: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, width, heads, mlp_ratio, eps):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width, eps=eps)
        self.attn = nn.MultiheadAttention(width, heads)  # sequence-first, packed in_proj
        self.ln_2 = nn.LayerNorm(width, eps=eps)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(OrderedDict([
            ("c_fc", nn.Linear(width, hidden)),
            ("gelu", nn.GELU()),
            ("c_proj", nn.Linear(hidden, width)),
        ]))

    def forward(self, x):  # (L, N, D)
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width, layers, heads, mlp_ratio, eps):
        super().__init__()
        self.resblocks = nn.ModuleList([ResidualAttentionBlock(width, heads, mlp_ratio, eps) for _ in range(layers)])

    def forward(self, x):  # (N, L, D)
        x = x.transpose(0, 1)
        for block in self.resblocks:
            x = block(x)
        return x.transpose(0, 1)


class EcgTower(nn.Module):
    """The 1-D patch transformer with open_clip's parameter names."""

    def __init__(self, seq_length, lead_num, patch_size, width, layers, heads, mlp_ratio=4.0, embed_dim=512,
                 eps=1e-5):
        super().__init__()
        self.seq_length = seq_length
        patches = seq_length // patch_size
        self.conv1 = nn.Conv1d(lead_num, width, kernel_size=patch_size, stride=patch_size, bias=False)
        scale = width ** -0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(patches + 1, width))
        self.ln_pre = nn.LayerNorm(width, eps=eps)
        self.transformer = Transformer(width, layers, heads, mlp_ratio, eps)
        self.ln_post = nn.LayerNorm(width, eps=eps)  # unused by GEM (tokens are taken before it)
        self.proj = nn.Parameter(scale * torch.randn(width, embed_dim))  # unused likewise

    def forward(self, x):  # (N, leads, samples) -> (N, tokens, width), last layer, before ln_post
        n = x.shape[-1]
        if n < self.seq_length:
            x = nn.functional.pad(x, (0, self.seq_length - n))
        x = x[..., : self.seq_length]
        x = self.conv1(x).permute(0, 2, 1)
        cls = self.class_embedding.view(1, 1, -1).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding
        return self.transformer(self.ln_pre(x))


class Projector(nn.Module):
    """A chain of Linear layers with an optional GELU after each but the last (LLaVA's
    mlp2x_gelu is dims [w, D, D] with ["gelu"]; a plain Linear is [w, D] with [])."""

    def __init__(self, dims, activations):
        super().__init__()
        modules = []
        for j in range(len(dims) - 1):
            modules.append(nn.Linear(dims[j], dims[j + 1]))
            if j < len(activations) and activations[j] == "gelu":
                modules.append(nn.GELU())
        self.seq = nn.Sequential(*modules)

    def forward(self, x):
        return self.seq(x)

    def sources(self, prefix="projector"):
        return [f"{prefix}.{i}" for i, m in enumerate(self.seq) if isinstance(m, nn.Linear)]


def randomise(module, seed):
    """Weights with realistic spread (default init leaves biases and norms trivial)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.startswith("ln_"):
                if name.endswith("weight"):
                    p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
                else:
                    p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif p.dim() >= 2:
                fan_in = p[0].numel() if name != "proj" else p.shape[0]
                p.copy_(torch.randn(p.shape, generator=g) / fan_in ** 0.5)
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def synthetic_ecg(leads, samples, rate, seed):
    """Beat-like bumps plus noise in mV, so the inputs look like ECG amplitudes."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / rate
    x = np.zeros((leads, samples))
    for lead in range(leads):
        amp = rng.uniform(0.3, 1.5) * (1 if lead % 3 else -1)
        for beat in np.arange(0.2, samples / rate, 0.8):
            x[lead] += amp * np.exp(-((t - beat) ** 2) / (2 * 0.012 ** 2))
            x[lead] += 0.2 * amp * np.exp(-((t - beat - 0.25) ** 2) / (2 * 0.04 ** 2))
        x[lead] += 0.03 * rng.standard_normal(samples)
    return x.astype(np.float32)


def write_bin(name, array):
    np.ascontiguousarray(array, dtype="<f4").tofile(os.path.join(OUT, name))


CONFIGS = [
    # 12 x 500 at 500 Hz, patch 50 (600 columns: the patch conv stays f32), Linear-GELU-Linear.
    dict(name="small_mlp", seq_length=500, lead_num=12, patch_size=50, width=64, layers=2, head_width=16,
         mlp_ratio=4.0, rate=500.0, dims=[64, 96, 96], activations=["gelu"], seed=11),
    # 12 x 400 at 100 Hz, patch 40 (480 columns: q8 patch conv), 2 heads, Linear only.
    dict(name="narrow_linear", seq_length=400, lead_num=12, patch_size=40, width=32, layers=3, head_width=16,
         mlp_ratio=4.0, rate=100.0, dims=[32, 48], activations=[], seed=23),
]

# (case, config, samples given, input seed): full length, shorter (zero-padded), longer (truncated).
CASES = [
    ("small_mlp_full", "small_mlp", 500, 101),
    ("small_mlp_short", "small_mlp", 430, 102),
    ("narrow_linear_full", "narrow_linear", 400, 201),
    ("narrow_linear_long", "narrow_linear", 520, 202),
]


def config_json(c, sources, prefix=""):
    return {
        "ecg_cfg": {
            "seq_length": c["seq_length"], "lead_num": c["lead_num"], "layers": c["layers"],
            "width": c["width"], "patch_size": c["patch_size"], "head_width": c["head_width"],
            "mlp_ratio": c["mlp_ratio"],
        },
        "sample_rate": c["rate"],
        "leads": LEADS[: c["lead_num"]],
        "layer_norm_eps": 1e-5,
        "tower_prefix": prefix,
        "projector": {"dims": c["dims"], "activations": c["activations"], "sources": sources},
    }


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    models = {}
    for c in CONFIGS:
        torch.manual_seed(c["seed"])
        heads = c["width"] // c["head_width"]
        tower = EcgTower(c["seq_length"], c["lead_num"], c["patch_size"], c["width"], c["layers"], heads,
                         c["mlp_ratio"], embed_dim=16).eval()
        projector = Projector(c["dims"], c["activations"]).eval()
        randomise(tower, c["seed"])
        randomise(projector, c["seed"] + 1)
        models[c["name"]] = (c, tower, projector)
        directory = os.path.join(OUT, c["name"])
        os.makedirs(directory, exist_ok=True)
        tensors = {k: v.detach().contiguous() for k, v in tower.state_dict().items()}
        for src, lin in zip(projector.sources(), [m for m in projector.seq if isinstance(m, nn.Linear)]):
            tensors[src + ".weight"] = lin.weight.detach().contiguous()
            tensors[src + ".bias"] = lin.bias.detach().contiguous()
        weights = os.path.join(directory, "signal_encoder.safetensors")
        save_file(tensors, weights)
        os.chmod(weights, 0o644)  # safetensors creates 0600 files
        with open(os.path.join(directory, "signal_config.json"), "w") as f:
            json.dump(config_json(c, projector.sources()), f, indent=2)
            f.write("\n")

    lines = ["# <case> config=<dir> samples=<n> input=<file> hidden=<file> embeddings=<file>"]
    for case, name, samples, seed in CASES:
        c, tower, projector = models[name]
        x = synthetic_ecg(c["lead_num"], samples, c["rate"], seed)
        with torch.no_grad():
            hidden = tower(torch.from_numpy(x)[None])[0]
            emb = projector(hidden)
        write_bin(f"{case}.input.bin", x)
        write_bin(f"{case}.hidden.bin", hidden.numpy())
        write_bin(f"{case}.embeddings.bin", emb.numpy())
        lines.append(f"{case} config={name} samples={samples} input={case}.input.bin hidden={case}.hidden.bin "
                     f"embeddings={case}.embeddings.bin")
    with open(os.path.join(OUT, "manifest.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")

    # GEM's full shape, keys only: the ECG-CoCa tower as stored in its checkpoint (state_dict
    # keys after "module.ecg."), its 768 -> 1024 ECG projector and the shared LLaVA projector.
    gem_dir = os.path.join(OUT, "gem")
    os.makedirs(gem_dir, exist_ok=True)
    with torch.device("meta"):
        tower = EcgTower(5000, 12, 50, 768, 12, 12, 4.0, embed_dim=512)
        ecg_projector = nn.Linear(768, 1024)
        mm_projector = nn.Sequential(nn.Linear(1024, 4096), nn.GELU(), nn.Linear(4096, 4096))
    keys = [(k, tuple(v.shape)) for k, v in tower.state_dict().items()]
    keys += [("model.ecg_projector." + k, tuple(v.shape)) for k, v in ecg_projector.state_dict().items()]
    keys += [("model.mm_projector." + k, tuple(v.shape)) for k, v in mm_projector.state_dict().items()]
    with open(os.path.join(gem_dir, "keys.txt"), "w") as f:
        for k, shape in keys:
            f.write(f"{k} {'x'.join(str(d) for d in shape)}\n")
    gem = dict(seq_length=5000, lead_num=12, patch_size=50, width=768, layers=12, head_width=64, mlp_ratio=4.0,
               rate=500.0, dims=[768, 1024, 4096, 4096], activations=["none", "gelu"])
    with open(os.path.join(gem_dir, "signal_config.json"), "w") as f:
        json.dump(config_json(gem, ["model.ecg_projector", "model.mm_projector.0", "model.mm_projector.2"]), f,
                  indent=2)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(d, n)) for d, _, ns in os.walk(OUT) for n in ns)
    print(f"wrote {OUT}: {total} bytes")


if __name__ == "__main__":
    main()
