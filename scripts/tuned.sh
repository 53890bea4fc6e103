#!/usr/bin/env bash
# The tuned comparison on Fashion-MNIST (the `make fashionmnist` setting), random forgetting of 10% of D
# (SCENARIOS="random"; "random class" adds class-wise forgetting of class $CLASS), dense and OMP 95%.
# Resumable: every stage skips what is finished and continues what was stopped.
#   1. tune: main_tune.py tunes every method of METHODS with the same budget (N_TRIALS finished trials,
#      default 16; TPE seeded, median pruning) on trial 1 of `make fashionmnist` (its model, its
#      forget set, its Retrain), scored on validation data only. Every method keeps its published
#      preset's other flags, with the setting's --batch_size 32; the preset is the first trial when it
#      lies in the search space.
#   2. held out: the selected flags on trials HELDOUT (A-B, default 2-4; trial 4 is trained and pruned here),
#      into $FM_ROOT/fashionmnist_resnet20s/tuned, and the published presets as they are (untuned) on the
#      same trials into .../preset; Retrain of each trial with the setting's arguments into .../unlearn.
#   3. the reports of every scenario in SCENARIOS: $ROOT/report_tuned/report.md, $ROOT/report_preset/report.md
#      and, side by side and paired by trial with what each study selected, $ROOT/comparison/comparison.md
#      (scripts/tuned_table.py).
# Usage: scripts/tuned.sh [PYTHON] [ROOT] [FM_ROOT]   (STAGES=1 for the tuning only; METHODS=a,b to choose)
# FM_ROOT is the `make fashionmnist` folder (default runs/fashionmnist); it needs trial 1's models and
# Retrain runs (STAGES=1 TRIALS=1 scripts/fashionmnist.sh makes them).
set -euo pipefail
PY=${1:-python3}
ROOT=${2:-runs/tuned}
FM_ROOT=${3:-runs/fashionmnist}
DATA=${FMNIST_DATA:-./data}
N_TRIALS=${N_TRIALS:-16}
HELDOUT=${HELDOUT:-2-4}
STAGES=${STAGES:-1,2}
RATES=${RATES:-0 0.95}
SCENARIOS=${SCENARIOS:-random}
METHODS=${METHODS:-SalUn,RL,FT_prune,SCRUB,NegGrad+,SSD,FT,GA,fisher_new,wfisher,boundary_expanding,boundary_shrink}
# shellcheck source=scripts/fashionmnist_settings.sh
source "$(dirname "$0")/fashionmnist_settings.sh"
FM="$FM_ROOT/fashionmnist_resnet20s"
SETTING=(--data "$DATA" --dataset fashionmnist --arch resnet20s --seed 1 $COMMON)

forget_set() {  # scenario -> its forget-set flags, as scripts/sweep.py writes them
    case $1 in
        random) echo "--class_to_replace -1 --num_indexes_to_replace $RANDOM_COUNT" ;;
        class) echo "--class_to_replace $CLASS" ;;
        *) echo "SCENARIOS: unknown scenario '$1'; use random, class or both" >&2; exit 2 ;;
    esac
}

mask_of() {  # rate -> trial 1's mask file (dense: round 0 of the 95% run)
    if [[ $1 == 0 ]]; then echo "$FM/prune_r0.95/train_seed1/0model_SA_best.pth.tar"
    else echo "$FM/prune_r$1/train_seed1/1model_SA_best.pth.tar"; fi
}

for scenario in $SCENARIOS; do forget_set "$scenario" > /dev/null; done  # an unknown one stops here
start=$(date +%s)
if [[ ",$STAGES," == *",1,"* ]]; then
    for scenario in $SCENARIOS; do
        read -ra forget <<< "$(forget_set "$scenario")"
        for method in ${METHODS//,/ }; do
            for rate in $RATES; do
                reference="$FM/unlearn/$scenario/r$rate/retrain/train_seed1/seed1"
                if [[ ! -f $reference/retraincheckpoint.pth.tar ]]; then
                    echo "skipped $method, $scenario, rate $rate: trial 1's Retrain ($reference) is not finished"
                    continue
                fi
                "$PY" main_tune.py "${SETTING[@]}" "${forget[@]}" --mask "$(mask_of "$rate")" --unlearn "$method" \
                    --reference "$reference" --preset published \
                    --batch_size 32 --n-trials "$N_TRIALS" --save_dir "$ROOT/$scenario/r$rate/$method"
            done
        done
    done
fi
if [[ ",$STAGES," == *",2,"* ]]; then
    SWEEP=(--dataset fashionmnist --arch resnet20s --data "$DATA" --root "$FM_ROOT" --scenarios "${SCENARIOS// /,}"
           --random-count "$RANDOM_COUNT" --forget-class "$CLASS" --rates "${RATES// /,}" --trials "$HELDOUT"
           --extra-prune-args "--train_subset $SUBSET --no-progress $TRAIN" --extra-unlearn-args "$COMMON")
    "$PY" scripts/sweep.py --stage all "${SWEEP[@]}" --methods retrain --method-args "retrain=${FMNIST_ARGS[retrain]}"
    "$PY" scripts/sweep.py --stage unlearn "${SWEEP[@]}" --methods "$METHODS" --tuned "$ROOT" --runs-name tuned
    "$PY" scripts/sweep.py --stage unlearn "${SWEEP[@]}" --methods "$METHODS" --runs-name preset
    retrain=() tuned=() preset=()  # the held-out trials' Retrain runs only: trial 1's selected the flags
    for scenario in $SCENARIOS; do
        tuned+=("$FM/tuned/$scenario") preset+=("$FM/preset/$scenario")
        for trial in $(seq "${HELDOUT%-*}" "${HELDOUT#*-}"); do
            for rate in $RATES; do retrain+=("$FM/unlearn/$scenario/r$rate/retrain/train_seed$trial"); done
        done
    done
    "$PY" report.py "${retrain[@]}" "${tuned[@]}" --out "$ROOT/report_tuned"
    "$PY" report.py "${retrain[@]}" "${preset[@]}" --out "$ROOT/report_preset"
    "$PY" scripts/tuned_table.py --tuned "${tuned[@]}" --preset "${preset[@]}" \
        --retrain "${retrain[@]}" --studies "$ROOT" --out "$ROOT/comparison"
fi
echo "took $(( ($(date +%s) - start) / 60 )) min"
