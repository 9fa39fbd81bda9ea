"""`signcheck catalogue [--check]`: docs/catalogue.md from the tests (`report.catalogue`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from signcheck.report import catalogue


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "catalogue", help="write docs/catalogue.md from the tests (--check: fail on drift)"
    )
    p.add_argument("--root", type=Path, default=Path.cwd(), help="the checkout")
    p.add_argument(
        "--output", type=Path, default=None, help=f"default <root>/{catalogue.DEFAULT_OUTPUT}"
    )
    p.add_argument("--check", action="store_true", help="exit 1 if the file differs from the tests")
    p.set_defaults(func=cmd_catalogue)


def cmd_catalogue(args: argparse.Namespace) -> int:
    return catalogue.write(args.root, args.output, args.check)
