"""mfcf built-in plugin: ladder (registered through the 'mfcf' entry-point group)."""
