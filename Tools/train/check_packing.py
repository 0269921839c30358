"""Checks train_unified.forward_loss (sequences packed side by side into shared rows) against the
same batch run one sequence at a time with no padding and no packing: the losses and the gradients
must agree to float rounding. Needs a stage 2 data directory and a run's tokenizer; the weights
are a fresh random model (or --weights RUN/unified.pt).

    python Tools/train/check_packing.py --data W/stage2/data --run W/stage2/run [--images W/stage2/images]
"""
import argparse
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_unified as TU  # noqa: E402


def one_at_a_time(model, tok, batch, ecg_id, gen_ids):
    """The reference: every sequence through the language model alone."""
    lm = model.lm
    ces = {"explain": [], "photo": [], "generate": []}
    hidden = []
    for name, placeholder, n in (("explain", ecg_id, TU.TOKENS), ("photo", tok.token_to_id("<image>"), TU.IMAGE_TOKENS),
                                 ("generate", None, 0)):
        for p, a, inp in batch.get(name, []):
            pi, ai = tok.encode(p).ids, tok.encode(a).ids
            if placeholder is not None:
                at = pi.index(placeholder)
                pi = pi[:at] + [placeholder] * n + pi[at + 1:]
            ids = torch.tensor((pi + ai)[:TU.LM["context"]])[None]
            x = lm.get_input_embeddings()(ids)
            if name == "explain":
                tokens = model.projector(model.tower(torch.from_numpy(inp[None].astype(np.float32))))
            elif name == "photo":
                tokens = model.image_tokens(TU.pixel_values(inp[None]))
            if placeholder is not None:
                x = torch.cat([x[:, :at], tokens.to(x.dtype), x[:, at + n:]], 1)
            last = lm.model(inputs_embeds=x).last_hidden_state[0]
            first = len(pi) - 1                                  # predicts the answer's first token
            ces[name].append(F.cross_entropy(lm.lm_head(last[first:-1]), ids[0, first + 1:], reduction="none"))
            if name == "generate":
                hidden.append(last[torch.isin(ids[0], gen_ids)])
    parts = {f"{k}_ce": torch.cat(v).mean() for k, v in ces.items() if v}
    total = sum(parts.values())
    if hidden:
        pred = model.aligner(torch.stack(hidden))
        tgt = torch.from_numpy(np.stack([t for _, _, t in batch["generate"]])).float()
        cos = F.cosine_similarity(pred, tgt, dim=-1)
        parts["align_cos"] = cos.mean()
        total = total + 2.0 * ((1 - cos).mean() + ((pred - tgt) ** 2).sum(-1).mean())
    return total, parts


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--run", required=True, help="a run directory with tokenizer.json")
    ap.add_argument("--images", help="also pack photo sequences (image_data.py's output)")
    ap.add_argument("--weights", help="unified.pt to load (default: random weights)")
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()
    from tokenizers import Tokenizer
    torch.set_num_threads(1)
    data = TU.load_data(args.data)
    tok = Tokenizer.from_file(os.path.join(args.run, "tokenizer.json"))
    ecg_id = tok.token_to_id("<ecg>")
    gen_ids = torch.tensor([tok.token_to_id(f"<ecg_gen_{k}>") for k in range(TU.K)])
    torch.manual_seed(args.seed)
    model = TU.Unified()
    if args.weights:
        model.load_state_dict(torch.load(args.weights, weights_only=False)["model"])
    images = TU.load_images(args.images, data) if args.images else None
    batch = TU.make_batch(data, np.random.default_rng(args.seed), np.arange(len(data["ids"]) - 500), 12, 16, images, 6)
    grads, worst = [], 0.0
    for name, f in (("packed", TU.forward_loss), ("one at a time", one_at_a_time)):
        model.zero_grad()
        loss, parts = f(model, tok, batch, ecg_id, gen_ids)
        loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
        print(f"{name:>14}: loss {loss.item():.7f} " + " ".join(f"{k} {float(v.detach()):.7f}" for k, v in parts.items()))
        if name == "packed":
            first = loss.item()
    loss_diff = abs(loss.item() - first) / abs(first)
    grad_diff = ((grads[0] - grads[1]).norm() / grads[1].norm()).item()
    print(f"relative difference: loss {loss_diff:.2e}, gradient {grad_diff:.2e}")
    if loss_diff > 1e-5 or grad_diff > 1e-4:
        raise SystemExit("packed and one-at-a-time losses differ")


if __name__ == "__main__":
    main()
