#!/usr/bin/env bash
# The per-example audit of forgetting (main_audit.py) on digits and on the Fashion-MNIST setting:
# dense and OMP 95%, class-wise and random forgetting, N unlearning runs of each method against the
# same N Retrain runs of the cell. Resumable: a rerun reuses every finished run and continues an
# interrupted one. Each cell's folder is $ROOT/{digits,fashionmnist}/{dense,sparse}/{class,random}.
# Usage: scripts/audit.sh [PYTHON] [ROOT] [N_DIGITS] [N_FMNIST]   (defaults: python3 runs/audit 10 6)
#   AUDIT_JOBS     runs at once (default 2, one core each)
#   AUDIT_METHODS  the methods of the digits-paper and Fashion-MNIST parts (default "FT GA wfisher FT_prune";
#                  a later method takes the demo's arguments on Fashion-MNIST too, as in make fashionmnist)
#   AUDIT_PARTS    which parts, in this order (default all of them):
#                  digits-paper fmnist-random fmnist-class digits-newer
#   AUDIT_DIGITS_SCENARIOS  the digits parts' forget sets (default "class random")
# Digits: masks trained here as the demo trains them; the methods take the demo's arguments.
# Fashion-MNIST: the masks of `make fashionmnist` (FMNIST_ROOT, default runs/fashionmnist) and its
# methods' arguments (scripts/fashionmnist_settings.sh). Then report.py writes $ROOT/report.md.
set -euo pipefail
PY=${1:-python3}
ROOT=${2:-runs/audit}
N_DIGITS=${3:-10}
N_FMNIST=${4:-6}
JOBS=${AUDIT_JOBS:-2}
PARTS=${AUDIT_PARTS:-digits-paper,fmnist-random,fmnist-class,digits-newer}
FMNIST_ROOT=${FMNIST_ROOT:-runs/fashionmnist}
DATA=${FMNIST_DATA:-./data}
read -r -a DIGITS_SCENARIOS <<< "${AUDIT_DIGITS_SCENARIOS:-class random}"
read -r -a AUDITED <<< "${AUDIT_METHODS:-FT GA wfisher FT_prune}"
NEWER=(RL SalUn SCRUB NegGrad+ SSD)

declare -A DEMO_ARGS=()
while read -r method arguments; do DEMO_ARGS[$method]=$arguments; done < <("$PY" scripts/method_args.py demo)
# shellcheck source=scripts/fashionmnist_settings.sh
source "$(dirname "$0")/fashionmnist_settings.sh"

# audit DATASET MODEL SCENARIO N MASK RUN_ARGS RETRAIN_ARGS FORGET_FLAGS METHOD=ARGS...
audit() {
    local dataset=$1 model=$2 scenario=$3 n=$4 mask=$5 run_args=$6 retrain_args=$7 forget=$8
    shift 8
    local dir="$ROOT/$dataset/$model/$scenario" entry
    for entry in "$@"; do
        # shellcheck disable=SC2086
        "$PY" -u main_audit.py --mask "$mask" --unlearn "${entry%%=*}" -N "$n" --jobs "$JOBS" --save_dir "$dir" \
            --run-args "$run_args" --method-args "${entry#*=}" --retrain-args "$retrain_args" $forget \
            | grep -E "^(method_vs_retrain|noise_floor|runs) " | sed "s|^|[$dataset $model $scenario ${entry%%=*}] |"
    done
}

digits() {  # digits METHODS: the audited methods or the newer ones, dense and sparse, each digits scenario
    local -n methods=$1
    local entries=() method model scenario
    local -A forget=([class]="--class_to_replace 0" [random]="--class_to_replace -1 --num_indexes_to_replace 129")
    for method in "${methods[@]}"; do entries+=("$method=${DEMO_ARGS[$method]}"); done
    for model in dense:0 sparse:1; do
        for scenario in "${DIGITS_SCENARIOS[@]}"; do
            [ -n "${forget[$scenario]:-}" ] || { echo "unknown scenario '$scenario' in AUDIT_DIGITS_SCENARIOS"; exit 2; }
            audit digits "${model%%:*}" "$scenario" "$N_DIGITS" "$ROOT/digits/omp/${model##*:}model_SA_best.pth.tar" \
                "--dataset digits --arch resnet20s --no-progress --batch_size 128" "${DEMO_ARGS[retrain]}" \
                "${forget[$scenario]}" "${entries[@]}"
        done
    done
}

fmnist() {  # fmnist SCENARIO: the audited methods (AUDIT_METHODS), dense and 95% sparse
    local scenario=$1 forget entries=() method model
    [ "$scenario" = class ] && forget="--class_to_replace $CLASS" \
        || forget="--class_to_replace -1 --num_indexes_to_replace $RANDOM_COUNT"
    for method in "${AUDITED[@]}"; do entries+=("$method=${FMNIST_ARGS[$method]:-${DEMO_ARGS[$method]}}"); done
    for model in dense:0 sparse:1; do
        # trial 1's masks (make fashionmnist trains one model per trial); older single-model runs lack train_seed1
        local mask="$FMNIST_ROOT/fashionmnist_resnet20s/prune_r0.95/train_seed1/${model##*:}model_SA_best.pth.tar"
        if [ ! -f "$mask" ]; then
            echo "skipping Fashion-MNIST: $mask is missing; run 'make fashionmnist' first (its first stage makes it)"
            return 0
        fi
        audit fashionmnist "${model%%:*}" "$scenario" "$N_FMNIST" "$mask" \
            "--dataset fashionmnist --arch resnet20s --data $DATA $COMMON" "${FMNIST_ARGS[retrain]}" "$forget" \
            "${entries[@]}"
    done
}

start=$(date +%s)
mkdir -p "$ROOT/digits"
# the demo's digits models: dense + OMP 95% (a finished or interrupted run is reused)
resume=$(compgen -G "$ROOT/digits/omp/[0-9]checkpoint.pth.tar" > /dev/null && echo --resume || true)
# shellcheck disable=SC2086
"$PY" -u main_imp.py --dataset digits --arch resnet20s --no-progress --epochs 30 --lr 0.05 --decreasing_lr 20,25 \
    --batch_size 128 --prune_type rewind_lt --rewind_epoch 3 --rate 0.95 --pruning_times 2 \
    --save_dir "$ROOT/digits/omp" $resume > "$ROOT/digits/omp.log" 2>&1 || { cat "$ROOT/digits/omp.log"; exit 1; }
for part in ${PARTS//,/ }; do
    case $part in
        digits-paper) digits AUDITED ;;
        digits-newer) digits NEWER ;;
        fmnist-random) fmnist random ;;
        fmnist-class) fmnist class ;;
        *) echo "unknown part '$part' in AUDIT_PARTS; give digits-paper, fmnist-random, fmnist-class, digits-newer"
           exit 2 ;;
    esac
done
echo "audit took $(( ($(date +%s) - start) / 60 )) min"
"$PY" report.py "$ROOT" --out "$ROOT" --no-output-metrics
