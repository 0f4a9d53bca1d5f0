"""torch -> JAX hand-off without a copy (DLPack).

JAX imports a torch buffer in place when the tensor is detached, compactly
strided, 64-byte aligned and of a 32-bit-or-narrower dtype, and when JAX
has a device of the tensor's kind. Passing the tensor itself (not a legacy
capsule) lets JAX hand torch its stream, so pending CUDA work is ordered
before JAX reads. The caller must not write the tensor afterwards: JAX
assumes its arrays are immutable, so the bridge only hands over fresh
buffers it drops right after.
"""

from __future__ import annotations

import torch

_ALIGN = 64
_ZERO_COPY_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.int32, torch.uint8, torch.bool)


def _jax_has_gpu() -> bool:
    import jax

    try:
        return bool(jax.devices("gpu"))
    except RuntimeError:
        return False


def torch_to_jax(tensor: torch.Tensor):
    """A ``jax.Array`` aliasing ``tensor``'s memory; raises rather than silently copying.

    Fixes what can be fixed locally first: detach, make contiguous, realign
    (each a torch-side copy, which a fresh pooled tensor never needs), and
    bring a CUDA tensor to the host when this JAX has no GPU backend.
    """
    import jax

    if tensor.dtype not in _ZERO_COPY_DTYPES:
        raise TypeError(f"{tensor.dtype} cannot cross DLPack without JAX copying it; cast to float32 first")
    out = tensor.detach()
    if out.is_cuda and not _jax_has_gpu():
        out = out.cpu()
    if not out.is_contiguous():
        out = out.contiguous()
    if out.data_ptr() % _ALIGN:
        out = out.clone()
    return jax.dlpack.from_dlpack(out, copy=False)
