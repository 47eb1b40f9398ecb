# Sourced by the other scripts: make .venv (Python 3.11+) and install the project into it.
# Usage: source scripts/bootstrap.sh [EXTRAS]   e.g. "dev" for everything the tests need.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

extras="${1:-}"
python_bin="$(command -v python3.11 || command -v python3)"
if [ ! -x .venv/bin/python ]; then
    "$python_bin" -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip
fi
stamp=".venv/.installed${extras:+-$extras}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "installing the project${extras:+ with [$extras]} into .venv ..." >&2
    if ! .venv/bin/python -m pip install -e ".${extras:+[$extras]}" > .venv/install.log 2>&1; then
        cat .venv/install.log >&2
        exit 1
    fi
    touch "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
