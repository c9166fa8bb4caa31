"""powerret: power retention (Manifest AI's symmetric-power linear attention with gating).

    y_i = sum_{j<=i} (scale q_i.k_j)^p exp(G_i - G_j) v_j / (the same sum without v_j)

computed with a fixed-size state S = sum phi_p(k) v^T: a chunked forward for training and
prefill, and an O(1) decode step for generation. Arrays of NumPy, PyTorch, CuPy and JAX go in;
the same framework's arrays come out. See README.md and SPEC.md for the contract.
"""

from powerret._api import State, built_with_cuda, decode_step, power_retention, state_dim, sympow
from powerret._core import version as _version

__version__ = _version()
__all__ = ["State", "built_with_cuda", "decode_step", "power_retention", "state_dim", "sympow"]
