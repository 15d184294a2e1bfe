"""Reference for server/model/featureStats.ts, written from Lee et al. 2018 with numpy (not from our code):
class means, one shared covariance of the residuals (biased, 1/n) plus a ridge of 1e-3 times its mean
variance, its inverse, each point's smallest squared Mahalanobis distance to a class mean, and the
99th percentile (inverted CDF) of the training points' own scores.
stdin: {"X": [[...]], "y": [...], "classes": K, "test": [[...]]}; stdout: {"threshold", "scores", "means"}."""
import json
import sys

import numpy as np

d = json.load(sys.stdin)
X = np.asarray(d["X"], dtype=np.float64)
y = np.asarray(d["y"])
present = [c for c in range(d["classes"]) if np.any(y == c)]
means = np.stack([X[y == c].mean(axis=0) for c in present])
R = X - means[np.searchsorted(present, y)]
cov = R.T @ R / len(X)
cov += 1e-3 * np.trace(cov) / X.shape[1] * np.eye(X.shape[1])
P = np.linalg.inv(cov)


def scores(Z):
    diff = Z[:, None, :] - means[None, :, :]
    return np.einsum("nkd,de,nke->nk", diff, P, diff).min(axis=1)


threshold = np.percentile(scores(X), 99, method="inverted_cdf")
print(json.dumps({"threshold": float(threshold), "scores": scores(np.asarray(d["test"], dtype=np.float64)).tolist(), "means": means.tolist()}))
