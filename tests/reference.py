"""Float64 references for powerret, written from SPEC.md alone (no library code is imported).

    phi_p(x)[a] = sqrt(p! / prod_v count_v(a)!) * prod_{i in a} x[i]    a = sorted multi-index (lex order)
    S_i = exp(log_g[i]) S_{i-1} + phi(k_i) v_i^T,   z_i = exp(log_g[i]) z_{i-1} + phi(k_i)
    num_i = scale^p phi(q_i)^T S_i,  den_i = scale^p phi(q_i)^T z_i,  y_i = num_i / den_i (0 where den_i == 0)

Two independent evaluations of SPEC §2, checked against each other in test_reference.py:
  * `power_retention_recurrent`: the recurrence itself, token by token (the definition);
  * `power_retention_attention`: the attention form sum_j (scale q_i.k_j)^p decay(j, i) v_j, extended
    with the initial-state term dec0_i phi(q_i)^T S0 and with resets (log_g = -inf) as segment breaks.
`power_retention` picks whichever is cheaper for the shape.

Also the low-precision baselines of SPEC §5 (torch): `lowp_baseline` is the attention form with
inputs, scores and powered scores in the input dtype, fp32 accumulation and the output rounded;
`lowp_state_baseline` is the same step-by-step idea for the states (phi(k) and gated v rounded).
"""
from __future__ import annotations

import functools
import itertools
import math
from typing import NamedTuple, Optional

import numpy as np

FP32_TOL = 1e-4      # SPEC §5: fp32 inputs
LOWP_CAP = 2e-2      # SPEC §5: fp16 / bf16 never above this


# ---- §1 symmetric power expansion -------------------------------------------------------------

def state_dim(d: int, p: int) -> int:
    """D = C(d + p - 1, p)."""
    return math.comb(d + p - 1, p)


@functools.lru_cache(maxsize=None)
def multi_indices(d: int, p: int) -> np.ndarray:
    """Sorted multi-indices (i1 <= ... <= ip) in lexicographic order: [D, p] int."""
    idx = list(itertools.combinations_with_replacement(range(d), p))
    out = np.array(idx, dtype=np.int64).reshape(len(idx), p)
    out.flags.writeable = False
    return out


@functools.lru_cache(maxsize=None)
def sympow_weights(d: int, p: int) -> np.ndarray:
    """sqrt(multinomial(a)) for every row a: [D] float64."""
    w = []
    for a in itertools.combinations_with_replacement(range(d), p):
        denom = 1
        for v in set(a):
            denom *= math.factorial(a.count(v))
        w.append(math.sqrt(math.factorial(p) / denom))
    out = np.array(w, dtype=np.float64)
    out.flags.writeable = False
    return out


def sympow(x: np.ndarray, p: int) -> np.ndarray:
    """phi_p(x): [..., d] -> [..., D] in float64 (row a = w_a * x[a_1] * ... * x[a_p])."""
    x = np.asarray(x, dtype=np.float64)
    d = x.shape[-1]
    idx = multi_indices(d, p)                        # [D, p]
    w = sympow_weights(d, p)                         # [D]
    xt = np.ascontiguousarray(x.reshape(-1, d).T)    # [d, N]: a gather of rows is a row copy
    out = np.empty((idx.shape[0], xt.shape[1]))      # [D, N]
    for lo in range(0, idx.shape[0], 512):           # blocks of rows stay in cache
        rows = idx[lo:lo + 512]
        blk = w[lo:lo + 512, None] * xt[rows[:, 0]]
        for r in range(1, p):
            blk *= xt[rows[:, r]]
        out[lo:lo + 512] = blk
    return out.T.reshape(x.shape[:-1] + (idx.shape[0],))


# ---- §2 power retention -----------------------------------------------------------------------

class Result(NamedTuple):
    y: np.ndarray    # [b, t, hq, e]  (num/den if normalize else num)
    num: np.ndarray  # [b, t, hq, e]
    den: np.ndarray  # [b, t, hq]
    S: np.ndarray    # [b, h, D, e]   state after the last token
    z: np.ndarray    # [b, h, D]


def _f64(a):
    return None if a is None else np.asarray(a, dtype=np.float64)


def _head_map(hq: int, h: int) -> np.ndarray:
    assert hq % h == 0
    return np.arange(hq) // (hq // h)


def _normalized(num, den, normalize):
    if not normalize:
        return num
    with np.errstate(divide="ignore", invalid="ignore"):
        y = num / den[..., None]
    return np.where((den == 0)[..., None], 0.0, y)


def power_retention_recurrent(q, k, v, log_g=None, *, deg=2, scale=None, normalize=True,
                              initial_state=None) -> Result:
    """SPEC §2 by its recurrence, one token at a time (float64)."""
    q, k, v, log_g = _f64(q), _f64(k), _f64(v), _f64(log_g)
    b, t, hq, d = q.shape
    h, e = k.shape[2], v.shape[3]
    D = state_dim(d, deg)
    scale = 1.0 / math.sqrt(d) if scale is None else float(scale)
    hmap = _head_map(hq, h)
    if initial_state is None:
        S, z = np.zeros((b, h, D, e)), np.zeros((b, h, D))
    else:
        S, z = _f64(initial_state[0]).copy(), _f64(initial_state[1]).copy()
    phi_q = sympow(q, deg)  # [b, t, hq, D]
    phi_k = sympow(k, deg)  # [b, t, h, D]
    num = np.zeros((b, t, hq, e))
    den = np.zeros((b, t, hq))
    c = scale ** deg
    for i in range(t):
        if log_g is not None:
            g = np.exp(log_g[:, i])  # [b, h]; exp(-inf) == 0
            S = g[:, :, None, None] * S
            z = g[:, :, None] * z
        S = S + phi_k[:, i, :, :, None] * v[:, i, :, None, :]
        z = z + phi_k[:, i]
        num[:, i] = c * np.einsum("bhD,bhDe->bhe", phi_q[:, i], S[:, hmap])
        den[:, i] = c * np.einsum("bhD,bhD->bh", phi_q[:, i], z[:, hmap])
    return Result(_normalized(num, den, normalize), num, den, S, z)


def decay_matrices(log_g, t, b, h, rows=None):
    """decay[b,h,i,j] = prod_{m=j+1..i} exp(log_g[m]) for j <= i else 0, and
    dec0[b,h,i] = prod_{m=0..i} exp(log_g[m]) (decay of the initial state to token i).
    A -inf gate is a reset: a segment break. `rows` restricts i to those tokens."""
    rows = np.arange(t) if rows is None else np.asarray(rows)
    causal = rows[:, None] >= np.arange(t)[None, :]  # [rows, t]
    if log_g is None:
        return np.broadcast_to(causal * 1.0, (b, h) + causal.shape), np.ones((b, h, len(rows)))
    lg = np.moveaxis(_f64(log_g), 1, 2)  # [b, h, t]
    reset = np.isneginf(lg)
    c = np.cumsum(np.where(reset, 0.0, lg), axis=-1)
    seg = np.cumsum(reset, axis=-1)
    mask = causal & (seg[..., rows, None] == seg[..., None, :])
    decay = np.exp(np.where(mask, c[..., rows, None] - c[..., None, :], -np.inf))
    dec0 = np.where(seg[..., rows] == 0, np.exp(c[..., rows]), 0.0)
    return decay, dec0


def power_retention_rows(q, k, v, log_g=None, rows=(), *, deg=2, scale=None, normalize=True):
    """y [b, len(rows), hq, e] of the query tokens `rows` only, attention form, no initial state
    (float64): for long sequences, where the full t x t form does not fit."""
    q, k, v = _f64(q), _f64(k), _f64(v)
    b, t, hq, d = q.shape
    h = k.shape[2]
    rows = np.asarray(rows)
    scale = 1.0 / math.sqrt(d) if scale is None else float(scale)
    hmap = _head_map(hq, h)
    decay, _ = decay_matrices(log_g, t, b, h, rows)                     # [b, h, r, t]
    qh = q[:, rows].transpose(0, 2, 1, 3)                                 # [b, hq, r, d]
    kh = k[:, :, hmap].transpose(0, 2, 1, 3)                              # [b, hq, t, d]
    w = np.where(decay[:, hmap] != 0, ((qh @ kh.swapaxes(-1, -2)) * scale) ** deg * decay[:, hmap], 0.0)
    num = (w @ v[:, :, hmap].transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3)  # [b, r, hq, e]
    den = w.sum(-1).transpose(0, 2, 1)
    return _normalized(num, den, normalize)


def power_retention_attention(q, k, v, log_g=None, *, deg=2, scale=None, normalize=True,
                              initial_state=None, with_state=True) -> Result:
    """SPEC §2 in attention form (float64):
        num_i = sum_{j<=i} (scale q_i.k_j)^p decay(j,i) v_j + dec0_i scale^p phi(q_i)^T S0
        S_t   = dec0_{t-1} S0 + sum_j decay(j, t-1) phi(k_j) v_j^T"""
    q, k, v = _f64(q), _f64(k), _f64(v)
    b, t, hq, d = q.shape
    h, e = k.shape[2], v.shape[3]
    D = state_dim(d, deg)
    scale = 1.0 / math.sqrt(d) if scale is None else float(scale)
    hmap = _head_map(hq, h)
    decay, dec0 = decay_matrices(log_g, t, b, h)  # [b, h, t, t], [b, h, t]
    qh = q.transpose(0, 2, 1, 3)                   # [b, hq, t, d]
    kh = k[:, :, hmap].transpose(0, 2, 1, 3)       # [b, hq, t, d]
    vh = v[:, :, hmap].transpose(0, 2, 1, 3)       # [b, hq, t, e]
    scores = (qh @ kh.swapaxes(-1, -2)) * scale    # [b, hq, t, t]
    w = np.where(decay[:, hmap] != 0, scores ** deg * decay[:, hmap], 0.0)
    num = (w @ vh).transpose(0, 2, 1, 3)           # [b, t, hq, e]
    den = w.sum(-1).transpose(0, 2, 1)             # [b, t, hq]
    blocks = [slice(lo, lo + 128) for lo in range(0, t, 128)]  # phi never whole: D can be 52k
    if initial_state is not None:
        S0, z0 = _f64(initial_state[0]), _f64(initial_state[1])
        S0h, z0h = S0[:, hmap], z0[:, hmap, :, None]      # [b, hq, D, e], [b, hq, D, 1]
        q_num, q_den = np.empty((b, hq, t, e)), np.empty((b, hq, t))
        for blk in blocks:
            phi_q = sympow(qh[:, :, blk], deg)             # [b, hq, blk, D]
            q_num[:, :, blk] = phi_q @ S0h
            q_den[:, :, blk] = (phi_q @ z0h)[..., 0]
        d0 = dec0[:, hmap] * scale ** deg                  # [b, hq, t]
        num = num + (d0[..., None] * q_num).transpose(0, 2, 1, 3)
        den = den + (d0 * q_den).transpose(0, 2, 1)
    S = z = None
    if with_state:
        wl = decay[:, :, t - 1, :]                         # [b, h, t]: decay(j, t-1)
        wv = wl[..., None] * v.transpose(0, 2, 1, 3)       # [b, h, t, e]
        kh_ = k.transpose(0, 2, 1, 3)                      # [b, h, t, d]
        S, z = np.zeros((b, h, D, e)), np.zeros((b, h, D))
        for blk in blocks:
            phi_k = sympow(kh_[:, :, blk], deg).swapaxes(-1, -2)  # [b, h, D, blk]
            S += phi_k @ wv[:, :, blk]
            z += (phi_k @ wl[:, :, blk, None])[..., 0]
        if initial_state is not None:
            S = S + dec0[:, :, t - 1, None, None] * S0
            z = z + dec0[:, :, t - 1, None] * z0
    return Result(_normalized(num, den, normalize), num, den, S, z)


def power_retention(q, k, v, log_g=None, *, deg=2, scale=None, normalize=True,
                    initial_state=None, with_state=True) -> Result:
    """SPEC §2 in float64 for the tests: the attention form (its y has no cancellation: for even
    p a weighted mean of v with positive weights, where phi(q).z in the recurrence sums terms
    ~ (|q||k|)^p to a total ~ (q.k)^p), the recurrence beyond t = 4096 (t x t does not fit)."""
    t = np.shape(q)[1]
    form = power_retention_attention if t <= 4096 else power_retention_recurrent
    kw = dict(with_state=with_state) if t <= 4096 else {}
    return form(q, k, v, log_g, deg=deg, scale=scale, normalize=normalize, initial_state=initial_state, **kw)


def decode_step(q, k, v, state, log_g=None, *, deg=2, scale=None, normalize=True):
    """One step of the recurrence (SPEC §3): q [b,hq,d], k [b,h,d], v [b,h,e], state (S, z).
    Returns (y [b,hq,e], S', z')."""
    lg = None if log_g is None else _f64(log_g)[:, None]
    r = power_retention_recurrent(_f64(q)[:, None], _f64(k)[:, None], _f64(v)[:, None], lg,
                                  deg=deg, scale=scale, normalize=normalize, initial_state=state)
    return r.y[:, 0], r.S, r.z


# ---- error measure and §5 tolerances ----------------------------------------------------------

def rel_err(out, ref) -> float:
    """||out - ref|| / ||ref|| in float64; inf when out holds a NaN/Inf that ref does not."""
    out = np.asarray(out, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert out.shape == ref.shape, (out.shape, ref.shape)
    if not np.array_equal(np.isfinite(out), np.isfinite(ref)):
        return math.inf
    fin = np.isfinite(ref)
    diff = np.linalg.norm((out - ref)[fin])
    nrm = np.linalg.norm(ref[fin])
    if nrm == 0:
        return 0.0 if diff == 0 else math.inf
    return float(diff / nrm)


def tolerance(dtype_name: str, baseline_err: Optional[float] = None) -> float:
    """SPEC §5: fp32 (and fp64) 1e-4; fp16/bf16 at most 2x the baseline and never above 2e-2.
    The low-precision bound is never tighter than the fp32 one: an fp32-accurate result (e.g. a
    state accumulated in fp32 from exactly representable products) always passes."""
    if dtype_name in ("float32", "float64"):
        return FP32_TOL
    if baseline_err is None or not math.isfinite(baseline_err):
        return LOWP_CAP
    return min(max(2.0 * baseline_err, FP32_TOL), LOWP_CAP)


# ---- §5 low-precision baselines (torch) -------------------------------------------------------

def lowp_baseline(q, k, v, log_g=None, *, deg=2, scale=None, normalize=True, initial_state=None,
                  rows=None):
    """SPEC §5 baseline: the attention form in torch with inputs, scores, powered scores (and the
    gated weights) in the input dtype, fp32 accumulation, output rounded to the input dtype.
    q, k, v: torch tensors of the low-precision dtype (any device; computed on the CPU).
    Returns y as float64 numpy [b, t, hq, e] (or [b, len(rows), hq, e] for the query tokens
    `rows`, without an initial state)."""
    import torch

    dt = q.dtype
    q, k, v = (a.detach().to("cpu") for a in (q, k, v))
    b, t, hq, d = q.shape
    h = k.shape[2]
    scale = 1.0 / math.sqrt(d) if scale is None else float(scale)
    hmap = torch.from_numpy(_head_map(hq, h))
    lg = None if log_g is None else np.asarray(_to_numpy(log_g), dtype=np.float64)
    decay, dec0 = decay_matrices(lg, t, b, h, rows)
    decay = torch.from_numpy(np.ascontiguousarray(decay[:, _head_map(hq, h)])).float()
    qf, kf, vf = q.float(), k.float()[:, :, hmap], v.float()[:, :, hmap]
    if rows is not None:
        assert initial_state is None
        qf = qf[:, torch.from_numpy(np.asarray(rows))]
    s = (torch.einsum("bihd,bjhd->bhij", qf, kf) * scale).to(dt)          # scores in dt
    sp = (s.float() ** deg).to(dt)                                         # powered in dt
    w = torch.where(decay != 0, sp.float() * decay, 0.0).to(dt).float()   # weights in dt
    num = torch.einsum("bhij,bjhe->bihe", w, vf)                          # fp32 accumulation
    den = w.sum(-1).transpose(1, 2)                                        # [b, t, hq]
    if initial_state is not None:
        S0 = torch.from_numpy(np.asarray(_to_numpy(initial_state[0]), np.float32))[:, hmap]
        z0 = torch.from_numpy(np.asarray(_to_numpy(initial_state[1]), np.float32))[:, hmap, :, None]
        d0 = torch.from_numpy(np.ascontiguousarray(dec0[:, _head_map(hq, h)])).float()  # [b, hq, t]
        qh = qf.double().numpy().transpose(0, 2, 1, 3)                                   # [b, hq, t, d]
        q_num, q_den = torch.empty(b, hq, t, S0.shape[-1]), torch.empty(b, hq, t)
        for lo in range(0, t, 128):
            phi_q = torch.from_numpy(sympow(qh[:, :, lo:lo + 128], deg) * scale ** deg).to(dt).float()
            q_num[:, :, lo:lo + 128] = phi_q @ S0
            q_den[:, :, lo:lo + 128] = (phi_q @ z0)[..., 0]
        num = num + (d0[..., None] * q_num).transpose(1, 2)
        den = den + (d0 * q_den).transpose(1, 2)
    if normalize:
        y = torch.where(den[..., None] == 0, 0.0, num / den[..., None])
    else:
        y = num
    return y.to(dt).double().numpy()


def lowp_state_baseline(k, v, log_g=None, *, deg=2, initial_state=None):
    """Baseline for the final state with low-precision inputs, as a tensor-core chunk_state does
    it: every operand in the input dtype (phi(k_j); the gate gamma_j = decay(j, t-1); the gated
    operands gamma_j v_j and gamma_j phi(k_j), rounded from the rounded gate), products
    accumulated in fp32. k, v: torch tensors. Returns (S, z) float64 numpy."""
    import torch

    dt = k.dtype
    k, v = k.detach().to("cpu"), v.detach().to("cpu")
    b, t, h, d = k.shape
    lg = None if log_g is None else np.asarray(_to_numpy(log_g), dtype=np.float64)
    decay, dec0 = decay_matrices(lg, t, b, h)
    wl = torch.from_numpy(np.ascontiguousarray(decay[:, :, t - 1, :])).to(dt).float()  # [b, h, t]
    gv = (v.float().transpose(1, 2) * wl[..., None]).to(dt).float()                    # [b, h, t, e]
    kh = k.double().numpy().transpose(0, 2, 1, 3)                                       # [b, h, t, d]
    S = z = 0
    for lo in range(0, t, 128):
        phi_k = torch.from_numpy(sympow(kh[:, :, lo:lo + 128], deg)).to(dt).float()     # [b, h, blk, D]
        S = S + phi_k.transpose(-1, -2) @ gv[:, :, lo:lo + 128]
        z = z + (phi_k * wl[:, :, lo:lo + 128, None]).to(dt).float().sum(-2)
    if initial_state is not None:
        S0 = torch.from_numpy(np.asarray(_to_numpy(initial_state[0]), np.float32))
        z0 = torch.from_numpy(np.asarray(_to_numpy(initial_state[1]), np.float32))
        d_last = torch.from_numpy(np.ascontiguousarray(dec0[:, :, t - 1])).float()
        S = S + d_last[..., None, None] * S0
        z = z + d_last[..., None] * z0
    return S.double().numpy(), z.double().numpy()


def _to_numpy(a):
    if a is None or isinstance(a, np.ndarray):
        return a
    if hasattr(a, "detach"):
        return a.detach().to("cpu").numpy()
    return np.asarray(a)


def lowp_decode_baseline(q, k, v, state, log_g=None, *, deg=2, scale=None, normalize=True):
    """Baseline for one decode step with low-precision inputs (torch tensors q [b,hq,d],
    k [b,h,d], v [b,h,e]; state fp32): phi(q), phi(k) rounded to the input dtype, the state
    update and the contractions in fp32, y rounded. Returns (y, S, z) float64 numpy."""
    import torch

    dt = q.dtype
    q, k, v = (a.detach().to("cpu") for a in (q, k, v))
    b, hq, d = q.shape
    h = k.shape[1]
    scale = 1.0 / math.sqrt(d) if scale is None else float(scale)
    hmap = torch.from_numpy(_head_map(hq, h))
    phi_q = torch.from_numpy(sympow(q.double().numpy(), deg)).to(dt).float()   # [b, hq, D]
    phi_k = torch.from_numpy(sympow(k.double().numpy(), deg)).to(dt).float()   # [b, h, D]
    S = torch.from_numpy(np.asarray(_to_numpy(state[0]), np.float32))
    z = torch.from_numpy(np.asarray(_to_numpy(state[1]), np.float32))
    if log_g is not None:
        g = torch.from_numpy(np.exp(np.asarray(_to_numpy(log_g), np.float64))).float()
        S, z = g[..., None, None] * S, g[..., None] * z
    S = S + phi_k[..., None] * v.float()[:, :, None, :]
    z = z + phi_k
    c = scale ** deg
    num = c * torch.einsum("bhD,bhDe->bhe", phi_q, S[:, hmap])
    den = c * torch.einsum("bhD,bhD->bh", phi_q, z[:, hmap])
    y = torch.where(den[..., None] == 0, 0.0, num / den[..., None]) if normalize else num
    return y.to(dt).double().numpy(), S.double().numpy(), z.double().numpy()
