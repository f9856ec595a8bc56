"""The plugin manager: finds plugins through entry points, config and environment switches.

Plugins are found, in this order:

1. every entry point in the ``mfcf`` group of every installed distribution (built-in plugins
   included), unless ``MFCF_DISABLE_PLUGIN_AUTOLOAD`` is set to a non-empty value;
2. modules named in ``MFCF_PLUGINS`` (comma-separated), imported and registered;
3. modules named under ``plugins:`` in the config.

``MFCF_BLOCK_PLUGINS`` (comma-separated) keeps plugins out, whichever route would load them. A
plugin can be named by its entry-point name (``ladder``), its module (``mfcf_ladder.plugin``)
or any package above that module (``mfcf_ladder``). A name that is none of these for any
installed entry point or listed module, and no importable module either, is an error: it is
almost always a typo, and ignoring it would leave loaded the plugin the user meant to keep
out. (An importable module is accepted so that a module some configs list can be blocked for
every command of a shell.)

A plugin that fails to import, does not fit the hook specifications or implements no mfcf hook
at all is a :class:`PluginError` naming it and where it was listed. Discovery by entry point is
what lets every Ray worker process find exactly the components the driver found.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata as md
import importlib.util
import os
import traceback
from collections.abc import Iterable, Sequence

import pluggy

from . import hookspecs
from .errors import PluginError

ENTRY_POINT_GROUP = "mfcf"
hookimpl = pluggy.HookimplMarker("mfcf")


def _env_list(var: str) -> list[str]:
    return [item.strip() for item in os.environ.get(var, "").split(",") if item.strip()]


def describe_exception(exc: BaseException) -> str:
    """``'Type: message (at file:line)'``: where it was raised, unless that is inside importlib."""
    frames = traceback.extract_tb(exc.__traceback__)
    inside_importlib = not frames or frames[-1].filename.startswith(("<", os.path.dirname(importlib.__file__)))
    at = "" if inside_importlib else f" (at {frames[-1].filename}:{frames[-1].lineno})"
    return f"{type(exc).__name__}: {exc}{at}"


def _block_names(module: str, entry_point: str | None = None) -> set[str]:
    """Every name ``MFCF_BLOCK_PLUGINS`` accepts for a plugin: its entry-point name, its module
    and each package above it (``ladder``, ``mfcf_ladder.plugin``, ``mfcf_ladder``)."""
    parts = module.split(".")
    return {entry_point, *(".".join(parts[:i]) for i in range(1, len(parts) + 1))} - {None}


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None  # imports parent packages, not the module
    except Exception:  # a parent package that fails to import, an empty or relative name
        return False


def _check_blocked(blocked: Iterable[str], known: set[str]) -> None:
    for name in blocked:
        if name not in known and not _importable(name):
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"  did you mean: {close[0]}\n" if close else ""
            raise PluginError(
                f"MFCF_BLOCK_PLUGINS names '{name}', but no installed plugin, listed module or importable "
                f"module has that name\n{hint}"
                f"  plugins that can be blocked: {', '.join(sorted(known)) or '(none)'}\n"
                "  Name a plugin by its entry-point name, its module or its package, or remove the name."
            )


def _check_registers_hooks(pm: pluggy.PluginManager, plugin: object, what: str, fix: str) -> None:
    if not pm.get_hookcallers(plugin):
        raise PluginError(f"{what} registers nothing: it defines no function decorated with @mfcf.hookimpl "
                          f"named after an mfcf hook (e.g. mfcf_register_models, see mfcf.hookspecs).\n  {fix}")


def _load_entry_point(pm: pluggy.PluginManager, ep: md.EntryPoint) -> None:
    """Load and register one ``mfcf`` entry point, turning every failure into a PluginError."""
    dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else "an unknown distribution"
    what = f"entry-point plugin '{ep.name}' ({ep.value}, from {dist})"
    before = pm.get_plugin(ep.name)
    try:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=ep.name)
    except Exception as exc:
        raise PluginError(f"loading the {what} failed: {describe_exception(exc)}\n"
                          f"  Fix or reinstall {dist}, or keep it out with MFCF_BLOCK_PLUGINS={ep.name}") from exc
    plugin = pm.get_plugin(ep.name)
    if before is not None and getattr(plugin, "__name__", None) != ep.module:
        raise PluginError(f"two installed packages declare an '{ENTRY_POINT_GROUP}' entry point named '{ep.name}'; "
                          f"the {what} was not loaded.\n  Rename one of the entry points, or uninstall one package.")
    _check_registers_hooks(pm, plugin, what, f"Point the entry point of {dist} at the module that defines the hooks.")


def plugin_manager(modules: Sequence[str] = (), *, autoload: bool | None = None) -> pluggy.PluginManager:
    """A plugin manager with every plugin loaded and every hook checked.

    ``modules`` are extra importable module names (the config's ``plugins:`` list).
    ``autoload=None`` follows ``MFCF_DISABLE_PLUGIN_AUTOLOAD``; tests pass ``False`` to get a
    manager holding only what they register themselves.
    """
    pm = pluggy.PluginManager("mfcf")
    pm.add_hookspecs(hookspecs)
    entry_points = md.entry_points(group=ENTRY_POINT_GROUP)
    ep_names = {ep.module: ep.name for ep in entry_points}
    listed = [(module, "listed in MFCF_PLUGINS") for module in _env_list("MFCF_PLUGINS")]
    listed += [(module, f"config key: plugins.{i}") for i, module in enumerate(modules)]
    blocked = set(_env_list("MFCF_BLOCK_PLUGINS"))
    known = set().union(*(_block_names(ep.module, ep.name) for ep in entry_points),
                        *(_block_names(module, ep_names.get(module)) for module, _ in listed))
    _check_blocked(blocked, known)
    if autoload is None:
        autoload = not os.environ.get("MFCF_DISABLE_PLUGIN_AUTOLOAD")
    for ep in entry_points if autoload else ():
        if not blocked & _block_names(ep.module, ep.name):
            _load_entry_point(pm, ep)
    for module_name, where in listed:
        if not blocked & _block_names(module_name, ep_names.get(module_name)):
            register_module(pm, module_name, where=where)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"a plugin implements a hook mfcf does not know: {exc}\n"
                          "  Check the spelling against mfcf.hookspecs (e.g. mfcf_register_encoders).") from exc
    return pm


def register_module(pm: pluggy.PluginManager, module_name: str, *, where: str = "config key: plugins") -> None:
    """Import ``module_name`` and register it as a plugin (once).

    ``where`` says where it was listed (``'config key: plugins.0'``), for error messages.
    """
    if pm.has_plugin(module_name):
        return
    what = f"plugin module '{module_name}' ({where})"
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise PluginError(
            f"could not import {what}: {describe_exception(exc)}\n"
            "  List an importable module name (my_pkg.plugin, not a path to a .py file); it must be installed\n"
            "  or on PYTHONPATH and import without error."
        ) from exc
    if pm.is_registered(module):
        return
    try:
        pm.register(module, name=module_name)
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"{what} does not fit mfcf's hooks: {exc}\n"
                          "  Hook functions take no arguments; see mfcf.hookspecs.") from exc
    _check_registers_hooks(pm, module, what, "List the module that defines the hooks (often '<package>.plugin').")
