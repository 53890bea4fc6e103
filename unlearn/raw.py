"""Original: no unlearning; the loaded model θ_o is evaluated as it is."""

from unlearn import register


@register(
    "raw",
    paper_name="Original",
    help="no unlearning: evaluate the checkpoint as it is",
    rank=0,
    sweep_args="",
)
def unlearn(model, ctx) -> None:
    ctx.log("raw: evaluating the original model, no unlearning step")
