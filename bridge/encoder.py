"""``CarbonEncoder``: DNA windows in, pooled Carbon states out (numpy, or JAX without a copy).

Carbon runs in torch only up to ``state_layer``; tokens are made natively,
pooling happens on the model's device, and the only host transfer is the
final [B, d] float32 block.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from geno_lewm_jax.errors import InputError, InvalidConfigError, InvariantViolation, OutOfWindowError, RuntimeSetupError
from bridge import loading
from bridge.dlpack import torch_to_jax
from bridge.contracts import CONTRACT_LEGACY, CONTRACT_V2, CONTRACTS, NO_LOCUS
from bridge.pooling import pool_legacy, pool_v2
from bridge.tokenizer import RULE_ID, check_batch, length_buckets, pad_batch, tokenize

_TORCH_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
POOLING_VERSION = "bridge-pooling/1"


@dataclasses.dataclass(frozen=True)
class FeatureBatch:
    """Pooled states with the contract and encoder identity they were made under."""

    features: Any  # float32 [B, d_state]: numpy.ndarray or jax.Array
    contract: str
    identity: str


def resolve_device(device: str | None) -> torch.device:
    """CUDA when present unless told otherwise; asking for CUDA without one is a setup error."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeSetupError(
            f"runtime.device={device!r} but torch sees no CUDA device",
            details={"field": "runtime.device"},
            remediation="use --device=cpu (or auto) on a machine without a GPU",
        )
    try:
        return torch.device(device)
    except (RuntimeError, TypeError):
        raise InvalidConfigError(f"runtime.device={device!r} is not a torch device", details={"field": "runtime.device"}) from None


def _check_choice(field: str, value: object, choices: Sequence[str]) -> None:
    if value not in choices:
        raise InvalidConfigError(
            f"{field}={value!r} must be one of {', '.join(choices)}", details={"field": field, "value": repr(value)}
        )


def _loci(loci: object, sequences: list[str]) -> list[int]:
    """Loci as ints (NO_LOCUS for whole-window), each inside its window."""
    if isinstance(loci, (str, bytes)) or not isinstance(loci, Sequence):
        raise InputError(f"loci must be a list of int or None, got {type(loci).__name__}", details={"field": "loci"})
    if len(loci) != len(sequences):
        raise InputError(
            f"loci has {len(loci)} entries for {len(sequences)} sequences", details={"field": "loci"}
        )
    out = []
    for i, (locus, seq) in enumerate(zip(loci, sequences)):
        if locus is None:
            out.append(NO_LOCUS)
            continue
        if isinstance(locus, (bool, np.bool_)) or not isinstance(locus, (int, np.integer)):
            raise InputError(f"loci[{i}] must be an int or None, got {type(locus).__name__}", details={"field": f"loci[{i}]"})
        if not 0 <= int(locus) < len(seq):
            raise OutOfWindowError(
                f"loci[{i}]={int(locus)} is outside its window of {len(seq)} bp (need 0 <= locus < len)",
                details={"field": f"loci[{i}]", "locus": int(locus), "window_bp": len(seq)},
            )
        out.append(int(locus))
    return out


class CarbonEncoder:
    """Frozen Carbon (torch) cut at ``state_layer``, plus tokenisation and on-device pooling.

    ``identity`` hashes the weights, config.json, the tokenizer rule and pad
    id, the layer, dtype, pooling and contract: any change to what a feature
    means changes it, so it keys caches.
    """

    def __init__(
        self,
        model_dir: str | os.PathLike[str],
        *,
        dtype: str = "bf16",
        state_layer: int,
        pool_radius: int = 8,
        state_contract: str = CONTRACT_V2,
        device: str | None = None,
        expected_d_state: int | None = None,
        max_batch: int = 16,
    ) -> None:
        _check_choice("encoder.dtype", dtype, tuple(_TORCH_DTYPES))
        _check_choice("encoder.state_contract", state_contract, CONTRACTS)
        for field, value, low in (("encoder.pool_radius", pool_radius, 0), ("encoder.encode_batch_size", max_batch, 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise InvalidConfigError(f"{field}={value!r} must be an integer >= {low}", details={"field": field})
        self.device = resolve_device(device)
        files = loading.inspect_model_dir(model_dir)
        self.num_layers = files.num_layers
        self.state_layer = loading.resolve_state_layer(state_layer, files.num_layers)
        self.d_state = files.hidden_size
        if expected_d_state is not None and expected_d_state != self.d_state:
            raise InvalidConfigError(
                f"predictor.d_state={expected_d_state} but {files.root / 'config.json'} has hidden_size={self.d_state}",
                details={"field": "predictor.d_state", "hidden_size": self.d_state},
                remediation=f"set --d_state={self.d_state} for this Carbon checkpoint",
            )
        self.model_dir = files.root
        self.dtype = dtype
        self.pool_radius = pool_radius
        self.contract = state_contract
        self.pad_id = files.pad_id
        self.max_batch = max_batch
        self.model = loading.load_truncated(files, self.state_layer, _TORCH_DTYPES[dtype]).to(self.device)
        self.identity = self._identity(files)
        # Optional: an object with ``add(phase, seconds)`` (a training PhaseTally) that receives the
        # tokenize / carbon_forward / pool split of every encode (CUDA work is synchronised per stage).
        self.timeline: Any = None
        self._side_stream: Any = None

    @contextlib.contextmanager
    def side_stream(self) -> Iterator[None]:
        """Run the enclosed encodes on a CUDA stream of their own, finished on exit.

        A training producer thread encodes here, so Carbon's forward overlaps the
        jitted step JAX runs on its own stream of the same GPU; on the CPU this
        does nothing.
        """
        if self.device.type != "cuda":
            yield
            return
        if self._side_stream is None:
            self._side_stream = torch.cuda.Stream(device=self.device)
        with torch.cuda.stream(self._side_stream):
            yield
        self._side_stream.synchronize()

    @contextlib.contextmanager
    def _stage(self, name: str) -> Iterator[None]:
        if self.timeline is None:
            yield
            return
        start = time.monotonic()
        yield
        if self.device.type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()
        self.timeline.add(name, time.monotonic() - start)

    @classmethod
    def from_config(cls, config: Any, *, device: str | None = None) -> "CarbonEncoder":
        """The encoder a run config describes (``device`` defaults to ``runtime.device``)."""
        enc = config.encoder
        return cls(
            enc.model_dir,
            dtype=enc.dtype,
            state_layer=enc.state_layer,
            pool_radius=enc.pool_radius,
            state_contract=enc.state_contract,
            device=device if device is not None else config.runtime.device,
            expected_d_state=config.predictor.d_state,
            max_batch=enc.encode_batch_size,
        )

    def _identity(self, files: loading.ModelFiles) -> str:
        payload = {
            "weights": {p.name: loading.file_sha256(p) for p in files.weight_files},
            "config": hashlib.sha256(json.dumps(files.config, sort_keys=True).encode()).hexdigest(),
            "tokenizer": RULE_ID,
            "pad_id": self.pad_id,
            "state_layer": self.state_layer,
            "dtype": self.dtype,
            "pooling": POOLING_VERSION,
            "pool_radius": self.pool_radius,
            "contract": self.contract,
        }
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
        return f"carbon-{self.contract}-{digest}"

    # --- encoding ------------------------------------------------------------------------
    def _forward(self, rows: list[np.ndarray], *, with_mask: bool) -> torch.Tensor:
        """Hidden states [B, T, d] of right-padded rows.

        Carbon is causal and the rows are right-padded from position 0, so a
        real token never sees padding and keeps its RoPE position: the mask
        only changes the padding rows' own states. Those matter only to the
        legacy contract; without a mask SDPA runs its causal kernel.
        """
        batch = pad_batch(rows, pad_id=self.pad_id)
        ids = torch.from_numpy(batch.input_ids).to(self.device)
        mask = torch.from_numpy(batch.attention_mask).to(self.device) if with_mask else None
        return self.model(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state

    def _prefix_v2(self, row: np.ndarray, locus: int) -> int:
        """Tokens the v2 pooled rows depend on: causality makes later tokens irrelevant."""
        n = row.size - 2
        return n + 1 if locus == NO_LOCUS else min(n, 1 + locus // 6 + self.pool_radius) + 1

    def encode_tensor(self, sequences: Sequence[str], loci: Sequence[int | None]) -> torch.Tensor:
        """float32 [B, d_state] on the model's device, in input order (the one encoding path)."""
        seqs = check_batch(sequences)
        with self._stage("tokenize"):
            rows = [tokenize(s, i) for i, s in enumerate(seqs)]
        loci_list = _loci(loci, seqs)
        locus_t = torch.tensor(loci_list, dtype=torch.int64, device=self.device)
        with torch.inference_mode():
            if self.contract == CONTRACT_LEGACY:
                # 0.2.1 ran the whole call as one batch padded to its longest row and its global
                # mean reads the padding rows, so the batch is kept as given, mask included; only
                # the tail no pooled row depends on is cut.
                width = max(r.size for r in rows)
                keep = max(width if p == NO_LOCUS else min(width, p // 6 + self.pool_radius + 1) for p in loci_list)
                with self._stage("carbon_forward"):
                    hidden = self._forward([r[:keep] for r in rows], with_mask=True)
                with self._stage("pool"):
                    out = pool_legacy(hidden, locus_t, self.pool_radius)
            else:
                prefixes = [self._prefix_v2(r, p) for r, p in zip(rows, loci_list)]
                n_content = torch.tensor([r.size - 2 for r in rows], dtype=torch.int64, device=self.device)
                out = torch.empty((len(rows), self.d_state), dtype=torch.float32, device=self.device)
                for group in length_buckets(prefixes, self.max_batch):
                    with self._stage("carbon_forward"):
                        hidden = self._forward([rows[i][: prefixes[i]] for i in group], with_mask=False)
                    with self._stage("pool"):
                        index = torch.from_numpy(group).to(self.device)
                        out[index] = pool_v2(hidden, n_content[index], locus_t[index], self.pool_radius)
            if not bool(torch.isfinite(out).all()):
                bad = torch.nonzero(~torch.isfinite(out).all(dim=1)).flatten().tolist()
                raise InvariantViolation(
                    f"Carbon produced non-finite pooled states for sequences{bad[:5]} (dtype {self.dtype})",
                    details={"field": "sequences", "rows": bad[:20]},
                    remediation="try --encoder_dtype=fp32; check the checkpoint for NaN weights",
                )
        return out

    def encode_with_meta(self, sequences: Sequence[str], loci: Sequence[int | None], *, as_jax: bool = False) -> FeatureBatch:
        """Features tagged with contract and identity; numpy, or a zero-copy ``jax.Array``."""
        pooled = self.encode_tensor(sequences, loci)
        features = torch_to_jax(pooled) if as_jax else pooled.cpu().numpy()
        return FeatureBatch(features, self.contract, self.identity)

    def encode_batch(self, sequences: Sequence[str], loci: Sequence[int | None]) -> np.ndarray:
        """float32 numpy [B, d_state]; a locus of None pools the whole window."""
        return self.encode_with_meta(sequences, loci).features

    def encode_batch_jax(self, sequences: Sequence[str], loci: Sequence[int | None]):
        """float32 ``jax.Array`` [B, d_state] aliasing the pooled torch buffer (DLPack, no copy)."""
        return self.encode_with_meta(sequences, loci, as_jax=True).features
