"""Rewrite the method tables of README.md and docs/methods.md, and the settings table of docs/tuning.md, from
the method registry.

python scripts/docs_tables.py           rewrite them (after adding or changing a method)
python scripts/docs_tables.py --check   exit 1 if a checked-in table differs from the registry's
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from reporting import method_table  # noqa: E402
from utils import atomic_write_text  # noqa: E402

DOCUMENTS = {"README.md": ("readme",), "docs/methods.md": ("methods",), "docs/tuning.md": ("settings",)}


def main(argv) -> int:
    if argv not in ([], ["--check"]):
        print(f"usage: {Path(sys.argv[0]).name} [--check]", file=sys.stderr)
        return 2
    stale = []
    for name, kinds in DOCUMENTS.items():
        path = REPO / name
        text = updated = path.read_text()
        for kind in kinds:
            updated = method_table.with_table(updated, kind)
        if updated != text:
            stale.append(name)
            if not argv:
                atomic_write_text(updated, path)
    if argv and stale:
        print(f"stale method tables in {', '.join(stale)}: run python scripts/docs_tables.py", file=sys.stderr)
        return 1
    print(("rewrote " if stale and not argv else "up to date: ") + ", ".join(stale or DOCUMENTS))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
