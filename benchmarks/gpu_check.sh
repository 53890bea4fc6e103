#!/usr/bin/env bash
# One prepared check for a machine with a GPU, sized for about 10 minutes on one H200 (resumable: a
# rerun skips the finished sweep runs). Three stages, then one results file:
#   1. benchmarks/bench.py on the device: resnet18 training img/s on CIFAR-shaped data, bf16 +
#      channels-last against --fp32, each with and without --compile; every method's wall time (bf16);
#      FF's and IU's vectorised statistics against their loops.
#   2. CPU/GPU agreement on digits in float32 (--fp32): one mask file trained and pruned on the CPU,
#      then FT and FF (whose accumulator is the vectorised one on a GPU, the loop on a CPU) from it on
#      the CPU and on the device, and FT in bf16 on the device; each device run must use the CPU run's
#      forget set and mask and match its accuracies within 3 points or 3 samples on every subset.
#   3. The Fashion-MNIST reproduction at full size (all 60,000 training images): the paper's six
#      methods, dense and 95% sparse, class-wise and random forgetting, one trial (scripts/sweep.py with
#      scripts/fashionmnist_settings.sh's training and method settings), and its report.
# It writes benchmarks/results_gpu_<card>.json (the card's name from torch.cuda.get_device_name; with
# TINY=1 the file goes to $OUT instead).
# Usage: benchmarks/gpu_check.sh [PYTHON] [FASHION_MNIST_DATA]   (no network needed; default data:
#        Debian's /usr/share/datasets/fashion-mnist)
#   DEVICE=cuda (default), cuda:N or cpu;  TINY=1: tiny sizes, a dry run of every stage on a CPU
#   (DEVICE=cpu TINY=1 bash benchmarks/gpu_check.sh: 18 min on 2 cores);  OUT: work folder (runs/gpu_check);
#   JOBS: sweep runs at once on the device (default 4; 1 when TINY=1).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
DATA=${2:-${FMNIST_DATA:-/usr/share/datasets/fashion-mnist}}
DEVICE=${DEVICE:-cuda}
TINY=${TINY:-0}
OUT=${OUT:-runs/gpu_check}
[[ $TINY == 1 ]] && JOBS=${JOBS:-1} || JOBS=${JOBS:-4}
mkdir -p "$OUT"
began=$(date +%s)
stage_start=$began
done_stage() {  # record the seconds since the last call under the stage's name
    local now
    now=$(date +%s)
    "$PY" benchmarks/gpu_check.py stage --dir "$OUT" "$1" $((now - stage_start))
    echo "== $1: $((now - stage_start)) s (total $((now - began)) s)"
    stage_start=$now
}

# 1. benchmarks
if [[ $TINY == 1 ]]; then
    BENCH=(--arch resnet20s --image_size 8 --images 256 --unlearn_arch resnet20s --unlearn_images 120 --ff_iu_samples 80)
else
    BENCH=(--arch resnet18 --images 20000 --unlearn_arch resnet18 --unlearn_images 5000 --ff_iu_samples 256)
fi
bench() { "$PY" benchmarks/bench.py --device "$DEVICE" "${BENCH[@]}" "$@"; }
bench --parts train,unlearn,ff_iu --json "$OUT/bench_bf16.json"
bench --parts train --fp32 --json "$OUT/bench_fp32.json"
bench --parts train --compile --json "$OUT/bench_bf16_compile.json"
[[ $TINY == 1 ]] || bench --parts train --fp32 --compile --json "$OUT/bench_fp32_compile.json"  # the dry run compiles once
done_stage benchmarks

# 2. CPU/device agreement on digits
AG="$OUT/agreement"
DIGITS=(--dataset digits --arch resnet20s --no-progress --batch_size 128)
if [[ $TINY == 1 ]]; then
    EPOCHS=3 NUM_FORGET=54 SUBSET_ARGS=(--train_subset 600)
else
    EPOCHS=10 NUM_FORGET=129 SUBSET_ARGS=()  # all 1,437 digits: D = 1,298, 10% of it forgotten
fi
DIGITS+=("${SUBSET_ARGS[@]}")
if [[ ! -f "$AG/omp/1model_SA_best.pth.tar" ]]; then
    rm -rf "$AG/omp"
    "$PY" main_imp.py "${DIGITS[@]}" --device cpu --fp32 --epochs "$EPOCHS" --lr 0.05 --decreasing_lr "$((EPOCHS - 1))" \
        --rewind_epoch 1 --rate 0.8 --pruning_times 2 --save_dir "$AG/omp" > "$AG.prune.log" 2>&1 \
        || { cat "$AG.prune.log"; exit 1; }
fi
FORGET=(--class_to_replace -1 --num_indexes_to_replace "$NUM_FORGET")
"$PY" benchmarks/gpu_check.py sizes --num_forget "$NUM_FORGET" "${SUBSET_ARGS[@]}" --json "$AG/sizes.json"
declare -A AG_ARGS=([FT]="--unlearn_epochs 2 --unlearn_lr 0.01" [fisher_new]="--alpha 1e-7 --no-aug")
unlearn_on() {  # method device folder extra...: one unlearning run from the CPU's mask file (reused if done)
    local method=$1 device=$2 dir=$3
    shift 3
    [[ -f "$dir/${method}_eval.json" ]] && return 0
    rm -rf "$dir"
    # shellcheck disable=SC2086
    "$PY" main_forget.py "${DIGITS[@]}" --device "$device" --mask "$AG/omp/1model_SA_best.pth.tar" \
        --unlearn "$method" ${AG_ARGS[$method]} "${FORGET[@]}" --save_dir "$dir" "$@" > "$dir.log" 2>&1 \
        || { cat "$dir.log"; exit 1; }
}
disagreements=0
agree() {  # name first second
    "$PY" benchmarks/gpu_check.py agree "$2" "$3" --sizes "$AG/sizes.json" --json "$OUT/agree_$1.json" \
        || disagreements=$((disagreements + 1))
}
for method in FT fisher_new; do
    unlearn_on "$method" cpu "$AG/${method}_cpu_fp32" --fp32
    unlearn_on "$method" "$DEVICE" "$AG/${method}_device_fp32" --fp32
    agree "${method}_fp32" "$AG/${method}_cpu_fp32/${method}_eval.json" "$AG/${method}_device_fp32/${method}_eval.json"
done
unlearn_on FT "$DEVICE" "$AG/FT_device_bf16"
agree FT_bf16 "$AG/FT_cpu_fp32/FT_eval.json" "$AG/FT_device_bf16/FT_eval.json"
done_stage agreement

# 3. Fashion-MNIST at full size: the paper's six methods, dense and 95%, class-wise and random, one trial
# shellcheck source=scripts/fashionmnist_settings.sh
source scripts/fashionmnist_settings.sh
METHODS=retrain,FT,GA,fisher_new,wfisher,FT_prune
if [[ $TINY == 1 ]]; then  # 600 images, 2 epochs, one epoch per iterative method, two methods
    METHODS=retrain,FT  # enough to run every step of the stage (training, sweep, report) in the dry run
    SIZE=(--train_subset 600)
    TRAIN="--epochs 2 --decreasing_lr 1 --rewind_epoch 1 --no-aug"
    for method in ${METHODS//,/ }; do FMNIST_ARGS[$method]="${FMNIST_ARGS[$method]} --unlearn_epochs 1"; done
    RANDOM_COUNT=54  # 10% of D
else
    SIZE=()
    RANDOM_COUNT=5400  # 10% of D: 54,000 images after the validation split
fi
WORKERS=$(printf '0,%.0s' $(seq "$JOBS"))
FM="$OUT/fashionmnist"
SWEEP=(
    --dataset fashionmnist --arch resnet20s --data "$DATA" --root "$FM" --forget-class "$CLASS"
    --random-count "$RANDOM_COUNT" --rates 0,0.95 --scenarios class,random --methods "$METHODS" --trials 1
    --extra-prune-args "${SIZE[*]} --no-progress --device $DEVICE $TRAIN"
    --extra-unlearn-args "${SIZE[*]} --no-aug --no-progress --device $DEVICE"
    --gpus "${WORKERS%,}"
)
for method in ${METHODS//,/ }; do SWEEP+=(--method-args "$method=${FMNIST_ARGS[$method]}"); done
"$PY" scripts/sweep.py --stage all "${SWEEP[@]}"
RUNS="$FM/fashionmnist_resnet20s/unlearn"
"$PY" report.py "$RUNS"/{class,random}/r{0,0.95} --out "$FM/report" --expect-methods ${METHODS//,/ } \
    --expect-seeds 1 > "$FM/report.log" 2>&1 || { cat "$FM/report.log"; exit 1; }
done_stage fashionmnist

collect=(--dir "$OUT" --device "$DEVICE")
[[ $TINY == 1 ]] && collect+=(--tiny --json-dir "$OUT")  # a dry run's numbers stay out of benchmarks/
"$PY" benchmarks/gpu_check.py collect "${collect[@]}"
echo "gpu_check took $(( $(date +%s) - began )) s; $disagreements agreement check(s) failed"
exit $(( disagreements > 0 ))
