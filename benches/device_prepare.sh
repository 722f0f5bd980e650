#!/bin/sh
# Prepares a device run (a GPU machine lent for minutes, same x86-64, no network, nothing
# built there): run here, in the repository root, at the commit to measure.
#
#   sh benches/device_prepare.sh [BASE]
#
# With BASE (a commit), also builds the bench at BASE into .bin/bench-base (in a worktree
# under /tmp, sharing this checkout's target folder), for `device_run.sh`'s `ab` step.
#
# Fills two ignored folders for the device call's `carry`:
#   .bin/  the bench example, the unit tests (`unit`) and the suite (`suite`), release
#          builds, and COMMIT (the short hash they were built at); with BASE, bench-base
#          and BASE (its short hash);
#   .gl/   the Vulkan loader and GL dispatch debs (the device has the NVIDIA driver but may
#          lack the loader), downloaded once.
# Then run `bash benches/device_run.sh NAME` there with carry [".bin", ".gl"].
set -eu
base=${1:-}
grep -qx '/.bin/' .git/info/exclude 2>/dev/null || echo /.bin/ >> .git/info/exclude
grep -qx '/.gl/' .git/info/exclude 2>/dev/null || echo /.gl/ >> .git/info/exclude
cargo build --release --example bench
rm -rf .bin && mkdir -p .bin
cp target/release/examples/bench .bin/bench
# The test binaries' paths, from cargo's JSON messages.
cargo test --release --no-run --message-format=json 2>/dev/null | python3 -c '
import json, shutil, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") != "compiler-artifact" or not m.get("executable"):
        continue
    if m["target"]["name"] == "suite":
        shutil.copy(m["executable"], ".bin/suite")
    elif m["profile"]["test"] and "lib" in m["target"]["kind"]:
        shutil.copy(m["executable"], ".bin/unit")
'
test -x .bin/suite && test -x .bin/unit
git rev-parse --short HEAD > .bin/COMMIT
if ! git diff --quiet HEAD -- src shaders examples; then
    echo "$(cat .bin/COMMIT)+dirty" > .bin/COMMIT
fi
if [ -n "$base" ]; then
    wt=/tmp/device-base-worktree
    git worktree remove --force "$wt" 2>/dev/null || rm -rf "$wt"
    git worktree add -f --detach "$wt" "$base"
    root=$PWD
    (cd "$wt" && CARGO_TARGET_DIR="$root/target/device-base" cargo build --release --example bench)
    cp target/device-base/release/examples/bench .bin/bench-base
    git -C "$wt" rev-parse --short HEAD > .bin/BASE
    git worktree remove --force "$wt"
fi
if ! ls .gl/libvulkan1_*.deb >/dev/null 2>&1; then
    mkdir -p .gl /tmp/amd64/partial
    o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
    apt-get $o update
    (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
fi
du -sh .bin .gl
echo "built at $(cat .bin/COMMIT)${base:+, base $(cat .bin/BASE)}; carry [\".bin\", \".gl\"]"
