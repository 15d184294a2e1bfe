#!/usr/bin/python3
"""bench:audit's peer: what cleanlab's documentation tells a user to do for a dataset audit —
out-of-sample probabilities from scikit-learn's cross_val_predict (5 stratified folds, a
LogisticRegression head on standardised features) and then confident learning (cleanlab itself is
not installable here, so scripts/confident_learning_ref.py, the same formulas in numpy) — on the
very [CLS] features our audit used. The head's objective is ours: C = 1/(λ·n_train), λ = 1e-2, 30
L-BFGS iterations. Prints seconds for each step and the flagged set's overlap with ours.
argv: FEATURES.f32 LABELS.json DIM OURS.json (a list of flagged indices)."""
import json
import sys
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from confident_learning_ref import label_issues  # noqa: E402

warnings.simplefilter("ignore", ConvergenceWarning)
X = np.fromfile(sys.argv[1], dtype=np.float32).reshape(-1, int(sys.argv[3])).astype(np.float64)
y = np.asarray(json.load(open(sys.argv[2])))
ours = set(json.load(open(sys.argv[4])))
t0, c0 = time.perf_counter(), time.process_time()
Xs = StandardScaler().fit_transform(X)
n_train = len(y) * 4 / 5
head = LogisticRegression(C=1 / (1e-2 * n_train), max_iter=30, solver="lbfgs")
probs = cross_val_predict(head, Xs, y, cv=StratifiedKFold(5, shuffle=True, random_state=0), method="predict_proba")
t1, c1 = time.perf_counter(), time.process_time()
flagged = set(int(i) for i in label_issues(y.tolist(), probs.tolist()))
t2, c2 = time.perf_counter(), time.process_time()
# process_time: CPU seconds of all threads (BLAS may use several), steadier than wall time on a shared machine.
print(json.dumps({"heads": t1 - t0, "confidentLearning": t2 - t1, "cpu": c2 - c0, "flagged": len(flagged), "common": len(flagged & ours)}))
