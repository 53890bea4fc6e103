"""Hostile input, generated (Hypothesis): random argument vectors for the five scripts and random JSON
trees for report.py. Whatever they hold, a script ends with exit status 0 or 2, at most one line on
stderr, and never a traceback.

The scripts run in this process up to the point where they would load data and start the work (that
step is replaced by a marker exception), so every example costs milliseconds; what happens after the
data is loaded is covered by the hand-written cases of test_bad_input.py. A longer search by hand:
``pytest tests/test_hostile_input.py --hypothesis-profile thorough``.
"""

import json

import pytest
from conftest import ARCH
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dataset
import main_audit
import main_backdoor
import main_forget
import main_imp
import main_synflow
import report
import utils
from experiments import audit

# 25 examples each in make test (under a minute together); the "thorough" profile (conftest.py) gives more
EXAMPLES = settings.default.max_examples if settings.default.max_examples > 100 else 25
QUICK = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class ReachedTheWork(Exception):
    """Every check before loading the data passed: the script would now do its work."""


def reached(*_args, **_kwargs):
    raise ReachedTheWork


NUMBERS = st.one_of(
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, 1, -1, 2**31, 2**32, 2**63, -(2**63) - 1, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
)
ODD_TEXT = st.sampled_from(["", "nan", "inf", "-inf", "1e309", "abc", "0x10", "../../x", "/dev/null", "a\nb", "1,,2"])
VALUES = st.one_of(NUMBERS.map(str), ODD_TEXT, st.text(max_size=12))
PATH_FLAGS = ["--mask", "--rewind_pth", "--checkpoint", "--indexes_to_replace", "--data", "--save_dir"]
NUMBER_FLAGS = {
    "imp": ["--epochs", "--lr", "--rate", "--pruning_times", "--rewind_epoch", "--seed", "--split_seed",
            "--train_subset", "--batch_size", "--warmup", "--momentum", "--weight_decay", "--decreasing_lr"],
    "forget": ["--unlearn_lr", "--unlearn_epochs", "--alpha", "--seed", "--train_seed", "--class_to_replace",
               "--num_indexes_to_replace", "--batch_size", "--no-l1-epochs", "--ssd_alpha", "--saliency_ratio",
               "--decreasing_lr", "--momentum"],
    "backdoor": ["--trigger_size", "--trigger_value", "--num_indexes_to_replace", "--class_to_replace", "--rate",
                 "--epochs", "--unlearn_lr", "--seed"],
    "audit": ["-N", "--jobs", "--class_to_replace", "--num_indexes_to_replace", "--forget_seed", "--slurm-gpus"],
}  # fmt: skip
NUMBER_FLAGS["synflow"] = NUMBER_FLAGS["imp"]


@st.composite
def argument_vectors(draw, script):
    """The script's usual small command with one to three flags set to hostile values (or to odd paths)."""
    flags = draw(st.lists(st.sampled_from(NUMBER_FLAGS[script] + PATH_FLAGS), min_size=1, max_size=3))
    return [item for flag in flags for item in (flag, draw(VALUES))]


@pytest.fixture
def hold_back_the_work(monkeypatch, tmp_path):
    """Data loading and the audit's runs become ``ReachedTheWork``; relative paths land in ``tmp_path``."""
    monkeypatch.setattr(dataset, "load_data", reached)
    monkeypatch.setattr(audit, "ensure_runs", reached)
    monkeypatch.setattr(audit, "submit_slurm", reached)
    monkeypatch.chdir(tmp_path)


SCRIPTS = {
    "imp": (main_imp.main, [*ARCH, "--epochs", "1"], utils.RESUMABLE),
    "synflow": (main_synflow.main, [*ARCH, "--epochs", "1"], utils.RESUMABLE),
    "forget": (main_forget.main, [*ARCH, "--unlearn", "FT", "--mask", "absent.pth.tar"], utils.RESUMABLE),
    "backdoor": (main_backdoor.main, [*ARCH, "--num_indexes_to_replace", "10", "--unlearn", "FT"], utils.RESUMABLE),
    "audit": (main_audit.main, ["--mask", "absent.pth.tar", "--unlearn", "FT", "--save_dir", "a"], main_audit.ENDINGS),
}


def ends_cleanly(main, argv, how, capsys) -> None:
    try:
        utils.run_cli(main, argv, how=how)
        code = 0
    except SystemExit as stop:
        code = stop.code
    except ReachedTheWork:
        code = 0
    err = capsys.readouterr().err
    assert code in (0, 2), f"exit {code} for {argv}: {err}"
    errors = [line for line in err.strip().splitlines() if not line.startswith("warning: ")]
    assert "Traceback" not in err and len(errors) <= 1, f"{argv}: {err}"  # warnings name unused flags


@pytest.mark.parametrize("script", sorted(SCRIPTS))
@QUICK
@given(data=st.data())
def test_hostile_command_lines_end_with_0_or_2_and_one_line(script, data, hold_back_the_work, capsys):
    main, base, how = SCRIPTS[script]
    ends_cleanly(main, [*base, *data.draw(argument_vectors(script), label="flags")], how, capsys)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**80), 2**80) | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
EVAL = {
    "method": "FT", "scenario": "random", "class_to_replace": -1, "num_forget": 10, "remaining_weight_ratio": 1.0,
    "seed": 1, "UA": 10.0, "RA": 99.0, "TA": 94.0, "MIA_efficacy": 50.0, "RTE_min": 1.0,
    "args": {"dataset": "digits", "arch": "resnet20s", "unlearn": "FT", "seed": 1},
}  # fmt: skip


@st.composite
def result_records(draw):
    """A whole random tree, or a well-formed record with some fields replaced by random trees."""
    if draw(st.booleans()):
        return draw(JSON)
    record = dict(EVAL)
    for key in draw(st.lists(st.sampled_from([*EVAL, "identity", "diverged", "diverged_at"]), max_size=3)):
        record[key] = draw(JSON)
    return record


@QUICK
@given(records=st.lists(result_records(), min_size=1, max_size=3))
def test_report_py_survives_any_json_tree(records, tmp_path_factory, capsys):
    folder = tmp_path_factory.mktemp("results")
    for number, record in enumerate(records):
        (folder / f"run{number}").mkdir()
        text = json.dumps(record, allow_nan=True)
        (folder / f"run{number}" / ("FT_eval.json" if number % 2 == 0 else "FT_backdoor.json")).write_text(text)
    argv = [str(folder), "--out", str(folder / "out"), "--no-output-metrics"]
    ends_cleanly(report.main, argv, report.ENDINGS, capsys)
