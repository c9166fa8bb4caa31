"""The FLOP / byte convention of every powerret benchmark number: bench/metrics.hpp in Python.

Both files hold the same formulas (tests/test_bench_metrics.py runs powerret-bench and checks its
JSON against these functions); bench/RESULTS.md explains them. Symbols as in SPEC.md: b batch,
t tokens, hq query heads, h kv heads, d = dim(q, k), e = dim(v), p degree, D = C(d + p - 1, p),
c the forward's chunk size, es the bytes of one q/k/v/y element (2 for fp16/bf16, 4 for fp32).

FLOPs (a multiply-add counts 2):
  forward  b*t * [ h*(2*D*e + 2*D) + hq*(2*D*e + 2*D) + hq*min(c, t)*(d + e) ]
  decode   b * [ h*(2*D*e + 2*D) + hq*(2*D*e + 2*D) ]
  sympow   rows * D * p                (rows = b*t*h)
Bytes (compulsory traffic; the forward's workspace is not counted):
  forward  es*b*t*(hq*d + h*d + h*e + hq*e) + 4*b*t*h if gated + 2 * 4*b*h*(D*e + D) with --state
  decode   es*b*(hq*d + h*d + h*e + hq*e) + 4*b*h if gated + 4*b with slots + 2 * 4*b*h*(D*e + D)
  sympow   es * rows * (d + D)
"""

from __future__ import annotations

import math

DTYPE_BYTES = {"fp16": 2, "bf16": 2, "fp32": 4}


def state_dim(d: int, deg: int) -> int:
    """D = C(d + p - 1, p): rows of phi_p over R^d."""
    return math.comb(d + deg - 1, deg)


def _state_pass_flops(D: int, e: int) -> int:
    # 2*D*e + 2*D: phi(x) against S (D x e) and z (D), per head and token.
    return 2 * D * e + 2 * D


def _state_bytes(D: int, e: int) -> int:
    # fp32 S (D x e) and z (D) of one (row, kv head).
    return 4 * (D * e + D)


def forward_flops(b: int, t: int, hq: int, h: int, d: int, e: int, deg: int, chunk: int) -> int:
    D = state_dim(d, deg)
    per_token = (h + hq) * _state_pass_flops(D, e) + hq * min(chunk, t) * (d + e)
    return b * t * per_token


def forward_bytes(b: int, t: int, hq: int, h: int, d: int, e: int, deg: int, dtype: str,
                  gated: bool, with_state: bool = False) -> int:
    es = DTYPE_BYTES[dtype]
    n = es * b * t * (hq * d + h * d + h * e + hq * e)
    if gated:
        n += 4 * b * t * h
    if with_state:
        n += 2 * b * h * _state_bytes(state_dim(d, deg), e)
    return n


def decode_flops(b: int, hq: int, h: int, d: int, e: int, deg: int) -> int:
    D = state_dim(d, deg)
    return b * (h + hq) * _state_pass_flops(D, e)


def decode_bytes(b: int, hq: int, h: int, d: int, e: int, deg: int, dtype: str, gated: bool,
                 slots: bool = False) -> int:
    es = DTYPE_BYTES[dtype]
    n = es * b * (hq * d + h * d + h * e + hq * e) + 2 * b * h * _state_bytes(state_dim(d, deg), e)
    if gated:
        n += 4 * b * h
    if slots:
        n += 4 * b
    return n


def sympow_flops(b: int, t: int, h: int, d: int, deg: int) -> int:
    return b * t * h * state_dim(d, deg) * deg


def sympow_bytes(b: int, t: int, h: int, d: int, deg: int, dtype: str) -> int:
    return DTYPE_BYTES[dtype] * b * t * h * (d + state_dim(d, deg))
