"""Small cases of every GPU op for compute-sanitizer (memcheck, racecheck): run as a script,
    compute-sanitizer --tool memcheck python tests/sanitize_cases.py
Not a pytest module: correctness is the test suite's job; this only drives each kernel once per
configuration on ragged shapes so the sanitizer sees every code path."""

import sys

import torch

import powerret


def main() -> int:
    torch.manual_seed(0)
    dev = "cuda"
    configs = [(32, 32, 1), (64, 64, 2), (128, 64, 2), (32, 128, 2), (16, 32, 3), (32, 32, 4)]
    for d, e, deg in configs:
        for dtype in (torch.bfloat16, torch.float16, torch.float32):
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
            powerret.sympow(q, deg)
            slots = torch.tensor([1, -1], device=dev, dtype=torch.int32)
            powerret.decode_step(q[:, 0], k[:, 0], v[:, 0], st, g[:, 0], deg=deg, slots=slots)
            torch.cuda.synchronize()
            print(f"ran d={d} e={e} deg={deg} {dtype}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
