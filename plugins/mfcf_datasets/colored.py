"""``colored``: any grey dataset of this plugin recoloured into a multi-factor RGB dataset."""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import numpy as np
import torch

from mfcf.api import DataInfo, Dataset, DataSplit
from mfcf.config import positive, validate_section
from mfcf.errors import ConfigError

from .mnist import FashionMNISTDataset, MNISTDataset
from .render import hue_to_rgb
from .small_digits import DigitsDataset, MNIST5kDataset, pad_to
from .splits import split_rng

#: Grey datasets that ``colored`` can wrap, by registered name.
GREY_BASES: dict[str, type[Dataset]] = {
    cls.name: cls for cls in (MNIST5kDataset, MNISTDataset, FashionMNISTDataset, DigitsDataset)
}


@dataclasses.dataclass
class ColoredConfig:
    """Options of ``colored``.

    * ``base`` -- the grey dataset to recolour (``mnist5k``, ``mnist``, ``fashion_mnist``,
      ``digits``) and ``base_options`` its own options (e.g. ``{root: /data/mnist}``);
    * ``fg_colors`` -- number of foreground colours: fully saturated hues evenly spaced in [0, 1);
    * ``bg_colors`` -- number of background colours: hues offset by half a step, at HSV value
      ``bg_value`` (dark, so the digit stays visible on any background). One colour (and
      ``bg_value: 0`` for black) removes that factor;
    * ``image_size`` -- side of the output images; ``null`` keeps the base's size, a larger
      value centres the image in a frame of background (MNIST's 28x28 in 32x32 lets the conv
      ladder host three facets).
    """

    base: str = "mnist5k"
    base_options: Optional[dict[str, Any]] = None
    fg_colors: int = 5
    bg_colors: int = 5
    bg_value: float = 0.35
    image_size: Optional[int] = None

    def __post_init__(self) -> None:
        if self.base not in GREY_BASES:
            raise ConfigError(f"must be a grey dataset of this plugin, one of {', '.join(GREY_BASES)}; "
                              f"got {self.base!r}", key="base")
        validate_section(GREY_BASES[self.base].Config, self.base_options, "base_options")
        positive(self.fg_colors, "fg_colors")
        positive(self.bg_colors, "bg_colors")
        if not 0.0 <= self.bg_value <= 1.0:
            raise ConfigError(f"must lie in [0, 1], got {self.bg_value}", key="bg_value")
        if self.image_size is not None:
            positive(self.image_size, "image_size")


class ColoredDataset(Dataset):
    """A grey dataset with a random foreground and background colour per image.

    Pixel ``g`` of the grey image becomes ``g * fg + (1 - g) * bg``: strokes take the
    foreground colour, the background its own colour, exactly. Both colours are drawn uniformly
    and independently of each other and of the base labels, from a generator seeded by the
    split seed. Factors: the base's (``label``), then ``fg_color`` and ``bg_color`` (each only
    if it has two or more colours). RGB (3, H, W) in [0, 1]; hint ``gaussian``.
    """

    name = "colored"
    Config = ColoredConfig

    def __init__(self, config=None, *, seed: int = 0):
        super().__init__(config, seed=seed)
        base_cls = GREY_BASES[self.config.base]
        base_config = validate_section(base_cls.Config, self.config.base_options, "data.base_options")
        try:
            self.base = base_cls(base_config, seed=seed)
        except ConfigError as exc:  # a key of the base's own section, e.g. its root
            raise ConfigError(str(exc).split(" (config key:")[0], key=f"data.base_options.{exc.key}") from None
        height, width = self.base.info.shape[1:]
        size = self.config.image_size
        if size is not None and size < max(height, width):
            raise ConfigError(f"{size} would crop the {height}x{width} images of {self.config.base!r}; use a size "
                              f">= {max(height, width)} or null for the base's own size", key="data.image_size")
        fg_hues = np.arange(self.config.fg_colors) / self.config.fg_colors
        bg_hues = (np.arange(self.config.bg_colors) + 0.5) / self.config.bg_colors
        self.fg_palette = torch.from_numpy(hue_to_rgb(fg_hues)).float()
        self.bg_palette = torch.from_numpy(hue_to_rgb(bg_hues) * self.config.bg_value).float()

    @property
    def colour_factors(self) -> dict[str, int]:
        counts = {"fg_color": self.config.fg_colors, "bg_color": self.config.bg_colors}
        return {name: count for name, count in counts.items() if count > 1}

    @property
    def info(self) -> DataInfo:
        base = self.base.info
        size = self.config.image_size
        shape = base.shape[1:] if size is None else (size, size)
        return DataInfo(shape=(3, *shape), factors={**base.factors, **self.colour_factors},
                        likelihood_hint="gaussian")

    def load(self, split: str) -> DataSplit:
        grey = self.base.load(split)
        rng = split_rng(self.seed, split)
        fg = torch.from_numpy(rng.integers(self.config.fg_colors, size=len(grey)))
        bg = torch.from_numpy(rng.integers(self.config.bg_colors, size=len(grey)))
        g = grey.images if self.config.image_size is None else pad_to(grey.images, self.config.image_size)
        images = g * self.fg_palette[fg][:, :, None, None] + (1 - g) * self.bg_palette[bg][:, :, None, None]
        drawn = {"fg_color": fg, "bg_color": bg}
        return DataSplit(images.clamp_(0.0, 1.0), {**grey.factors, **{k: drawn[k] for k in self.colour_factors}})
