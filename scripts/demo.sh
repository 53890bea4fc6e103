#!/usr/bin/env bash
# The main job end to end on the embedded digits data: train dense + OMP 95%, unlearn with the
# paper's six methods (DEMO_METHODS=all: every method with demo arguments in its registry entry;
# class-wise forgetting of class 0 and random 10% forgetting) from both checkpoints, evaluate, and
# print the Table-1-style report. Every log stays inside OUT_DIR.
# Usage: scripts/demo.sh [PYTHON] [OUT_DIR] [TRIALS]   (TRIALS: how many, default 1; or DEMO_TRIALS)
# Trial k is an independent repetition: it trains and prunes its own model with --seed k and unlearns
# that model with --seed k, so the report's spread and intervals are over trained models.
# Digits is tiny (11 batches of 128 per epoch), so the fine-tuning methods use batches of 32 to
# take about as many steps as the paper's CIFAR-10 runs take per epoch.
set -euo pipefail
PY=${1:-python3}
OUT=${2:-runs/demo}
TRIALS=${3:-${DEMO_TRIALS:-1}}
[[ "$TRIALS" =~ ^[1-9][0-9]*$ ]] || { echo "TRIALS=$TRIALS: give a whole number of trials >= 1" >&2; exit 2; }
ARCH=${DEMO_ARCH:-resnet20s}
COMMON=(--dataset digits --arch "$ARCH" --no-progress)

# resume (or reuse) what an earlier, interrupted or finished demo left in $OUT
resume_if() { compgen -G "$1" > /dev/null && echo --resume || true; }

# Each method's demo arguments live in its registry entry (unlearn/*.py, demo_args).
WHICH=${DEMO_METHODS:-paper}
case "$WHICH" in
    paper) TABLE=$("$PY" scripts/method_args.py demo paper) ;;
    all) TABLE=$("$PY" scripts/method_args.py demo) ;;
    *) echo "DEMO_METHODS=$WHICH: give paper (the paper's six methods, the default) or all" >&2; exit 2 ;;
esac
METHODS=()
declare -A METHOD_ARGS=()
while read -r method arguments; do METHODS+=("$method"); METHOD_ARGS[$method]=$arguments; done <<< "$TABLE"

mkdir -p "$OUT"
for trial in $(seq 1 "$TRIALS"); do
    omp="$OUT/omp/trial$trial"
    # shellcheck disable=SC2046
    "$PY" -u main_imp.py "${COMMON[@]}" --epochs 30 --lr 0.05 --decreasing_lr 20,25 --batch_size 128 \
        --prune_type rewind_lt --rewind_epoch 3 --rate 0.95 --pruning_times 2 --seed "$trial" --save_dir "$omp" \
        $(resume_if "$omp/[0-9]checkpoint.pth.tar") > "$OUT/prune_trial$trial.log" 2>&1 \
        || { cat "$OUT/prune_trial$trial.log"; exit 1; }
    grep -E "^round [0-9]+:" "$OUT/prune_trial$trial.log" | sed "s/^/[trial $trial] /"
done

declare -A SCENARIO_ARGS=(
    [class]="--class_to_replace 0"
    [random]="--class_to_replace -1 --num_indexes_to_replace 129"
)
for trial in $(seq 1 "$TRIALS"); do
  for model in dense:0 sparse:1; do
    for scenario in class random; do
      for method in "${METHODS[@]}"; do
        dir="$OUT/unlearn/${model%%:*}/$scenario/$method/trial$trial"
        # a finished run is reused by --resume only if it is the same experiment (else it exits 2, naming why)
        mkdir -p "$dir"
        # shellcheck disable=SC2086
        "$PY" -u main_forget.py "${COMMON[@]}" --mask "$OUT/omp/trial$trial/${model##*:}model_SA_best.pth.tar" \
            --unlearn "$method" --seed "$trial" --save_dir "$dir" --batch_size 128 \
            ${SCENARIO_ARGS[$scenario]} ${METHOD_ARGS[$method]} $(resume_if "$dir/${method}[_c]*.pth.tar") \
            > "$dir/log.txt" 2>&1 \
            || { cat "$dir/log.txt"; exit 1; }
        echo "[${model%%:*} $scenario trial $trial] $(tail -n 1 "$dir/log.txt")"
      done
    done
  done
done
"$PY" report.py "$OUT/unlearn" --out "$OUT"
