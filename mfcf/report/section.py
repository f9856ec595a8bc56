"""The unit a report is made of: a titled section with figures, an HTML fragment, or a reason
why it does not apply to this run."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .context import ReportContext


@dataclasses.dataclass
class Figure:
    """A PNG written into the report directory (``file`` is relative to it) and its caption."""

    file: str
    caption: str


@dataclasses.dataclass
class Section:
    """One part of the report. ``skipped`` holds the reason when it does not apply (a model
    without a decoder has no samples); such a section is listed with its reason, not hidden."""

    title: str
    intro: str = ""
    figures: list[Figure] = dataclasses.field(default_factory=list)
    html: str = ""  # a ready fragment (tables); already escaped
    skipped: str | None = None

    @classmethod
    def skip(cls, title: str, reason: str) -> Section:
        return cls(title, skipped=reason)


#: A section builder: reads the context, writes its PNGs into ``ctx.out``, returns the section.
SectionBuilder = Callable[["ReportContext"], Section]
