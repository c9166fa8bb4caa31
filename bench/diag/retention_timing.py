"""Why did retention 1.0.7 time slower in compare.py than issue 3's reference? One call, several clocks.
(The answer, logged in bench/RESULTS.md, changed compare.py's Timer to the "padded" clock in 8ce200a.)

Times the same retention (and SDPA, as a control) calls, and powerret's decode step, with:
  events+flush   compare.py's Timer before 8ce200a: L2 flush, then CUDA events around one call, GPU idle
  events         the same without the flush
  padded         a GPU sleep queued before the start event, so host launch overhead is hidden: GPU time only
  graph          CUDA-graph replay of one call (GPU time, no Python)
  host           wall clock of one call including a synchronize (what a Python caller waits)
  enqueue        wall clock of the host side alone (no synchronize)
usage: python3 bench/diag/retention_timing.py
"""
import statistics
import time

import torch
import torch.nn.functional as F

dev = "cuda"
H, D = 8, 64


def inputs(t, b=1):
    g = torch.Generator(device=dev).manual_seed(7 + t)
    q = (torch.rand(b, t, H, D, device=dev, generator=g) * 2 - 0.5).bfloat16()
    k = (torch.rand(b, t, H, D, device=dev, generator=g) * 2 - 0.5).bfloat16()
    v = (torch.rand(b, t, H, D, device=dev, generator=g) * 2 - 1).bfloat16()
    lg = F.logsigmoid(4 + (torch.rand(b, t, H, device=dev, generator=g) * 2 - 1))
    return q, k, v, lg


flush = torch.empty(100 << 20, dtype=torch.uint8, device=dev)


def clocks(fn, iters=30):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    res = {}
    for mode in ("events+flush", "events", "padded"):
        ms = []
        for _ in range(iters):
            if mode == "events+flush":
                flush.zero_()
            if mode == "padded":
                torch.cuda._sleep(2_000_000)  # ~1 ms of GPU spin ahead of the host
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            fn()
            e.record()
            torch.cuda.synchronize()
            ms.append(s.elapsed_time(e))
        res[mode] = statistics.median(ms)
    try:
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            fn()
        torch.cuda.current_stream().wait_stream(s)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            fn()
        ms = []
        for _ in range(iters):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            graph.replay()
            b.record()
            torch.cuda.synchronize()
            ms.append(a.elapsed_time(b))
        res["graph"] = statistics.median(ms)
    except Exception as err:  # noqa: BLE001
        res["graph"] = f"n/a ({type(err).__name__})"
    hs, es = [], []
    for _ in range(iters):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        t1 = time.perf_counter()
        torch.cuda.synchronize()
        t2 = time.perf_counter()
        es.append((t1 - t0) * 1e3)
        hs.append((t2 - t0) * 1e3)
    res["host"] = statistics.median(hs)
    res["enqueue"] = statistics.median(es)
    return res


def show(label, res):
    cells = "  ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in res.items())
    print(f"{label:34s} {cells}", flush=True)


def main():
    import retention
    from retention._utils import compute_expanded_dim
    print(torch.cuda.get_device_name(0), torch.__version__)
    for t in (4096, 16384, 65536):
        q, k, v, lg = inputs(t)
        show(f"retention fwd t={t}", clocks(lambda: retention.power_retention(q, k, v, lg, deg=2, chunk_size=1024)))
        qs, ks, vs = (x.transpose(1, 2).contiguous() for x in (q, k, v))
        show(f"sdpa fwd t={t}", clocks(lambda: F.scaled_dot_product_attention(qs, ks, vs, is_causal=True)))
    Dr = compute_expanded_dim(D, 2)
    for b in (1, 64):
        q, k, v, lg = inputs(1, b)
        Q, K, V, G = q, k, v, lg  # [b, 1, h, d]
        st = (torch.rand(b, H, Dr, D, device=dev) * 1e-2).bfloat16()
        sk = torch.rand(b, H, Dr, device=dev) + 1
        show(f"retention decode b={b}", clocks(lambda: retention.power_retention_inference(
            Q, K, V, G, initial_state=st, sum_of_keys=sk, deg=2, switch_over_seq_len=1)))
        try:
            import powerret
            S = torch.rand(b, H, powerret.state_dim(D, 2), D, device=dev) * 1e-3
            z = torch.rand(b, H, powerret.state_dim(D, 2), device=dev) + 1
            y = torch.empty(b, H, D, device=dev, dtype=torch.bfloat16)
            q1, k1, v1, g1 = q[:, 0], k[:, 0], v[:, 0], lg[:, 0]
            show(f"powerret decode b={b}", clocks(lambda: powerret.decode_step(q1, k1, v1, (S, z), g1, deg=2, out=y)))
        except Exception as err:  # noqa: BLE001
            print(f"powerret decode b={b}: {type(err).__name__}: {err}")


if __name__ == "__main__":
    main()
