#!/usr/bin/env bash
# The paper's experiments on real data at CPU scale: Fashion-MNIST, a resnet20s on a stratified
# 3,000-image subset of the official training set, trained without augmentation so that it fits
# its training set (the regime of the paper's CIFAR-10 models). Two sweeps, both resumable (a rerun
# skips finished runs and continues interrupted ones):
#   1. Table 1: dense + OMP 95%, the paper's six methods, class-wise forgetting of class 1 (trouser)
#      and random forgetting of 10% of D (270 images), seeds 1-3.
#   2. The sparsity curve: OMP at 50/99/90/75% as well, FT, IU and l1-sparse, class-wise, seed 1.
#   3. The later methods (RL, SalUn, BE, BS, SCRUB, NegGrad+, SSD) on Table 1's settings, one seed at
#      a time, with the digits demo's arguments (not tuned for Fashion-MNIST), beside the same Retrain.
# Then the reports: $ROOT/table1/report.md, $ROOT/curve/{report.md,sparsity_UA.png,sparsity_MIA.png}
# and $ROOT/all_methods/report.md (every method, with the JS divergence and l2 distance to Retrain).
# Usage: scripts/fashionmnist.sh [PYTHON] [ROOT]
# The data: Debian's dataset-fashion-mnist package, or the four official files under --data
# (set FMNIST_DATA; default ./data, torchvision's FashionMNIST/raw layout or the files themselves).
set -euo pipefail
PY=${1:-python3}
ROOT=${2:-runs/fashionmnist}
DATA=${FMNIST_DATA:-./data}
# shellcheck source=scripts/fashionmnist_settings.sh
source "$(dirname "$0")/fashionmnist_settings.sh"
SWEEP=(
    --dataset fashionmnist --arch resnet20s --data "$DATA" --root "$ROOT"
    --forget-class "$CLASS" --random-count "$RANDOM_COUNT"
    --extra-prune-args "--train_subset $SUBSET --no-progress $TRAIN"
    --extra-unlearn-args "$COMMON"
)
METHODS=retrain,FT,GA,fisher_new,wfisher,FT_prune
for method in ${METHODS//,/ }; do SWEEP+=(--method-args "$method=${FMNIST_ARGS[$method]}"); done
NEW_METHODS=RL,SalUn,boundary_expanding,boundary_shrink,SCRUB,NegGrad+,SSD
NEW_ARGS=()  # the later methods run with the demo's arguments, read from the registry
while read -r name rest; do
    [[ ",$NEW_METHODS," == *",$name,"* ]] && NEW_ARGS+=(--method-args "$name=$rest")
done < <("$PY" scripts/method_args.py demo)

start=$(date +%s)
"$PY" scripts/sweep.py --stage all "${SWEEP[@]}" --rates 0,0.95 --scenarios class,random --methods "$METHODS" \
    --seeds 1,2,3
# one sparsity at a time (0 and 95% come from the Table-1 sweep), ends of the range first, so that a
# stopped run already spans 0-99%
for rate in 0.5 0.99 0.9 0.75; do
    "$PY" scripts/sweep.py --stage all "${SWEEP[@]}" --rates "0,$rate" --scenarios class \
        --methods FT,wfisher,FT_prune --seeds 1
done
for seed in 1 2 3; do
    "$PY" scripts/sweep.py --stage all "${SWEEP[@]}" --rates 0,0.95 --scenarios class,random --seeds "$seed" \
        --methods "$NEW_METHODS" "${NEW_ARGS[@]}"
done
echo "sweeps took $(( ($(date +%s) - start) / 60 )) min"

RUNS="$ROOT/fashionmnist_resnet20s/unlearn"
"$PY" report.py "$RUNS"/{class,random}/r{0,0.95} --out "$ROOT/table1" --expect-methods "$METHODS" \
    --expect-seeds 1 2 3
"$PY" report.py "$RUNS"/class/r*/{FT,wfisher,FT_prune}/seed1 --out "$ROOT/curve" --no-output-metrics
"$PY" report.py "$RUNS"/{class,random}/r{0,0.95} --out "$ROOT/all_methods" --expect-methods "$METHODS,$NEW_METHODS" \
    --expect-seeds 1 2 3
