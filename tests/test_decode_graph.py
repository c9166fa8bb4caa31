"""decode_step inside a CUDA graph (SPEC §3: no allocation, no host sync, no data-dependent host
logic): one step captured into a torch.cuda.CUDAGraph, replayed for several steps with new inputs
copied into the captured tensors, matches the same steps run eagerly, bit for bit (same kernel, same
split of the state across a cluster, fixed-order sums). Slots change between steps and include -1
and out-of-range rows; batch 1 exercises the cluster split, batch 64 the unsplit launch, a group of
12 query heads the multi-pass GQA path. The forward is checked the same way (captured once, replayed
with new inputs). Skipped (cleanly) without torch, a GPU or a CUDA build."""
import math

import numpy as np
import pytest

import helpers
import powerret

# name -> shape, and the slots of each replayed step (None: no pool, row i uses state i)
CASES = {
    "batch1": dict(b=1, hq=8, h=8, d=64, e=64, num_slots=3, slots=[[0], [-1], [2], [0], [3], [2]]),
    "batch64": dict(b=64, hq=8, h=8, d=64, e=64, num_slots=72, slots="random"),
    "gqa12": dict(b=2, hq=24, h=2, d=32, e=128, num_slots=4, slots=[[3, -1], [1, 0], [-1, 2], [0, 9], [3, 1]]),
    "no_slots": dict(b=4, hq=8, h=4, d=128, e=32, num_slots=None, slots=[None] * 4),
}
DEG = 2


def random_slots(rng, b, num_slots, steps):
    """Distinct in-range slots per step, with a few rows set to -1 and one out of range."""
    out = []
    for _ in range(steps):
        s = rng.permutation(num_slots)[:b].astype(np.int32)
        s[rng.choice(b, size=3, replace=False)] = -1
        s[rng.integers(b)] = num_slots  # out of range: skipped like -1
        out.append(s.tolist())
    return out


def sympow2(torch, x):
    """phi_2(x) [..., d] -> [..., d(d+1)/2] in SPEC §1 order (independent of the library's kernels)."""
    d = x.shape[-1]
    i, j = torch.triu_indices(d, d, device=x.device)  # (0,0), (0,1), ..., (0,d-1), (1,1), ...: lexicographic
    w = torch.where(i == j, 1.0, math.sqrt(2.0)).to(x.dtype)
    return w * x[..., i] * x[..., j]


def make_state(torch, gen, rows, h, d, e, n=6):
    """(S, z) fp32 after n random tokens: den = sum_n (q.k_n)^2 > 0."""
    k = torch.randn(rows, n, h, d, device="cuda", generator=gen)
    v = torch.randn(rows, n, h, e, device="cuda", generator=gen)
    phi = sympow2(torch, k)  # [rows, n, h, D]
    S = torch.einsum("bnhr,bnhe->bhre", phi, v).contiguous()
    z = phi.sum(dim=1).contiguous()
    return S, z


@pytest.mark.gpu
@pytest.mark.parametrize("case", sorted(CASES))
def test_graph_replay_matches_eager(rng, case):
    helpers.require_device("cuda")
    torch = pytest.importorskip("torch")
    c = CASES[case]
    b, hq, h, d, e = c["b"], c["hq"], c["h"], c["d"], c["e"]
    rows = c["num_slots"] or b
    slot_steps = random_slots(rng, b, rows, 5) if c["slots"] == "random" else c["slots"]
    gen = torch.Generator(device="cuda")
    gen.manual_seed(int(rng.integers(2**62)))
    dt = torch.bfloat16

    def inputs(slots):
        lg = torch.log(torch.empty(b, h, device="cuda").uniform_(0.85, 1.0, generator=gen))
        lg[0, h - 1] = -math.inf  # a reset on one (row, kv head)
        return dict(
            q=torch.randn(b, hq, d, device="cuda", generator=gen).to(dt),
            k=torch.randn(b, h, d, device="cuda", generator=gen).to(dt),
            v=torch.randn(b, h, e, device="cuda", generator=gen).to(dt),
            log_g=lg,
            slots=None if slots is None else torch.tensor(slots, dtype=torch.int32, device="cuda"),
        )

    steps = [inputs(s) for s in slot_steps]
    S0, z0 = make_state(torch, gen, rows, h, d, e)

    def step(x, S, z, out=None):
        return powerret.decode_step(x["q"], x["k"], x["v"], (S, z), x["log_g"], deg=DEG, slots=x["slots"], out=out)

    # ---- eager
    S_e, z_e = S0.clone(), z0.clone()
    y_eager = [step(x, S_e, z_e).clone() for x in steps]

    # ---- graph: static inputs, output and state; warm up on a side stream, capture, restore the state
    static = {name: (None if t is None else t.clone()) for name, t in steps[0].items()}
    S_g, z_g = S0.clone(), z0.clone()
    y_g = torch.empty(b, hq, e, dtype=dt, device="cuda")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            step(static, S_g, z_g, out=y_g)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step(static, S_g, z_g, out=y_g)
    S_g.copy_(S0)
    z_g.copy_(z0)

    for t, x in enumerate(steps):
        for name, value in x.items():
            if value is not None:
                static[name].copy_(value)
        y_g.fill_(float("nan"))  # every element must be rewritten by the replay
        graph.replay()
        torch.testing.assert_close(y_g, y_eager[t], rtol=0, atol=0, msg=lambda m: f"{case} step {t}: y: {m}")
        if x["slots"] is not None:
            s = x["slots"].cpu().numpy()
            skipped = torch.from_numpy(np.flatnonzero((s < 0) | (s >= rows))).to("cuda")
            assert torch.all(y_g[skipped] == 0), f"{case} step {t}: skipped rows must have y == 0"
    torch.cuda.synchronize()
    torch.testing.assert_close(S_g, S_e, rtol=0, atol=0, msg=lambda m: f"{case}: S after the replays: {m}")
    torch.testing.assert_close(z_g, z_e, rtol=0, atol=0, msg=lambda m: f"{case}: z after the replays: {m}")

    # slots no step used are untouched; used ones moved
    used = sorted({s for ss in slot_steps if ss is not None for s in ss if 0 <= s < rows}) if c["num_slots"] else \
        list(range(rows))
    unused = sorted(set(range(rows)) - set(used))
    if unused:
        assert torch.equal(S_g[unused], S0[unused]) and torch.equal(z_g[unused], z0[unused]), \
            f"{case}: slots {unused} were never used but changed"
    assert not torch.equal(S_g[used], S0[used]), f"{case}: the used slots did not change"


@pytest.mark.gpu
@pytest.mark.parametrize("deg", [1, 2])
def test_forward_graph_replay_matches_eager(rng, deg):
    """The tensor-core forward inside a CUDA graph: the workspace counters' memset, the state kernel and
    the output kernel launched to overlap it (programmatic dependent launch) capture and replay; the
    replay equals the eager call bit for bit (no atomics in any sum), for new inputs copied in."""
    helpers.require_device("cuda")
    torch = pytest.importorskip("torch")
    gen = torch.Generator(device="cuda").manual_seed(int(rng.integers(1 << 31)))
    b, t, hq, h, d = 1, 64 * 9 + 5, 2, 1, 64
    D = powerret.state_dim(d, deg)

    def inputs():
        q = torch.randn(b, t, hq, d, device="cuda", generator=gen).to(torch.bfloat16)
        k = torch.randn(b, t, h, d, device="cuda", generator=gen).to(torch.bfloat16)
        v = torch.randn(b, t, h, d, device="cuda", generator=gen).to(torch.bfloat16)
        g = torch.nn.functional.logsigmoid(3 + torch.randn(b, t, h, device="cuda", generator=gen))
        s0 = (0.1 * torch.randn(b, h, D, d, device="cuda", generator=gen),
              torch.rand(b, h, D, device="cuda", generator=gen))
        return q, k, v, g, s0

    def call(x):
        return powerret.power_retention(x[0], x[1], x[2], x[3], deg=deg, chunk_size=64, initial_state=x[4],
                                        return_final_state=True)

    static = inputs()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        call(static)  # warm-up outside the capture (kernel attributes, module loading)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        y, (S, z) = call(static)
    for _ in range(3):
        fresh = inputs()
        for dst, src in zip(static[:4] + static[4], fresh[:4] + fresh[4]):
            dst.copy_(src)
        graph.replay()
        want_y, (want_S, want_z) = call(fresh)
        torch.cuda.synchronize()
        assert torch.equal(y, want_y)
        assert torch.equal(S, want_S) and torch.equal(z, want_z)
