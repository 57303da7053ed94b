#!/usr/bin/env bash
# The project stands alone: a clone with nothing beside it builds its whole
# test suite, and no file points outside the repository.
#
#   scripts/check-standalone.sh
#
# 1. git clone of this repository (its committed HEAD) into an empty temporary
#    directory: nothing named shared/ or anything else sits beside it;
# 2. scripts/check-links.py in the clone: Markdown links, include_str!/
#    include_bytes! paths and any mention of a sibling checkout stay inside the
#    repository and exist;
# 3. cargo test --release --locked --no-run in the clone: every test target
#    compiles from the clone's files alone. The clone builds into its own
#    target directory, seeded with a copy of this checkout's target/release so
#    the dependencies are not built a second time (the crate itself is, from
#    the clone's sources). Never this checkout's target/ itself: test binaries
#    built in the clone would carry the clone's CARGO_MANIFEST_DIR and replace
#    this checkout's, which then look for fixtures in a deleted directory.
# scripts/test.sh runs it as a stage; it works from any checkout.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  echo "check-standalone: note: uncommitted changes are not in the clone (it checks HEAD $(git rev-parse --short HEAD))"
fi
tmp=$(mktemp -d /tmp/salespulse-standalone.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
git clone -q --no-hardlinks "$root" "$tmp/salespulse"
echo "check-standalone: cloned HEAD $(git -C "$tmp/salespulse" rev-parse --short HEAD) into $tmp/salespulse; beside it: $(ls -A "$tmp" | tr '\n' ' ')"
python3 "$tmp/salespulse/scripts/check-links.py" "$tmp/salespulse"
mkdir -p "$tmp/target"
if [ -d "$root/target/release" ]; then
  t0=$(date +%s)
  cp -a --reflink=auto "$root/target/release" "$tmp/target/"
  echo "check-standalone: seeded the clone's target with $(du -sh "$tmp/target" | cut -f1) of built dependencies in $(( $(date +%s) - t0 )) s"
fi
(cd "$tmp/salespulse" && CARGO_TARGET_DIR="$tmp/target" cargo test --release --locked --no-run 2>&1 | tail -n 25)
echo "check-standalone: the clone's test suite compiles"
