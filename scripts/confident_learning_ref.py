#!/usr/bin/python3
"""Reference confident learning (Northcutt, Jiang & Chuang, JAIR 2021), written from the paper's
definitions with numpy, to check server/audit/confidentLearning.ts on fixed probability matrices.

Reads JSON {"labels": [...], "probs": [[...], ...]} cases from stdin (a list), writes for each the
sorted indices flagged as label issues.

Paper, Sec. 3.1-3.3:
  t_j = (1/|X_{y~=j}|) sum_{x in X_{y~=j}} p(y~=j; x)                                   (eq. 2)
  C[i][j] = |{x in X_{y~=i} : p(y~=j; x) >= t_j, j = argmax_{l: p(y~=l;x) >= t_l} p(y~=l; x)}|
  Q[i][j] = (C[i][j] / sum_j' C[i][j'] * |X_{y~=i}|) / sum_{i,j} (same)                 (eq. 3)
  Prune by Noise Rate: for each i != j, remove the n*Q[i][j] examples labelled i with the largest
  margin p(y~=j; x) - p(y~=i; x).
Conventions where the paper leaves a choice (also cleanlab's): >= t - 1e-6; t = inf for a class no
example is labelled with; diag(C) clipped to >= 1; ties go to the lower index; n*Q rounded half to
even (np.rint); an example whose argmax is its given label is not flagged.
"""
import json
import sys

import numpy as np


def label_issues(labels, probs):
    labels = np.asarray(labels, dtype=np.int64)
    p = np.asarray(probs, dtype=np.float64)
    n, k = p.shape
    t = np.full(k, np.inf)
    for j in range(k):
        mask = labels == j
        if mask.any():
            t[j] = p[mask, j].mean()
    confident = p >= t[None, :] - 1e-6
    C = np.zeros((k, k))
    for x in range(n):
        if confident[x].any():
            masked = np.where(confident[x], p[x], -np.inf)
            C[labels[x], int(np.argmax(masked))] += 1  # np.argmax: first maximum
    np.fill_diagonal(C, np.maximum(np.diag(C), 1))
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    Q = C / C.sum(axis=1, keepdims=True) * counts[:, None]
    Q = Q / Q.sum()
    flagged = np.zeros(n, dtype=bool)
    for i in range(k):
        members = np.flatnonzero(labels == i)
        for j in range(k):
            if i == j:
                continue
            m = int(np.rint(n * Q[i, j]))
            if m <= 0:
                continue
            margin = p[members, j] - p[members, i]
            order = np.lexsort((members, -margin))  # largest margin first, then lower index
            flagged[members[order[:m]]] = True
    flagged &= np.argmax(p, axis=1) != labels
    return sorted(int(x) for x in np.flatnonzero(flagged))


if __name__ == "__main__":
    cases = json.load(sys.stdin)
    json.dump([label_issues(c["labels"], c["probs"]) for c in cases], sys.stdout)
