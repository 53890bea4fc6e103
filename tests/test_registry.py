"""The method registry is the one description of a method; registries refuse duplicates; the layering holds."""

import argparse
import ast
import shlex
import sys
from pathlib import Path

import pytest
import torch.nn as nn

import main_forget
import models
import report
import unlearn
from reporting import collect

ROOT = Path(__file__).resolve().parents[1]


def test_a_name_registered_twice_is_refused(monkeypatch):
    monkeypatch.setattr(unlearn, "METHODS", dict(unlearn.METHODS))
    with pytest.raises(ValueError, match="'FT' is registered twice"):
        unlearn.register("FT", help="again")(lambda model, ctx: None)
    monkeypatch.setattr(models, "MODELS", dict(models.MODELS))
    with pytest.raises(ValueError, match="'resnet18' is registered twice"):
        models.register_model("resnet18")(lambda num_classes, in_channels=3: nn.Linear(1, num_classes))


@pytest.mark.parametrize("method", unlearn.listed(), ids=lambda method: method.name)
def test_every_method_describes_itself_with_valid_flags(method):
    assert method.help and method.paper_name
    for arguments in (method.demo_args, getattr(method.preset, "args", None)):
        if arguments is None:
            continue
        filled = arguments.format(alpha_ff="1e-8", alpha_iu="10", alpha_l1="5e-4")
        main_forget.make_parser().parse_args(["--unlearn", method.name, *shlex.split(filled)])


def test_a_taken_rank_is_refused(monkeypatch):
    monkeypatch.setattr(unlearn, "METHODS", dict(unlearn.METHODS))
    taken = unlearn.get_method("FT").rank
    with pytest.raises(ValueError, match=f"rank {taken} is taken by 'FT'"):
        unlearn.register("FT_again", help="again", rank=taken)(lambda model, ctx: None)
    ranks = [method.rank for method in unlearn.listed()]
    assert len(set(ranks)) == len(ranks)


def test_the_papers_six_methods_are_the_tables_methods_in_the_papers_order():
    paper = ("retrain", "FT", "GA", "fisher_new", "wfisher", "FT_prune")  # Table 1's rows, top to bottom
    assert collect.METHOD_ORDER == paper
    assert collect.METHOD_NAMES["FT_prune"] == "ℓ1-sparse" and collect.method_name("gone") == "gone"


def test_report_help_and_listings_read_the_registry():
    assert collect.METHOD_ORDER == tuple(method.name for method in unlearn.listed() if method.in_tables)
    help_text = main_forget.make_parser().format_help()
    assert all(method.name in help_text for method in unlearn.listed())


def _method_args(capsys, *mode):
    """scripts/method_args.py's lines (run in this process: the script only prints what the registry holds)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("method_args_script", ROOT / "scripts" / "method_args.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    capsys.readouterr()
    status = script.main(list(mode))
    return status, capsys.readouterr().out.splitlines()


def test_the_demo_runs_every_method_with_demo_arguments_and_the_papers_by_default(capsys):
    listed = [method for method in unlearn.listed() if method.demo_args is not None]
    assert _method_args(capsys, "demo") == (0, [f"{method.name} {method.demo_args}".rstrip() for method in listed])
    paper = [f"{m.name} {m.demo_args}".rstrip() for m in listed if m.in_tables]
    assert _method_args(capsys, "demo", "paper") == (0, paper) and len(paper) == 6
    presets = [f"{m.name} {m.preset.args}".rstrip() for m in unlearn.listed() if m.preset is not None]
    assert _method_args(capsys, "preset") == (0, presets)
    assert _method_args(capsys, "demo", "some")[0] == 2


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("script", sorted(ROOT.glob("main_*.py")), ids=lambda path: path.name)
def test_no_entry_script_imports_another(script):
    assert not {name for name in _imports(script) if name.startswith("main_")}


def test_functions_stay_short():
    """At most 60 lines per function, argparse builders excepted (they are declarative)."""
    long = []
    for path in ROOT.rglob("*.py"):
        if ".venv" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name not in ("build_parser", "make_parser"):
                if node.end_lineno - node.lineno + 1 > 60:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert not long


@pytest.fixture
def isolated_declarations(monkeypatch):
    """Methods and flags registered by a test leave no trace in the registry or the run identities."""
    from experiments import arg_parser, run_identity

    monkeypatch.setattr(unlearn, "METHODS", dict(unlearn.METHODS))
    monkeypatch.setattr(arg_parser, "DEFINES", dict(arg_parser.DEFINES))
    yield
    run_identity.declared.cache_clear()


def test_a_methods_own_flags_reach_the_parser_once(isolated_declarations):
    flag = unlearn.Flag("demo_strength", 0.25, float, "a test-only flag")
    unlearn.register("demo_a", help="a", rank=1001, flags=(flag,))(lambda model, ctx: None)
    unlearn.register("demo_b", help="b", rank=1002, flags=(flag,))(lambda model, ctx: None)
    parser = main_forget.make_parser()
    assert parser.parse_args([]).demo_strength == 0.25
    assert parser.parse_args(["--demo_strength", "2"]).demo_strength == 2.0
    other = unlearn.Flag("demo_strength", 1, int, "other")
    unlearn.register("demo_c", help="c", rank=1003, flags=(other,))(lambda model, ctx: None)
    with pytest.raises(ValueError, match="--demo_strength is declared differently"):
        main_forget.make_parser()


def test_every_script_help_shows_its_defaults():
    """Each flag with a default shows it (argparse's own wording, or the help's where it states it)."""
    import importlib.util

    import main_audit
    import main_backdoor
    import main_imp
    import main_synflow

    spec = importlib.util.spec_from_file_location("sweep_for_help", ROOT / "scripts" / "sweep.py")
    sweep = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("sweep_for_help", sweep)  # dataclasses look their module up there
    spec.loader.exec_module(sweep)
    parsers = [script.make_parser() for script in (main_forget, main_imp, main_synflow, main_backdoor, main_audit)]
    for parser in parsers + [report.build_parser(), sweep.build_parser()]:
        text = " ".join(parser.format_help().split())
        for action in parser._actions:
            if action.default in (None, False, "", argparse.SUPPRESS) or not action.option_strings:
                continue
            stated = "default" in (action.help or "")
            assert stated or f"(default: {action.default})" in text, (parser.prog, action.option_strings)
