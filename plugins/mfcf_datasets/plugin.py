"""Hook implementations of the built-in 'datasets' plugin."""

import mfcf

from .colored import ColoredDataset
from .mnist import FashionMNISTDataset, MNISTDataset
from .shapes3d import Shapes3DDataset
from .shapes_procedural import ShapesProceduralDataset
from .small_digits import DigitsDataset, MNIST5kDataset
from .svhn import SVHNDataset


@mfcf.hookimpl
def mfcf_register_datasets():
    return [
        ShapesProceduralDataset, Shapes3DDataset, MNISTDataset, MNIST5kDataset, FashionMNISTDataset,
        SVHNDataset, DigitsDataset, ColoredDataset,
    ]
