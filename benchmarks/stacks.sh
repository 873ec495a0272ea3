#!/usr/bin/env bash
# The default pipeline (configs/penguin.yaml) cold (empty workdir) and cached (the same workdir again, nothing
# changed) on both stacks, one after the other in one run on this machine, as a Markdown table:
#   current: TFX 1.16 / Python 3.10 from CURRENT_BIN (default .venv/bin, i.e. `make venv STACK=current`)
#   modern:  TFX 1.21 / Python 3.13 in the Debian 13 root (scripts/modern_stack.sh; as root)
# Each figure is the wall time of the whole `tfxpipe run`, interpreter start and imports included.
set -euo pipefail
cd "$(dirname "$0")/.."
CURRENT_BIN="${CURRENT_BIN:-.venv/bin}"
CONFIG="${CONFIG:-configs/penguin.yaml}"
OUT=.stack/bench
rm -rf "$OUT" && mkdir -p "$OUT"
scripts/modern_stack.sh venv  # build/install outside the timings

seconds() {  # seconds LABEL CMD...: runs CMD, logs to $OUT/LABEL.log, prints its wall time
    local label=$1; shift
    local start; start=$(date +%s%N)
    "$@" > "$OUT/$label.log" 2>&1 || { echo "benchmarks/stacks.sh: $label failed, see $OUT/$label.log" >&2; exit 1; }
    awk -v s="$start" -v e="$(date +%s%N)" 'BEGIN { printf "%.1f\n", (e - s) / 1e9 }'
}
current() { PYTHONPATH="$PWD" "$CURRENT_BIN/tfxpipe" run --config "$CONFIG" --workdir "$OUT/current"; }
modern() { scripts/modern_stack.sh run tfxpipe run --config "$CONFIG" --workdir "$OUT/modern"; }

current_cold=$(seconds current-cold current); current_cached=$(seconds current-cached current)
modern_cold=$(seconds modern-cold modern); modern_cached=$(seconds modern-cached modern)
version() { grep -hoE "^$1==[^ ]+" "$2" | cut -d= -f3; }
echo "| stack | Python | TFX / TF | cold run (s) | cached re-run (s) |"
echo "|---|---|---|---|---|"
echo "| current | $("$CURRENT_BIN/python" -c 'import platform; print(platform.python_version())') |" \
     "$(version tfx requirements/lock.txt) / $(version tensorflow requirements/lock.txt) | $current_cold | $current_cached |"
echo "| modern (Debian 13 root) | $(scripts/modern_stack.sh run python -c 'import platform; print(platform.python_version())' 2>/dev/null) |" \
     "$(version tfx requirements/lock-modern.txt) / $(version tensorflow requirements/lock-modern.txt) | $modern_cold | $modern_cached |"

# Cross-stack serving: each stack's `tfxpipe serve-check` serves the model the other stack exported and
# queries it over REST and gRPC (the SavedModel format is the contract between them).
echo
if PYTHONPATH="$PWD" "$CURRENT_BIN/tfxpipe" serve-check --config "$CONFIG" --workdir "$OUT/modern" > "$OUT/cross-current-serves-modern.log" 2>&1; then
    echo "- current stack serves the model the modern stack exported: $(grep -E "^  (REST|gRPC)" "$OUT/cross-current-serves-modern.log" | tr -s " " | paste -sd";")"
else echo "- current stack serving the modern model FAILED: see $OUT/cross-current-serves-modern.log"; fi
if scripts/modern_stack.sh run tfxpipe serve-check --config "$CONFIG" --workdir "$OUT/current" > "$OUT/cross-modern-serves-current.log" 2>&1; then
    echo "- modern stack serves the model the current stack exported: $(grep -E "^  (REST|gRPC)" "$OUT/cross-modern-serves-current.log" | tr -s " " | paste -sd";")"
else echo "- modern stack serving the current model FAILED: see $OUT/cross-modern-serves-current.log"; fi
