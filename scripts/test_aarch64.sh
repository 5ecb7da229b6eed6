#!/usr/bin/env bash
# Cross-compiles strata-core for aarch64 Linux and runs its library tests
# (by default those under `kernels`, which compare every available
# instruction set, NEON included, with naive references) under qemu-user.
#
#   scripts/test_aarch64.sh [FILTER] [ARGS FOR THE TEST BINARY...]
#
# FILTER defaults to `kernels`; `""` runs every library test (about twice
# the emulated time). The environment passes through: `STRATA_ISA=none`
# tests the scalar paths, `CARGO_TARGET_DIR` chooses the build directory.
#
# Needs (Debian names): the rustup target aarch64-unknown-linux-gnu,
# qemu-user, gcc-aarch64-linux-gnu and libc6-dev-arm64-cross. Exits 2 when
# one is missing, 1 when a test fails. Emulated timings say nothing about
# ARM hardware.
set -euo pipefail
cd "$(dirname "$0")/.."

target=aarch64-unknown-linux-gnu
sysroot=${AARCH64_SYSROOT:-/usr/aarch64-linux-gnu}
filter=${1-kernels}
shift || true

missing=()
if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    missing+=("rust target $target (rustup target add $target)")
fi
command -v qemu-aarch64 >/dev/null || missing+=("qemu-aarch64 (apt-get install qemu-user)")
command -v aarch64-linux-gnu-gcc >/dev/null ||
    missing+=("aarch64-linux-gnu-gcc (apt-get install gcc-aarch64-linux-gnu)")
[ -e "$sysroot/lib/ld-linux-aarch64.so.1" ] ||
    missing+=("aarch64 glibc in $sysroot (apt-get install libc6-dev-arm64-cross)")
if [ ${#missing[@]} -gt 0 ]; then
    echo "test_aarch64: cannot cross-test, missing:" >&2
    printf '  - %s\n' "${missing[@]}" >&2
    exit 2
fi

# Environment rather than .cargo/config.toml: other machines keep their
# own linker and runner (or none) for this target.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L $sysroot"

start=$(date +%s)
status=0
cargo test -p strata-core --release --target "$target" --lib -- "$filter" "$@" || status=$?
echo "test_aarch64: ${target} tests matching '${filter}' under qemu:" \
    "$([ $status -eq 0 ] && echo passed || echo FAILED)" \
    "in $(( $(date +%s) - start )) s (build included)"
[ $status -eq 0 ] || exit 1
