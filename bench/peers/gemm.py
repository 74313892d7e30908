"""NumPy's matmul throughput, the peer figure for Lowrank's GEMM benchmark.

Usage: gemm.py N DTYPE REPS  (DTYPE is float32 or float64)

NumPy hands the product to the BLAS it is linked with (on Debian, OpenBLAS
through the libblas alternative), so this is OpenBLAS's own peak as a
well-tuned caller reaches it. Thread count: set OPENBLAS_NUM_THREADS in the
environment. Prints one JSON object: best seconds of REPS products, the
GFLOP/s it gives (2·N³ flops per product), and the BLAS NumPy ran on as
threadpoolctl reports it (when installed), to show it is the same OpenBLAS.
"""

import json
import sys
import time

import numpy as np


def blas_info() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (no threadpoolctl)"
    libs = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    return "; ".join(
        f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')}, "
        f"{i.get('threading_layer')}), threads={i.get('num_threads')}"
        for i in libs
    )


def main() -> None:
    n, dtype, reps = int(sys.argv[1]), np.dtype(sys.argv[2]), int(sys.argv[3])
    rng = np.random.default_rng(1)
    a = rng.uniform(-1, 1, (n, n)).astype(dtype)
    b = rng.uniform(-1, 1, (n, n)).astype(dtype)
    c = np.empty((n, n), dtype)
    np.matmul(a, b, out=c)  # warm-up: thread start, page faults
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        np.matmul(a, b, out=c)
        best = min(best, time.perf_counter() - t)
    print(json.dumps({
        "seconds": best,
        "gflops": 2 * n**3 / best / 1e9,
        "numpy": np.__version__,
        "blas": blas_info(),
    }))


if __name__ == "__main__":
    main()
