"""Small cases of every GPU op for compute-sanitizer (memcheck, racecheck): run as a script,
    compute-sanitizer --tool memcheck python tests/sanitize_cases.py
Not a pytest module: correctness is the test suite's job; this only drives each kernel once per
configuration on ragged shapes so the sanitizer sees every code path."""

import sys

import torch

import powerret


def main() -> int:
    """`--quick` (racecheck, which is slow): bf16 and fp32 on three configurations only."""
    quick = "--quick" in sys.argv
    torch.manual_seed(0)
    dev = "cuda"
    configs = [(32, 32, 1), (64, 64, 2), (128, 64, 2), (32, 128, 2), (16, 32, 3), (32, 32, 4)]
    dtypes = (torch.bfloat16, torch.float16, torch.float32)
    if quick:
        configs, dtypes = [(64, 64, 2), (32, 128, 1), (16, 32, 3)], (torch.bfloat16, torch.float32)
    for d, e, deg in configs:
        for dtype in dtypes:
            b, t, hq, h = 2, 77, 4, 2
            q = torch.randn(b, t, hq, d, device=dev, dtype=dtype)
            k = torch.randn(b, t, h, d, device=dev, dtype=dtype)
            v = torch.randn(b, t, h, e, device=dev, dtype=dtype)
            g = -torch.rand(b, t, h, device=dev)
            D = powerret.state_dim(d, deg)
            s0 = (torch.randn(b, h, D, e, device=dev), torch.rand(b, h, D, device=dev))
            try:
                y, st = powerret.power_retention(q, k, v, g, deg=deg, initial_state=s0, return_final_state=True)
            except ValueError as ex:  # a dtype not built in this build (POWERRET_INSTANTIATIONS=ci)
                print(f"skip d={d} e={e} deg={deg} {dtype}: {ex}")
                continue
            # several chunks and a ragged last one: the state kernel's chunk transitions and stage ring
            t2 = 333
            q2 = torch.randn(b, t2, hq, d, device=dev, dtype=dtype)
            k2 = torch.randn(b, t2, h, d, device=dev, dtype=dtype)
            v2 = torch.randn(b, t2, h, e, device=dev, dtype=dtype)
            g2 = -torch.rand(b, t2, h, device=dev)
            powerret.power_retention(q2, k2, v2, g2, deg=deg, chunk_size=64, initial_state=s0, return_final_state=True)
            powerret.sympow(q, deg)
            slots = torch.tensor([1, -1], device=dev, dtype=torch.int32)
            powerret.decode_step(q[:, 0], k[:, 0], v[:, 0], st, g[:, 0], deg=deg, slots=slots)
            torch.cuda.synchronize()
            print(f"ran d={d} e={e} deg={deg} {dtype}")
    decode_paths()
    return 0


def decode_paths():
    """decode_step launch paths the loop above misses: no cluster (b h >= the SM count), a group of
    12 query heads (two passes), a state that is only 4-byte aligned (scalar access), skipped slots."""
    from test_decode_paths import PATHS  # the shapes test_decode_paths checks for correctness

    dev, dt = "cuda", torch.bfloat16
    for name in ("no_split_1_head", "split16_12_heads_2_passes", "unaligned_state_scalar_path"):
        b, hq, h, d, e, deg, unaligned = PATHS[name]
        D = powerret.state_dim(d, deg)
        S = torch.randn(b, h, D, e, device=dev)
        if unaligned:
            S = torch.cat([torch.zeros(1, device=dev), S.reshape(-1)])[1:].view(b, h, D, e)
        z = torch.rand(b, h, D, device=dev)
        slots = torch.arange(b, device=dev, dtype=torch.int32)
        slots[-1] = -1
        powerret.decode_step(torch.randn(b, hq, d, device=dev, dtype=dt), torch.randn(b, h, d, device=dev, dtype=dt),
                             torch.randn(b, h, e, device=dev, dtype=dt), (S, z), -torch.rand(b, h, device=dev),
                             deg=deg, slots=slots)
        torch.cuda.synchronize()
        print(f"ran decode b={b} hq={hq} h={h} d={d} e={e} deg={deg} unaligned={unaligned}")


if __name__ == "__main__":
    sys.exit(main())
