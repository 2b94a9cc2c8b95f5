#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz, libFuzzer) of every target in fuzz/,
# each from its checked-in corpus for SECONDS (default 20), in a debug
# build with coverage instrumentation. New inputs go to a temporary
# directory, not to the corpus; a crash leaves its input under
# fuzz/artifacts/<target>/ and fails the script.
#
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]
#
# cargo-fuzz needs a nightly compiler: RUSTC_BOOTSTRAP=1 lets the stable
# one build it. The instrumented build is a second build of DataFusion
# (about 10 minutes on two cores the first time), kept in its own target
# directory.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-20}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(ticket command flight_data config sql)

command -v cargo-fuzz >/dev/null 2>&1 \
  || cargo install cargo-fuzz --locked --version 0.13.2 --quiet
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${SPAR_FUZZ_TARGET_DIR:-$HOME/.cache/spar-fuzz-target}"
# Incremental state would double the directory; the build is rarely edited.
export CARGO_INCREMENTAL=0

cargo fuzz build --dev
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for target in "${targets[@]}"; do
  mkdir -p "$scratch/$target"
  echo "== cargo fuzz run $target (${seconds} s)"
  log="$scratch/$target.log"
  if ! cargo fuzz run --dev "$target" "$scratch/$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -seed=1 >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz target $target failed: its input is under fuzz/artifacts/$target/"
    exit 1
  fi
  grep -E "^Done [0-9]+ runs" "$log"
done
echo "fuzz: ${#targets[@]} passed, 0 failed"
