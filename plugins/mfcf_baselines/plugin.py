"""Hook implementations of the built-in 'baselines' plugin."""

import mfcf
