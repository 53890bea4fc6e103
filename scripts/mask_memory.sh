#!/usr/bin/env bash
# Does the mask remember the forget set? On the `make fashionmnist` setting at 95% (docs/mask_memory.md):
#   1. clean masks: for every trial k and scenario, the Table-1 training and OMP run again with the forget
#      set left out (main_imp.py --leave_out_forget; class-wise: class 1, random: the 270 images main_forget.py
#      --seed k draws), into $ROOT/clean/{scenario}/train_seed{k};
#   2. clean Retrain: Table 1's Retrain command on each clean 95% mask. Not at 0%: a dense Retrain starts
#      from a fresh initialisation (--train_seed) with nothing masked, so it never reads the model it is given
#      and the clean and inherited dense Retrain are the same run;
#   3. the reports: every Table-1 run at 95% (Retrain of the inherited mask included) against the clean
#      Retrain (report.py --reference clean) and, beside it, against the inherited Retrain, plus the mask
#      overlap per layer;
#   4. the per-example audit: N Retrain runs on trial 1's inherited mask against N on its clean mask, with
#      the test-set control; FT against Retrain (class-wise) as the positive control; the figure and report.
# Expects the Table-1 runs of scripts/fashionmnist.sh (STAGES=1) under FM_ROOT.
# Resumable: finished runs are reused and interrupted ones continued.
# Usage: scripts/mask_memory.sh [PYTHON] [ROOT] [FM_ROOT]   (TRIALS=K, STAGES=1,2,3,4, N=4)
set -euo pipefail
PY=${1:-python3}
ROOT=${2:-runs/mask_memory}
FM_ROOT=${3:-runs/fashionmnist}
DATA=${FMNIST_DATA:-./data}
TRIALS=${TRIALS:-3}
STAGES=${STAGES:-1,2,3,4}
N=${N:-4}
# shellcheck source=scripts/fashionmnist_settings.sh
source "$(dirname "$0")/fashionmnist_settings.sh"
FM="$FM_ROOT/fashionmnist_resnet20s"
BASE=(--data "$DATA" --dataset fashionmnist --arch resnet20s)
declare -A FORGET=([class]="--class_to_replace $CLASS" [random]="--class_to_replace -1 --num_indexes_to_replace $RANDOM_COUNT")

resume_flag() { compgen -G "$1" > /dev/null && echo --resume || true; }  # a file matching the pattern: resume

clean_mask() {  # scenario trial -> the clean 95% mask file
    echo "$ROOT/clean/$1/train_seed$2/1model_SA_best.pth.tar"
}

start=$(date +%s)
if [[ ",$STAGES," == *",1,"* ]]; then
    for k in $(seq 1 "$TRIALS"); do
        for scenario in class random; do
            dir="$ROOT/clean/$scenario/train_seed$k"
            if [[ -f $dir/imp_results.json ]] && grep -q '"finished": true' "$dir/imp_results.json"; then continue; fi
            # shellcheck disable=SC2086  # the sweep's pruning command for trial k, with D_f left out
            "$PY" main_imp.py "${BASE[@]}" --prune_type rewind_lt --rewind_epoch 8 --save_dir "$dir" --rate 0.95 \
                --pruning_times 2 --seed "$k" --train_subset "$SUBSET" --no-progress $TRAIN \
                --leave_out_forget ${FORGET[$scenario]} --forget_seed "$k" $(resume_flag "$dir/*checkpoint.pth.tar")
        done
    done
fi
if [[ ",$STAGES," == *",2,"* ]]; then
    for k in $(seq 1 "$TRIALS"); do
        for scenario in class random; do
            dir="$ROOT/unlearn/$scenario/r0.95/retrain/train_seed$k/seed$k"
            [[ -f $dir/retrain_eval.json ]] && continue
            # shellcheck disable=SC2086  # Table 1's Retrain command, on the clean mask
            "$PY" -u main_forget.py "${BASE[@]}" --mask "$(clean_mask "$scenario" "$k")" --unlearn retrain \
                --seed "$k" --save_dir "$dir" ${FMNIST_ARGS[retrain]} ${FORGET[$scenario]} $COMMON \
                $(resume_flag "$dir/retrain*.pth.tar")
        done
    done
fi
if [[ ",$STAGES," == *",3,"* ]]; then
    for scenario in class random; do
        "$PY" report.py "$FM/unlearn/$scenario/r0.95" --out "$ROOT/report_inherited_$scenario"
        "$PY" report.py "$FM/unlearn/$scenario/r0.95" "$ROOT/unlearn/$scenario" --reference clean \
            --out "$ROOT/report_clean_$scenario"
        "$PY" scripts/mask_overlap.py "$FM" "$ROOT/clean/$scenario" --trials "$TRIALS" --out "$ROOT/overlap_$scenario.csv"
    done
fi
if [[ ",$STAGES," == *",4,"* ]]; then
    MASK="$FM/prune_r0.95/train_seed1/1model_SA_best.pth.tar"
    for scenario in class random; do
        # shellcheck disable=SC2086
        "$PY" main_audit.py --mask "$MASK" --unlearn retrain --reference-mask "$(clean_mask "$scenario" 1)" -N "$N" \
            --save_dir "$ROOT/audit/$scenario" --run-args "${BASE[*]} $COMMON" \
            --method-args "${FMNIST_ARGS[retrain]}" --retrain-args "${FMNIST_ARGS[retrain]}" ${FORGET[$scenario]} \
            --forget_seed 1
    done
    # the positive control: FT, which starts from the weights trained on D_f, against Retrain on the same mask
    # (the inherited-mask Retrain runs above serve as its reference side)
    "$PY" main_audit.py --mask "$MASK" --unlearn FT -N "$N" --save_dir "$ROOT/audit/class" \
        --run-args "${BASE[*]} $COMMON" --method-args "${FMNIST_ARGS[FT]}" --retrain-args "${FMNIST_ARGS[retrain]}" \
        ${FORGET[class]} --forget_seed 1
    "$PY" scripts/audit_figure.py "$ROOT"/audit/{class,random}/retrain_audit.json "$ROOT/audit/class/FT_audit.json" \
        --labels $'Retrain, inherited\nvs clean mask\n(class 1)' $'Retrain, inherited\nvs clean mask\n(random 270)' \
        $'FT vs Retrain\n(class 1,\npositive control)' --out "$ROOT/audit.png"
    "$PY" report.py "$ROOT/audit" --out "$ROOT/report_audit" --no-output-metrics
fi
echo "took $(( ($(date +%s) - start) / 60 )) min"
