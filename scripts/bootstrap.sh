# Sourced by scripts/serve and scripts/test: makes sure uv is available and the project's
# locked environment (.venv) is installed. Works on a fresh Debian/Ubuntu with Python 3.11+.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
UV_VERSION=0.13.9
if command -v uv >/dev/null 2>&1; then
  UV=uv
else
  if [ ! -x .tools/bin/uv ]; then
    echo "==> installing uv $UV_VERSION into .tools/ (once)"
    if ! python3 -m venv .tools >/dev/null 2>&1; then
      if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
        python3 -m venv .tools
      else
        echo "error: python3 -m venv failed; install python3-venv" >&2; exit 1
      fi
    fi
    .tools/bin/pip install -q "uv==$UV_VERSION"
  fi
  UV=.tools/bin/uv
fi
echo "==> installing locked dependencies (uv sync --frozen)"
"$UV" sync --frozen --quiet
# The compiled routing core (optional: without it routing runs in pure Python).
scripts/build_core.sh
