"""Framework adapters: recognise an array's framework, make contiguous inputs, allocate outputs
with that framework on the array's device, and name the stream its kernels must run on.

Each adapter is a handful of framework calls; no computation happens here. Frameworks are
imported lazily, so only NumPy is required.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np


class Adapter:
    """One framework. `native` arrays go to powerret._core as they are (DLPack)."""

    name = "?"

    def contiguous(self, x: Any) -> Any:
        raise NotImplementedError

    def empty(self, like: Any, shape: tuple, dtype: str | None = None) -> Any:
        """A new array on `like`'s device; dtype None means like's dtype."""
        raise NotImplementedError

    def stream(self, like: Any) -> int:
        """The cudaStream_t (as int) the framework is using for `like`'s device; 0 on the CPU."""
        return 0

    def is_cuda(self, x: Any) -> bool:
        return False

    def dtype_name(self, x: Any) -> str:
        return str(x.dtype)

    def is_contiguous(self, x: Any) -> bool:
        raise NotImplementedError


class NumpyAdapter(Adapter):
    name = "numpy"

    def contiguous(self, x):
        return np.ascontiguousarray(x)

    def empty(self, like, shape, dtype=None):
        return np.empty(shape, dtype=like.dtype if dtype is None else np.dtype(dtype))

    def is_contiguous(self, x):
        return bool(x.flags.c_contiguous)


class TorchAdapter(Adapter):
    name = "torch"

    def __init__(self):
        import torch

        self.torch = torch

    def contiguous(self, x):
        return x.contiguous()

    def empty(self, like, shape, dtype=None):
        dt = like.dtype if dtype is None else getattr(self.torch, dtype)
        return self.torch.empty(shape, dtype=dt, device=like.device)

    def stream(self, like):
        if like.device.type != "cuda":
            return 0
        return self.torch.cuda.current_stream(like.device).cuda_stream

    def is_cuda(self, x):
        return x.device.type == "cuda"

    def dtype_name(self, x):
        return str(x.dtype).replace("torch.", "")

    def is_contiguous(self, x):
        return x.is_contiguous()


class CupyAdapter(Adapter):
    name = "cupy"

    def __init__(self):
        import cupy

        self.cupy = cupy

    def contiguous(self, x):
        return self.cupy.ascontiguousarray(x)

    def empty(self, like, shape, dtype=None):
        with like.device:
            return self.cupy.empty(shape, dtype=like.dtype if dtype is None else dtype)

    def stream(self, like):
        with like.device:
            return self.cupy.cuda.get_current_stream().ptr

    def is_cuda(self, x):
        return True

    def is_contiguous(self, x):
        return bool(x.flags.c_contiguous)


def adapter_for(x: Any) -> Adapter:
    """The adapter of x's framework (TypeError for anything that is not an array we know)."""
    mod = type(x).__module__.split(".")[0]
    if isinstance(x, np.ndarray):
        return _cached("numpy", NumpyAdapter)
    if mod == "torch" and "torch" in sys.modules:
        return _cached("torch", TorchAdapter)
    if mod == "cupy" and "cupy" in sys.modules:
        return _cached("cupy", CupyAdapter)
    if mod in ("jax", "jaxlib") and "jax" in sys.modules:
        import jax

        if isinstance(x, jax.Array):
            return _cached("jax", _jax_adapter)
    raise TypeError(
        f"expected a NumPy, PyTorch, CuPy or JAX array, got {type(x).__module__}.{type(x).__name__}"
    )


_ADAPTERS: dict[str, Adapter] = {}


def _cached(name, factory):
    if name not in _ADAPTERS:
        _ADAPTERS[name] = factory()
    return _ADAPTERS[name]


def _jax_adapter():
    from powerret import _jax

    return _jax.JaxAdapter()
