"""Golden fixtures for the ECG image encoder (CRuntime/vision/image_encoder.c) and its converter
mapping (Tools/Convert/ModelConversion/ImageEncoderExport.swift), from transformers (the oracle).

The tower is transformers' own `CLIPVisionModel` with random weights, so the reference is an
independent implementation of CLIP's vision transformer: patch Conv2d without bias, class
token, position embedding, `pre_layrnorm`, encoder layers with separate q/k/v projections and
quick-GELU or GELU MLPs. The features are taken the way LLaVA takes them:
`outputs.hidden_states[select_layer]`, then the class token is dropped ("patch") or kept
("cls_patch"); the script checks that hidden_states[0] is the input of the first layer (after
pre_layrnorm), which is what ModelFormat.md's select_layer counts from. The projector is a
torch chain of Linear layers with GELU or nothing between them (LLaVA's mlp2x_gelu is
Linear-GELU-Linear).

Layout written (the converter's input layout, ModelFormat.md "Image encoder"):
  Tests/Fixtures/image_encoder/
    manifest.txt        one case per line: <case> config=<dir> input=<file> hidden=<file>
                        embeddings=<file>  (files are little-endian float32)
    <config>/image_encoder.safetensors  tower (CLIPVisionModel names after the config's
                                        tower_prefix) + projector weights
    <config>/image_config.json          vision_config, mean/std, select layer/feature, projector
    <case>.input.bin    (3, S, S) prepared image: resized and normalised with the config's mean/std
    <case>.hidden.bin   (tokens, width): hidden_states[select_layer] after feature selection
    <case>.embeddings.bin (tokens, out_dim): after the projector
    llava/keys.txt      "<name> <d0>x<d1>..." of LLaVA-1.5's CLIP ViT-L/14-336 tower and
                        projector as its checkpoint names them (built on the meta device)
    llava/image_config.json  that configuration

Run from the repository root:
  /opt/uniecg-venv/bin/python Tools/reference/make_image_encoder_fixtures.py
Deterministic (fixed seeds): reruns give identical files.

  ... make_image_encoder_fixtures.py --vit-l DIR
writes, instead, a shape check that is not committed (about 200 MB): DIR/image_encoder/ with
tiny_quick (which the C test's refusals read) and vit_l14_336, LLaVA-1.5's tower at full width
(336 px, patch 14, 577 tokens, width 1024, 16 heads, MLP 4096, 588-column patch matrix) but
only 2 of its 24 layers, with LLaVA's 1024 -> 4096 -> 4096 projector. Run the C test on it with
UNIECG_FIXTURES=DIR CRuntime/tests/build/cc/test_image_encoder.
"""
import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel

OUT = os.path.join("Tests", "Fixtures", "image_encoder")
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
LLAVA_PREFIX = "model.vision_tower.vision_tower.vision_model."


class Projector(nn.Module):
    """Linear layers with a GELU or nothing between consecutive ones."""

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

    def linears(self):
        return [(i, m) for i, m in enumerate(self.seq) if isinstance(m, nn.Linear)]


def randomise(module, seed):
    """Weights with realistic spread (the default init leaves biases and norms trivial)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "layer_norm" in name or "layrnorm" in name:
                if name.endswith("weight"):
                    p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
                else:
                    p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif p.dim() >= 2 and "position_embedding" not in name:
                p.copy_(torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5)
            else:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))


def ecg_paper(size, seed, mean, std):
    """A prepared image: pink ECG paper with a grid and a dark trace, in 0..1, then normalised
    per channel like CLIPImageProcessor does."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    rgb = np.empty((3, size, size))
    rgb[0], rgb[1], rgb[2] = 1.0, 0.85, 0.85
    grid = ((x % 5) == 0) | ((y % 5) == 0)
    rgb[:, grid] = [[0.95], [0.6], [0.6]]
    trace = size / 2 + size / 6 * np.sin(x / size * 7 + rng.uniform(0, 6)) * (1 + (x % 9 == 0) * 1.5)
    rgb[:, np.abs(y - trace) < 1.2] = 0.1
    rgb += 0.02 * rng.standard_normal(rgb.shape)
    rgb = np.clip(rgb, 0, 1)
    norm = (rgb - np.array(mean)[:, None, None]) / np.array(std)[:, None, None]
    return norm.astype(np.float32)


def write_bin(name, array):
    np.ascontiguousarray(array, dtype="<f4").tofile(os.path.join(OUT, name))


CONFIGS = [
    # 32 px, patch 8 (16 patches, 192-column patch matrix: q8), quick-GELU, LLaVA's defaults:
    # second-to-last layer (layer 1 of 2 is never run nor converted), patch tokens only.
    dict(name="tiny_quick", image_size=32, patch_size=8, width=32, layers=2, heads=2, ffn=64, act="quick_gelu",
         select_layer=-2, feature="patch", dims=[32, 64, 64], activations=["gelu"], prefix="vision_model.",
         sources=None, seed=31),
    # 30 px, patch 6 (25 patches, 108-column patch matrix stays f32), exact GELU, the last layer,
    # class token kept, checkpoint names with LLaVA's prefix, Linear-none-Linear projector.
    dict(name="small_gelu", image_size=30, patch_size=6, width=48, layers=3, heads=3, ffn=96, act="gelu",
         select_layer=-1, feature="cls_patch", dims=[48, 64, 40], activations=["none"], prefix=LLAVA_PREFIX,
         sources=["model.mm_projector.0", "model.mm_projector.1"], seed=47),
]

# (case, config, input seed)
CASES = [
    ("tiny_quick_a", "tiny_quick", 301),
    ("tiny_quick_b", "tiny_quick", 302),
    ("small_gelu_a", "small_gelu", 401),
]


def config_json(c, sources):
    return {
        "vision_config": {
            "image_size": c["image_size"], "patch_size": c["patch_size"], "hidden_size": c["width"],
            "num_hidden_layers": c["layers"], "num_attention_heads": c["heads"], "intermediate_size": c["ffn"],
            "hidden_act": c["act"], "layer_norm_eps": 1e-5, "num_channels": 3,
        },
        "image_mean": CLIP_MEAN,
        "image_std": CLIP_STD,
        "mm_vision_select_layer": c["select_layer"],
        "mm_vision_select_feature": c["feature"],
        "tower_prefix": c["prefix"],
        "projector": {"dims": c["dims"], "activations": c["activations"], "sources": sources},
    }


def clip_config(c):
    return CLIPVisionConfig(image_size=c["image_size"], patch_size=c["patch_size"], hidden_size=c["width"],
                            num_hidden_layers=c["layers"], num_attention_heads=c["heads"],
                            intermediate_size=c["ffn"], hidden_act=c["act"], layer_norm_eps=1e-5, num_channels=3)


def strip(key):
    """The key inside the vision transformer: transformers 4 names CLIPVisionModel's parameters
    "vision_model.<key>" (as the published checkpoints store them), transformers 5 "<key>" and
    adds the prefix back when it reads or writes a checkpoint."""
    return key[len("vision_model."):] if key.startswith("vision_model.") else key


def features(tower, projector, c, image):
    with torch.no_grad():
        out = tower(pixel_values=torch.from_numpy(image)[None], output_hidden_states=True)
        states = out.hidden_states
        assert len(states) == c["layers"] + 1, len(states)
        vm = getattr(tower, "vision_model", tower)  # transformers 4 wraps the transformer, 5 does not
        first = vm.pre_layrnorm(vm.embeddings(torch.from_numpy(image)[None]))
        assert torch.equal(states[0], first), "hidden_states[0] is not the input of the first layer"
        hidden = states[c["select_layer"]][0]
        if c["feature"] == "patch":
            hidden = hidden[1:]
        return hidden, projector(hidden)


VIT_L = dict(name="vit_l14_336", image_size=336, patch_size=14, width=1024, layers=2, heads=16, ffn=4096,
             act="quick_gelu", select_layer=-2, feature="patch", dims=[1024, 4096, 4096], activations=["gelu"],
             prefix=LLAVA_PREFIX, sources=["model.mm_projector.0", "model.mm_projector.2"], seed=61)


def main():
    global OUT, CONFIGS, CASES
    if len(sys.argv) == 3 and sys.argv[1] == "--vit-l":
        OUT = os.path.join(sys.argv[2], "image_encoder")
        CONFIGS = [CONFIGS[0], VIT_L]
        CASES = [("vit_l14_336_a", "vit_l14_336", 601)]
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    models = {}
    for c in CONFIGS:
        torch.manual_seed(c["seed"])
        tower = CLIPVisionModel(clip_config(c)).eval()
        projector = Projector(c["dims"], c["activations"]).eval()
        randomise(tower, c["seed"])
        randomise(projector, c["seed"] + 1)
        models[c["name"]] = (c, tower, projector)
        directory = os.path.join(OUT, c["name"])
        os.makedirs(directory, exist_ok=True)
        tensors = {}
        for k, v in tower.state_dict().items():
            if k.endswith("position_ids"):
                continue
            tensors[c["prefix"] + strip(k)] = v.detach().contiguous()
        sources = c["sources"] or [f"projector.{i}" for i, _ in projector.linears()]
        for src, (_, lin) in zip(sources, projector.linears()):
            tensors[src + ".weight"] = lin.weight.detach().contiguous()
            tensors[src + ".bias"] = lin.bias.detach().contiguous()
        weights = os.path.join(directory, "image_encoder.safetensors")
        save_file(tensors, weights)
        os.chmod(weights, 0o644)  # safetensors creates 0600 files
        with open(os.path.join(directory, "image_config.json"), "w") as f:
            json.dump(config_json(c, c["sources"]), f, indent=2)
            f.write("\n")

    lines = ["# <case> config=<dir> input=<file> hidden=<file> embeddings=<file>"]
    for case, name, seed in CASES:
        c, tower, projector = models[name]
        image = ecg_paper(c["image_size"], seed, CLIP_MEAN, CLIP_STD)
        hidden, emb = features(tower, projector, c, image)
        write_bin(f"{case}.input.bin", image)
        write_bin(f"{case}.hidden.bin", hidden.numpy())
        write_bin(f"{case}.embeddings.bin", emb.numpy())
        lines.append(f"{case} config={name} input={case}.input.bin hidden={case}.hidden.bin "
                     f"embeddings={case}.embeddings.bin")
    with open(os.path.join(OUT, "manifest.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")

    if CONFIGS[-1] is VIT_L:
        return
    # LLaVA-1.5's tower, keys only: CLIP ViT-L/14 at 336 px under LLaVA's prefix, and its
    # mlp2x_gelu projector (1024 -> 4096 -> 4096).
    llava_dir = os.path.join(OUT, "llava")
    os.makedirs(llava_dir, exist_ok=True)
    llava = dict(image_size=336, patch_size=14, width=1024, layers=24, heads=16, ffn=4096, act="quick_gelu",
                 select_layer=-2, feature="patch", dims=[1024, 4096, 4096], activations=["gelu"], prefix=LLAVA_PREFIX)
    with torch.device("meta"):
        tower = CLIPVisionModel(clip_config(llava))
        mm_projector = nn.Sequential(nn.Linear(1024, 4096), nn.GELU(), nn.Linear(4096, 4096))
    keys = [(LLAVA_PREFIX + strip(k), tuple(v.shape)) for k, v in tower.state_dict().items()
            if not k.endswith("position_ids")]
    keys += [("model.mm_projector." + k, tuple(v.shape)) for k, v in mm_projector.state_dict().items()]
    with open(os.path.join(llava_dir, "keys.txt"), "w") as f:
        for k, shape in keys:
            f.write(f"{k} {'x'.join(str(d) for d in shape)}\n")
    with open(os.path.join(llava_dir, "image_config.json"), "w") as f:
        json.dump(config_json(llava, ["model.mm_projector.0", "model.mm_projector.2"]), f, indent=2)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(d, n)) for d, _, ns in os.walk(OUT) for n in ns)
    print(f"wrote {OUT}: {total} bytes")


if __name__ == "__main__":
    main()
