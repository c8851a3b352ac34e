# Shared by the device scripts (sourced after they set PY, W and LOG).

# libtorch's library folder of the Python whose torch the binary runs against.
torch_lib="$("$PY" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"

part() { # name timeout command...: one time-boxed part; a failure is logged, not fatal
    local name=$1 t=$2; shift 2
    echo "== $name" >>"$LOG"
    if timeout "$t" "$@" >>"$LOG" 2>&1; then echo "ok" >"$W/$name.status"; else echo "failed ($?)" >"$W/$name.status"; fi
}
