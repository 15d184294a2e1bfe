#!/usr/bin/env bash
# Records the dashboard test's run folder (test/fixtures/dashboard/run) with our own CLI: a small
# Fashion-MNIST image folder (4 look-alike clothing classes, so the confusion matrix is not
# diagonal), head-only fine-tuning of the built-in model. Absolute paths of the temporary folders
# are replaced with ${DATASET} / ${RUN} so the fixture does not depend on where it was recorded.
# Needs `npm run build` and Debian's dataset-fashion-mnist.
set -euo pipefail
cd "$(dirname "$0")/.."
FIX=test/fixtures/dashboard
rm -rf "$FIX/dataset" "$FIX/run"
/usr/bin/python3 - "$FIX/dataset" <<'PY'
import gzip, os, sys
import numpy as np
from PIL import Image
root = sys.argv[1]
d = '/usr/share/datasets/fashion-mnist'
img = np.frombuffer(gzip.open(f'{d}/t10k-images-idx3-ubyte.gz').read(), np.uint8, offset=16).reshape(-1, 28, 28)
lab = np.frombuffer(gzip.open(f'{d}/t10k-labels-idx1-ubyte.gz').read(), np.uint8, offset=8)
classes = {0: 't-shirt', 2: 'pullover', 4: 'coat', 6: 'shirt'}
for k, name in classes.items():
    os.makedirs(f'{root}/{name}', exist_ok=True)
    for n, i in enumerate(np.flatnonzero(lab == k)[:24]):
        Image.fromarray(img[i]).save(f'{root}/{name}/{name}-{i}.png', optimize=True)
PY
TMP=$(mktemp -d)
DATASET=$(realpath "$FIX/dataset")
node dist/cli.js train "$DATASET" --model models/default --out "$TMP/run" --mode head --epochs 8 --batch-size 4 --lr 0.01 --val-split 0.25 --seed 0
mkdir -p "$FIX/run"
for f in run.json metrics.jsonl report.json; do
  sed -e "s#$DATASET#\${DATASET}#g" -e "s#$TMP/run#\${RUN}#g" -e "s#$PWD#\${REPO}#g" "$TMP/run/$f" > "$FIX/run/$f"
done
rm -rf "$TMP"
