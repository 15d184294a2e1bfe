#!/usr/bin/python3
"""Reference for server/audit/logistic.ts: the same objective minimised by scipy's L-BFGS-B.
    (1/n) sum_i -log softmax(x_i W^T + b)[y_i] + (l2/2) ||W||^2      (b not penalised)
Reads {"X": [[...]], "y": [...], "classes": K, "l2": float} on stdin; writes
{"loss": float, "probs": [[...]]} (the fitted model's probabilities on X)."""
import json
import sys

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax

d = json.load(sys.stdin)
X = np.asarray(d["X"], dtype=np.float64)
y = np.asarray(d["y"], dtype=np.int64)
K, l2 = d["classes"], d["l2"]
n, D = X.shape
Y = np.eye(K)[y]


def objective(theta):
    W = theta[: K * D].reshape(K, D)
    b = theta[K * D:]
    logp = log_softmax(X @ W.T + b, axis=1)
    loss = -(logp * Y).sum() / n + 0.5 * l2 * (W ** 2).sum()
    R = (np.exp(logp) - Y) / n
    grad = np.concatenate([(R.T @ X + l2 * W).ravel(), R.sum(axis=0)])
    return loss, grad


res = minimize(objective, np.zeros(K * D + K), jac=True, method="L-BFGS-B", options={"maxiter": 5000, "gtol": 1e-10, "ftol": 1e-15})
W = res.x[: K * D].reshape(K, D)
b = res.x[K * D:]
probs = np.exp(log_softmax(X @ W.T + b, axis=1))
json.dump({"loss": float(res.fun), "probs": probs.tolist()}, sys.stdout)
