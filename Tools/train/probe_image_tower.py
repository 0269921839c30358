#!/usr/bin/env python3
"""Can the photo path's image tower learn the record's condition from its pictures at all? The
tower of train_unified.py (CLIPVisionModel, IMAGE there) plus a linear head on its mean patch
token, trained alone on image_data.py's pictures (no language model, so batches are cheap);
prints held-out accuracy against chance (1/17), or with --target rate the held-out correlation
and mean error of the heart rate read from the picture (a regression: a denser signal than 17
classes, and the one finding a picture shows at any resolution). Training-side check only;
nothing is exported, but --save keeps the trained tower and condition head for
train_unified.py --image-tower (the photo path's pretraining: through the language model alone the
tower gets too weak a gradient to start learning).

    python Tools/train/probe_image_tower.py --data WORK/data2 --images WORK/images [--minutes 12]
           [--target condition|rate] [--patch 16] [--pool mean|max] [--lr 1e-3] [--warmup 0]
           [--shift 0] [--rate-weight 0] [--steps N] [--init TOWER.pt] [--save TOWER.pt]

--pool max matters: every printout has about the same amount of ink, so the mean of the patch
tokens of a freshly initialised tower is nearly the same for every picture (its spread across
pictures 0.002-0.016) and the head gets almost no gradient; the maximum over the tokens keeps
what single patches show (Tools/train/README.md, "the photo path").
"""
import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import train_unified as T  # noqa: E402
from ecgsim import CONDITIONS  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--images", required=True)
    ap.add_argument("--minutes", type=float, default=12)
    ap.add_argument("--steps", type=int, default=None, help="stop after this many steps (if --minutes has not run out first)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=0, help="steps of linear learning-rate warm-up")
    ap.add_argument("--pool", choices=("mean", "max"), default="mean",
                    help="how the head sees the patch tokens (mean: near-constant across pictures at first)")
    ap.add_argument("--held-out", type=int, default=300, help="last N pictured records are only evaluated")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--target", choices=("condition", "rate"), default="condition")
    ap.add_argument("--patch", type=int, default=T.IMAGE["patch_size"], help="patch size (divides the image size)")
    ap.add_argument("--shift", type=int, default=0,
                    help="augmentation: move each training picture by up to this many pixels (edges repeated)")
    ap.add_argument("--rate-weight", type=float, default=0.0,
                    help="condition target: also regress the standardised heart rate from the same pooled "
                         "tokens (its own linear head, this weight on its MSE); the rate alone is learned "
                         "in ~500 steps, the conditions after a plateau of ~1,300")
    ap.add_argument("--eval-every", type=int, default=100, help="held-out evaluation every N steps")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init", help="continue from a tower and head written by --save (the optimiser starts afresh)")
    ap.add_argument("--save", help="write the tower and head here (condition target, patch size of the photo path)")
    args = ap.parse_args()
    if args.save and (args.target != "condition" or args.patch != T.IMAGE["patch_size"]):
        raise SystemExit("--save keeps a tower for train_unified.py: --target condition with its patch size only")
    torch.set_num_threads(args.threads)
    data = T.load_data(args.data)
    images = T.load_images(args.images, data)
    n_train = len(images) - args.held_out
    rate = data["scalars"][:len(images), 2].astype(np.float32)
    mean, std = rate[:n_train].mean(), rate[:n_train].std()
    rate = (rate - mean) / std
    if args.target == "rate":
        labels = rate
    else:
        labels = data["condition"][:len(images)].astype(np.int64)
    torch.manual_seed(args.seed)
    config = dict(T.IMAGE, patch_size=args.patch)
    tower = T.image_fixtures.CLIPVisionModel(T.image_fixtures.clip_config(config))
    head = torch.nn.Linear(T.IMAGE["width"], 1 if args.target == "rate" else len(CONDITIONS))
    if args.init:
        saved = torch.load(args.init, weights_only=False)
        if saved.get("pool") != args.pool:
            raise SystemExit(f"{args.init} was trained with --pool {saved.get('pool')}")
        tower.load_state_dict(saved["image_tower"])
        head.load_state_dict(saved["tower_head"])
    steps_before = saved["steps"] if args.init else 0
    rate_head = torch.nn.Linear(T.IMAGE["width"], 1)     # used with --rate-weight only; not saved
    params = list(tower.parameters()) + list(head.parameters()) + (list(rate_head.parameters()) if args.rate_weight else [])
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.05)
    rng = np.random.default_rng(args.seed)

    def shifted(views):
        """Each picture moved by a random offset of up to --shift pixels: 2,200 records are few
        enough for the tower to start memorising them."""
        if not args.shift:
            return views
        k = args.shift
        padded = np.pad(views, ((0, 0), (k, k), (k, k), (0, 0)), mode="edge")
        dy, dx = rng.integers(0, 2 * k + 1, size=(2, len(views)))
        size = views.shape[1]
        return np.stack([padded[i, dy[i]:dy[i] + size, dx[i]:dx[i] + size] for i in range(len(views))])

    def pooled(views):
        tokens = T.tower_features(tower, T.pixel_values(views))
        return tokens.amax(1) if args.pool == "max" else tokens.mean(1)

    def logits(views):
        return head(pooled(views))

    def loss_of(features, pick):
        if args.target == "rate":
            return F.mse_loss(head(features)[:, 0], torch.from_numpy(labels[pick]))
        loss = F.cross_entropy(head(features), torch.from_numpy(labels[pick]))
        if args.rate_weight:
            loss = loss + args.rate_weight * F.mse_loss(rate_head(features)[:, 0], torch.from_numpy(rate[pick]))
        return loss

    def evaluate():
        """Held-out accuracy, or for the rate (correlation, mean absolute error in bpm)."""
        tower.eval()
        outs, truth = [], []
        with torch.no_grad():
            for v in range(images.shape[1]):
                for i in range(n_train, len(images), 64):
                    j = slice(i, min(i + 64, len(images)))
                    outs.append(logits(images[j, v]).numpy())
                    truth.append(labels[j])
        tower.train()
        out, truth = np.concatenate(outs), np.concatenate(truth)
        if args.target == "rate":
            r = float(np.corrcoef(out[:, 0], truth)[0, 1])
            return f"rate r {r:.3f}, mean error {float(np.abs(out[:, 0] - truth).mean() * std):.1f} bpm " \
                   f"(predicting the mean: {float(np.abs(truth).mean() * std):.1f})"
        return f"accuracy {float((out.argmax(1) == truth).mean()):.3f}"

    t0, step, window = time.time(), 0, []
    print(f"{n_train} training / {args.held_out} held-out records x {images.shape[1]} pictures; chance {1 / len(CONDITIONS):.3f}")
    while time.time() - t0 < args.minutes * 60 and (args.steps is None or step < args.steps):
        pick = rng.choice(n_train, args.batch)
        views = shifted(images[pick, rng.integers(images.shape[1], size=args.batch)])
        loss = loss_of(pooled(views), pick)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        for group in opt.param_groups:
            group["lr"] = args.lr * min(1.0, (step + 1) / args.warmup) if args.warmup else args.lr
        opt.step()
        step += 1
        window.append(loss.item())
        if step % 25 == 0:
            print(f"step {step} loss {np.mean(window):.3f} [{(time.time() - t0) / 60:.1f} min]", flush=True)
            window = []
        if step % args.eval_every == 0:
            print(f"  held-out {evaluate()}", flush=True)
    print(f"final: {step} steps, held-out {evaluate()} (chance accuracy {1 / len(CONDITIONS):.3f})")
    if args.save:
        torch.save({"image_tower": tower.state_dict(), "tower_head": head.state_dict(), "steps": steps_before + step,
                    "pool": args.pool, "held_out": args.held_out}, args.save)
        print(f"saved the tower and its head to {args.save}")


if __name__ == "__main__":
    main()
