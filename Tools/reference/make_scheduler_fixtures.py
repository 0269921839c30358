"""Golden fixtures for the C diffusion schedulers, from Hugging Face diffusers (the oracle).

Writes, under Tests/Fixtures/scheduler/:
  - manifest.txt   one line per configuration, space-separated key=value:
                     name kind(ddpm|ddim|dpmpp_2m) betas(linear|scaled_linear|cosine)
                     beta_start beta_end train_steps prediction(epsilon|v) steps eta
                     clip_sample(0|1) clip_range sample_size noise(0|1)
                     timesteps=t0,t1,...   (diffusers' scheduler.timesteps after set_timesteps)
                     clipped=<fraction of x0 predictions the clamp changed> (information only)
                   Lines starting with '#' are comments.
  - <name>.f32     little-endian float32, sample_size values per record:
                     the initial sample, then for every step i:
                       model_output[i], noise[i] (only when noise=1), sample after step i
                   where "sample after step i" is diffusers' prev_sample fed back into step i+1
                   (one trajectory, as a pipeline runs it).
  - normal_noise.txt  reference values of uniecg_normal_noise (an independent Python/numpy
                   implementation of the documented algorithm) for seeds 0 and 42:
                     "seed=S count=64" then 64 floats ('%.9g'), and "xoshiro seed=S" then the
                     first 8 raw xoshiro256** outputs (decimal), for each seed.

The model outputs and noises are not a network: seeded numpy standard normals (float32),
stored in the fixture, so the C test feeds the scheduler exactly what diffusers was fed.

How diffusers is configured to the semantics documented in CRuntime/include/uniecg.h:
  all three   beta_start / beta_end / beta_schedule / num_train_timesteps / prediction_type
              passed explicitly (the C defaults 0.00085 / 0.012 are not diffusers' DDPM/DDIM
              defaults 0.0001 / 0.02); "squaredcos_cap_v2" is the C UNIECG_BETAS_COSINE;
              trained_betas=None, rescale_betas_zero_snr=False, thresholding=False.
  DDPM        variance_type="fixed_small", timestep_spacing="leading", steps_offset=0,
              clip_sample / clip_sample_range as the C params (diffusers' default True / 1.0).
              DDPMScheduler.step only takes a `generator`, so the stored noise is injected by
              replacing `randn_tensor` in the diffusers.schedulers.scheduling_ddpm module with a
              function returning the stored array (it is only called when t > 0, i.e. not at
              the last step; the C test passes NULL noise there).
  DDIM        set_alpha_to_one=True (the C header: "alpha at t<0 is 1"; Stable Diffusion's
              configs use False, the diffusers default is True), timestep_spacing="leading",
              steps_offset=0, step(eta=eta, use_clipped_model_output=False,
              variance_noise=<stored noise>) (variance_noise is a step() argument: no patching).
  DPM++ 2M    algorithm_type="dpmsolver++", solver_order=2, solver_type="midpoint",
              lower_order_final=True, euler_at_final=False, final_sigmas_type="zero",
              timestep_spacing="linspace", steps_offset=0, use_karras_sigmas / exponential /
              beta / lu / flow sigmas all False, lambda_min_clipped=-inf (all diffusers
              defaults, set explicitly). No clipping (the C clip_sample is DDPM/DDIM only).

Known float differences: diffusers computes each step in float32 tensors (and torch's float32
sqrt / log here are MKL's, not always correctly rounded), the C core keeps the float32 tables
and does the arithmetic in double; torch.linspace (float32, vectorised) can differ from the
correctly rounded betas by 1 ulp; torch.cumprod on the CPU accumulates in double and rounds
each output to float32 (the C code does the same). One C step from diffusers' input sample
matches within ~3e-6. The random epsilon outputs make some trajectories ill-conditioned
(x0 = (x - sigma eps) / alpha, 1 / alpha up to 2e4 for the cosine schedule at t = 999), so
free-running float32 trajectories drift apart element-wise by up to ~2e-5 (diffusers' own
float32 trajectory differs that much from the same formulas in float64); the C test compares
those norm-wise. See CRuntime/tests/test_scheduler.c.

Run from the repository root:
  /opt/uniecg-venv/bin/python Tools/reference/make_scheduler_fixtures.py
Deterministic: fixed seeds.
"""
import math
import os
import sys

import numpy as np
import torch

import diffusers
import diffusers.schedulers.scheduling_ddpm as ddpm_module
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "scheduler")

SHAPE = (1, 4, 128)  # batch 1, 4 channels x 128 positions = sample_size 512
SAMPLE_SIZE = 4 * 128

BETAS = {"linear": "linear", "scaled_linear": "scaled_linear", "cosine": "squaredcos_cap_v2"}
PREDICTION = {"epsilon": "epsilon", "v": "v_prediction"}


def config(name, kind, betas, prediction, steps, beta_start=0.00085, beta_end=0.012, train_steps=1000, eta=0.0,
           clip_sample=False, clip_range=1.0, output_scale=1.0, seed=0):
    return dict(name=name, kind=kind, betas=betas, prediction=prediction, steps=steps, beta_start=beta_start,
                beta_end=beta_end, train_steps=train_steps, eta=eta, clip_sample=clip_sample, clip_range=clip_range,
                output_scale=output_scale, seed=seed)


CONFIGS = [
    # DDPM (ancestral, fixed_small, leading)
    config("ddpm_linear_eps_10", "ddpm", "linear", "epsilon", 10, beta_start=0.0001, beta_end=0.02,
           clip_sample=True, seed=1),
    config("ddpm_scaled_v_10", "ddpm", "scaled_linear", "v", 10, clip_sample=False, seed=2),
    config("ddpm_cosine_eps_7", "ddpm", "cosine", "epsilon", 7, clip_sample=True, clip_range=2.0, seed=3),
    # DDIM (eta, leading, set_alpha_to_one=True)
    config("ddim_linear_eps_eta0_10", "ddim", "linear", "epsilon", 10, eta=0.0, clip_sample=False, seed=4),
    config("ddim_cosine_v_eta05_10", "ddim", "cosine", "v", 10, eta=0.5, clip_sample=True, seed=5),
    # model outputs x4: the x0 prediction leaves [-1, 1] almost everywhere, so the clamp decides
    config("ddim_clip_large_10", "ddim", "scaled_linear", "epsilon", 10, eta=0.0, clip_sample=True,
           output_scale=4.0, seed=6),
    # eta 1 (the DDPM variance), 1000 // 7 = 142 (the leading ratio does not divide)
    config("ddim_linear_v_eta1_7", "ddim", "linear", "v", 7, beta_start=0.0001, beta_end=0.02, eta=1.0,
           clip_sample=True, clip_range=1.5, output_scale=2.0, seed=7),
    # DPM-Solver++ 2M (linspace, lower_order_final, final sigma 0)
    config("dpmpp_linear_eps_10", "dpmpp_2m", "linear", "epsilon", 10, seed=8),
    config("dpmpp_scaled_v_20", "dpmpp_2m", "scaled_linear", "v", 20, seed=9),
    config("dpmpp_cosine_eps_7", "dpmpp_2m", "cosine", "epsilon", 7, seed=10),
    # 26 and 30 steps: np.linspace(0, 999, n + 1) puts a value within rounding of .5 (numpy's
    # k * (999 / n) rounds differently from the exact 999 * k / n)
    config("dpmpp_scaled_eps_26", "dpmpp_2m", "scaled_linear", "epsilon", 26, seed=11),
    config("dpmpp_linear_v_30", "dpmpp_2m", "linear", "v", 30, seed=12),
    # one step: the only step is both the first (first order) and the last (sigma 0 -> x0)
    config("dpmpp_scaled_eps_1", "dpmpp_2m", "scaled_linear", "epsilon", 1, seed=13),
    config("dpmpp_linear_eps_2", "dpmpp_2m", "linear", "epsilon", 2, seed=14),
]


def make_scheduler(c):
    common = dict(num_train_timesteps=c["train_steps"], beta_start=c["beta_start"], beta_end=c["beta_end"],
                  beta_schedule=BETAS[c["betas"]], trained_betas=None, prediction_type=PREDICTION[c["prediction"]],
                  thresholding=False, rescale_betas_zero_snr=False, steps_offset=0)
    if c["kind"] == "ddpm":
        s = DDPMScheduler(variance_type="fixed_small", clip_sample=c["clip_sample"],
                          clip_sample_range=c["clip_range"], timestep_spacing="leading", **common)
    elif c["kind"] == "ddim":
        s = DDIMScheduler(clip_sample=c["clip_sample"], clip_sample_range=c["clip_range"], set_alpha_to_one=True,
                          timestep_spacing="leading", **common)
    else:
        s = DPMSolverMultistepScheduler(solver_order=2, algorithm_type="dpmsolver++", solver_type="midpoint",
                                        lower_order_final=True, euler_at_final=False, use_karras_sigmas=False,
                                        use_exponential_sigmas=False, use_beta_sigmas=False, use_lu_lambdas=False,
                                        use_flow_sigmas=False, final_sigmas_type="zero",
                                        lambda_min_clipped=-float("inf"), variance_type=None,
                                        timestep_spacing="linspace", **common)
    s.set_timesteps(c["steps"])
    return s


class StoredNoise:
    """Stands in for diffusers' randn_tensor in the DDPM module: returns the stored noise."""

    def __init__(self):
        self.next = None
        self.calls = 0

    def __call__(self, shape, generator=None, device=None, dtype=None, layout=None, **kwargs):
        assert self.next is not None, "randn_tensor called twice in one step"
        assert tuple(shape) == SHAPE and dtype == torch.float32, (shape, dtype)
        value, self.next = self.next, None
        self.calls += 1
        return value.clone()


def x0_prediction(s, c, t, model_output, sample):
    """The unclipped x0 prediction (DDPM/DDIM), only to report how much the clamp changes."""
    a = s.alphas_cumprod[t]
    if c["prediction"] == "epsilon":
        return (sample - (1 - a) ** 0.5 * model_output) / a ** 0.5
    return a ** 0.5 * sample - (1 - a) ** 0.5 * model_output


def run(c):
    s = make_scheduler(c)
    timesteps = [int(t) for t in s.timesteps]
    assert len(timesteps) == c["steps"]
    rng = np.random.default_rng(c["seed"])
    uses_noise = c["kind"] == "ddpm" or (c["kind"] == "ddim" and c["eta"] > 0)
    initial = rng.standard_normal(SAMPLE_SIZE).astype(np.float32)
    if c["kind"] == "dpmpp_2m":
        initial *= np.float32(s.init_noise_sigma)
    records = [initial]
    sample = torch.from_numpy(initial.copy()).reshape(SHAPE)
    stored = StoredNoise()
    saved_randn = ddpm_module.randn_tensor
    ddpm_module.randn_tensor = stored
    clipped = changed = 0
    try:
        for i, t in enumerate(timesteps):
            out = (rng.standard_normal(SAMPLE_SIZE) * c["output_scale"]).astype(np.float32)
            noise = rng.standard_normal(SAMPLE_SIZE).astype(np.float32) if uses_noise else None
            model_output = torch.from_numpy(out.copy()).reshape(SHAPE)
            noise_t = torch.from_numpy(noise.copy()).reshape(SHAPE) if uses_noise else None
            if c["kind"] in ("ddpm", "ddim") and c["clip_sample"]:
                x0 = x0_prediction(s, c, t, model_output, sample)
                changed += int((x0.abs() > c["clip_range"]).sum())
                clipped += x0.numel()
            if c["kind"] == "ddpm":
                calls = stored.calls
                stored.next = noise_t
                prev = s.step(model_output, t, sample).prev_sample
                assert stored.calls == calls + (1 if t > 0 else 0), "DDPM noise not used as expected"
                stored.next = None
            elif c["kind"] == "ddim":
                prev = s.step(model_output, t, sample, eta=c["eta"], use_clipped_model_output=False,
                              variance_noise=noise_t).prev_sample
            else:
                prev = s.step(model_output, t, sample).prev_sample
            assert prev.dtype == torch.float32 and tuple(prev.shape) == SHAPE
            sample = prev
            records.append(out)
            if uses_noise:
                records.append(noise)
            records.append(sample.reshape(-1).numpy().astype(np.float32).copy())
    finally:
        ddpm_module.randn_tensor = saved_randn
    data = np.concatenate(records).astype("<f4")
    assert np.isfinite(data).all(), c["name"]
    fraction = changed / clipped if clipped else 0.0
    if c["clip_sample"]:  # the clamp must matter wherever it is on
        need = 0.5 if "clip_large" in c["name"] else 0.1
        assert fraction > need, f"{c['name']}: clipping changes only {fraction:.2f} of x0"
    return timesteps, uses_noise, data, fraction


# ------------------------------------------------------------------------------------------
# uniecg_normal_noise: an independent implementation of the documented algorithm

M64 = (1 << 64) - 1


def splitmix64_stream(seed):
    x = seed & M64
    while True:
        x = (x + 0x9E3779B97F4A7C15) & M64
        z = x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        yield z ^ (z >> 31)


def rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M64


class Xoshiro256ss:
    def __init__(self, seed):
        stream = splitmix64_stream(seed)
        self.s = [next(stream) for _ in range(4)]

    def next(self):
        s = self.s
        result = (rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result


def normal_noise(seed, count):
    g = Xoshiro256ss(seed)
    out = []
    while len(out) < count:
        u1 = np.float64(g.next() >> 11) * np.float64(2.0 ** -53)
        u2 = np.float64(g.next() >> 11) * np.float64(2.0 ** -53)
        radius = np.sqrt(np.float64(-2.0) * np.log(np.float64(1.0) - u1))
        angle = np.float64(2.0 * math.pi) * u2
        out.append(np.float32(radius * np.cos(angle)))
        out.append(np.float32(radius * np.sin(angle)))
    return out[:count]


def main():
    os.makedirs(OUT, exist_ok=True)
    lines = [
        f"# diffusers {diffusers.__version__}, torch {torch.__version__}, numpy {np.__version__}; "
        "written by Tools/reference/make_scheduler_fixtures.py",
    ]
    total = 0
    for c in CONFIGS:
        timesteps, uses_noise, data, fraction = run(c)
        path = os.path.join(OUT, c["name"] + ".f32")
        with open(path, "wb") as f:
            f.write(data.tobytes())
        total += os.path.getsize(path)
        fields = [
            f"name={c['name']}", f"kind={c['kind']}", f"betas={c['betas']}", f"beta_start={c['beta_start']!r}",
            f"beta_end={c['beta_end']!r}", f"train_steps={c['train_steps']}", f"prediction={c['prediction']}",
            f"steps={c['steps']}", f"eta={c['eta']!r}", f"clip_sample={int(c['clip_sample'])}",
            f"clip_range={c['clip_range']!r}", f"sample_size={SAMPLE_SIZE}", f"noise={int(uses_noise)}",
            "timesteps=" + ",".join(str(t) for t in timesteps), f"clipped={fraction:.3f}",
        ]
        lines.append(" ".join(fields))
        print(f"{c['name']}: timesteps {timesteps[:4]}... final |x| max {np.abs(data[-SAMPLE_SIZE:]).max():.4g}, "
              f"clipped {fraction:.3f}")
    with open(os.path.join(OUT, "manifest.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")

    noise_lines = ["# uniecg_normal_noise reference: xoshiro256** seeded through splitmix64, Box-Muller in double"]
    for seed in (0, 42):
        values = normal_noise(seed, 64)
        noise_lines.append(f"seed={seed} count={len(values)}")
        noise_lines.extend("%.9g" % v for v in values)
        g = Xoshiro256ss(seed)
        noise_lines.append(f"xoshiro seed={seed}")
        noise_lines.extend(str(g.next()) for _ in range(8))
    with open(os.path.join(OUT, "normal_noise.txt"), "w") as f:
        f.write("\n".join(noise_lines) + "\n")
    total += os.path.getsize(os.path.join(OUT, "normal_noise.txt")) + os.path.getsize(os.path.join(OUT, "manifest.txt"))
    print(f"wrote {len(CONFIGS)} configurations to {OUT}: {total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
