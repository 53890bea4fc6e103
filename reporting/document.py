"""report.md from the runs: its sections, tables and figures."""

from __future__ import annotations

from pathlib import Path

from reporting import audit_report, output_distance, published, references
from reporting.collect import against_clean_retrain, describe, load_runs, pairing_key, summarise, summarise_backdoor
from reporting.pairing import effects_markdown, find_missing, gap_problems, sparsity_effects, unpaired, unpaired_text
from reporting.plots import plot_backdoor, plot_sparsity
from reporting.tables import (
    backdoor_markdown,
    backdoor_to_csv,
    csv_text,
    effects_to_csv,
    runs_to_csv,
    to_csv,
    to_markdown,
)
from training import interrupts
from utils import UsageError, atomic_write_text

AUDIT_NOTE = (
    "Per forget example, the method's N runs against N runs of the reference (Retrain on the same mask, or "
    "on a clean mask: main_audit.py --reference-mask): the accuracy of a leave-one-model-out "
    "likelihood-ratio test on φ = log(p_y/(1−p_y)) (0.5: indistinguishable), its mean and 10–90% quantiles over "
    "the forget set; the noise floor is the reference against itself (disjoint halves), what an exact "
    "unlearner scores; the control is the same test on a fixed sample of test examples, which no run trained "
    "on (how far the two sides differ as models, whatever the forget set; n/a for audits made before it); "
    "ε with δ = 1e-5 from Clopper–Pearson-bounded error rates, at most the cap N models can show. "
    "MIA-Efficacy and UA: means over the same runs (the reference's in brackets).\n\n"
)


def _listing(title: str, lines: list[str]) -> str:
    return f"## {title}\n\n" + ("\n".join(f"- {line}" for line in lines) if lines else "None.") + "\n"


def build_report(
    paths,
    out,
    expect_methods=None,
    expect_seeds=None,
    expect_sparsities=None,
    with_published=False,
    meter: output_distance.OutputMeter | None = None,
    log=None,
    clean_reference=False,
):
    """Load, summarise, write report.md / report.csv / backdoor.csv / PNGs into ``out``; return what was made.

    With ``meter``, each unlearning run's JS divergences and ℓ2 distance to Retrain are measured too.
    ``clean_reference``: runs on inherited masks are measured against the clean Retrain (``against_clean_retrain``).
    """
    runs, problems, both = _loaded(paths, clean_reference, meter, log)
    rows, backdoor_rows = summarise(runs), summarise_backdoor(runs)
    problems += gap_problems(rows)
    missing = find_missing(rows, backdoor_rows, expect_methods, expect_seeds, expect_sparsities)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "report.md", out / "report.csv"]
    interrupts.check("report.py, before writing its files")  # a stop writes nothing
    figures = [plot_sparsity(rows, "UA", out / "sparsity_UA.png"), plot_sparsity(rows, "MIA", out / "sparsity_MIA.png")]
    if backdoor_rows:
        atomic_write_text(backdoor_to_csv(backdoor_rows), out / "backdoor.csv")
        written.append(out / "backdoor.csv")
        figures.append(plot_backdoor(backdoor_rows, out / "backdoor_ASR_SA.png"))
    figures = [figure for figure in figures if figure is not None]
    effects = sparsity_effects(runs)
    left_out = unpaired(runs)
    audits = _read_audits(paths, problems)
    text = _report_text(paths, runs, rows, backdoor_rows, missing, problems, figures, effects, left_out)
    if both:
        text += "\n" + references.TWO_REFERENCES_NOTE + references.two_references_markdown(both)
        atomic_write_text(references.two_references_csv(both), out / "two_references.csv")
        written.append(out / "two_references.csv")
    if audits:
        text += "\n## Per-example audit (main_audit.py)\n\n" + AUDIT_NOTE + audit_report.audit_markdown(audits)
    comparison = []
    if with_published:
        comparison, unmatched = published.compare(rows, published.load())
        text += "\n## Published results beside ours\n\n" + published.to_markdown(comparison, unmatched)
        atomic_write_text(csv_text(comparison, published.CSV_COLUMNS), out / "published.csv")
        written.append(out / "published.csv")
    written += _write_tables(out, rows, effects, runs)
    atomic_write_text(text, out / "report.md")
    return {
        "text": text,
        "rows": rows,
        "effects": effects,
        "backdoor_rows": backdoor_rows,
        "missing": missing,
        "problems": problems,
        "published": comparison,
        "audits": audits,
        "two_references": both,
        "files": written + figures,
    }


def _loaded(paths, clean_reference: bool, meter, log) -> tuple[list[dict], list[str], list[dict]]:
    """The runs below ``paths`` (re-keyed to the clean Retrain if asked), measured by ``meter``, the problems,
    and with the clean reference each inherited-mask group against both Retrains."""
    runs, problems = load_runs(paths)
    both = references.two_references(runs) if clean_reference else []
    if clean_reference:
        runs = against_clean_retrain(runs)
    if not runs and not problems:
        raise UsageError(f"no *_eval.json or *_backdoor.json found under {', '.join(map(str, paths))}")
    interrupts.check("report.py, after reading the results")
    if meter is not None:
        skipped = output_distance.measure(runs, pairing_key, meter, log)
        problems += [f"{describe(run)}, seed {run['seed']}: no JS/ℓ2 to Retrain, {why}" for run, why in skipped]
    return runs, problems, both


def _read_audits(paths, problems: list[str]) -> list[dict]:
    """Every usable ``*_audit.json`` below ``paths``; an unusable one becomes a line of ``problems``."""
    audits = []
    for path in audit_report.find_audits(paths):
        try:
            audits.append(audit_report.audit_row(path))
        except ValueError as err:
            problems.append(f"{path}: unusable audit result, skipped ({err})")
    return audits


def _write_tables(out: Path, rows, effects, runs) -> list[Path]:
    """report.csv, sparsity_effects.csv and runs.csv (report.csv was listed already)."""
    atomic_write_text(to_csv(rows), out / "report.csv")
    atomic_write_text(effects_to_csv(effects), out / "sparsity_effects.csv")
    atomic_write_text(runs_to_csv(runs), out / "runs.csv")
    return [out / "sparsity_effects.csv", out / "runs.csv"]


EFFECTS_NOTE = (
    "## Sparse against dense, paired by trial\n\n"
    'The paper\'s claim "sparsity closes the gap to Retrain", tested: for each trial (the seed that trained and '
    "pruned the model, and the unlearning seed), each |gap to Retrain of the same trial| at the sparsity "
    "minus the same gap dense; mean over trials and its 95% t-interval. Negative: closer to Retrain when "
    "sparse. Verdict on Avg. Gap: shrinks (the interval is below 0), grows (above 0), inconclusive (it "
    "contains 0, or one trial).\n\n"
)


def _report_text(paths, runs, rows, backdoor_rows, missing, problems, figures, effects=(), left_out=()) -> str:
    sources = ", ".join(f"`{path}`" for path in paths)
    parts = [
        f"# Unlearning report\n\n{len(runs)} runs read from {sources}. Cells: mean±std over trials "
        "(|gap to Retrain of the same setting and sparsity|); Avg. Gap = mean of the four gaps. "
        "JS: mean Jensen–Shannon divergence of the softmax outputs to Retrain's of the same seed and forget "
        "set, on D_f and on the test set; ℓ2: distance of the effective weights to Retrain's.\n"
    ]
    if rows:
        parts.append("## Unlearning\n\n" + to_markdown(rows))
    if effects or left_out:
        parts.append(EFFECTS_NOTE + effects_markdown(effects) + unpaired_text(left_out))
    if backdoor_rows:
        parts.append("## Backdoor cleanse\n\n" + backdoor_markdown(backdoor_rows))
    parts.append(_listing("Missing or partial runs", missing))
    parts.append(_listing("Problems", problems))
    if figures:
        parts.append("## Figures\n\n" + "\n".join(f"![{fig.stem}]({fig.name})" for fig in figures) + "\n")
    return "\n".join(parts)
