"""python -m powerret: prefill a long context, then decode tokens from the returned state.

Shows the whole value of power retention: the state that carries the context has a fixed size
(b * h * (D * e + D) fp32 numbers) while attention's KV cache grows with the context. Checks that
prefill + N decode steps reproduce one prefill over all tokens, and prints the timings.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import powerret


def _parse(argv):
    p = argparse.ArgumentParser(prog="python -m powerret", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="cuda needs PyTorch with a GPU and a CUDA build of powerret (default: auto)")
    p.add_argument("--context", type=int, help="prefill tokens (default 65536 on the GPU, 2048 on the CPU)")
    p.add_argument("--decode", type=int, help="decode steps after the prefill (default 64 GPU, 16 CPU)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--heads", type=int, help="kv heads (default 8 GPU, 4 CPU)")
    p.add_argument("--group", type=int, default=1, help="query heads per kv head (GQA)")
    p.add_argument("--dim", type=int, help="head dim d = e (default 64 GPU, 32 CPU)")
    p.add_argument("--deg", type=int, default=2, help="degree p of the power expansion")
    p.add_argument("--dtype", choices=["float16", "bfloat16", "float32"],
                   help="q/k/v dtype (default bfloat16 GPU, float32 CPU)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def _want_cuda(choice: str) -> bool:
    if choice == "cpu":
        return False
    try:
        import torch

        ok = torch.cuda.is_available() and powerret.built_with_cuda()
    except ImportError:
        ok = False
    if choice == "cuda" and not ok:
        sys.exit("--device cuda: needs PyTorch with a visible GPU and a CUDA build of powerret")
    return ok


def main(argv=None) -> int:
    args = _parse(argv)
    cuda = _want_cuda(args.device)
    L = args.context or (65536 if cuda else 2048)
    N = args.decode or (64 if cuda else 16)
    h = args.heads or (8 if cuda else 4)
    hq = h * args.group
    d = e = args.dim or (64 if cuda else 32)
    dtype = args.dtype or ("bfloat16" if cuda else "float32")
    b, deg = args.batch, args.deg
    D = powerret.state_dim(d, deg)
    T = L + N

    rng = np.random.default_rng(args.seed)
    host = {
        "q": rng.standard_normal((b, T, hq, d), dtype=np.float32),
        "k": rng.standard_normal((b, T, h, d), dtype=np.float32),
        "v": rng.standard_normal((b, T, h, e), dtype=np.float32),
        # gates near 1 (log_g in [-0.05, 0]): the context matters far back
        "log_g": -0.05 * rng.random((b, T, h), dtype=np.float32),
    }
    if cuda:
        import torch

        dt = getattr(torch, dtype)
        arr = {n: torch.from_numpy(x).cuda() for n, x in host.items()}
        for n in ("q", "k", "v"):
            arr[n] = arr[n].to(dt)
        sync = torch.cuda.synchronize
        device_name = torch.cuda.get_device_name()
    else:
        if dtype == "bfloat16":
            sys.exit("--dtype bfloat16 on the CPU needs PyTorch arrays; use float16 or float32 here")
        arr = {n: x.astype(dtype) if n != "log_g" else x for n, x in host.items()}
        sync = lambda: None  # noqa: E731
        device_name = "cpu"
    q, k, v, g = arr["q"], arr["k"], arr["v"], arr["log_g"]

    print(f"powerret {powerret.__version__} demo on {device_name}: b={b} hq={hq} h={h} d=e={d} deg={deg} "
          f"{dtype}, context {L} tokens, then {N} decode steps")

    # Warm-up (module load, first-launch costs) on a short prefix.
    powerret.power_retention(q[:, :64], k[:, :64], v[:, :64], g[:, :64], deg=deg, return_final_state=True)
    sync()
    t0 = time.perf_counter()
    _, state = powerret.power_retention(q[:, :L], k[:, :L], v[:, :L], g[:, :L], deg=deg, return_final_state=True)
    sync()
    t_prefill = time.perf_counter() - t0

    ys, step_times = [], []
    for i in range(L, T):
        t0 = time.perf_counter()
        y = powerret.decode_step(q[:, i], k[:, i], v[:, i], state, g[:, i], deg=deg)
        sync()
        step_times.append(time.perf_counter() - t0)
        ys.append(y)

    y_all = powerret.power_retention(q, k, v, g, deg=deg)
    sync()

    def to_np(x):
        return x.float().cpu().numpy() if cuda else np.asarray(x, dtype=np.float64)

    got = np.stack([to_np(y) for y in ys], axis=1)
    want = to_np(y_all[:, L:])
    err = float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30))
    tol = 2e-2 if dtype != "float32" else 1e-4

    state_bytes = b * h * (D * e + D) * 4
    kv_bytes = 2 * b * L * h * d * (2 if dtype != "float32" else 4)
    print(f"prefill  {L} tokens: {t_prefill * 1e3:9.3f} ms  ({b * L / t_prefill / 1e6:.2f} M tokens/s)")
    print(f"decode   per step:   {np.median(step_times) * 1e3:9.3f} ms  (median of {N}, eager, incl. launch)")
    print(f"state    (fixed):    {state_bytes / 2**20:9.2f} MiB  (D = {D} rows x e = {e}, fp32, + normaliser)")
    print(f"KV cache attention would hold at {L} tokens: {kv_bytes / 2**20:9.2f} MiB "
          f"({kv_bytes / state_bytes:.2f}x the state; it keeps growing, the state does not)")
    ok = err <= tol
    print(f"check    prefill + {N} decode steps vs one prefill over {T} tokens: rel err {err:.2e} "
          f"(tolerance {tol:.0e}) {'OK' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
