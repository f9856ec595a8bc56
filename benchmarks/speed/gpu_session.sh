#!/bin/sh
# The GPU checks of the speed benchmarks as one command for a lent device machine, whose image
# has torch but lacks omegaconf / antlr4 and any MNIST-layout data.
#
#   here (once):   sh benchmarks/speed/gpu_session.sh prepare
#                  fills the git-ignored .devsite/ (omegaconf, antlr4 from this Python) and
#                  .devdata/ (Fashion-MNIST IDX files from the Debian package: same size as MNIST)
#   there:         sh benchmarks/speed/gpu_session.sh run OUT_DIR [mfcf override ...]
#                  with carry [".devsite", ".devdata"]; installs mfcf without dependencies, times
#                  the step variants (eager, compiled, reduce-overhead) and runs the paper's
#                  402-epoch MNIST protocol through `mfcf train` with the overrides (for example
#                  trainer.compile=default), then copies its metrics and evaluation to OUT_DIR.
#
# PROTOCOL_TIMEOUT (default 420 s) and VARIANTS (default eager-fp32,compile-fp32,reduce-overhead-fp32)
# size the run; keep the whole command inside the device's 600-second limit.
set -eu
cd "$(dirname "$0")/../.."

case "${1:-}" in
prepare)
    site=$(python3 -c "import omegaconf, os; print(os.path.dirname(os.path.dirname(omegaconf.__file__)))")
    mkdir -p .devsite .devdata
    cp -r "$site/omegaconf" "$site/antlr4" .devsite/
    cp /usr/share/datasets/fashion-mnist/*-ubyte.gz .devdata/
    for d in /.devsite/ /.devdata/; do
        grep -qx "$d" .git/info/exclude || echo "$d" >> .git/info/exclude
    done
    du -sh .devsite .devdata
    ;;
run)
    out=${2:?usage: gpu_session.sh run OUT_DIR [override ...]}
    shift 2
    export PYTHONPATH="$PWD/.devsite" PYTHONUNBUFFERED=1
    python3 -m pip install -q --no-deps --no-build-isolation --no-index -e .
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.txt" || true
    python3 benchmarks/speed/gpu.py --variants "${VARIANTS:-eager-fp32,compile-fp32,reduce-overhead-fp32}" \
        --protocol-root .devdata --protocol-timeout "${PROTOCOL_TIMEOUT:-420}" \
        --protocol-run-dir /tmp/mfcf-gpu-protocol --protocol-overrides "$@" --json "$out/gpu.json"
    for f in metrics.csv run.json eval-test.json; do
        if [ -f "/tmp/mfcf-gpu-protocol/$f" ]; then cp "/tmp/mfcf-gpu-protocol/$f" "$out/protocol-$f"; fi
    done
    ;;
*)
    echo "usage: sh benchmarks/speed/gpu_session.sh prepare | run OUT_DIR [override ...]" >&2
    exit 2
    ;;
esac
