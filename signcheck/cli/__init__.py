"""The `signcheck` command: tools, the local environment, cleanup, the scenario catalogue, the
Kyverno version matrix, the fleet of clusters and the suite run inside a cluster.

Errors a user can cause print one actionable line (and details) and exit 2; nothing else
prints a traceback unless SIGNCHECK_DEBUG is set.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence

from signcheck.errors import SigncheckError


def build_parser() -> argparse.ArgumentParser:
    # One sub-command per module, each adding its own parser; imported here, not at the top,
    # so `signcheck tools ...` does not pay for the environment's imports.
    from signcheck.cli import catalogue, cleanup, env, fleet, incluster, matrix, tools

    parser = argparse.ArgumentParser(prog="signcheck", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    for command in (tools, cleanup, catalogue, env, matrix, fleet, incluster):
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
        # Flushed here, where a reader that went away is handled below (a block-buffered
        # stdout would otherwise meet the closed pipe only at exit, as "Exception ignored").
        sys.stdout.flush()
        return code
    except SigncheckError as err:
        if os.environ.get("SIGNCHECK_DEBUG"):
            raise
        print(f"signcheck: error: {err.message}", file=sys.stderr)
        if err.details:
            print(err.details, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("signcheck: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`signcheck ... | head`): no traceback, neither now nor when
        # the interpreter flushes stdout on its way out; 141 is what a shell reports for it.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
