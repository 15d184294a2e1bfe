"""Reference for server/model/trainingSample.ts in numpy: the k-nearest-neighbour outlier score
(cleanlab's OutOfDistribution convention: mean cosine distance to the k nearest, here k = 10) of
query thumbnails against a training sample, and the 99th percentile (inverted CDF) of the sample's
leave-one-out scores. The sample's rows are given as stored (int8 / 127); queries are centred and
L2-normalised here. stdin: {"sample": [[...]], "queries": [[...]], "k": 10}; stdout: {"threshold", "scores"}."""
import json
import sys

import numpy as np

d = json.load(sys.stdin)
S = np.asarray(d["sample"], dtype=np.float64)
k = d["k"]
Q = np.asarray(d["queries"], dtype=np.float64)
Q = Q - Q.mean(axis=1, keepdims=True)
Q /= np.linalg.norm(Q, axis=1, keepdims=True)
own = S @ S.T
np.fill_diagonal(own, -np.inf)
own_scores = (1 - np.sort(own, axis=1)[:, ::-1][:, :k]).mean(axis=1)
scores = (1 - np.sort(Q @ S.T, axis=1)[:, ::-1][:, :k]).mean(axis=1)
print(json.dumps({"threshold": float(np.percentile(own_scores, 99, method="inverted_cdf")), "scores": scores.tolist()}))
