#!/usr/bin/env bash
# The GPU check (issue 17): everything a first GPU run should show, in one go, about 6-8 minutes on one GPU,
# no network and no installs. A compact summary comes last; the exit code is 1 if any check failed.
#
#   bash benchmarks/gpu_check.sh                      # on a GPU machine
#   bash benchmarks/gpu_check.sh --device cpu --tiny  # the same checks on the CPU at tiny sizes (CI's smoke test)
#
# 1. the CUDA tests (tests/test_cuda.py, slow ones included, and the CUDA test of the ImageNet loader);
# 2. `mixup train --dataset cifar10 --model preact-resnet18 --device cuda --epochs 2` on synthetic CIFAR-10
#    files in the real format, in one process with torch's sync debug mode on, host syncs counted by line;
# 3. benchmarks/bench.py: ERM vs mixup steps and trainer vs reference loop, eager and with --compile,
#    at the same precision (the trainer's default), each throughput beside the FLOP limit;
# 4. a 2-process DDP run under torchrun (NCCL; skipped with fewer than 2 GPUs; gloo with --device cpu).
# Logs and JSON results stay in the folder printed at the start (--keep DIR to choose it). Each check has
# a time limit, and all of them together at most --budget seconds (default 540: within a 10-minute lease).
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
device=cuda tiny=0 work="" budget=540
while [ $# -gt 0 ]; do
    case "$1" in
        --device) device="$2"; shift 2 ;;
        --tiny) tiny=1; shift ;;
        --keep) work="$2"; shift 2 ;;
        --budget) budget="$2"; shift 2 ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument '$1' (--device cuda|cpu, --tiny, --keep DIR, --budget SECONDS)" >&2
           exit 2 ;;
    esac
done

# The project's venv where it exists (./run), else the machine's python3 (a GPU machine brings its own torch).
if [ -x "$repo/.venv/bin/python" ]; then py=("$repo/run" python); else py=(python3); fi
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
cd "$repo" || exit 1
work="${work:-$(mktemp -d -t gpu-check.XXXXXX)}"
mkdir -p "$work"
summary="$work/summary.txt"
: >"$summary"
tools() { "${py[@]}" benchmarks/check_tools.py "$@"; }

if [ "$tiny" = 1 ]; then  # seconds on the CPU: a small model, a few hundred images, one epoch
    model=small-cnn n_train=320 n_test=64 epochs=1 bench_size=(--smoke --batch-size 16 --eval-batch-size 64)
else
    model=preact-resnet18 n_train=50000 n_test=10000 epochs=2
    bench_size=(--batch-size 128 --repeats 3 --epochs 1 --steps 20 --workers 8)
fi

record() {  # record NAME STATUS SECONDS DETAIL: one summary line
    printf '%-14s %-4s %5ss  %s\n' "$1" "$2" "$3" "$4" >>"$summary"
}

check() {  # check NAME LIMIT DETAIL_FUNCTION COMMAND...: run COMMAND into NAME.log within LIMIT seconds
    local name=$1 limit=$2 detail=$3 start=$SECONDS status=PASS text
    shift 3
    # The whole check stays within its budget: a slow check shortens the next ones' limits, never the sum.
    local left=$((budget - (SECONDS - started)))
    if [ "$left" -lt 30 ]; then
        record "$name" FAIL 0 "not run: the ${budget}s budget is spent (--budget SECONDS for more)"
        return
    fi
    [ "$limit" -le "$left" ] || limit=$left
    echo "== $name: $*" >&2
    timeout "$limit" "$@" >"$work/$name.log" 2>&1
    local rc=$?
    [ $rc -eq 0 ] || status=FAIL
    text="$($detail "$name" 2>/dev/null)" || text=""
    [ $rc -eq 124 ] && text="timed out after ${limit}s; $text"
    [ $rc -ne 0 ] && text="${text:+$text; }exit $rc, see $work/$name.log: $(tail -n 1 "$work/$name.log")"
    [[ $status = PASS && $text = SKIP:* ]] && status=SKIP text="${text#SKIP: }"
    record "$name" "$status" $((SECONDS - start)) "$text"
}

pytest_detail() {  # pytest's last line; a run where every test was skipped (no GPU) is a SKIP
    local line
    line="$(tail -n 1 "$work/$1.log" | sed 's/^=* *//; s/ *=*$//')"
    case "$line" in *passed*|*failed*|*error*) echo "$line" ;; *) echo "SKIP: $line" ;; esac
}
train_detail() { tools summarize train "$work/$1.json"; }
bench_detail() { tools summarize bench "$work/$1.json"; }
ddp_detail() { tools summarize ddp "$work/ddp-run/summary.json"; }
bench=("${py[@]}" benchmarks/bench.py --dataset cifar10 --data-dir "$work/bench-data" --model "$model"
       --device "$device" --checkpoint-dir "$work" "${bench_size[@]}")

started=$SECONDS
echo "gpu_check: device $device$([ "$tiny" = 1 ] && echo ', tiny sizes'), logs in $work" >&2
tools synthetic "$work/data" "$n_train" "$n_test" "$work/bench-data" $((n_train * 2 / 5)) $((n_test * 2 / 5)) ||
    exit 1

check cuda-tests 200 pytest_detail "${py[@]}" -m pytest -q -p no:cacheprovider -m "slow or not slow" \
    tests/test_cuda.py tests/test_imagenet_loader.py -k cuda
check train 150 train_detail "${py[@]}" benchmarks/check_tools.py train-syncs "$work/train.json" -- \
    train --dataset cifar10 --model "$model" --device "$device" --epochs "$epochs" --data-dir "$work/data" \
    --out "$work/train-run"
check bench 150 bench_detail "${bench[@]}" --output "$work/bench.json"
if [ "$tiny" = 1 ] && [ "$device" = cpu ]; then
    record bench-compile SKIP 0 "--tiny on the CPU: inductor's C++ compile alone takes minutes here"
else
    check bench-compile 240 bench_detail "${bench[@]}" --compile default --output "$work/bench-compile.json"
fi
# Two processes under torchrun: NCCL on 2 GPUs, gloo on the CPU.
gpus=2
[ "$device" = cpu ] || gpus="$("${py[@]}" -c 'import torch; print(torch.cuda.device_count())' 2>/dev/null || echo 0)"
if [ "$gpus" -lt 2 ]; then
    record ddp SKIP 0 "needs 2 GPUs, found $gpus"
else
    check ddp 150 ddp_detail "${py[@]}" -m torch.distributed.run --standalone --nproc_per_node=2 -m mixup_cli \
        train --epochs 1 --device "$device" --dataset cifar10 --data-dir "$work/data" --model "$model" \
        --out "$work/ddp-run"
fi

echo
echo "== GPU check summary: device $device$([ "$tiny" = 1 ] && echo ' (tiny)'), $((SECONDS - started)) s, logs in $work"
cat "$summary"
! grep -q '^[^ ]* *FAIL' "$summary"
