"""Print each method's demo or sweep arguments from its registry entry, one line per method:
the ``--unlearn`` name, then its arguments. scripts/demo.sh reads the demo's methods this way.

    python scripts/method_args.py demo          the demo's methods (all with demo arguments), in listing order
    python scripts/method_args.py demo paper    only those of the paper's tables (make demo's default)
    python scripts/method_args.py preset        the published presets (the sweep's; --alpha-* placeholders unfilled)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import unlearn  # noqa: E402


def main(argv) -> int:
    if not 1 <= len(argv) <= 2 or argv[0] not in ("demo", "preset") or argv[1:] not in ([], ["paper"]):
        print(f"usage: {Path(sys.argv[0]).name} demo [paper] | preset", file=sys.stderr)
        return 2
    for method in unlearn.listed():
        if argv[1:] == ["paper"] and not method.in_tables:
            continue
        arguments = method.demo_args if argv[0] == "demo" else getattr(method.preset, "args", None)
        if arguments is not None:
            print(f"{method.name} {arguments}".rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
