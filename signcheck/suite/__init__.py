"""The pytest face of signcheck: the plugin's hooks and the assertion helpers."""
