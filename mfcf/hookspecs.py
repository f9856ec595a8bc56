"""Every hook mfcf calls. A plugin implements the ones it needs with ``@mfcf.hookimpl``.

Each registration hook returns a list of component *classes*. mfcf keys each class by its
``name`` attribute and refuses two classes of the same kind and name, naming both providers.

Example plugin module (``my_pkg/plugin.py``), exposed through the ``mfcf`` entry-point group in
its ``pyproject.toml`` (``[project.entry-points.mfcf] my_pkg = "my_pkg.plugin"``)::

    import mfcf
    from my_pkg.encoders import ResNetEncoder

    @mfcf.hookimpl
    def mfcf_register_encoders():
        return [ResNetEncoder]
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("mfcf")


@hookspec
def mfcf_register_encoders() -> list[type]:
    """Return :class:`mfcf.api.Encoder` subclasses (images -> one posterior per facet)."""


@hookspec
def mfcf_register_decoders() -> list[type]:
    """Return :class:`mfcf.api.Decoder` subclasses (one latent per facet -> likelihood parameters)."""


@hookspec
def mfcf_register_priors() -> list[type]:
    """Return :class:`mfcf.api.FacetPrior` subclasses (p(c_j) p(z_j | c_j) of one facet)."""


@hookspec
def mfcf_register_likelihoods() -> list[type]:
    """Return :class:`mfcf.api.Likelihood` subclasses (p(x | z) from decoder output)."""


@hookspec
def mfcf_register_elbos() -> list[type]:
    """Return :class:`mfcf.api.ELBO` subclasses (batch -> differentiable loss + named terms)."""


@hookspec
def mfcf_register_schedules() -> list[type]:
    """Return :class:`mfcf.api.Schedule` subclasses ((epoch, step) -> per-facet coefficients)."""


@hookspec
def mfcf_register_datasets() -> list[type]:
    """Return :class:`mfcf.api.Dataset` subclasses (images + named factor labels)."""


@hookspec
def mfcf_register_models() -> list[type]:
    """Return :class:`mfcf.api.Model` subclasses (wire parts together, train, assign clusters)."""
