# Sourced by ./run: makes sure the project's Python virtualenv exists (torch 2.11.0 for
# tch, plus test/benchmark tools) and exports what building and running need.
#
# The virtualenv lives in a user-level cache so fresh clones (and CI) reuse it:
#   ${MAETOK_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/maetok/venv-<hash of requirements>}
# It is created once and skipped when present and complete (marker file written last).

maetok_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
req="$maetok_root/scripts/requirements.txt"
req_hash="$(sha256sum "$req" | cut -c1-12)"
MAETOK_VENV="${MAETOK_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/maetok/venv-$req_hash}"

if [ ! -f "$MAETOK_VENV/.maetok-ready" ]; then
    echo "maetok: setting up the Python environment in $MAETOK_VENV (torch 2.11.0, ~5 GB, once)" >&2
    py="${MAETOK_PYTHON:-python3}"
    command -v "$py" >/dev/null || { echo "maetok: need $py (3.10-3.13) to install torch" >&2; exit 1; }
    rm -rf "$MAETOK_VENV"
    mkdir -p "$(dirname "$MAETOK_VENV")"
    "$py" -m venv "$MAETOK_VENV"
    "$MAETOK_VENV/bin/python" -m pip install --quiet --upgrade pip >&2
    "$MAETOK_VENV/bin/python" -m pip install --quiet -r "$req" >&2
    "$MAETOK_VENV/bin/python" -c "import torch, pyarrow, PIL; print('maetok: torch', torch.__version__)" >&2
    touch "$MAETOK_VENV/.maetok-ready"
fi

# libjpeg-turbo headers: JPEGs are decoded by the system libjpeg-turbo, as Pillow does.
if [ ! -f /usr/include/jpeglib.h ] && [ -z "${JPEG_INCLUDE_DIR:-}" ]; then
    echo "maetok: installing libjpeg-turbo headers (libjpeg62-turbo-dev)" >&2
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        apt-get update -qq >&2 && apt-get install -y -qq libjpeg62-turbo-dev >&2
    else
        echo "maetok: please install libjpeg-turbo's development files (Debian/Ubuntu: libjpeg62-turbo-dev or libjpeg-turbo8-dev)" >&2
        exit 1
    fi
fi

export VIRTUAL_ENV="$MAETOK_VENV"
export PATH="$MAETOK_VENV/bin:$PATH"
# tch's build finds libtorch through the venv's torch; the binaries get an rpath to it
# (trainer/build.rs), so running them needs no LD_LIBRARY_PATH.
export LIBTORCH_USE_PYTORCH=1
export MAETOK_PYTHON_BIN="$MAETOK_VENV/bin/python"
