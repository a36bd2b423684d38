#!/usr/bin/env bash
# Fuzzes the frame reader and decoder (`frames`) and the query parser and compiler (`query`) with cargo-fuzz,
# each for FUZZ_SECONDS (default 60), on the stable toolchain: RUSTC_BOOTSTRAP lets cargo-fuzz pass its
# -Z flags, and `-s none` builds without a sanitizer (ours is safe Rust; panics are what we look for).
# New inputs go to fuzz/corpus/<target> (kept between runs, not in git); fuzz/seeds/<target> starts it.
# A failure leaves its input in fuzz/artifacts/<target>/ and exits non-zero; replay it with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run -s none <target> fuzz/artifacts/<target>/<file>
# Usage: scripts/fuzz.sh [target...]
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-60}
targets=("$@")
((${#targets[@]})) || targets=(frames query)

cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1

for target in "${targets[@]}"; do
  echo "== fuzz $target for ${seconds}s"
  mkdir -p "fuzz/corpus/$target"
  dict=()
  [[ -f "fuzz/$target.dict" ]] && dict=("-dict=fuzz/$target.dict")
  # One job on one core: the machine is shared. -max_len covers a few frames or a long query.
  cargo fuzz run -s none "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
    -max_total_time="$seconds" -max_len=4096 -timeout=10 -print_final_stats=1 "${dict[@]}"
done
