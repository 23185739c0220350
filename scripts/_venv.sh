# Sourced by the scripts in this folder: make sure .venv exists and holds this project with the given extra.
# Usage: ensure_venv EXTRA   (demo | dev). Reinstalls only when pyproject.toml or the extra changed.
set -euo pipefail

find_python() {
    local candidate
    for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3 python; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    echo "Overdrive needs Python 3.11 or newer; none was found on PATH (set PYTHON=/path/to/python3.11)." >&2
    return 1
}

ensure_venv() {
    local extra="$1" venv="${OVERDRIVE_VENV:-.venv}" python stamp want
    python="$(find_python)"
    if [ ! -x "$venv/bin/python" ]; then
        echo "Creating virtual environment $venv with $python" >&2
        "$python" -m venv "$venv"
    fi
    stamp="$venv/.overdrive-installed"
    # Reinstall when the build inputs change: the metadata, and the C extension with its build hook.
    want="$extra $(cat pyproject.toml hatch_build.py src/overdrive/*/*.c | sha256sum | cut -c1-16)"
    # The dev extra includes the demo extra, so a dev install also satisfies the demo.
    if [ ! -f "$stamp" ] || { [ "$(cat "$stamp")" != "$want" ] && [ "$(cat "$stamp")" != "dev ${want#* }" ]; }; then
        echo "Installing overdrive[$extra] into $venv" >&2
        "$venv/bin/python" -m pip install --quiet --upgrade pip
        "$venv/bin/python" -m pip install --quiet -e ".[$extra]"
        echo "$want" >"$stamp"
    fi
    export PATH="$PWD/$venv/bin:$PATH"
}
