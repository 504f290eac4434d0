#!/bin/bash
# Issue 20 A/B on a quiet host: the service bench pinned to 2 cores (server and client
# together, as on the 2-core VM), this code and 5c2df30, one after the other.
set -u
ROOT=$(pwd)
exec > >(tee "$OUT/device.log") 2>&1
date -u; python3 -V; nproc; lscpu | grep -E 'Model name|Socket|Thread|Core|MHz' | head -6
ls .devsite/onnxruntime >/dev/null 2>&1 || echo "P1 LOST"
tar -C .devsite -xJf .whl2/p2.tar.xz && echo "site unpacked"
export PYTHONPATH="$ROOT/.devsite"
python3 -c "import numpy, cv2, PIL, onnxruntime, onnx, fastapi, sqlalchemy, faiss, uvloop; print('numpy', numpy.__version__, 'cv2', cv2.__version__, 'ort', onnxruntime.__version__)" || echo "IMPORT FAILED"
python3 -c "import torch; print('torch', torch.__version__)" || echo "NO TORCH"
date -u
python3 -c "from benchmarks.harness.inputs import make_factories; make_factories(False, workers=16)" 2>&1 | tail -2
date -u
cp serving/models/returnlens-default.onnx .exp/base/serving/models/
mkdir -p .exp/base/var && ln -sfn "$ROOT/var/bench-scenes" .exp/base/var/bench-scenes
timeout 250 taskset -c 2,3 python3 -m returnlens.cli bench --only service --out "$OUT/new" > "$OUT/new.log" 2>&1; echo "new rc=$?"; date -u
(cd .exp/base && timeout 250 taskset -c 2,3 python3 -m returnlens.cli bench --only service --out "$OUT/base" > "$OUT/base.log" 2>&1; echo "base rc=$?"); date -u
tail -3 "$OUT/new.log" "$OUT/base.log"
