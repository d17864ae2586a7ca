#!/usr/bin/env bash
# The GPU work issue 5 still owes, as steps that each fit one device call (<= 10 minutes).
#
#   device run:  bash benchmarks/gpu_session.sh tests        (gpu-marked tests, ~1 min)
#                bash benchmarks/gpu_session.sh bench-raster  (XL 24x24: ar, sjd, sjdpp-exact, jacobi)
#                bash benchmarks/gpu_session.sh bench-2d      (XL 24x24: ar, pjd, pjd-exact, zipar)
#                bash benchmarks/gpu_session.sh precision     (bf16 vs float32 law, exact presets)
#                bash benchmarks/gpu_session.sh bench-coupled (trained model 24x24: the coupled presets,
#                     gumbel-jacobi-above's window sweep; the issue-12 latency ratio on a GPU)
#                bash benchmarks/gpu_session.sh bench-lean    (issue 15 on a GPU, trained model 16x16: a
#                     window-16 pass against an AR step, the CUDA-graph step (--compile) and its
#                     warm-up, HF generate as the peer in a second run: the image may lack transformers)
#   smoke (CPU): SMOKE=1 bash benchmarks/gpu_session.sh all   (toy sizes; tests/test_gpu_session.py)
#
# Results land in $OUT (the device tool returns that folder): device.txt, <step>.json / .txt.
# The device image has PyTorch but no package index, so the package runs from the checkout
# (PYTHONPATH) with the image's own numpy / scipy / rich / safetensors / hypothesis.
set -euo pipefail
step=${1:?usage: gpu_session.sh tests|bench-raster|bench-2d|precision|bench-coupled|bench-lean|all}
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}
if [ "${SMOKE:-0}" = 1 ]; then
  model=llamagen-tiny grid=4 images=10 prec_images=10 ref=1 warm=0 dtype=float32 judge=float64 device=cpu
  trained_grid=4 sweep=4,16 threads=(--threads 1) lean_grid=4 compile=()
else
  model=llamagen-XL grid=24 images=10 prec_images=50 ref=2 warm=1 dtype=bfloat16 judge=float32 device=cuda
  trained_grid=24 sweep=64,128,256,576 threads=() lean_grid=16 compile=(--compile)
  nvidia-smi >"$OUT/device.txt" 2>&1 || true
fi
cli() { "$PY" -m jacobi_oracle.cli "$@"; }
bench() {  # $1: output name, $2: strategies
  cli bench --model "$model" --grid "$grid" --strategies "$2" --window 16 --cfg 4 --dtype "$dtype" \
    --images "$images" --warmup "$warm" --reference-images "$ref" --device "$device" --json >"$OUT/$1.json"
}
run_step() {
  case "$1" in
    tests) "$PY" -m pytest -q -m gpu -p no:cacheprovider tests/ >"$OUT/tests.txt" 2>&1 || true ;;
    bench-raster) bench bench-raster ar,sjd,sjdpp-exact,jacobi ;;
    bench-2d) bench bench-2d ar,pjd,pjd-exact,zipar ;;
    precision)
      cli precision --model "$model" --grid "$grid" --strategies ar,sjd,sjdpp-exact,pjd-exact --dtype "$dtype" \
        --judge-dtype "$judge" --images "$prec_images" --cfg 4 --device "$device" --json >"$OUT/precision.json" || true ;;
    bench-coupled)  # float32: the trained model's acceptance rates, as on the CPU table
      windows=$(echo "$sweep" | tr ',' '\n' | sed 's/^/gumbel-jacobi-above:/' | paste -sd, -)
      cli bench --model trained --grid "$trained_grid" --cfg 2 --images "$images" --warmup "$warm" \
        --strategies "ar,sjd,mc-sjd,scd-gumbel,gumbel-jacobi,$windows" --device "$device" "${threads[@]}" --json >"$OUT/bench-coupled.json" ;;
    bench-lean)
      lean=(--model trained --grid "$lean_grid" --cfg 2 --images "$images" --warmup "$warm" --device "$device" "${threads[@]}")
      cli bench "${lean[@]}" --strategies ar,sjd,mc-sjd-above,gumbel-jacobi-above:16,pjd-exact,pjd "${compile[@]}" \
        --json >"$OUT/bench-lean.json"
      cli bench "${lean[@]}" --strategies ar --peer hf --json >"$OUT/bench-lean-peer.json" 2>"$OUT/bench-lean-peer.txt" || true ;;
    *) echo "unknown step $1" >&2; exit 2 ;;
  esac
}
if [ "$step" = all ]; then
  for s in tests bench-raster bench-2d precision bench-coupled bench-lean; do run_step "$s"; done
else
  run_step "$step"
fi
ls "$OUT"
