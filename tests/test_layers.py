"""The layers of docs/design.md, enforced: what the root holds and which way imports go."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# lowest first; a module may import its own layer and those below it, never one above
LAYERS = {
    "utils": 0,
    "training.interrupts": 0,  # signals and the exceptions every layer raises; imports nothing of ours
    "models": 1,
    "pruner": 1,
    "dataset": 1,
    "training": 2,
    "evaluation": 3,
    "unlearn": 3,
    "experiments": 4,
    "reporting": 5,
}
ENTRY = 6  # main_*.py and report.py
OUTSIDE = ("scripts", "benchmarks", "tests")  # they may import anything; nothing imports them
NO_FLAG_PARSING = ("unlearn", "evaluation", "models")


def top_level(name: str) -> str:
    """The LAYERS key ``name`` falls under: its longest dotted prefix listed there, else its first part."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in LAYERS:
            return ".".join(parts[:end])
    return parts[0]


def first_party_imports(path: Path) -> list[tuple[int, str]]:
    """(line, top-level name) of every import of this project's modules, nested imports included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, top_level(alias.name)) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, top_level(f"{node.module}.{alias.name}")) for alias in node.names]
    return [(line, name) for line, name in found if name in LAYERS or name in OUTSIDE or name.startswith("main_")]


def library_modules() -> list[Path]:
    paths = [ROOT / "utils.py", ROOT / "pruner.py"]
    for package in ("models", "dataset", "training", "evaluation", "unlearn", "experiments", "reporting"):
        if (ROOT / package).is_dir():
            paths += sorted((ROOT / package).rglob("*.py"))
    return paths


def layer_of(path: Path) -> int:
    relative = path.relative_to(ROOT)
    if relative.name.startswith("main_") or relative.name == "report.py":
        return ENTRY
    return LAYERS[top_level(relative.with_suffix("").as_posix().replace("/", "."))]


def test_the_root_holds_only_the_entry_scripts_pruner_and_utils():
    allowed = {"pruner.py", "utils.py", "report.py"}
    extra = [p.name for p in ROOT.glob("*.py") if p.name not in allowed and not p.name.startswith("main_")]
    assert not extra, f"library modules at the root (move them into a package): {extra}"
    for name in LAYERS:
        path = ROOT / name.replace(".", "/")
        assert path.with_suffix(".py").is_file() or (path / "__init__.py").is_file(), name


ENTRY_SCRIPTS = sorted(ROOT.glob("main_*.py")) + [ROOT / "report.py"]


@pytest.mark.parametrize("path", library_modules() + ENTRY_SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_go_down_the_layers_and_never_into_scripts(path):
    own = layer_of(path)
    wrong = []
    for line, name in first_party_imports(path):
        if name in OUTSIDE or name.startswith("main_"):
            wrong.append(f"line {line}: {name} (nothing imports scripts, tests, benchmarks or an entry script)")
        elif LAYERS[name] > own:
            wrong.append(f"line {line}: {name} is a layer above ({LAYERS[name]} > {own})")
    assert not wrong, wrong


@pytest.mark.parametrize("package", NO_FLAG_PARSING)
def test_methods_metrics_and_models_parse_no_flags(package):
    """They get parsed values; only the run layer and the entry scripts build parsers."""
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("ArgumentParser", "parse_args", "parse_known_args"):
                pytest.fail(f"{path.relative_to(ROOT)}:{node.lineno} uses {node.attr}")


def test_the_layer_rule_would_catch_a_lower_module_reaching_up(tmp_path):
    """The check itself: an import from a higher layer is found, a lower one is not."""
    module = tmp_path / "probe.py"
    module.write_text(
        "import numpy\nfrom experiments import arg_parser\nfrom training.trainer import predict\n"
        "from training import interrupts\n"
    )
    found = dict((name, line) for line, name in first_party_imports(module))
    assert found == {"experiments": 2, "training": 3, "training.interrupts": 4}
    assert LAYERS["experiments"] > LAYERS["unlearn"] >= LAYERS["training"] > LAYERS["training.interrupts"]
