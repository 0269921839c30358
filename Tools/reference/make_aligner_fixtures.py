"""Golden fixtures for the aligner (CRuntime/diffusion/aligner.c) and its converter mapping
(Tools/Convert/ModelConversion/AlignerExport.swift), from PyTorch (the oracle).

The aligner maps the K hidden states the language model produces at its ECG-generation tokens
(K x input_dim) to the U-Net's text-embedding condition (output_dim): pool the K states (their
mean, or all of them concatenated token after token: "flatten"), then an MLP of n_layers Linear
layers with the exact (erf) GELU between them, then optionally a LayerNorm and optionally an L2
normalisation (F.normalize, eps 1e-12: the MiniLM sentence embeddings the DiffuSETS U-Net was
trained on are unit vectors). ModelFormat.md, "Aligner (aligner.*)".

Layout written (the converter's input layout):
  Tests/Fixtures/aligner/
    manifest.txt                  one configuration per line:
                                  <config> cases=<n> tokens=<K> input_dim=<d> output_dim=<o>
    <config>/aligner.safetensors  layers.{i}.weight (out, in), layers.{i}.bias (out),
                                  norm.weight, norm.bias (only with layer_norm)
    <config>/aligner_config.json  tokens, input_dim, hidden_dim, n_layers, output_dim, pooling,
                                  layer_norm, norm_eps, normalize
    <config>/input.bin            (cases, K, input_dim) hidden states, little-endian float32
    <config>/expected.bin         (cases, output_dim) conditions, little-endian float32

Run with the project venv: /opt/uniecg-venv/bin/python Tools/reference/make_aligner_fixtures.py
"""
import json
import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Tests", "Fixtures", "aligner")


class Aligner(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        width = cfg["input_dim"] * (cfg["tokens"] if cfg["pooling"] == "flatten" else 1)
        dims = [width] + [cfg["hidden_dim"]] * (cfg["n_layers"] - 1) + [cfg["output_dim"]]
        self.layers = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(dims, dims[1:]))
        self.norm = torch.nn.LayerNorm(cfg["output_dim"], eps=cfg["norm_eps"]) if cfg["layer_norm"] else None

    def forward(self, hidden):  # hidden: (batch, K, input_dim)
        x = hidden.mean(dim=1) if self.cfg["pooling"] == "mean" else hidden.flatten(1)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i + 1 < len(self.layers):
                x = F.gelu(x)  # the erf form, F.gelu's default
        if self.norm is not None:
            x = self.norm(x)
        if self.cfg["normalize"]:
            x = F.normalize(x, dim=-1)
        return x


CONFIGS = {
    # Mean pooling, three layers, unit-length output: the shape of the real aligner (MiniLM).
    "mean_l2": dict(tokens=4, input_dim=64, hidden_dim=128, n_layers=3, output_dim=32, pooling="mean",
                    layer_norm=False, norm_eps=1e-5, normalize=True),
    # Flattened tokens, two layers, a final LayerNorm and no L2: the other branches.
    "flatten_ln": dict(tokens=2, input_dim=48, hidden_dim=64, n_layers=2, output_dim=40, pooling="flatten",
                       layer_norm=True, norm_eps=1e-5, normalize=False),
}
CASES = 3


def main():
    torch.manual_seed(20261125)
    lines = ["# <config> cases=<n> tokens=<K> input_dim=<d> output_dim=<o>"]
    for name, cfg in CONFIGS.items():
        model = Aligner(cfg).eval()
        with torch.no_grad():
            # Non-trivial norm parameters, so that a converter or loader that drops them fails.
            if model.norm is not None:
                model.norm.weight.uniform_(0.5, 1.5)
                model.norm.bias.uniform_(-0.3, 0.3)
            # Hidden states of a language model: a few units larger than the rest, per token.
            hidden = torch.randn(CASES, cfg["tokens"], cfg["input_dim"]) * 2.0
            out = model(hidden)
        directory = os.path.join(ROOT, name)
        os.makedirs(directory, exist_ok=True)
        state = {k: v.detach().contiguous().float() for k, v in model.state_dict().items()}
        save_file(state, os.path.join(directory, "aligner.safetensors"))
        with open(os.path.join(directory, "aligner_config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
            f.write("\n")
        hidden.numpy().astype("<f4").tofile(os.path.join(directory, "input.bin"))
        out.numpy().astype("<f4").tofile(os.path.join(directory, "expected.bin"))
        lines.append(f"{name} cases={CASES} tokens={cfg['tokens']} input_dim={cfg['input_dim']} "
                     f"output_dim={cfg['output_dim']}")
        print(name, {k: tuple(v.shape) for k, v in state.items()})
    with open(os.path.join(ROOT, "manifest.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
