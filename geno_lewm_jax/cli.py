"""What every command-line entry point shares: typed errors become one line and an exit code."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import NoReturn

from geno_lewm_jax.errors import GenoLeWMError, exit_code_for


class HelpRequested(Exception):
    """A help flag was given: the help is printed, and the entry point exits 0 without doing anything."""


def report_error(exc: GenoLeWMError) -> None:
    """Print the one-line error and its remediation to stderr."""
    print(exc.one_line(), file=sys.stderr)
    if exc.remediation:
        print(f"  remediation: {exc.remediation}", file=sys.stderr)


def run_cli(body: Callable[[], int | None]) -> int:
    """Run ``body``; a typed error prints one line (no traceback) and returns its exit code."""
    try:
        return int(body() or 0)
    except HelpRequested:
        return 0
    except GenoLeWMError as exc:
        report_error(exc)
        return exit_code_for(exc)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def exit_process(code: int, *, abandon_threads: bool = False) -> NoReturn:
    """Exit with ``code``; with ``abandon_threads``, at once, without the interpreter's shutdown.

    For a job stopped (by a signal) while a thread is still compiling or loading: the shutdown
    would wait for it or kill it mid-call in C++ (an abort), past a scheduler's grace period.
    """
    if abandon_threads:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
