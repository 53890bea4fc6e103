"""Class-wise forgetting on ImageNet: the original's main_forget_imagenet.py, which is main_forget.py with
--dataset imagenet --arch resnet18 --imagenet_arch as the defaults (every flag is main_forget.py's).

ImageNet is read from --data in the standard folder layout (train/<wnid>/ and val/<wnid>/) at
--image_size pixels; every training image of --class_to_replace is forgotten and the test accuracy
leaves that class out, as the original's ImageNet script does. Example:
    python main_forget_imagenet.py --data /datasets/imagenet --image_size 64 \\
        --mask runs/imagenet/1model_SA_best.pth.tar --unlearn FT --class_to_replace 0 --save_dir runs/imagenet_FT
"""

from __future__ import annotations

from experiments import forget_cli
from utils import log, run_cli


def make_parser():
    return forget_cli.make_parser(__doc__, dataset="imagenet", arch="resnet18", imagenet_arch=True)


def main(argv=None):
    return forget_cli.main(make_parser(), "main_forget_imagenet.py", argv, log)


if __name__ == "__main__":
    run_cli(main)
