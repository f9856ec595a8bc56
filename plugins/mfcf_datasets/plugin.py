"""Hook implementations of the built-in 'datasets' plugin."""

import mfcf
