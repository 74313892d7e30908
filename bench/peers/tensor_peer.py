#!/usr/bin/env python3
"""Peer for bench/tensor_test.go: TensorLy 0.9's CP-ALS and Tucker (HOOI)
algorithms re-implemented on plain NumPy.

This is NOT TensorLy (it cannot be installed here); it follows the same
steps, so that its cost profile is TensorLy's:

* parafac: for every mode, the Hadamard product of the other factors' Grams,
  MTTKRP as unfold(X, mode) @ khatri_rao(other factors) with the full
  Khatri-Rao product formed, a dense solve, and the error from
  ||X||^2 + ||X_hat||^2 - 2<X, X_hat> using the last MTTKRP.
* tucker / partial_tucker: factors initialised from the SVD of each
  unfolding; each HOOI sweep projects X on all other factors by successive
  mode products (each an unfold / matmul / fold), takes the leading left
  singular vectors of the projected unfolding by a dense SVD, and recomputes
  the core from X.

Unfolding is TensorLy's: move the mode first, reshape row-major.

Input: raw little-endian float32 (--data) of --shape. Output: one JSON line
{"seconds": <algorithm time>, "rel_error": <exact final error>}.
"""

import argparse
import json
import time

import numpy as np


def unfold(x, mode):
    return np.moveaxis(x, mode, 0).reshape(x.shape[mode], -1)


def fold(m, mode, shape):
    full = [shape[mode]] + [d for i, d in enumerate(shape) if i != mode]
    return np.moveaxis(m.reshape(full), 0, mode)


def mode_dot(x, mat, mode):
    """x times mat (J x I_mode) along mode."""
    shape = list(x.shape)
    shape[mode] = mat.shape[0]
    return fold(mat @ unfold(x, mode), mode, shape)


def khatri_rao(mats):
    """Column-wise Kronecker product, last matrix's row index fastest."""
    out = mats[0]
    r = out.shape[1]
    for m in mats[1:]:
        out = (out[:, None, :] * m[None, :, :]).reshape(-1, r)
    return out


def cp_als(x, rank, iters, rng, init=None):
    n = x.ndim
    if init is None:
        factors = [rng.random_sample((d, rank)).astype(x.dtype) for d in x.shape]
    else:
        factors = [f.copy() for f in init]
    norm_x = np.linalg.norm(x)
    err = None
    for _ in range(iters):
        for mode in range(n):
            v = np.ones((rank, rank), dtype=x.dtype)
            for i, f in enumerate(factors):
                if i != mode:
                    v = v * (f.T @ f)
            others = [f for i, f in enumerate(factors) if i != mode]
            mttkrp = unfold(x, mode) @ khatri_rao(others)
            factors[mode] = np.linalg.solve(v.T, mttkrp.T).T
        v = np.ones((rank, rank), dtype=x.dtype)
        for f in factors:
            v = v * (f.T @ f)
        norm_hat2 = float(np.sum(v))
        inner = float(np.sum(mttkrp * factors[-1]))
        err = np.sqrt(abs(norm_x ** 2 + norm_hat2 - 2 * inner)) / norm_x
    return factors, err


def leading_left(m, r):
    u, _, _ = np.linalg.svd(m, full_matrices=False)
    return u[:, :r]


def tucker_hooi(x, modes, ranks, iters):
    factors = [leading_left(unfold(x, m), r) for m, r in zip(modes, ranks)]
    norm_x = np.linalg.norm(x)
    err = None
    core = None
    for _ in range(iters):
        for k, mode in enumerate(modes):
            y = x
            for j, (m, f) in enumerate(zip(modes, factors)):
                if j != k:
                    y = mode_dot(y, f.T, m)
            factors[k] = leading_left(unfold(y, mode), ranks[k])
        core = x
        for m, f in zip(modes, factors):
            core = mode_dot(core, f.T, m)
        err = np.sqrt(abs(norm_x ** 2 - np.linalg.norm(core) ** 2)) / norm_x
    if core is None:
        core = x
        for m, f in zip(modes, factors):
            core = mode_dot(core, f.T, m)
    return core, factors, err


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--shape", required=True)
    p.add_argument("--method", choices=["cp", "tucker", "partial"], required=True)
    p.add_argument("--rank", type=int)
    p.add_argument("--ranks")
    p.add_argument("--iters", type=int, required=True)
    p.add_argument("--init", default="random")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--init-file", help="CP: raw float32 initial factors, I_n x rank each, in mode order")
    a = p.parse_args()
    shape = [int(s) for s in a.shape.split(",")]
    x = np.fromfile(a.data, dtype="<f4").reshape(shape)
    rng = np.random.RandomState(a.seed)
    start = time.perf_counter()
    init = None
    if a.init_file:
        flat = np.fromfile(a.init_file, dtype="<f4")
        init, off = [], 0
        for d in shape:
            init.append(flat[off:off + d * a.rank].reshape(d, a.rank))
            off += d * a.rank
    if a.method == "cp":
        factors, _ = cp_als(x, a.rank, a.iters, rng, init)
        seconds = time.perf_counter() - start
        hat = np.einsum("ir,jr,kr,lr->ijkl", *factors) if x.ndim == 4 else None
        if hat is None:
            hat = (factors[0] @ khatri_rao(factors[1:]).T).reshape(shape)
    else:
        ranks = [int(s) for s in a.ranks.split(",")]
        modes = list(range(x.ndim)) if a.method == "tucker" else [0, 1]
        core, factors, _ = tucker_hooi(x, modes, ranks, a.iters)
        seconds = time.perf_counter() - start
        hat = core
        for m, f in zip(modes, factors):
            hat = mode_dot(hat, f, m)
    rel = float(np.linalg.norm((x.astype(np.float64) - hat.astype(np.float64)).ravel()) / np.linalg.norm(x.astype(np.float64).ravel()))
    print(json.dumps({"seconds": seconds, "rel_error": rel}))


if __name__ == "__main__":
    main()
