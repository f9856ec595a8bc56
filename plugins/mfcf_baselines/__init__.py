"""mfcf built-in plugin: baselines (registered through the 'mfcf' entry-point group)."""
