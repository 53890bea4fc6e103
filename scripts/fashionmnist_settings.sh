# The Fashion-MNIST setting at CPU scale, sourced by scripts/fashionmnist.sh and scripts/audit.sh:
# a resnet20s on a stratified 3,000-image subset of the official training set, without augmentation.
# Expects DATA (the --data folder) to be set.
SUBSET=3000
CLASS=1            # class-wise forgetting: trouser
RANDOM_COUNT=270   # random forgetting: 10% of D (2,700 images after the validation split)
# Training (dense, every OMP round, Retrain): 25 epochs, lr 0.1 divided by 10 at epochs 15 and 20,
# no augmentation. The unlearning methods see D without augmentation too (as FF and IU must).
TRAIN="--epochs 25 --decreasing_lr 15,20 --rewind_epoch 3 --no-aug"
COMMON="--train_subset $SUBSET --no-aug --no-progress"
# The paper's six methods, tuned for this setting (docs/fashionmnist.md).
declare -A FMNIST_ARGS=(
    [retrain]="--unlearn_epochs 25 --unlearn_lr 0.1 --decreasing_lr 15,20"
    [FT]="--unlearn_epochs 10 --unlearn_lr 0.01 --batch_size ${FT_BATCH:-32}"
    [GA]="--unlearn_epochs 5 --unlearn_lr 0.0001"
    [fisher_new]="--alpha ${ALPHA_FF:-1e-7}"
    [wfisher]="--alpha ${ALPHA_IU:-1}"
    [FT_prune]="--unlearn_epochs 10 --unlearn_lr 0.01 --batch_size ${FT_BATCH:-32} --alpha ${ALPHA_L1:-5e-4}"
)
