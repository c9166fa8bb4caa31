#!/usr/bin/env python3
"""compare: powerret side by side with what users would otherwise run, in one process, on the same
inputs, in the same run (bench/RESULTS.md explains every number and how to reproduce it).

  forward           t = 1k .. 1M (each impl up to the largest t that fits and stays under --max-call-ms)
                      p = 2:  powerret, Manifest's `retention` (Triton, chunk 1024), PyTorch SDPA causal
                      p = 1:  powerret (normalize=False, fla's semantics), fla `chunk_simple_gla`
  forward_backward  SDPA and retention only (powerret has no backward yet), t = 1k .. 64k
  decode            one token, batch 1 / 16 / 64: powerret's decode_step and retention's
                    power_retention_inference(..., switch_over_seq_len=1) against its own bf16 state,
                    and SDPA (q length 1, is_causal=False) over KV caches of length t = 1k .. 1M

Shapes: b = 1 for forward, h = hq = 8, d = e = 64, bf16 inputs, fp32 gates (gated = True for every
implementation that takes a gate; SDPA takes none). Timing: one call to compile / autotune, warm-up,
then two clocks, each the median of many calls; the L2 is flushed (zero-filling a buffer of twice its
size) before each timed call when the call's tensors would fit in twice the L2.
  ms       GPU time, what kernels are compared on: a GPU spin (torch.cuda._sleep) longer than the host
           time of one call is queued, then CUDA events around the call, so the call's Python and
           launch overhead is hidden behind the spin and only the GPU's work is timed (ms_min, ms_max
           and iters belong to this clock).
  ms_host  host-inclusive time, what a Python caller waits: wall clock of one call followed by
           torch.cuda.synchronize(). For small calls launch overhead dominates it (retention's Python
           takes ~1-2 ms per call on an H100 host, powerret's eager decode_step ~23 us of enqueue).

Writes <out>/<gpu-slug>.json (a list of records {op, impl, b, t, hq, h, d, e, deg, dtype, gated, ms,
device, date, commit} plus ms_host, ms_min, ms_max, iters), <gpu-slug>.md and PNG plots, then prints
the table.
Needs torch with CUDA; retention and fla are optional (skipped with a line when not importable).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import types
import math
import re
import subprocess
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _load_metrics():
    spec = importlib.util.spec_from_file_location("powerret_bench_metrics", HERE / "metrics.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


metrics = _load_metrics()

# Issue 3's reference numbers: measured on an H100 80GB HBM3 on 2026-11-24, one run; b=1, h=8, d=64,
# p=2, bf16, gated. (op, impl, b, t, ms); for decode, t is the KV-cache length SDPA reads.
REFERENCE = [
    ("forward", "sdpa", 1, 4096, 0.069),
    ("forward", "retention", 1, 4096, 1.011),
    ("forward", "sdpa", 1, 16384, 0.642),
    ("forward", "retention", 1, 16384, 1.741),
    ("forward", "sdpa", 1, 65536, 9.37),
    ("forward", "retention", 1, 65536, 5.79),
    ("forward_backward", "sdpa", 1, 65536, 33.6),
    ("forward_backward", "retention", 1, 65536, 16.76),
    ("decode", "sdpa", 1, 65536, 0.063),
    ("decode", "retention", 1, 65536, 0.733),
    ("decode", "sdpa", 64, 65536, 2.81),
    ("decode", "retention", 64, 65536, 0.740),
]
# Reference rows that were host-bound on the reference machine (its decode b=1 equals its b=64): they
# measure that host's Python launch time per call, not GPU time, so ms_host is shown beside them.
HOST_BOUND = {("forward", "retention", 1, 4096), ("decode", "retention", 1, 65536)}

H, D_HEAD, DEG = 8, 64, 2
DEVICE = "cuda"  # every tensor of the run lives here
RETENTION_CHUNK = 1024
SLEEP_CAP_MS = 50.0  # longest GPU spin queued ahead of a timed call
IMPL_LABEL = {"sdpa": "SDPA", "retention": "retention", "powerret": "powerret", "fla": "fla"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=HERE / "results", help="output folder (default bench/results)")
    p.add_argument("--quick", action="store_true", help="a small subset for smoke runs (< 2 minutes)")
    p.add_argument("--render", type=Path, default=None,
                   help="no measuring: rewrite the markdown table and plots from this results JSON (no GPU needed)")
    p.add_argument("--ops", default="forward,decode,forward_backward",
                   help="comma-separated subset of forward, decode, forward_backward")
    p.add_argument("--max-t", type=int, default=1 << 20, help="largest forward length (default 1M)")
    p.add_argument("--ts", default=None,
                   help="comma-separated forward / forward_backward lengths instead of the powers of two")
    p.add_argument("--max-context", type=int, default=1 << 20, help="largest decode KV-cache length (default 1M)")
    p.add_argument("--max-call-ms", type=float, default=1500.0,
                   help="stop growing t for an impl once one call is predicted to take longer (default 1500)")
    p.add_argument("--budget-ms", type=float, default=None,
                   help="timed milliseconds per measurement (default 300, quick 100); 5..200 calls")
    p.add_argument("--commit", default=None, help="commit to record (default: git rev-parse HEAD, if a checkout)")
    args = p.parse_args(argv)
    args.ops = [o.strip() for o in args.ops.split(",") if o.strip()]
    unknown = set(args.ops) - {"forward", "decode", "forward_backward"}
    if unknown:
        p.error(f"--ops: unknown {sorted(unknown)}; expected forward, decode, forward_backward")
    if args.budget_ms is None:
        args.budget_ms = 100.0 if args.quick else 300.0
    return args


# ---- environment ---------------------------------------------------------------------------------


def slug(name: str) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'nvidia-h100-80gb-hbm3'."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def git_commit() -> str:
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def version_of(dist: str) -> str:
    try:
        from importlib.metadata import version
        return version(dist)
    except Exception:  # noqa: BLE001 - any failure means "unknown"
        return "unknown"


def load_impls():
    """The optional libraries that import, each with a printed line when it does not."""
    impls = {}
    try:
        import powerret
        if powerret.built_with_cuda():
            impls["powerret"] = powerret
        else:
            print("powerret: built without CUDA, skipped")
    except Exception as err:  # noqa: BLE001
        print(f"powerret: not importable ({type(err).__name__}: {err}), skipped")
    try:
        import retention
        from retention._utils import compute_expanded_dim
        impls["retention"] = (retention, compute_expanded_dim)
    except Exception as err:  # noqa: BLE001
        print(f"retention: not importable ({type(err).__name__}: {err}), skipped")
    try:
        from fla.ops.simple_gla import chunk_simple_gla
        impls["fla"] = chunk_simple_gla
    except Exception as err:  # noqa: BLE001
        print(f"fla: not importable ({type(err).__name__}: {err}), skipped")
    return impls


# ---- timing --------------------------------------------------------------------------------------


def sleep_cycles(enqueue_ms: float, clock_khz: float = 0) -> int:
    """torch.cuda._sleep cycles that outlast a host enqueue of enqueue_ms: twice it plus 0.1 ms, capped at
    SLEEP_CAP_MS, at the device's peak clock in kHz (= cycles per ms; 2e6 when unknown: no GPU clocks
    faster, so the spin lasts at least that long)."""
    return int(min(2 * enqueue_ms + 0.1, SLEEP_CAP_MS) * (clock_khz or 2e6))


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


class Timer:
    """GPU time (host overhead hidden behind a queued GPU spin) and host-inclusive time of a call, medians
    after a compile call and a warm-up, L2 flushed when it matters."""

    def __init__(self, torch, budget_ms: float):
        self.torch = torch
        props = torch.cuda.get_device_properties(0)
        self.l2_bytes = int(getattr(props, "L2_cache_size", 0) or 50 << 20)
        self.clock_khz = getattr(props, "clock_rate", 0)  # absent in some builds (CUDA 13 dropped it)
        self.flush_buf = torch.empty(2 * self.l2_bytes, dtype=torch.uint8, device=DEVICE)
        self.budget_ms = budget_ms

    def host_call(self, fn, flush: bool):
        """(enqueue ms, host-inclusive ms) of one call started on an idle GPU."""
        torch = self.torch
        if flush:
            self.flush_buf.zero_()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        t1 = time.perf_counter()
        torch.cuda.synchronize()
        return (t1 - t0) * 1e3, (time.perf_counter() - t0) * 1e3

    def __call__(self, fn, working_set_bytes: int):
        torch = self.torch
        fn()  # compile / autotune / allocate
        flush = working_set_bytes <= 2 * self.l2_bytes
        estimate = max(self.host_call(fn, flush)[1], 1e-3)
        iters = int(min(200, max(5, self.budget_ms / estimate)))
        warm = [self.host_call(fn, flush) for _ in range(min(10, max(1, iters // 5)))]
        cycles = sleep_cycles(max(e for e, _ in warm), self.clock_khz)
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
        stops = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
        for i in range(iters):
            if flush:
                self.flush_buf.zero_()
            torch.cuda._sleep(cycles)  # the GPU spins while the host enqueues the call
            starts[i].record()
            fn()
            stops[i].record()
        torch.cuda.synchronize()
        ms = sorted(s.elapsed_time(e) for s, e in zip(starts, stops))
        host = [self.host_call(fn, flush)[1] for _ in range(max(5, iters // 4))]
        return {"ms": median(ms), "ms_host": median(host), "ms_min": ms[0], "ms_max": ms[-1], "iters": iters,
                "flushed": flush}


def nbytes(*tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


# ---- the run -------------------------------------------------------------------------------------


class Run:
    def __init__(self, args, torch, impls):
        self.args, self.torch, self.impls = args, torch, impls
        self.timer = Timer(torch, args.budget_ms)
        self.device = torch.cuda.get_device_name(0)
        self.date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
        self.commit = args.commit or git_commit()
        self.records = []
        self.stopped = set()  # (op, impl, deg): no larger t is tried after a skip

    def record(self, op, impl, *, b, t, deg, gated, timing, hq=H, h=H, d=D_HEAD, e=D_HEAD, **extra):
        rec = {"op": op, "impl": impl, "b": b, "t": t, "hq": hq, "h": h, "d": d, "e": e, "deg": deg,
               "dtype": "bf16", "gated": gated, "ms": round(timing["ms"], 5), "device": self.device,
               "date": self.date, "commit": self.commit, "ms_host": round(timing["ms_host"], 5),
               "ms_min": round(timing["ms_min"], 5), "ms_max": round(timing["ms_max"], 5), "iters": timing["iters"],
               **extra}
        self.records.append(rec)
        print(f"  {op:16s} {impl:9s} p={deg if deg is not None else '-'} b={b:<3d} t={t:<8d} "
              f"{timing['ms']:10.4f} ms  (host {timing['ms_host']:.4f}, min {timing['ms_min']:.4f}, "
              f"max {timing['ms_max']:.4f}, "
              f"{timing['iters']} runs{', L2 flushed' if timing['flushed'] else ''})", flush=True)
        return rec

    def measure(self, key, label, fn, working_set, growth):
        """Times fn unless `key` was stopped; stops it after an OOM, an error, or a predicted long call."""
        torch = self.torch
        if key in self.stopped:
            return None
        try:
            timing = self.timer(fn, working_set)
        except torch.cuda.OutOfMemoryError:
            print(f"  {label}: out of memory, larger sizes skipped")
            self.stopped.add(key)
            torch.cuda.empty_cache()
            return None
        except Exception as err:  # noqa: BLE001 - report, keep benchmarking the others
            print(f"  {label}: failed ({type(err).__name__}: {err}), larger sizes skipped")
            traceback.print_exc(limit=3)
            self.stopped.add(key)
            return None
        if timing["ms"] * growth > self.args.max_call_ms:
            print(f"  {label}: the next size would take ~{timing['ms'] * growth:.0f} ms per call "
                  f"(> --max-call-ms {self.args.max_call_ms:.0f}), larger sizes skipped")
            self.stopped.add(key)
        return timing

    # -- inputs: the same tensors for every implementation (SDPA gets a [b, h, t, d] copy) --------
    def inputs(self, b, t, hq=H, h=H, d=D_HEAD, e=D_HEAD, requires_grad=False):
        torch = self.torch
        gen = torch.Generator(device=DEVICE).manual_seed(1234 + t + b)
        kw = dict(device=DEVICE, generator=gen)
        q = (torch.rand(b, t, hq, d, **kw) * 2 - 0.5).to(torch.bfloat16)
        k = (torch.rand(b, t, h, d, **kw) * 2 - 0.5).to(torch.bfloat16)
        v = (torch.rand(b, t, h, e, **kw) * 2 - 1).to(torch.bfloat16)
        log_g = torch.nn.functional.logsigmoid(4 + (torch.rand(b, t, h, **kw) * 2 - 1))
        if requires_grad:
            for x in (q, k, v, log_g):
                x.requires_grad_(True)
        return q, k, v, log_g

    # -- forward -----------------------------------------------------------------------------------
    def forward(self, ts):
        print("forward (b=1, h=8, d=64, bf16):", flush=True)
        for t in ts:
            self.forward_at(t)
            self.torch.cuda.empty_cache()

    def forward_at(self, t):
        q, k, v, log_g = self.inputs(1, t)
        ws = nbytes(q, k, v, log_g) + nbytes(q)
        if ("forward", "sdpa", None) not in self.stopped:
            self.sdpa_forward(q, k, v, t)
        if "retention" in self.impls:
            ret = self.impls["retention"][0]
            timing = self.measure(("forward", "retention", 2), f"retention t={t}",
                                  lambda: ret.power_retention(q, k, v, log_g, deg=2, chunk_size=RETENTION_CHUNK),
                                  ws, growth=2)
            if timing:
                self.record("forward", "retention", b=1, t=t, deg=2, gated=True, timing=timing)
        if "powerret" in self.impls:
            for deg, normalize in ((2, True), (1, False)):
                self.powerret_forward(q, k, v, log_g, t, deg, normalize, ws)
        if "fla" in self.impls:
            fla = self.impls["fla"]
            timing = self.measure(("forward", "fla", 1), f"fla t={t}", lambda: fla(q, k, v, g=log_g)[0], ws, growth=2)
            if timing:
                self.record("forward", "fla", b=1, t=t, deg=1, gated=True, timing=timing)

    def sdpa_forward(self, q, k, v, t):
        F = self.torch.nn.functional
        qs, ks, vs = (x.transpose(1, 2).contiguous() for x in (q, k, v))  # [b, h, t, d]
        timing = self.measure(("forward", "sdpa", None), f"sdpa t={t}",
                              lambda: F.scaled_dot_product_attention(qs, ks, vs, is_causal=True),
                              nbytes(qs, ks, vs) * 4 // 3, growth=4)
        if timing:
            self.record("forward", "sdpa", b=1, t=t, deg=None, gated=False, timing=timing)

    def powerret_forward(self, q, k, v, log_g, t, deg, normalize, ws):
        pr = self.impls["powerret"]
        timing = self.measure(("forward", "powerret", deg), f"powerret p={deg} t={t}",
                              lambda: pr.power_retention(q, k, v, log_g, deg=deg, normalize=normalize),
                              ws, growth=2)
        if not timing:
            return
        extra = {} if normalize else {"normalize": False}
        chunk = self.powerret_chunk(q, k, v, deg)
        if chunk is not None:
            flops = metrics.forward_flops(1, t, H, H, D_HEAD, D_HEAD, deg, chunk)
            nbytes_ = metrics.forward_bytes(1, t, H, H, D_HEAD, D_HEAD, deg, "bf16", gated=True)
            extra.update(chunk=chunk, tflops=round(flops / timing["ms"] * 1e-9, 2),
                         gbps=round(nbytes_ / timing["ms"] * 1e-6, 1))
        self.record("forward", "powerret", b=1, t=t, deg=deg, gated=True, timing=timing, **extra)

    def powerret_chunk(self, q, k, v, deg):
        """The chunk powerret picks here (its private _core.default_chunk_size), or None."""
        core = getattr(self.impls["powerret"], "_core", None)
        fn = getattr(core, "default_chunk_size", None)
        if fn is None:
            return None
        try:
            y = self.torch.empty(*q.shape[:3], v.shape[3], dtype=q.dtype, device=q.device)
            return int(fn(q, k, v, y, deg))
        except Exception:  # noqa: BLE001 - the chunk is informative only
            return None

    # -- forward + backward (SDPA and retention) --------------------------------------------------
    def forward_backward(self, ts):
        print("forward_backward (b=1, h=8, d=64, bf16):", flush=True)
        for t in ts:
            self.forward_backward_at(t)
            self.torch.cuda.empty_cache()

    def forward_backward_at(self, t):
        torch, F = self.torch, self.torch.nn.functional
        q, k, v, log_g = self.inputs(1, t, requires_grad=True)
        grad = torch.rand_like(q) - 0.5
        if ("forward_backward", "sdpa", None) not in self.stopped:
            qs, ks, vs = (x.detach().transpose(1, 2).contiguous().requires_grad_(True) for x in (q, k, v))
            grad_s = grad.transpose(1, 2).contiguous()

            def sdpa():
                out = F.scaled_dot_product_attention(qs, ks, vs, is_causal=True)
                return torch.autograd.grad(out, (qs, ks, vs), grad_s)

            timing = self.measure(("forward_backward", "sdpa", None), f"sdpa fwd+bwd t={t}", sdpa,
                                  nbytes(qs, ks, vs) * 3, growth=4)
            if timing:
                self.record("forward_backward", "sdpa", b=1, t=t, deg=None, gated=False, timing=timing)
            del qs, ks, vs, grad_s
        if "retention" in self.impls:
            ret = self.impls["retention"][0]

            def retention():
                out = ret.power_retention(q, k, v, log_g, deg=2, chunk_size=RETENTION_CHUNK)
                return torch.autograd.grad(out, (q, k, v, log_g), grad)

            timing = self.measure(("forward_backward", "retention", 2), f"retention fwd+bwd t={t}", retention,
                                  nbytes(q, k, v, log_g) * 3, growth=2)
            if timing:
                self.record("forward_backward", "retention", b=1, t=t, deg=2, gated=True, timing=timing)

    # -- decode ------------------------------------------------------------------------------------
    def decode(self, batches, contexts):
        print("decode (one token, h=8, d=64, bf16):", flush=True)
        for b in batches:
            q, k, v, log_g = (x[:, 0] for x in self.inputs(b, 1))  # q [b, hq, d], log_g [b, h]
            # State-based decoders: the cost does not depend on the context; measured once per batch.
            flat = {}
            if "powerret" in self.impls:
                flat["powerret"] = self.powerret_decode(q, k, v, log_g, b)
            if "retention" in self.impls:
                flat["retention"] = self.retention_decode(q, k, v, log_g, b)
            for L in contexts:
                self.sdpa_decode(q, b, L)
                self.torch.cuda.empty_cache()  # the KV cache is gone with sdpa_decode's frame
                for impl, measured in flat.items():
                    if measured:
                        timing, extra = measured
                        self.record("decode", impl, b=b, t=L, deg=DEG, gated=True, timing=timing, **extra)
            self.torch.cuda.empty_cache()

    def powerret_decode(self, q, k, v, log_g, b):
        torch, pr = self.torch, self.impls["powerret"]
        Dp = metrics.state_dim(D_HEAD, DEG)
        S = torch.rand(b, H, Dp, D_HEAD, device=DEVICE) * 1e-2
        z = torch.rand(b, H, Dp, device=DEVICE) + 1
        state = pr.State(S, z)
        y = torch.empty_like(q)
        timing = self.measure(("decode", "powerret", b), f"powerret decode b={b}",
                              lambda: pr.decode_step(q, k, v, state, log_g, deg=DEG, out=y),
                              nbytes(q, k, v, log_g, S, z, y), growth=1)
        if not timing:
            return None
        flops = metrics.decode_flops(b, H, H, D_HEAD, D_HEAD, DEG)
        nb = metrics.decode_bytes(b, H, H, D_HEAD, D_HEAD, DEG, "bf16", gated=True)
        return timing, {"tflops": round(flops / timing["ms"] * 1e-9, 3), "gbps": round(nb / timing["ms"] * 1e-6, 1)}

    def retention_decode(self, q, k, v, log_g, b):
        torch = self.torch
        ret, expanded_dim = self.impls["retention"]
        Dr = expanded_dim(D_HEAD, DEG)
        Q, K, V, G = q[:, None], k[:, None], v[:, None], log_g[:, None]  # [b, 1, h, d], G [b, 1, h]
        st = (torch.rand(b, H, Dr, D_HEAD, device=DEVICE) * 1e-2).to(torch.bfloat16)
        sk = torch.rand(b, H, Dr, device=DEVICE) + 1
        timing = self.measure(
            ("decode", "retention", b), f"retention decode b={b}",
            lambda: ret.power_retention_inference(Q, K, V, G, initial_state=st, sum_of_keys=sk, deg=DEG,
                                                  switch_over_seq_len=1),
            nbytes(Q, K, V, G, st, sk) * 2, growth=1)
        return (timing, {"state_rows": Dr}) if timing else None

    def sdpa_decode(self, q, b, L):
        torch, F = self.torch, self.torch.nn.functional
        if ("decode", "sdpa", b) in self.stopped:
            return
        need = 2 * b * H * L * D_HEAD * 2
        free, _ = torch.cuda.mem_get_info()
        if need > 0.8 * free:
            print(f"  sdpa decode b={b} t={L}: the KV cache needs {need / 2**30:.1f} GiB "
                  f"of {free / 2**30:.1f} GiB free, skipped")
            return
        qs = q[:, :, None].contiguous()  # [b, h, 1, d]
        kc = torch.empty(b, H, L, D_HEAD, device=DEVICE, dtype=torch.bfloat16).uniform_(-0.5, 1.5)
        vc = torch.empty(b, H, L, D_HEAD, device=DEVICE, dtype=torch.bfloat16).uniform_(-1, 1)
        timing = self.measure(("decode", "sdpa", b), f"sdpa decode b={b} t={L}",
                              lambda: F.scaled_dot_product_attention(qs, kc, vc, is_causal=False),
                              nbytes(qs, kc, vc, qs), growth=4)
        if timing:
            self.record("decode", "sdpa", b=b, t=L, deg=None, gated=False, timing=timing)


# ---- output --------------------------------------------------------------------------------------


def fmt(ms):
    return "—" if ms is None else (f"{ms:.4f}" if ms < 1 else f"{ms:.3f}" if ms < 100 else f"{ms:.1f}")


def lookup(records, op, impl, b, t, deg=None, key="ms"):
    for r in records:
        if r["op"] == op and r["impl"] == impl and r["b"] == b and r["t"] == t and (deg is None or r["deg"] == deg):
            return r.get(key)
    return None


def markdown(run, impls_versions) -> str:
    recs = run.records
    lines = [f"# powerret vs. attention and linear attention: {run.device}", "",
             f"date {run.date} · commit `{run.commit}` · {impls_versions} · bench/compare.py, one process, "
             "same inputs; GPU time in ms (median of CUDA-event-timed calls, host launch overhead hidden; lower is "
             "better). bench/RESULTS.md says how."
             + ("" if all("ms_host" in r for r in recs) else " Records without ms_host were timed before "
                "2026-11-24's change: events around one call on an idle GPU, host launch overhead included."), ""]
    fwd_cols = [("sdpa", None, "SDPA causal"), ("retention", 2, "retention p=2"), ("powerret", 2, "powerret p=2"),
                ("fla", 1, "fla p=1"), ("powerret", 1, "powerret p=1 (unnormalised)")]
    for op, title in (("forward", "Forward"), ("forward_backward", "Forward + backward")):
        ts = sorted({r["t"] for r in recs if r["op"] == op})
        if not ts:
            continue
        cols = [c for c in fwd_cols if any(r["op"] == op and r["impl"] == c[0] and (c[1] is None or r["deg"] == c[1])
                                           for r in recs)]
        lines += [f"## {title} (b=1, h=8, d=64, bf16, gated where the impl takes a gate)", "",
                  "| t | " + " | ".join(c[2] for c in cols) + " |", "|---:|" + "---:|" * len(cols)]
        for t in ts:
            cells = [fmt(lookup(recs, op, impl, 1, t, deg)) for impl, deg, _ in cols]
            lines.append(f"| {t} | " + " | ".join(cells) + " |")
        lines.append("")
    dec = [r for r in recs if r["op"] == "decode"]
    if dec:
        cols = [c for c in ("sdpa", "retention", "powerret") if any(r["impl"] == c for r in dec)]
        lines += ["## Decode, one token (h=8, d=64, bf16; SDPA reads a KV cache of length t, the state-based "
                  "impls do not depend on t)", "",
                  "| batch | t | " + " | ".join(IMPL_LABEL[c] for c in cols) + " |",
                  "|---:|---:|" + "---:|" * len(cols)]
        for b, t in sorted({(r["b"], r["t"]) for r in dec}):
            lines.append(f"| {b} | {t} | " + " | ".join(fmt(lookup(recs, "decode", c, b, t)) for c in cols) + " |")
        lines.append("")
    lines += ["## Reference check (issue 3: H100 80GB HBM3, 2026-11-24, one run; b=1, h=8, d=64, p=2, bf16, gated)",
              "", "| op | impl | b | t | reference ms | this run ms | this / reference | note |",
              "|---|---|---:|---:|---:|---:|---:|---|"]
    for op, impl, b, t, ref in REFERENCE:
        got = lookup(recs, op, impl, b, t)
        ratio = "—" if got is None else f"{got / ref:.2f}"
        host = lookup(recs, op, impl, b, t, key="ms_host")
        note = "" if (op, impl, b, t) not in HOST_BOUND else "host-bound on the reference machine (*); " + (
            "host-inclusive not recorded" if host is None else f"this run host-inclusive {fmt(host)} ms")
        lines.append(f"| {op} | {impl} | {b} | {t} | {ref} | {fmt(got)} | {ratio} | {note} |")
    lines += ["", "(*) These two reference numbers were host-bound on the reference machine (its retention "
              "decode b=1 equals its b=64): they measure that host's Python launch time per call, not GPU time. "
              "Host-inclusive time (wall clock of a call plus a synchronize) is the comparable number, and it "
              "depends on the host CPU too."]
    return "\n".join(lines) + "\n"


def tokens(n: int) -> str:
    """1024 -> '1k', 1048576 -> '1M'."""
    return f"{n >> 20}M" if n >= 1 << 20 and n % (1 << 20) == 0 else f"{n >> 10}k" if n % 1024 == 0 else str(n)


def context_axis(ax, ts):
    ax.set_xscale("log", base=2)
    ax.set_xticks(ts, [tokens(t) for t in ts])
    ax.minorticks_off()
    ax.set_yscale("log")


def plots(run, out: Path, name: str):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as err:  # noqa: BLE001
        print(f"matplotlib: not importable ({type(err).__name__}: {err}), plots skipped")
        return []
    written = []
    recs = run.records
    fwd = [r for r in recs if r["op"] == "forward"]
    if fwd:
        fig, ax = plt.subplots(figsize=(7, 5))
        for impl, deg, label in (("sdpa", None, "SDPA causal"), ("retention", 2, "retention p=2"),
                                 ("powerret", 2, "powerret p=2"), ("fla", 1, "fla p=1"),
                                 ("powerret", 1, "powerret p=1")):
            pts = sorted((r["t"], r["ms"]) for r in fwd if r["impl"] == impl and (deg is None or r["deg"] == deg))
            if pts:
                ax.plot(*zip(*pts), marker="o", linestyle="--" if deg == 1 else "-", label=label)
        context_axis(ax, sorted({r["t"] for r in fwd}))
        ax.set(xlabel="context length t (tokens)", ylabel="forward time (ms)",
               title=f"Forward, b=1, h=8, d=64, bf16 — {run.device}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        path = out / f"{name}-forward.png"
        fig.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    dec = [r for r in recs if r["op"] == "decode"]
    if dec:
        batches = sorted({r["b"] for r in dec})
        fig, axes = plt.subplots(1, len(batches), figsize=(5 * len(batches), 4.5), squeeze=False)
        for ax, b in zip(axes[0], batches):
            for impl in ("sdpa", "retention", "powerret"):
                pts = sorted((r["t"], r["ms"]) for r in dec if r["impl"] == impl and r["b"] == b)
                if pts:
                    ax.plot(*zip(*pts), marker="o", label=IMPL_LABEL[impl])
            context_axis(ax, sorted({r["t"] for r in dec}))
            ax.set(xlabel="KV-cache length t (tokens)", ylabel="time per token (ms)", title=f"batch {b}")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
        fig.suptitle(f"Decode one token, h=8, d=64, bf16 — {run.device}")
        fig.tight_layout()
        path = out / f"{name}-decode.png"
        fig.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    return written


def powers_of_two(lo, hi):
    return [1 << i for i in range(int(math.log2(lo)), int(math.log2(hi)) + 1)]


def render(path: Path, out: Path) -> int:
    """Table and plots from a saved results JSON (records of one device, as written by main)."""
    records = json.loads(path.read_text())
    run = types.SimpleNamespace(records=records, device=records[0]["device"], date=max(r["date"] for r in records),
                                commit=", ".join(sorted({r["commit"] for r in records})))
    name = slug(run.device)
    out.mkdir(parents=True, exist_ok=True)
    table = markdown(run, "versions as in the run logs (bench/RESULTS.md)")
    (out / f"{name}.md").write_text(table)
    written = plots(run, out, name)
    print(table)
    print("wrote", out / f"{name}.md", *written)
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.render is not None:
        return render(args.render, args.out)
    import torch

    if not torch.cuda.is_available():
        print("compare.py needs a CUDA GPU visible to torch; none found", file=sys.stderr)
        return 1
    impls = load_impls()
    run = Run(args, torch, impls)
    versions = (f"torch {torch.__version__}"
                + (f", retention {version_of('retention')}" if "retention" in impls else "")
                + (f", fla {version_of('fla-core')}" if "fla" in impls else "")
                + (f", powerret {getattr(impls['powerret'], '__version__', '?')}" if "powerret" in impls else ""))
    print(f"{run.device} · {versions} · commit {run.commit}", flush=True)
    if args.quick:
        fwd_ts, fb_ts, batches, contexts = [1024, 4096], [4096], [1], [4096, 65536]
    else:
        fwd_ts = powers_of_two(1024, args.max_t)
        fb_ts = powers_of_two(1024, min(args.max_t, 65536))
        batches, contexts = [1, 16, 64], [c for c in (1 << 10, 1 << 12, 1 << 14, 1 << 16, 1 << 18, 1 << 20)
                                          if c <= args.max_context]
    if args.ts:
        fwd_ts = fb_ts = [int(x) for x in args.ts.split(",")]
    if "forward" in args.ops:
        with torch.no_grad():
            run.forward(fwd_ts)
    if "forward_backward" in args.ops:
        run.forward_backward(fb_ts)
    if "decode" in args.ops:
        with torch.no_grad():
            run.decode(batches, contexts)

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    name = slug(run.device)
    (out / f"{name}.json").write_text(json.dumps(run.records, indent=1) + "\n")
    table = markdown(run, versions)
    (out / f"{name}.md").write_text(table)
    written = plots(run, out, name)
    print(f"\nwrote {out / (name + '.json')}, {out / (name + '.md')}"
          + "".join(f", {p}" for p in written) + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
