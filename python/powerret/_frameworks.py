"""Framework adapters: recognise an array's framework, make contiguous inputs, allocate outputs
with that framework on the array's device, and name the stream its kernels must run on.

Each adapter is a handful of framework calls; no computation happens here. Frameworks are
imported lazily, so only NumPy is required.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

import numpy as np


class Adapter:
    """One framework. `native` arrays go to powerret._core as they are (DLPack)."""

    name = "?"
    immutable = False  # JAX: arrays are never updated in place

    def launch(self, *arrays: Any):
        """Context around a kernel call on `arrays` (None entries allowed)."""
        return contextlib.nullcontext()

    def copy(self, x: Any) -> Any:
        raise NotImplementedError

    def native(self, x: Any) -> Any:
        """What powerret._core receives for x (None stays None): the array itself (DLPack)."""
        return x

    def contiguous(self, x: Any) -> Any:
        raise NotImplementedError

    def empty(self, like: Any, shape: tuple, dtype: str | None = None) -> Any:
        """A new array on `like`'s device; dtype None means like's dtype."""
        raise NotImplementedError

    def stream(self, like: Any) -> int:
        """The cudaStream_t (as int) the framework is using for `like`'s device; 0 on the CPU."""
        return 0

    def no_backward(self, op: str, outputs: tuple, inputs: tuple) -> tuple:
        """`outputs`, marked for the framework's autograd (if any) as results of `inputs` whose
        backward raises: powerret has no backward yet (SPEC §4)."""
        return outputs


class NumpyAdapter(Adapter):
    name = "numpy"

    def contiguous(self, x):
        return np.ascontiguousarray(x)

    def empty(self, like, shape, dtype=None):
        return np.empty(shape, dtype=like.dtype if dtype is None else np.dtype(dtype))


class TorchAdapter(Adapter):
    name = "torch"

    def __init__(self):
        import torch
        import torch.utils.dlpack

        self.torch = torch
        self._to_dlpack = torch.utils.dlpack.to_dlpack
        # The current stream's handle without building a torch.cuda.Stream object (~2 us a call); the
        # public call where this private one is missing.
        self._raw_stream = getattr(torch._C, "_cuda_getCurrentRawStream", None)
        self._grad_enabled = torch.is_grad_enabled

        class NoBackward(torch.autograd.Function):
            """Views of the given outputs whose backward raises (powerret has no backward yet)."""

            @staticmethod
            def forward(ctx, op, n_out, *tensors):
                ctx.op = op
                return tuple(t.view_as(t) for t in tensors[:n_out])

            @staticmethod
            def backward(ctx, *grads):
                raise NotImplementedError(
                    f"powerret.{ctx.op} has no backward yet (SPEC §4 is planned, not implemented): call it "
                    "under torch.no_grad() or on tensors that do not require grad for inference")

        self._no_backward = NoBackward

    def native(self, x):
        # A DLPack capsule made in C++: Tensor.__dlpack__ is Python code that costs ~4 us a
        # tensor, most of an eager decode step's host time.
        return None if x is None else self._to_dlpack(x)

    def contiguous(self, x):
        return x.contiguous()

    def no_backward(self, op, outputs, inputs):
        # Without this, outputs computed from tensors that require grad would come back without a grad_fn,
        # and a training step would silently get no gradient through powerret. With it, the forward works
        # anywhere and backward() raises.
        if not self._grad_enabled():
            return outputs
        live = [x for x in inputs if x is not None and x.requires_grad]
        if not live:
            return outputs
        return self._no_backward.apply(op, len(outputs), *outputs, *live)[: len(outputs)]

    def empty(self, like, shape, dtype=None):
        # new_empty: like's device and (by default) dtype without parsing them again
        if dtype is None:
            return like.new_empty(shape)
        return like.new_empty(shape, dtype=getattr(self.torch, dtype))

    def stream(self, like):
        if not like.is_cuda:
            return 0
        if self._raw_stream is not None:
            return self._raw_stream(like.get_device())
        return self.torch.cuda.current_stream(like.device).cuda_stream


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


_BY_TYPE: dict[type, Adapter] = {}  # array type -> adapter, filled on first sight (a hot-path lookup)


def adapter_for(x: Any) -> Adapter:
    """The adapter of x's framework (TypeError for anything that is not an array we know)."""
    known = _BY_TYPE.get(type(x))
    if known is not None:
        return known
    ad = _adapter_of(x)
    _BY_TYPE[type(x)] = ad
    return ad


def _adapter_of(x: Any) -> Adapter:
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
            return _cached("jax", JaxAdapter)
    raise TypeError(
        f"expected a NumPy, PyTorch, CuPy or JAX array, got {type(x).__module__}.{type(x).__name__}"
    )


_ADAPTERS: dict[str, Adapter] = {}


def _cached(name, factory):
    if name not in _ADAPTERS:
        _ADAPTERS[name] = factory()
    return _ADAPTERS[name]


class JaxAdapter(Adapter):
    """Eager JAX through DLPack: outputs are fresh JAX buffers written by the kernels. JAX does not
    expose its CUDA stream, so on a GPU the call waits for its inputs, runs on the legacy default
    stream and waits for the kernels before returning (host syncs here, never in the library).
    Not traceable under jax.jit: call it on concrete arrays."""

    name = "jax"
    immutable = True

    def __init__(self):
        import jax
        import jax.numpy as jnp

        self.jax, self.jnp = jax, jnp

    def _device(self, x):
        (dev,) = x.devices()
        return dev

    def contiguous(self, x):
        if isinstance(x, self.jax.core.Tracer):
            raise TypeError("powerret's JAX path is eager-only (DLPack): call it outside jax.jit")
        return x  # JAX arrays are always dense row-major

    def empty(self, like, shape, dtype=None):
        return self.jnp.empty(shape, dtype=like.dtype if dtype is None else dtype, device=self._device(like))

    def copy(self, x):
        return self.jnp.array(x, copy=True)

    def is_cuda(self, x):
        return self._device(x).platform == "gpu"

    @contextlib.contextmanager
    def launch(self, *arrays):
        live = [a for a in arrays if a is not None]
        for a in live:
            a.block_until_ready()
        yield
        if live and self.is_cuda(live[0]):
            from powerret import _core

            _core.synchronize(self._device(live[0]).local_hardware_id)

