"""``--sweep``: which settings a sweep varies, and the variants it trains.

Syntax: ``field:v1,v2,...``; ``;`` joins two or more such lists, and the
variants are their Cartesian product (the first list varies slowest). A field
is named by its dotted config name or its flag name (``optimizer.lr`` or
``lr``). Examples::

    --sweep=seed:0,1,2,3
    --sweep=optimizer.lr:1e-4,3e-4,1e-3
    --sweep='seed:0,1;lr:1e-4,3e-4'          # 4 variants

Only settings that keep every array shape and the program's structure can be
swept (:data:`SWEEPABLE`): all variants share one batch stream, one Carbon
encoding and one compiled step. A swept ``seed`` varies the model's
initialisation only; the data stream (its order and sampling) and SIGReg's
projection directions follow the run's own ``--seed`` for every variant. Each
variant's ``config`` is the single run it stands for: the run's config with
that variant's values and no sweep (for a swept seed, the single run that
equals the variant reads the sweep's data stream, not its own seed's). Every variant must be a valid config of its own; any problem is an
:class:`~geno_lewm_jax.errors.InvalidConfigError` naming ``--sweep``.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from typing import Any, Literal

from geno_lewm_jax.errors import ConfigError, InvalidConfigError

FIELD = "sweep"
VARIANT_PREFIX = "v"

Enters = Literal["init", "schedule", "optimizer", "objective"]


@dataclasses.dataclass(frozen=True)
class Sweepable:
    """A setting a sweep may vary, and where its per-variant value enters the step.

    ``init``: the model's initial parameters; ``schedule``: the host-side learning
    rate of each step; ``optimizer``: a keyword of ``build_adamw_optimizer``;
    ``objective``: a field of ``ObjectiveSettings``. ``name`` is that keyword or field.
    """

    enters: Enters
    name: str


# A new shape-keeping setting becomes sweepable by adding a row here (the regulariser's
# weight is training.loss_gamma, the weight of whatever regulariser phase2 adds).
SWEEPABLE: dict[str, Sweepable] = {
    "seed": Sweepable("init", "seed"),
    "optimizer.lr": Sweepable("schedule", "lr"),
    "optimizer.warmup_steps": Sweepable("schedule", "warmup_steps"),
    "optimizer.weight_decay": Sweepable("optimizer", "weight_decay"),
    "optimizer.grad_clip": Sweepable("optimizer", "grad_clip"),
    "training.loss_alpha": Sweepable("objective", "alpha"),
    "training.loss_beta": Sweepable("objective", "beta"),
    "training.loss_gamma": Sweepable("objective", "gamma"),
}


@dataclasses.dataclass(frozen=True)
class SweepVariant:
    """One variant: its index in the stacked state, its swept values, and its single-run config."""

    index: int
    settings: dict[str, Any]
    config: Any  # geno_lewm_jax.config.Config, with sweep=""

    @property
    def name(self) -> str:
        """``v<index>``: the suffix of this variant's keys in events and summaries."""
        return f"{VARIANT_PREFIX}{self.index}"

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.settings.items())


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """The parsed ``--sweep``: the swept fields and every variant, in stacking order."""

    fields: tuple[str, ...]
    variants: tuple[SweepVariant, ...]

    def __len__(self) -> int:
        return len(self.variants)

    def values(self, field: str) -> list[Any]:
        """``field``'s value in each variant (swept or not)."""
        from geno_lewm_jax.config import get_dotted

        return [get_dotted(v.config, field) for v in self.variants]

    def swept(self, enters: Enters) -> dict[str, str]:
        """The swept fields entering at ``enters``, by the name they set there."""
        return {SWEEPABLE[f].name: f for f in self.fields if SWEEPABLE[f].enters == enters}

    def to_meta(self) -> dict[str, Any]:
        """What a checkpoint's meta and the run summaries record of the sweep."""
        return {
            "fields": list(self.fields),
            "variants": [{"variant": v.name, **v.settings} for v in self.variants],
        }


def variant_key(name: str, index: int) -> str:
    """The flat key of variant ``index``'s ``name`` in events and summaries: ``loss/v0``."""
    return f"{name}/{VARIANT_PREFIX}{index}"


def per_variant(row: dict[str, Any]) -> dict[str, Any]:
    """The per-variant entries (``name/v<i>``) of an event row; empty for a single run."""
    return {k: v for k, v in row.items() if _variant_of(k) is not None}


def _variant_of(key: str) -> int | None:
    _, sep, suffix = key.rpartition("/")
    if sep and suffix.startswith(VARIANT_PREFIX) and suffix[len(VARIANT_PREFIX) :].isdigit():
        return int(suffix[len(VARIANT_PREFIX) :])
    return None


def split_variants(row: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """A row's per-variant entries regrouped: {variant index: {name: value}}."""
    out: dict[int, dict[str, Any]] = {}
    for key, value in row.items():
        index = _variant_of(key)
        if index is not None:
            out.setdefault(index, {})[key.rpartition("/")[0]] = value
    return out


def _error(message: str, **details: Any) -> InvalidConfigError:
    return InvalidConfigError(
        f"--sweep: {message}",
        details={"field": FIELD, **details},
        remediation="Use --sweep=field:v1,v2[;field:v1,v2] over " + ", ".join(SWEEPABLE) + ".",
    )


def _field_names() -> dict[str, str]:
    """Every accepted spelling (dotted name and flag name) -> the dotted name."""
    from geno_lewm_jax.config import iter_fields
    from geno_lewm_jax.flags import flag_name

    names = {}
    for spec in iter_fields():
        names[spec.dotted] = spec.dotted
        names.setdefault(flag_name(spec.dotted), spec.dotted)
    return names


def _parse_value(text: str, field: str, annotation: Any) -> Any:
    try:
        if annotation is int:
            return int(text)
        return float(text)
    except ValueError:
        kind = "an integer" if annotation is int else "a number"
        raise _error(f"{field} takes {kind}, got {text!r}", value=text, swept=field) from None


def parse_axes(text: str) -> list[tuple[str, list[Any]]]:
    """``"f:1,2;g:3"`` -> [(dotted f, [1, 2]), (dotted g, [3])], each value of its field's type."""
    from geno_lewm_jax.config import iter_fields

    names = _field_names()
    types = {s.dotted: s.annotation for s in iter_fields()}
    axes: list[tuple[str, list[Any]]] = []
    for part in text.split(";"):
        name, sep, listed = part.strip().partition(":")
        name = name.strip()
        if not sep or not name:
            raise _error(f"{part.strip()!r} is not field:v1,v2,...", value=text)
        if name not in names:
            raise _error(f"unknown setting {name!r}", value=text, swept=name)
        field = names[name]
        if field not in SWEEPABLE:
            raise _error(
                f"{field} cannot be swept: only settings that keep every shape and the step's program can"
                f" (sweepable: {', '.join(SWEEPABLE)})",
                value=text,
                swept=field,
            )
        if any(field == f for f, _ in axes):
            raise _error(f"{field} is listed twice", value=text, swept=field)
        items = [v.strip() for v in listed.split(",")]
        if not items or any(not v for v in items):
            raise _error(f"{field} needs a comma-separated list of values, got {listed!r}", value=text, swept=field)
        values = [_parse_value(v, field, types[field]) for v in items]
        if len(set(values)) != len(values):
            raise _error(f"{field} lists a value twice ({listed})", value=text, swept=field)
        axes.append((field, values))
    return axes


@functools.lru_cache(maxsize=32)
def sweep_spec(config: Any) -> SweepSpec:
    """The variants of ``config.sweep``, each checked as a config of its own."""
    if not config.sweep:
        raise ConfigError("sweep_spec needs a config with --sweep")  # a caller bug, not user input
    axes = parse_axes(config.sweep)
    if config.runtime.grad_reduction == "ordered":
        raise _error("a sweep sums its gradients with runtime.grad_reduction=all_reduce only", swept=config.sweep)
    fields = tuple(f for f, _ in axes)
    variants = []
    for index, combo in enumerate(itertools.product(*(values for _, values in axes))):
        settings = dict(zip(fields, combo))
        try:
            single = config.replace({**settings, FIELD: ""})
        except InvalidConfigError as exc:
            raise _error(f"variant {index} ({settings}) is not a valid run: {exc}", variant=index) from None
        variants.append(SweepVariant(index=index, settings=settings, config=single))
    return SweepSpec(fields=fields, variants=tuple(variants))


def check_variant(config: Any, variant: int | None) -> int:
    """``variant`` if it names one of ``config``'s sweep variants; InputError listing them otherwise."""
    from geno_lewm_jax.errors import InputError

    spec = sweep_spec(config)
    listing = "; ".join(f"{v.index}: {v.label}" for v in spec.variants)
    details = {"field": "variant", "value": variant, "variants": [v.settings for v in spec.variants]}
    if variant is None:
        raise InputError(
            f"this run is a sweep of {len(spec)} variants; pick one with --variant ({listing})",
            details=details,
            remediation="Pass --variant=<index>.",
        )
    if not 0 <= variant < len(spec):
        raise InputError(f"--variant={variant} does not exist; this sweep has {listing}", details=details)
    return variant


__all__ = [
    "SWEEPABLE",
    "check_variant",
    "SweepSpec",
    "SweepVariant",
    "Sweepable",
    "parse_axes",
    "per_variant",
    "split_variants",
    "sweep_spec",
    "variant_key",
]
