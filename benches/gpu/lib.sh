# Shared by the device scripts, sourced with their arguments after they set NAME (their
# folder and log under $OUT): sets DRY (1 for --dry-run), PY (the Python whose torch the
# binary runs against: the project's on the CPU, /opt/torch's on the GPU machine, or
# TORCH_PYTHON), BIN, OUTDIR, an emptied W and LOG (LOG_NAME, when set, names the log
# instead), and the library path to that torch's libtorch.

DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
if [ "$DRY" = 1 ]; then
    PY="${TORCH_PYTHON:-${MAETOK_PYTHON_BIN:-python3}}"
else
    PY="${TORCH_PYTHON:-/opt/torch/.venv/bin/python}"
fi

BIN="${MAETOK_BIN:-target/release/maetok}"
OUTDIR="${OUT:-bench-out}"
W="$OUTDIR/$NAME"
rm -rf "$W" && mkdir -p "$W"
LOG="$OUTDIR/${LOG_NAME:-$NAME}.log"
: > "$LOG"

# libtorch's library folder of the Python whose torch the binary runs against.
torch_lib="$("$PY" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

part() { # name timeout command...: one time-boxed part; a failure is logged, not fatal
    local name=$1 t=$2; shift 2
    echo "== $name" >>"$LOG"
    if timeout "$t" "$@" >>"$LOG" 2>&1; then echo "ok" >"$W/$name.status"; else echo "failed ($?)" >"$W/$name.status"; fi
}
