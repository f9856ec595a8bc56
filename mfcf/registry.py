"""One registry per component kind, filled from the plugin manager, with provenance."""

from __future__ import annotations

import dataclasses
import functools
import importlib.metadata as md
import re
import sys
from collections.abc import Iterator

import pluggy

from .api import KINDS, Component
from .errors import PluginError, UnknownComponentError
from .plugins import describe_exception

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def hook_name(kind: str) -> str:
    """``'prior'`` -> ``'mfcf_register_priors'``."""
    return f"mfcf_register_{kind}s"


@dataclasses.dataclass(frozen=True)
class Entry:
    """A registered component class and where it came from."""

    kind: str
    name: str
    cls: type[Component]
    plugin: str
    package: str
    version: str

    @property
    def provider(self) -> str:
        return f"{self.package} {self.version} (plugin '{self.plugin}')"


def _distributions(pm: pluggy.PluginManager) -> dict[int, tuple[str, str]]:
    out = {id(plugin): (dist.project_name, dist.version) for plugin, dist in pm.list_plugin_distinfo()}
    return out


@functools.lru_cache(maxsize=1)
def _packages_distributions() -> dict[str, list[str]]:
    return md.packages_distributions()  # scans every installed distribution: about a second


def _module_distribution(plugin: object) -> tuple[str, str]:
    top = getattr(plugin, "__name__", type(plugin).__module__).split(".")[0]
    for dist_name in _packages_distributions().get(top, []):
        try:
            return dist_name, md.version(dist_name)
        except md.PackageNotFoundError:  # pragma: no cover - metadata race
            continue
    module = sys.modules.get(top)
    return f"{top} (not installed)", str(getattr(module, "__version__", "unknown"))


def _returned_classes(impl: pluggy.HookImpl, where: str, base: type) -> list | tuple:
    """What a registration hook returns, which must be a list (or tuple) of classes."""
    try:
        classes = impl.function()
    except Exception as exc:
        raise PluginError(f"{where} raised {describe_exception(exc)}\n"
                          "  Fix the plugin, or keep it out with MFCF_BLOCK_PLUGINS.") from exc
    if not isinstance(classes, (list, tuple)):
        raise PluginError(f"{where} returned {classes!r}; it must return a list of mfcf.api.{base.__name__} "
                          "subclasses (an empty list to register none; a missing `return` gives None)")
    return classes


class Registry:
    """Every component class the loaded plugins register, keyed by (kind, name).

    Build one from a plugin manager: ``Registry(plugin_manager())``. Registration refuses a
    hook that raises or returns anything but a list of classes, a class that is not a subclass
    of its kind's base, has no snake_case ``name`` or no dataclass ``Config``, and a second
    class of the same kind and name (naming both providers).
    """

    def __init__(self, pm: pluggy.PluginManager):
        self._entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        dists = _distributions(pm)
        for kind, base in KINDS.items():
            hook = getattr(pm.hook, hook_name(kind))
            for impl in hook.get_hookimpls():
                package, version = dists.get(id(impl.plugin)) or _module_distribution(impl.plugin)
                where = f"{hook_name(kind)} of plugin '{impl.plugin_name}' ({package})"
                for cls in _returned_classes(impl, where, base):
                    self._add(Entry(kind, getattr(cls, "name", None), cls, impl.plugin_name, package, version),
                              base, where)

    def _add(self, entry: Entry, base: type, where: str) -> None:
        if not (isinstance(entry.cls, type) and issubclass(entry.cls, base)):
            raise PluginError(f"{where} returned {entry.cls!r}, which is not a subclass of mfcf.api.{base.__name__}")
        if not isinstance(entry.name, str) or not _NAME.match(entry.name):
            raise PluginError(
                f"{where}: {entry.cls.__qualname__} needs a snake_case class attribute `name`, got {entry.name!r}"
            )
        if not dataclasses.is_dataclass(entry.cls.Config):
            raise PluginError(f"{where}: {entry.cls.__qualname__}.Config must be a dataclass")
        existing = self._entries[entry.kind].get(entry.name)
        if existing is not None:
            raise PluginError(
                f"two {entry.kind}s are named '{entry.name}':\n"
                f"  {existing.cls.__module__}.{existing.cls.__qualname__} from {existing.provider}\n"
                f"  {entry.cls.__module__}.{entry.cls.__qualname__} from {entry.provider}\n"
                "  Rename one of them, or block one plugin with MFCF_BLOCK_PLUGINS."
            )
        self._entries[entry.kind][entry.name] = entry

    def get(self, kind: str, name: str, *, key: str | None = None) -> type:
        """The class registered as ``name`` for ``kind``; ``key`` is the config key for errors."""
        entry = self._entries[kind].get(name)
        if entry is None:
            raise UnknownComponentError(kind, name, key or f"{kind}.name", self._entries[kind])
        return entry.cls

    def names(self, kind: str) -> list[str]:
        return sorted(self._entries[kind])

    def entries(self, kind: str | None = None) -> Iterator[Entry]:
        for k in [kind] if kind else KINDS:
            yield from (self._entries[k][name] for name in sorted(self._entries[k]))

    def blame(self, exc: BaseException) -> tuple[Entry, str] | None:
        """The registered component whose method was running when ``exc`` was raised (the
        innermost one on the traceback) and that method's name; None if no component's method
        is on it. Used to name the plugin behind a failure during training."""
        classes = {e.cls: e for e in self.entries()}
        tb, frames = exc.__traceback__, []
        while tb is not None:
            frames.append(tb.tb_frame)
            tb = tb.tb_next
        for frame in reversed(frames):
            owner = type(frame.f_locals.get("self"))  # NoneType where there is no `self`: in no registry
            entry = next((classes[c] for c in owner.__mro__ if c in classes), None)
            if entry is not None:
                return entry, frame.f_code.co_name
        return None

    def providers(self) -> list[dict[str, str]]:
        """Distinct (plugin, package, version) rows, for a run directory's plugin list."""
        rows = {(e.plugin, e.package, e.version) for e in self.entries()}
        return [dict(plugin=p, package=d, version=v) for p, d, v in sorted(rows)]
