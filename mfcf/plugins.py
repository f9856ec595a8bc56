"""The plugin manager: finds plugins through entry points, config and environment switches.

Plugins are found, in this order:

1. every entry point in the ``mfcf`` group of every installed distribution (built-in plugins
   included), unless ``MFCF_DISABLE_PLUGIN_AUTOLOAD`` is set to a non-empty value;
2. modules named in ``MFCF_PLUGINS`` (comma-separated), imported and registered;
3. modules named under ``plugins:`` in the config.

``MFCF_BLOCK_PLUGINS`` (comma-separated entry-point or module names) keeps plugins out.
Discovery by entry point is what lets every Ray worker process find exactly the components
the driver found.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence

import pluggy

from . import hookspecs
from .errors import PluginError

ENTRY_POINT_GROUP = "mfcf"
hookimpl = pluggy.HookimplMarker("mfcf")


def _env_list(var: str) -> list[str]:
    return [item.strip() for item in os.environ.get(var, "").split(",") if item.strip()]


def plugin_manager(modules: Sequence[str] = (), *, autoload: bool | None = None) -> pluggy.PluginManager:
    """A plugin manager with every plugin loaded and every hook checked.

    ``modules`` are extra importable module names (the config's ``plugins:`` list).
    ``autoload=None`` follows ``MFCF_DISABLE_PLUGIN_AUTOLOAD``; tests pass ``False`` to get a
    manager holding only what they register themselves.
    """
    pm = pluggy.PluginManager("mfcf")
    pm.add_hookspecs(hookspecs)
    for name in _env_list("MFCF_BLOCK_PLUGINS"):
        pm.set_blocked(name)
    if autoload is None:
        autoload = not os.environ.get("MFCF_DISABLE_PLUGIN_AUTOLOAD")
    if autoload:
        try:
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        except Exception as exc:  # a broken third-party plugin must say which one it is
            raise PluginError(f"loading an '{ENTRY_POINT_GROUP}' entry-point plugin failed: {exc!r}") from exc
    for source, names in (("MFCF_PLUGINS", _env_list("MFCF_PLUGINS")), ("plugins", list(modules))):
        for i, module_name in enumerate(names):
            register_module(pm, module_name, where=source if source == "MFCF_PLUGINS" else f"plugins[{i}]")
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"a plugin implements a hook mfcf does not know: {exc}\n"
                          "  Check the spelling against mfcf.hookspecs (e.g. mfcf_register_encoders).") from exc
    return pm


def register_module(pm: pluggy.PluginManager, module_name: str, *, where: str = "plugins") -> None:
    """Import ``module_name`` and register it as a plugin (once; blocked names are skipped)."""
    if pm.is_blocked(module_name) or pm.has_plugin(module_name):
        return
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise PluginError(
            f"could not import plugin module '{module_name}' (config key: {where}): {exc!r}\n"
            "  The module must be importable from this Python (installed, or on PYTHONPATH)."
        ) from exc
    if pm.is_registered(module):
        return
    pm.register(module, name=module_name)
