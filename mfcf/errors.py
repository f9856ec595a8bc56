"""Errors people can act on.

Every error mfcf raises on purpose is an :class:`MfcfError`. The CLI prints these without a
traceback and exits with status 2. Messages name the config key involved, what was wrong and
how to fix it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class MfcfError(Exception):
    """Base class of every deliberate mfcf error."""


class ConfigError(MfcfError, ValueError):
    """A config file, override or section is malformed or has an impossible value."""

    def __init__(self, message: str, *, key: str | None = None):
        self.key = key
        super().__init__(f"{message} (config key: {key})" if key else message)


class UnknownKeyError(ConfigError):
    """A config section holds a key its schema does not know."""

    def __init__(self, key: str, section: str, valid: Iterable[str]):
        valid = sorted(valid)
        full = f"{section}.{key}" if section else key
        lines = [f"unknown config key '{full}'"]
        close = difflib.get_close_matches(key, valid, n=1)
        if close:
            lines.append(f"  did you mean: {close[0]}")
        lines.append(f"  valid keys{' of ' + section if section else ''}: {', '.join(valid) or '(none)'}")
        super().__init__("\n".join(lines))
        self.key, self.name, self.section, self.valid = full, key, section, valid


class UnknownComponentError(MfcfError, LookupError):
    """A config names a component that no loaded plugin registers.

    Derives from ``LookupError`` rather than ``KeyError``: a ``KeyError`` prints its message
    with newlines escaped.
    """

    def __init__(self, kind: str, name: str, key: str, available: Iterable[str]):
        available = sorted(available)
        lines = [f"no {kind} named '{name}' (config key: {key})"]
        close = difflib.get_close_matches(str(name), available, n=1)
        if close:
            lines.append(f"  did you mean: {close[0]}")
        lines.append(f"  available {kind}s: {', '.join(available) or '(none registered)'}")
        lines.append(
            "  If it comes from another package, install it (mfcf finds plugins through the 'mfcf'\n"
            "  entry-point group) or list its module under `plugins:` in the config."
        )
        super().__init__("\n".join(lines))
        self.kind, self.name, self.key = kind, name, key


class PluginError(MfcfError):
    """A plugin failed to load or registered something invalid (e.g. a duplicate name)."""


class DataError(MfcfError):
    """A data file is missing, truncated or holds values of the wrong shape or range."""


class RunDirError(MfcfError):
    """A run directory is missing, incomplete or not a run directory."""


class TrainingError(MfcfError):
    """Training stopped: for example the loss became non-finite."""
