"""mfcf built-in plugin: datasets (registered through the 'mfcf' entry-point group)."""
