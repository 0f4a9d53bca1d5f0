"""Every absl flag of the project, and their one-time conversion into a Config.

A flag exists for each config field. Its name is the field name, except where
two sections share a field name (then the section prefixes it, as in
``--encoder_dtype``). Flags are defined on a ``FlagValues`` passed in, so
tests and :func:`geno_lewm_jax.config.load_config` parse flagfiles without
touching the global ``FLAGS``.

Precedence, lowest first: release-recipe defaults, ``--config_yaml``, then
flags given on the command line or in a flagfile.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from absl import flags

from geno_lewm_jax import config as cfg
from geno_lewm_jax.errors import InvalidConfigError

# Flag names that differ from the plain field name (shared names, or clearer ones).
_RENAMED: dict[str, str] = {
    "encoder.dtype": "encoder_dtype",
    "predictor.d_action": "predictor_d_action",
    "predictor.dtype": "predictor_dtype",
    "predictor.architecture": "predictor_architecture",
    "optimizer.name": "optimizer",
    "eval.benchmarks": "eval_benchmarks",
    "runtime.backend": "runtime_backend",
}

CONFIG_YAML_FLAG = "config_yaml"


def flag_name(dotted: str) -> str:
    """The flag that sets a dotted config field."""
    return _RENAMED.get(dotted, dotted.rsplit(".", 1)[-1])


def define_flags(flag_values: flags.FlagValues) -> None:
    """Define the config flags (and ``--config_yaml``) on ``flag_values``."""
    flags.DEFINE_string(
        CONFIG_YAML_FLAG,
        None,
        "A GenoLeWM training YAML to start from; flags given explicitly override it.",
        flag_values=flag_values,
    )
    seen: dict[str, str] = {}
    for spec in cfg.iter_fields():
        name = flag_name(spec.dotted)
        if name in seen:
            raise RuntimeError(f"flag --{name} would set both {seen[name]} and {spec.dotted}")
        seen[name] = spec.dotted
        _define_one(flag_values, name, spec)


def _define_one(fv: flags.FlagValues, name: str, spec: cfg.FieldSpec) -> None:
    help_text = f"[{spec.dotted}] {spec.help}"
    ann, default = spec.annotation, spec.default
    origin = get_origin(ann)
    if ann is bool:
        flags.DEFINE_bool(name, default, help_text, flag_values=fv)
    elif ann is int:
        flags.DEFINE_integer(name, default, help_text, flag_values=fv)
    elif ann is float:
        flags.DEFINE_float(name, default, help_text, flag_values=fv)
    elif origin is Literal:
        flags.DEFINE_enum(name, default, [str(a) for a in get_args(ann)], help_text, flag_values=fv)
    elif origin is tuple:
        flags.DEFINE_list(name, [str(v) for v in default], help_text, flag_values=fv)
    else:  # str and str | None
        flags.DEFINE_string(name, default, help_text, flag_values=fv)


def _flag_value(spec: cfg.FieldSpec, raw: Any) -> Any:
    """Typed value of a parsed flag (lists of ints are parsed here, naming the field)."""
    if get_origin(spec.annotation) is tuple and get_args(spec.annotation)[0] is int:
        try:
            return [int(v) for v in raw]
        except ValueError:
            raise InvalidConfigError(
                f"--{flag_name(spec.dotted)} ({spec.dotted}): expected a comma-separated list of ints, got {','.join(raw)!r}",
                details={"field": spec.dotted, "value": raw},
            ) from None
    return raw


def config_from_flags(flag_values: flags.FlagValues) -> cfg.Config:
    """The validated config from already-parsed flags (YAML first, explicit flags on top)."""
    yaml_path = flag_values[CONFIG_YAML_FLAG].value
    payload: dict[str, Any] = cfg.read_yaml(yaml_path) if yaml_path else {}
    overrides: dict[str, Any] = {}
    for spec in cfg.iter_fields():
        flag = flag_values[flag_name(spec.dotted)]
        if flag.present or not yaml_path:
            overrides[spec.dotted] = _flag_value(spec, flag.value)
    base = cfg.to_dict(cfg.from_dict(payload, validate_ranges=False))
    return cfg.from_dict(cfg.set_dotted(base, overrides), explicit=tuple(overrides))


def config_from_argv(argv: Sequence[str]) -> cfg.Config:
    """Parse ``argv`` (program name first) on a private FlagValues and build the config.

    Flag syntax errors (unknown flag, wrong type) become InvalidConfigError.
    """
    fv = flags.FlagValues()
    define_flags(fv)
    parse_argv(fv, argv)
    return config_from_flags(fv)


HELP_FLAGS = {"h": "short", "?": "short", "help": "short", "helpshort": "short", "helpfull": "full"}


def help_request(argv: Sequence[str]) -> str | None:
    """"short" or "full" when ``argv`` asks for flag help (``-h``, ``--help``, ``--helpshort``, ``--helpfull``)."""
    for arg in list(argv)[1:]:
        if arg == "--":
            break
        if arg.startswith("-") and arg.lstrip("-") in HELP_FLAGS:
            return HELP_FLAGS[arg.lstrip("-")]
    return None


def help_text(fv: flags.FlagValues, kind: str, usage: str = "") -> str:
    """The usage line(s) and the flags: this project's (short), or every flag absl knows (full)."""
    if kind == "full":
        listing = fv.get_help()
    else:
        ours = sorted(m for m in fv.flags_by_module_dict() if not m.startswith("absl"))
        # A module run with ``python -m`` registers its flags under its file path: show the file name.
        listing = "\n".join(fv.module_help(m).replace(f"{m}:", f"{Path(m).name}:", 1) for m in ours)
        listing += "\n\n(--helpfull also lists absl's own flags, --flagfile among them.)"
    return f"{usage.strip()}\n\nflags:\n{listing.strip(chr(10))}\n" if usage.strip() else listing + "\n"


def parse_argv(fv: flags.FlagValues, argv: Sequence[str], *, usage: str = "") -> list[str]:
    """``fv(argv)`` with absl's parse errors turned into one-line typed errors.

    A help flag prints the help to stdout and raises :class:`~geno_lewm_jax.cli.HelpRequested`
    (the entry point then exits 0) before anything is parsed.
    """
    kind = help_request(argv)
    if kind is not None:
        from geno_lewm_jax.cli import HelpRequested

        print(help_text(fv, kind, usage), end="")
        raise HelpRequested(kind)
    try:
        return fv(list(argv))
    except flags.Error as exc:
        text = " ".join(str(exc).split())
        raise InvalidConfigError(
            f"invalid flag: {text}",
            details={"error": text},
            remediation="Run with --helpfull to list the flags and their types.",
        ) from None
