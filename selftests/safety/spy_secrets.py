"""A pytest plugin for the secrets selftest: note the random cosign key passwords the run
makes, so the selftest can search every output for them.

Loaded into the suite with `-p selftests.safety.spy_secrets`; appends each password to the
file named by `SIGNCHECK_SPY_SECRETS`. The real `generate_key_pair` still does the work.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from signcheck.tools.cosign import Cosign

_real = Cosign.generate_key_pair


def _spying(self: Cosign, *args: Any, **kwargs: Any) -> Any:
    pair = _real(self, *args, **kwargs)
    with Path(os.environ["SIGNCHECK_SPY_SECRETS"]).open("a") as fh:
        fh.write(pair.password + "\n")
    return pair


Cosign.generate_key_pair = _spying  # type: ignore[method-assign]
