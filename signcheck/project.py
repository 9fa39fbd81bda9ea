"""Files of the checkout, not of the package: the test image's Dockerfile, the seed's Terraform.

They stay at the project's top level (`fixtures/Dockerfile`, `terraform/`: the layout users
were promised), so an installed wheel does not carry them. They are looked up under
`SIGNCHECK_PROJECT_DIR` when set, else in the current directory and its parents (a run
started anywhere inside the checkout finds them).
"""

from __future__ import annotations

import os
from pathlib import Path

from signcheck.errors import ConfigError


def checkout_path(relative: str) -> Path:
    """`relative` (e.g. `terraform`) in the project directory, or one error naming the fix."""
    if env := os.environ.get("SIGNCHECK_PROJECT_DIR"):
        roots = [Path(env)]
    else:
        cwd = Path.cwd()
        roots = [cwd, *cwd.parents]
    for root in roots:
        if (root / relative).exists():
            return root / relative
    raise ConfigError(
        f"{relative} not found in {roots[0]} or its parents",
        "run from a signcheck checkout, or set SIGNCHECK_PROJECT_DIR to one",
    )
