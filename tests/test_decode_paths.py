"""decode_step on the GPU: one step through each launch path of the kernel (src/cuda/decode_step), against
the float64 reference. The launcher picks per call: the split of each state across a thread-block
cluster (1 when b h fills the SMs, up to 16 at b h = 1), query heads per pass (1, 2, 4, 8; more than 8
take several passes) and the state access (16-byte vectors, or scalars for a state that is only 4-byte
aligned). The shapes below reach each of them on a GPU with about 100-150 SMs; bf16 only (the ci build's
dtype), SPEC §5 tolerances."""
import numpy as np
import pytest

import helpers
from test_decode_step import Step

# id -> (b, hq, h, d, e, deg, unaligned state)
PATHS = {
    "no_split_1_head": (40, 4, 4, 32, 64, 2, False),
    "split16_3_heads": (1, 6, 2, 64, 32, 2, False),
    "split16_12_heads_2_passes": (3, 12, 1, 32, 64, 2, False),
    "unaligned_state_scalar_path": (2, 4, 2, 64, 128, 2, True),
    "deg4_many_phi_blocks": (1, 2, 1, 32, 32, 4, False),
    "deg1_state_smaller_than_a_step": (3, 3, 3, 32, 32, 1, False),
    "deg3_e128": (2, 2, 2, 16, 128, 3, False),
}


@pytest.mark.gpu
@pytest.mark.parametrize("path", sorted(PATHS))
def test_decode_path(rng, path):
    helpers.require_device("cuda")
    torch = pytest.importorskip("torch")
    b, hq, h, d, e, deg, unaligned = PATHS[path]
    fw = helpers.framework("torch", "cuda")
    s = Step(rng, fw, "bfloat16", b=b, hq=hq, h=h, d=d, e=e, deg=deg, gate="reset")
    if unaligned:  # same values, 4 bytes past a 16-byte boundary
        buf = torch.empty(s.S.numel() + 1, dtype=torch.float32, device="cuda")
        buf[1:].copy_(s.S.reshape(-1))
        s.S = buf[1:].view(s.S.shape)
        assert s.S.data_ptr() % 16 != 0
    import powerret

    y = powerret.decode_step(s.q, s.k, s.v, (s.S, s.z), s.log_g, deg=deg)
    s.check(y, what=f" ({path})")
    assert np.isfinite(fw.to_numpy(y)).all()
