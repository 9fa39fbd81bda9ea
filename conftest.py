"""Root conftest: wires the signcheck pytest plugin and the fixtures into every run.

Conformance runs (`pytest`, `pytest tests`) write reports/; runs of `selftests/` only do not.
"""

pytest_plugins = [
    "signcheck.suite.options",
    "signcheck.suite.plugin",
    "fixtures.session",
    "fixtures.namespace",
    # For the plugin's own selftests (selftests/lib/test_reports.py); inert otherwise.
    "pytester",
]
