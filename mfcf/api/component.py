"""The base every registrable component derives from."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar


@dataclasses.dataclass
class EmptyConfig:
    """Config of a component without options."""


class Component:
    """A named, configurable part that a plugin registers.

    Every component class carries two class attributes:

    * ``name`` -- the snake_case name configs use to select it (``encoder: {name: ladder_fc}``);
    * ``Config`` -- a dataclass describing its own config section. mfcf validates the user's
      section against it (unknown keys, wrong types) before anything is built and passes the
      resulting dataclass instance as the first constructor argument.

    Runtime context (data shape, facet specs, steps per epoch, ...) never comes from YAML: the
    builder computes it and passes it as keyword-only constructor arguments, documented on each
    kind's base class.
    """

    kind: ClassVar[str] = "component"
    name: ClassVar[str]
    Config: ClassVar[type] = EmptyConfig

    def __init__(self, config: Any = None, **context: Any):
        super().__init__()
        self.config = config if config is not None else self.Config()
