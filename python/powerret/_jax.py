"""JAX through XLA's FFI: XLA allocates the outputs (and the forward's workspace) and gives the
kernels its stream, so these work eagerly and under jax.jit; decode_step aliases the state
inputs to its state outputs, so a donated state is updated in place.

Available when powerret was built with the XLA FFI headers (jax importable at build time);
otherwise powerret's JAX path falls back to eager DLPack calls (see _frameworks.JaxAdapter).
Arguments are validated while tracing, by the same C++ checks as every other call (on shapes
and dtypes), so bad input raises ValueError / TypeError before anything runs.
"""

from __future__ import annotations

import numpy as np

from powerret import _core

_registered: bool | None = None


def available() -> bool:
    """Whether the FFI handlers exist in this build (registers them with JAX on first use)."""
    global _registered
    if _registered is None:
        handlers = _core.xla_handlers()
        if handlers:
            import jax

            for name, platform, capsule in handlers:
                jax.ffi.register_ffi_target(name, capsule, platform=platform)
        _registered = bool(handlers)
    return _registered


def _spec(x):
    return None if x is None else (tuple(int(n) for n in x.shape), str(np.dtype(x.dtype)))


def _where(x):
    """(is_cuda, device ordinal) of a concrete array, or None for a tracer (placement unknown)."""
    try:
        (dev,) = x.devices()
    except Exception:  # a tracer: it runs wherever jit places the computation
        return None
    return dev.platform == "gpu", dev.local_hardware_id or 0


def _none_or(x, placeholder):
    return placeholder if x is None else x


def power_retention(q, k, v, log_g, s0, z0, deg, scale, normalize, return_final_state, chunk_size):
    import jax
    import jax.numpy as jnp

    b, t, hq, d = q.shape
    h, e = k.shape[2], v.shape[-1]
    D = _core.state_dim(d, deg)
    y_t = jax.ShapeDtypeStruct((b, t, hq, e), q.dtype)
    s_t = jax.ShapeDtypeStruct((b, h, D, e), jnp.float32)
    z_t = jax.ShapeDtypeStruct((b, h, D), jnp.float32)
    chunk = chunk_size or 0
    specs = (_spec(q), _spec(k), _spec(v), _spec(log_g), _spec(s0), _spec(z0), _spec(y_t),
             _spec(s_t) if return_final_state else None, _spec(z_t) if return_final_state else None)
    where = _where(q)
    if where is not None:  # concrete: the exact checks and workspace of its device
        need = _core.check_forward(*specs, *where, deg, scale, normalize, chunk)
    else:  # traced: device-independent checks now; the workspace a GPU would need, in case it runs there
        _core.check_forward(*specs, False, 0, deg, scale, normalize, chunk)
        try:
            need = _core.check_forward(*specs, True, 0, deg, scale, normalize, chunk)
        except ValueError:  # not a GPU configuration: the handler reports it if it does run there
            need = 0
    empty = jax.ShapeDtypeStruct((0,), jnp.float32)
    ph = jnp.zeros((0,), jnp.float32)
    call = jax.ffi.ffi_call("powerret_forward", (y_t, s_t if return_final_state else empty,
                                                 z_t if return_final_state else empty,
                                                 jax.ShapeDtypeStruct((need,), jnp.uint8)))
    y, s, z, _ = call(q, k, v, _none_or(log_g, ph), _none_or(s0, ph), _none_or(z0, ph),
                   deg=np.int64(deg), chunk=np.int64(chunk), scale=np.float32(scale or 0.0),
                   has_scale=scale is not None, normalize=bool(normalize), has_log_g=log_g is not None,
                   has_initial=s0 is not None, has_final=bool(return_final_state))
    return (y, (s, z)) if return_final_state else y


def decode_step(q, k, v, s, z, log_g, slots, deg, scale, normalize):
    import jax
    import jax.numpy as jnp

    b, hq, _ = q.shape
    y_t = jax.ShapeDtypeStruct((b, hq, v.shape[-1]), q.dtype)
    cuda, ordinal = _where(q) or (False, 0)  # traced: the device-independent checks
    _core.check_decode(_spec(q), _spec(k), _spec(v), _spec(log_g), _spec(s), _spec(z), _spec(slots), _spec(y_t),
                       cuda, ordinal, deg, scale, normalize)
    ph_f, ph_i = jnp.zeros((0,), jnp.float32), jnp.zeros((0,), jnp.int32)
    call = jax.ffi.ffi_call(
        "powerret_decode_step",
        (y_t, jax.ShapeDtypeStruct(s.shape, s.dtype), jax.ShapeDtypeStruct(z.shape, z.dtype)),
        input_output_aliases={5: 1, 6: 2},
    )
    return call(q, k, v, _none_or(log_g, ph_f), _none_or(slots, ph_i), s, z,
                deg=np.int64(deg), scale=np.float32(scale or 0.0), has_scale=scale is not None,
                normalize=bool(normalize), has_log_g=log_g is not None, has_slots=slots is not None)


def sympow(x, deg):
    import jax

    out_t = jax.ShapeDtypeStruct((*x.shape[:-1], _core.state_dim(x.shape[-1], deg)), x.dtype)
    return jax.ffi.ffi_call("powerret_sympow", out_t)(x, deg=np.int64(deg))
