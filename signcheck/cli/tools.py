"""`signcheck tools build|list`."""

from __future__ import annotations

import argparse
import json

from signcheck.tools import gobuild, pins


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tools_p = sub.add_parser("tools", help="build and inspect the pinned tools")
    tsub = tools_p.add_subparsers(dest="tools_cmd", required=True)
    build_p = tsub.add_parser("build", help="build missing tools from their pinned Go modules")
    build_p.add_argument("names", nargs="*", help="tools or groups (default: all)")
    build_p.add_argument("--force", action="store_true", help="rebuild even if cached")
    build_p.set_defaults(func=cmd_build)
    list_p = tsub.add_parser("list", help="pinned version, path, source and reported version")
    list_p.add_argument("names", nargs="*")
    list_p.add_argument("--json", action="store_true")
    list_p.set_defaults(func=cmd_list)


def cmd_build(args: argparse.Namespace) -> int:
    gobuild.build(args.names, force=args.force)
    return cmd_list(argparse.Namespace(names=args.names, json=False))


def cmd_list(args: argparse.Namespace) -> int:
    names = pins.expand_names(args.names)
    results = pins.resolve_many(names)
    if args.json:
        print(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        rows = [("TOOL", "PINNED", "REPORTED", "SOURCE", "PATH")]
        for r in results:
            reported = r.reported or "-"
            if r.reported and not pins.same_version(r.reported, r.pinned):
                reported += " (MISMATCH)"
            rows.append((r.name, r.pinned, reported, r.source, str(r.path or "-")))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        for row in rows:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[4])
        for r in results:
            for problem in r.problems:
                print(f"! {r.name}: {problem}")
    return 0 if all(r.ok for r in results) else 1
