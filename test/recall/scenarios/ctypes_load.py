"""Recall corpus program (Python): ctypes.CDLL()s each argument, calls FN if named by
$SOLOAD_CTYPES_FN, then writes the ground truth to $SOLOAD_TRUTH_FILE like truth.h does: the
file-backed executable mappings of /proc/self/maps, one per line. A line may carry a tab and an
expected load method: "dlopen" for the ctypes libraries and for every extension module Python
dlopen()ed (a module in sys.modules whose __file__ is a shared object); other lines get the
harness's default rules (executable, interpreter, needed)."""
import ctypes
import os
import sys

libs = [ctypes.CDLL(name) for name in sys.argv[1:]]
fn = os.environ.get("SOLOAD_CTYPES_FN")
if fn:
    for lib in libs:
        getattr(lib, fn)()

dlopened = {os.path.realpath(name) for name in sys.argv[1:]}
for mod in list(sys.modules.values()):
    f = getattr(mod, "__file__", None)
    if isinstance(f, str) and (f.endswith(".so") or ".so." in os.path.basename(f)):
        dlopened.add(os.path.realpath(f))

seen = []
with open("/proc/self/maps") as maps:
    for line in maps:
        parts = line.rstrip("\n").split(None, 5)
        if len(parts) < 6 or "x" not in parts[1] or not parts[5].startswith("/"):
            continue
        if parts[5] not in seen:
            seen.append(parts[5])

out = os.environ.get("SOLOAD_TRUTH_FILE")
if out:
    with open(out + ".tmp", "w") as f:
        for p in seen:
            hint = "\tdlopen" if os.path.realpath(p) in dlopened else ""
            f.write(p + hint + "\n")
    os.rename(out + ".tmp", out)
