#!/usr/bin/env bash
# The paper's experiments on real data at CPU scale: Fashion-MNIST, a resnet20s on a stratified
# 3,000-image subset of the official training set, trained without augmentation so that it fits
# its training set (the regime of the paper's CIFAR-10 models). Three stages, all resumable (a rerun
# skips finished runs and continues interrupted ones), each over TRIALS independent trials (default
# 3): trial k trains and prunes its own model with --seed k and unlearns it with --seed k.
#   1. Table 1: dense + OMP 95%, the paper's six methods, class-wise forgetting of class 1 (trouser)
#      and random forgetting of 10% of D (270 images).
#   2. The sparsity curve: OMP at 50/99/90/75% as well, FT, IU and l1-sparse, class-wise.
#   3. The later methods (RL, SalUn, BE, BS, SCRUB, NegGrad+, SSD) on Table 1's settings, one trial at
#      a time, with the digits demo's arguments (not tuned for Fashion-MNIST), beside the same Retrain.
# Then the reports: $ROOT/table1/report.md, $ROOT/curve/{report.md,sparsity_UA.png,sparsity_MIA.png}
# and $ROOT/all_methods/report.md (every method, with the JS divergence and l2 distance to Retrain).
# Usage: scripts/fashionmnist.sh [PYTHON] [ROOT]   (TRIALS=K for K trials; STAGES=1 for Table 1 only)
# The data: Debian's dataset-fashion-mnist package, or the four official files under --data
# (set FMNIST_DATA; default ./data, torchvision's FashionMNIST/raw layout or the files themselves).
set -euo pipefail
PY=${1:-python3}
ROOT=${2:-runs/fashionmnist}
DATA=${FMNIST_DATA:-./data}
TRIALS=${TRIALS:-3}
STAGES=${STAGES:-1,2,3}
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
if [[ ",$STAGES," == *",1,"* ]]; then
    "$PY" scripts/sweep.py --stage all "${SWEEP[@]}" --rates 0,0.95 --scenarios class,random --methods "$METHODS" \
        --trials "$TRIALS"
fi
# one sparsity at a time (0 and 95% come from the Table-1 sweep), ends of the range first, so that a
# stopped run already spans 0-99%
if [[ ",$STAGES," == *",2,"* ]]; then
    for rate in 0.5 0.99 0.9 0.75; do
        "$PY" scripts/sweep.py --stage all "${SWEEP[@]}" --rates "0,$rate" --scenarios class \
            --methods FT,wfisher,FT_prune --trials "$TRIALS"
    done
fi
if [[ ",$STAGES," == *",3,"* ]]; then
    "$PY" scripts/sweep.py --stage all "${SWEEP[@]}" --rates 0,0.95 --scenarios class,random --trials "$TRIALS" \
        --methods "$NEW_METHODS" "${NEW_ARGS[@]}"
fi
echo "sweeps took $(( ($(date +%s) - start) / 60 )) min"

RUNS="$ROOT/fashionmnist_resnet20s/unlearn"
SEEDS=$(seq -s ' ' 1 "$TRIALS")
# shellcheck disable=SC2086
"$PY" report.py "$RUNS"/{class,random}/r{0,0.95} --out "$ROOT/table1" --expect-methods "${METHODS//,/ }" \
    --expect-seeds $SEEDS
if [[ ",$STAGES," == *",2,"* ]]; then
    "$PY" report.py "$RUNS"/class/r*/{FT,wfisher,FT_prune} --out "$ROOT/curve" --no-output-metrics
fi
if [[ ",$STAGES," == *",3,"* ]]; then
    # shellcheck disable=SC2086
    "$PY" report.py "$RUNS"/{class,random}/r{0,0.95} --out "$ROOT/all_methods" \
        --expect-methods ${METHODS//,/ } ${NEW_METHODS//,/ } --expect-seeds $SEEDS
fi
