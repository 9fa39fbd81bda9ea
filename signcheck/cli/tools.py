"""`signcheck tools build|list`."""

from __future__ import annotations

import argparse
import json

from signcheck.tools import gobuild, pins


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
