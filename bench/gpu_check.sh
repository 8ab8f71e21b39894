#!/bin/sh
# The GPU check of issue #16, one command: for the Zeroscope "card" and "fast" presets and LTX
# distilled (each with MusicGen; Zeroscope with FILM), random weights at the real sizes, it
# measures seconds per stage, peak GPU memory and airtime per wall second (bf16, two runs of
# the chain, the second reported: the first warms the kernels). About 6-8 minutes on one
# H100/H200, most of it building the random models.
#
#     bench/gpu_check.sh            # on the GPU machine; results in $OUT (default bench-gpu/)
#     bench/gpu_check.sh --tiny     # the same on the tests' tiny models on the CPU (checks the script)
#
# Measured utilisation = the FLOP estimate (python -m bench.models_bench --flops --preset NAME,
# see BENCHMARKS.md) / (measured chain seconds x 790 TFLOP/s).
set -eu
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-bench-gpu}
mkdir -p "$OUT"
if [ "${1:-}" = "--tiny" ]; then
    export OMP_NUM_THREADS=1  # tiny models gain nothing from threads on a busy CPU
    flags="--tiny --device cpu --size 32x24 --upscale-size 64x40 --seconds 1 --fps 8 --repeat 1"
else
    flags="--dtype bf16 --repeat 2"
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | tee "$OUT/gpu.txt" || true
for preset in card fast ltx-distilled; do
    echo "== $preset"
    # shellcheck disable=SC2086  # $flags is a list of words
    timeout 300 "$PY" -m bench.models_bench --random-weights --preset "$preset" $flags \
        --json "$OUT/$preset.json" >"$OUT/$preset.log" 2>&1 || echo "$preset: failed, see $OUT/$preset.log"
    grep -E "^  [a-z]|^chain|parameters|built in" "$OUT/$preset.log" || tail -5 "$OUT/$preset.log"
done
