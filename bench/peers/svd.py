"""SVD peers for Lowrank's SVD benchmark (bench/svd_test.go).

Usage: svd.py NPY METHOD RANK REPS

Loads the float32 matrix NPY written by the Go harness, runs METHOD REPS
times (the harness passes 1 and interleaves processes) and prints one JSON
object: the wall time of each run, their median,
the relative error ||A - U diag(S) Vt||_F / ||A||_F of the last run's
factors (computed outside the timed region) and which BLAS NumPy uses.

METHOD is one of
  scipy_gesdd      scipy.linalg.svd(full_matrices=False), LAPACK gesdd
  numpy_svd        np.linalg.svd(full_matrices=False)
  torch_svd        torch.linalg.svd(full_matrices=False)
  torch_lowrank    torch.svd_lowrank(q=RANK+10, niter=4), truncated to RANK
  sklearn_iterN    sklearn.utils.extmath.randomized_svd(n_iter=N), defaults
                   otherwise (n_oversamples=10, LU normalisation)
Full SVDs are truncated to RANK before the error is computed (RANK 0 keeps
all). Thread counts come from the environment (OPENBLAS_NUM_THREADS,
OMP_NUM_THREADS) and torch.set_num_threads.
"""

import json
import os
import statistics
import sys
import time

import numpy as np


def blas_info():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    parts = []
    for p in threadpool_info():
        parts.append("%s %s %s threads=%s" % (p.get("internal_api"), p.get("version"), p.get("architecture", ""), p.get("num_threads")))
    return "; ".join(parts)


def run(method, a, rank):
    if method == "scipy_gesdd":
        import scipy.linalg

        return scipy.linalg.svd(a, full_matrices=False, lapack_driver="gesdd", check_finite=False)
    if method == "numpy_svd":
        return np.linalg.svd(a, full_matrices=False)
    if method in ("torch_svd", "torch_lowrank"):
        import torch

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        t = torch.from_numpy(a)
        if method == "torch_svd":
            u, s, vt = torch.linalg.svd(t, full_matrices=False)
            return u.numpy(), s.numpy(), vt.numpy()
        torch.manual_seed(0)
        u, s, v = torch.svd_lowrank(t, q=rank + 10, niter=4)
        return u.numpy(), s.numpy(), v.numpy().T
    if method.startswith("sklearn_iter"):
        from sklearn.utils.extmath import randomized_svd

        return randomized_svd(a, rank, n_iter=int(method[len("sklearn_iter"):]), random_state=0)
    raise SystemExit("unknown method " + method)


def main():
    path, method, rank, reps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    a = np.load(path)
    run(method, np.eye(32, dtype=a.dtype) + 1, 2)  # warm-up: imports, thread start
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        u, s, vt = run(method, a, rank)
        times.append(time.perf_counter() - t)
    k = rank if rank > 0 else len(s)
    u, s, vt = u[:, :k], s[:k], vt[:k]
    r = a.astype(np.float64) - (u.astype(np.float64) * s.astype(np.float64)) @ vt.astype(np.float64)
    err = float(np.linalg.norm(r) / np.linalg.norm(a.astype(np.float64)))
    print(json.dumps({"median": statistics.median(times), "times": times, "rel_error": err, "dtype": str(u.dtype), "blas": blas_info()}))


if __name__ == "__main__":
    main()
