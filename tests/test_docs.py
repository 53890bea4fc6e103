"""The docs stay true: every internal link resolves, every ``python …`` command in them parses with its
script's parser, and the README's method table names the registry's methods with their paper names and flags."""

import importlib.util
import re
import shlex
import sys

import pytest
from conftest import ROOT

import report
import unlearn
from reporting import method_table

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Shell variables in the docs' commands, given a value of the right kind so the command can be parsed.
PLACEHOLDERS = {"rate": "0.95", "alpha": "1", "k": "1", "method": "FT", "data": "cifar10", "arch": "resnet18"}
PLACEHOLDERS["pruning_times"] = "2"


def parser_of(path: str, function: str):
    """The parser of a script that is not importable as a module (scripts/, benchmarks/)."""

    def build():
        name = f"docs_{path.replace('/', '_').removesuffix('.py')}"
        spec = importlib.util.spec_from_file_location(name, ROOT / path)
        module = importlib.util.module_from_spec(spec)
        sys.modules.setdefault(name, module)  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return getattr(module, function)()

    return build


PARSERS = {  # every entry script main_*.py has make_parser()
    **{path.name: importlib.import_module(path.stem).make_parser for path in sorted(ROOT.glob("main_*.py"))},
    "report.py": report.build_parser,
    "scripts/sweep.py": parser_of("scripts/sweep.py", "build_parser"),
    "scripts/relearn.py": parser_of("scripts/relearn.py", "build_parser"),
    "scripts/ship_records.py": parser_of("scripts/ship_records.py", "build_parser"),
    "benchmarks/bench.py": parser_of("benchmarks/bench.py", "build_parser"),
}


def commands():
    """(doc, command) of every ``python SCRIPT …`` line in a code block (continuations joined)."""
    found = []
    for doc in DOCS:
        for block in re.findall(r"```(?:bash|sh)?\n(.*?)```", doc.read_text(), re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split("  #")[0].strip()
                if line.startswith("python") and " ... " not in f"{line} ":
                    found.append((doc.relative_to(ROOT), line))
    return found


def filled(command: str) -> list[str]:
    command = re.sub(r'"\$\{\w+\[@\]\}"', "", command)  # "${C[@]}": an array of flags shown elsewhere
    command = re.sub(r"\$\{?(\w+)\}?", lambda m: PLACEHOLDERS.get(m.group(1), "x"), command)
    return shlex.split(command)


def test_every_internal_link_resolves():
    broken = []
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
            if not target.startswith(("http", "#", "mailto")) and not (doc.parent / target.split("#")[0]).exists():
                broken.append(f"{doc.name}: {target}")
    assert not broken


@pytest.mark.parametrize("doc,command", commands(), ids=lambda value: str(value)[:60])
def test_every_documented_command_parses(doc, command):
    argv = filled(command)
    argv = argv[1:] if argv[0].startswith("python") else argv
    argv = argv[1:] if argv[0] == "-u" else argv
    script, flags = argv[0], argv[1:]
    assert script in PARSERS, f"{doc}: unknown script in {command!r}"
    try:
        PARSERS[script]().parse_args(flags)
    except SystemExit as stop:
        pytest.fail(f"{doc}: {command!r} does not parse (exit {stop.code})")


def test_the_documents_hold_commands_for_every_script():
    scripts = {next(arg for arg in filled(command)[1:] if arg != "-u") for _, command in commands()}
    assert scripts >= set(PARSERS)


@pytest.mark.parametrize(
    "name, kind", [("README.md", "readme"), ("docs/methods.md", "methods"), ("docs/tuning.md", "settings")]
)
def test_the_checked_in_method_tables_are_the_registrys(name, kind):
    """Regenerate with ``python scripts/docs_tables.py`` after adding or changing a method."""
    checked_in = method_table.checked_in((ROOT / name).read_text(), kind)
    assert checked_in == method_table.markdown(kind), f"{name}: run python scripts/docs_tables.py"


def test_the_generated_table_has_one_row_per_method_with_its_paper_name_and_flags(monkeypatch):
    monkeypatch.setattr(unlearn, "METHODS", dict(unlearn.METHODS))
    flag = unlearn.Flag("probe_strength", 1.0, float, "probe")
    unlearn.register("probe", paper_name="Probe", help="a | b", rank=999, flags=(flag,))(lambda model, ctx: None)
    rows = method_table.markdown("readme").splitlines()[2:]
    assert len(rows) == len(unlearn.METHODS)
    assert rows[-1] == "| `probe` | Probe | a \\| b | `--probe_strength` |"  # the last rank is the last row
