"""Original: no unlearning; the loaded model θ_o is evaluated as it is."""

from unlearn import Preset, register


@register(
    "raw",
    paper_name="Original",
    help="no unlearning: evaluate the checkpoint as it is",
    rank=0,
    preset=Preset("", "no arguments: the checkpoint is evaluated as it is"),
)
def unlearn(model, ctx) -> None:
    ctx.log("raw: evaluating the original model, no unlearning step")
