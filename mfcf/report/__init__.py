"""``mfcf report RUN_DIR``: figures and one self-contained HTML page for a trained run.

The report holds the score table (one-to-one Hungarian and many-to-one accuracy side by side,
NMI, ARI), the facet x factor NMI heat map with the facet-factor matching, a confusion matrix
per facet against its matched factor, the most confident examples of every cluster, samples
from every cluster with the other facets fixed, facet swaps between inputs, and the training
curves. Sections that do not apply to a model (samples from a k-means baseline, swaps with a
single facet) are listed with the reason. Example::

    from mfcf.report import ReportOptions, build_report

    html, sections = build_report("runs/my-run", split="test", options=ReportOptions(temperature=0.5))

Generative sections find the model's abilities through the protocols of
:mod:`mfcf.api.generative`, never by importing a plugin.
"""

from .options import ORDERS, ReportOptions

_LAZY = {"SECTIONS": ".builder", "build_report": ".builder", "default_out_dir": ".builder", "Figure": ".section",
         "Section": ".section"}


def __getattr__(name: str):
    # matplotlib and torch load on first use, so `mfcf report --help` (and `mfcf`) start fast
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'mfcf.report' has no attribute {name!r}")


__all__ = ["ORDERS", "SECTIONS", "Figure", "ReportOptions", "Section", "build_report", "default_out_dir"]
