#!/usr/bin/env python3
"""padded_rows8: the state's padded row order at 8-row granularity (docs/DESIGN.md, sessions 12-13; the kernels of
branch wip/rows8-stages use it for deg 2 at d <= 64), checked in numpy, with the kernels' index arithmetic. No GPU
needed.

Today (cuda/common/padded_rows.cuh) rows come in m16 tiles (i, jb): rows (i, 16 jb + r), jb >= i // 16, pad weight 1
in the diagonal 16-block (both orders of a pair present) and 2 past it. At 8-row granularity rows come in halves
(i, jh): rows (i, 8 jh + r), r < 8, jh >= i // 8, pad weight 1 in the diagonal 8-block and 2 past it; an m16 tile is
two consecutive halves, which may belong to different i (a0 / a2 of the A fragment take half 0's multiplier, a1 / a3
half 1's). This script checks, for d = 32, 64, 128:
  - phi(q)^T S == sum over padded rows of pad_weight q_i q_j u_ij (u_ij = sum_tok gamma k_i k_j v, symmetric),
  - the m16 tiles' A fragments formed per half (the state kernel's and the output kernel's), against the same sum,
  - the public row of every padded row with i <= j (write_final), each public row exactly once,
  - the kernels' index arithmetic (kernel_index_checks: group_first_half, decode, the output kernel's stages),
and prints the rows, m16 tiles, 128-row blocks (walks per head) and the widest span of i in a block (what a
per-chunk multiplier table over a window of K's columns, wip/table-warp, would have to cover).

    python3 bench/diag/padded_rows8.py [SEED]
"""
import itertools
import sys

import numpy as np


def halves(d, gran=8):
    """(i, jh) in the row order: by i, then jh; rows (i, 8 jh + r). gran: the diagonal block's width."""
    return [(i, jh) for i in range(d) for jh in range((gran // 8) * (i // gran), d // 8)]


def pad_weight(i, jh):
    return 1.0 if jh == i // 8 else 2.0


def public_row(d, i, j):
    a, b = min(i, j), max(i, j)
    return a * d - a * (a - 1) // 2 + (b - a)


def check(d, rng):
    hs = halves(d)
    rows = [(i, 8 * jh + r) for (i, jh) in hs for r in range(8)]
    P, D = len(rows), d * (d + 1) // 2
    e, n_tok = 16, 40
    k = rng.standard_normal((n_tok, d))
    v = rng.standard_normal((n_tok, e))
    gamma = rng.uniform(0.2, 1.0, n_tok)
    q = rng.standard_normal(d)
    # the reference: public layout, phi weights 1 on the diagonal and sqrt(2) off it
    pairs = list(itertools.combinations_with_replacement(range(d), 2))
    w = np.array([1.0 if a == b else np.sqrt(2.0) for a, b in pairs])
    phi = lambda x: w * np.array([x[a] * x[b] for a, b in pairs])
    S = sum(gamma[t] * np.outer(phi(k[t]), v[t]) for t in range(n_tok))
    ref = phi(q) @ S
    # padded rows: W = pad_weight u
    pw = np.array([pad_weight(i, jh) for (i, jh) in hs for _ in range(8)])
    U = np.array([[gamma[t] * k[t, i] * k[t, j] for t in range(n_tok)] for (i, j) in rows]) @ v  # [P, e]
    W = pw[:, None] * U
    xq = np.array([q[i] * q[j] for (i, j) in rows])
    assert np.allclose(xq @ W, ref, rtol=1e-10, atol=1e-10), "padded sum"
    # m16 tiles of two halves: the state kernel's A = K-fragment of (8 jh0.. | 8 jh1..) times (gamma k[i0] | k[i1])
    assert len(hs) % 2 == 0
    A = np.zeros((P, n_tok))
    for tile in range(len(hs) // 2):
        for half in range(2):
            i, jh = hs[2 * tile + half]
            for r in range(8):  # a0 / a2 (rows g) take half 0, a1 / a3 (rows g + 8) half 1
                A[16 * tile + 8 * half + r] = gamma * k[:, i] * k[:, 8 * jh + r]
    assert np.allclose(A @ v, U, rtol=1e-10, atol=1e-10), "state tiles"
    # the output kernel's A: query fragment columns (8 jh0.. | 8 jh1..) times (q[i0] | q[i1])
    xa = np.concatenate([q[i] * q[8 * jh: 8 * jh + 8] for (i, jh) in hs])
    assert np.allclose(xa @ W, ref, rtol=1e-10, atol=1e-10), "output tiles"
    # write_final: S[public(i, j)] = w_ij u_ij for i <= j, each public row once
    seen = np.zeros(D, int)
    S_out = np.zeros((D, e))
    for r, (i, j) in enumerate(rows):
        if j < i:
            continue
        pr = public_row(d, i, j)
        seen[pr] += 1
        S_out[pr] = (1.0 if i == j else np.sqrt(2.0)) * U[r]
    assert (seen == 1).all(), "public rows"
    assert np.allclose(S_out, S, rtol=1e-10, atol=1e-10), "final state"
    # blocks of 128 rows (16 halves): walks per head, and the widest span of i in one block
    span = max(max(i for i, _ in hs[b:b + 16]) - min(i for i, _ in hs[b:b + 16]) for b in range(0, len(hs), 16))
    old_rows = 16 * (d // 16) * (d // 16 + 1) // 2 * 16
    print(f"d={d}: {P} rows (16-row tiles: {old_rows}; exact {D}), {P // 16} m16 tiles, "
          f"{(P + 127) // 128} blocks of 128 rows per head (16-row tiles: {(old_rows + 127) // 128}), "
          f"widest span of i in a block {span + 1}")


def kernel_index_checks(d, gran):
    """The index arithmetic of cuda/common/padded_rows.cuh and chunk_output_mma's OutputStages, transcribed, against
    the enumeration: group_first_half, decode (the halves of each m-tile; straddling tiles hold groups (2m, 2m + 1)),
    and the output kernel's stages (whole groups of one diagonal block, whole m-tiles, at most 128 rows, covering
    every half once). gran: the diagonal block's width (8 at d <= 64, 16 at d = 128)."""
    nhalf = d // 8
    hs = halves(d, gran)
    first_half = lambda i: (gran // 8) * (i // gran)
    group_halves = lambda i: nhalf - first_half(i)

    def group_first_half(i):
        a, r = i // gran, i % gran
        return gran * (a * nhalf - (gran // 8) * a * (a - 1) // 2) + r * (nhalf - (gran // 8) * a)
    for i in range(d):
        assert group_first_half(i) == sum(group_halves(x) for x in range(i)), ("group_first_half", d, i)
    assert len(hs) == nhalf * d - (gran // 8) * gran * (d // gran) * (d // gran - 1) // 2, "padded_state_rows / 8"
    for t in range(len(hs) // 2):
        (i0, jh0), (i1, jh1) = hs[2 * t], hs[2 * t + 1]
        # decode: half 1 opens the next group where group i0 ends
        exp = (i0 + 1, first_half(i0 + 1)) if jh0 + 1 == nhalf else (i0, jh0 + 1)
        assert (i1, jh1) == exp, ("decode", d, t)
        if i1 != i0:
            assert i0 % 2 == 0 and i1 == i0 + 1, ("straddle pair", d, t)
    # OutputStages: groups(a) per stage inside diagonal block a
    blocks, block_groups = d // gran, gran

    def groups(a):
        if gran != 8:
            return 128 // d
        u = 1
        while 2 * u <= block_groups and 2 * u * (nhalf - a * gran // 8) * 8 <= 128:
            u *= 2
        return u
    covered, stages = [], 0
    for a in range(blocks):
        u = groups(a)
        for s in range(block_groups // u):
            ig0 = a * block_groups + s * u
            first, rows = group_first_half(ig0), u * group_halves(ig0) * 8
            assert rows <= 128 and rows % 16 == 0 and first % 2 == 0, ("stage", d, a, s)
            assert all(first_half(ig0 + x) == first_half(ig0) for x in range(u)), ("stage crosses a block", d, a)
            covered += list(range(first, first + rows // 8))
            stages += 1
    assert covered == list(range(len(hs))), ("stages cover the halves", d)
    return stages


def main():
    rng = np.random.default_rng(int(sys.argv[1]) if len(sys.argv) > 1 else 12)
    for d in (32, 64, 128):
        check(d, rng)
    # (d = 128 at G = 8 fails the stage check: one group of an odd number of halves per stage, hence G = 16 there)
    for d, gran in ((16, 8), (32, 8), (64, 8), (128, 16)):
        print(f"kernel index arithmetic d={d} G={gran}: {kernel_index_checks(d, gran)} output stages")
    print("all checks passed")


if __name__ == "__main__":
    main()
