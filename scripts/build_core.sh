#!/usr/bin/env bash
# Builds the compiled routing core (rust/acd_core, Rust + PyO3) into
# src/sparklecomm/acd/_acd_core<EXT_SUFFIX>. Crates come from Debian's packages
# (librust-pyo3-dev), offline (rust/.cargo/config.toml); cargo from PATH or Debian.
# Without it the platform runs the pure-Python engine (the reference), only slower.
# Usage: scripts/build_core.sh [python]   (default: .venv/bin/python)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${1:-$root/.venv/bin/python}"
have_pyo3() { compgen -G "/usr/share/cargo/registry/pyo3-0.17.*" >/dev/null; }
if ! command -v cargo >/dev/null 2>&1 || ! have_pyo3; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "==> installing Debian packages: cargo librust-pyo3-dev (the routing core's build)"
    apt-get update -qq
    pkgs=(librust-pyo3-dev)
    command -v cargo >/dev/null 2>&1 || pkgs+=(cargo)
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
  else
    echo "warning: cannot build the compiled routing core (needs cargo and Debian's" \
      "librust-pyo3-dev; run as root to install): routing runs in pure Python" >&2
    exit 0
  fi
fi
suffix="$("$py" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')"
target="$root/src/sparklecomm/acd/_acd_core$suffix"
echo "==> building the compiled routing core (cargo build --release, offline)"
cd "$root/rust/acd_core"
PYO3_PYTHON="$py" cargo build --release --quiet --locked --target-dir "$root/.build/rust"
install -m 755 "$root/.build/rust/release/lib_acd_core.so" "$target.tmp"
mv -f "$target.tmp" "$target"
