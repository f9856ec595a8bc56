"""Hook implementations of the built-in 'ladder' plugin."""

import mfcf
