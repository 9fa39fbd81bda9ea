"""The `signcheck` command: tools, the local environment, cleanup and the scenario catalogue.

Errors a user can cause print one actionable line (and details) and exit 2; nothing else
prints a traceback unless SIGNCHECK_DEBUG is set.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from signcheck.errors import SigncheckError


def _tools_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from signcheck.cli import tools

    tools_p = sub.add_parser("tools", help="build and inspect the pinned tools")
    tsub = tools_p.add_subparsers(dest="tools_cmd", required=True)
    build_p = tsub.add_parser("build", help="build missing tools from their pinned Go modules")
    build_p.add_argument("names", nargs="*", help="tools or groups (default: all)")
    build_p.add_argument("--force", action="store_true", help="rebuild even if cached")
    build_p.set_defaults(func=tools.cmd_build)
    list_p = tsub.add_parser("list", help="pinned version, path, source and reported version")
    list_p.add_argument("names", nargs="*")
    list_p.add_argument("--json", action="store_true")
    list_p.set_defaults(func=tools.cmd_list)


def _catalogue_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from signcheck.report import catalogue

    cat = sub.add_parser(
        "catalogue", help="write docs/catalogue.md from the tests (--check: fail on drift)"
    )
    catalogue.add_arguments(cat)
    cat.set_defaults(func=catalogue.cmd_catalogue)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="signcheck", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    _tools_parser(sub)
    from signcheck.cli import cleanup

    cleanup.add_parser(sub)
    _catalogue_parser(sub)
    try:
        from signcheck.cli import env
    except ImportError:  # the environment commands arrive with signcheck.localenv
        pass
    else:
        env.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
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


if __name__ == "__main__":
    sys.exit(main())
