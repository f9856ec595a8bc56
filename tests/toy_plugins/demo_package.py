"""A real third-party plugin *distribution*, built and pip-installed by tests that need one.

:func:`installed_demo_package` writes a package with an ``mfcf`` entry point and one model (learnable
cluster means on raw pixels, one facet), installs it with pip into the running environment,
yields, and uninstalls it again.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Iterator

PYPROJECT = """
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"
[project]
name = "{dist}"
version = "{version}"
dependencies = ["mfcf"]
[project.entry-points.mfcf]
{plugin} = "{module}.plugin"
[tool.setuptools]
packages = ["{module}"]
"""

PLUGIN = '''
import dataclasses
import torch
from torch import nn
import mfcf
from mfcf.api import LossOutput, Model

@dataclasses.dataclass
class Cfg:
    scale: float = 1.0

class Means(Model):
    """Third-party model: learnable cluster means on raw pixels, one facet."""
    name = "{model}"
    Config = Cfg
    supported_facets = (1, 1)

    def __init__(self, config, *, info, facets):
        super().__init__(config, info=info, facets=facets)
        n = 1
        for s in info.shape:
            n *= s
        self.means = nn.Parameter(torch.rand(facets[0].n_clusters, n))

    def training_loss(self, x, *, epoch, step):
        d = torch.cdist(x.flatten(1), self.means) ** 2
        return LossOutput(-torch.logsumexp(-d, 1).mean() * self.config.scale, {{}})

    def cluster_probs(self, x):
        return [torch.softmax(-torch.cdist(x.flatten(1), self.means) ** 2, 1)]

@mfcf.hookimpl
def mfcf_register_models():
    return [Means]
'''


@contextlib.contextmanager
def installed_demo_package(where: Path, *, dist: str, plugin: str, model: str,
                           version: str = "0.1.0") -> Iterator[Path]:
    """Build ``dist`` (module ``dist`` with dashes as underscores, entry point ``plugin``,
    registering the model ``model``) under ``where``, pip-install it, yield its folder, uninstall."""
    module = dist.replace("-", "_")
    pkg = where / dist
    (pkg / module).mkdir(parents=True)
    (pkg / "pyproject.toml").write_text(PYPROJECT.format(dist=dist, version=version, plugin=plugin, module=module))
    (pkg / module / "__init__.py").write_text("")
    (pkg / module / "plugin.py").write_text(textwrap.dedent(PLUGIN.format(model=model)))
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", str(pkg)]
    subprocess.run(pip, check=True, capture_output=True)
    try:
        yield pkg
    finally:
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "-y", "-q", dist], capture_output=True)
