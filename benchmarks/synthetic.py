"""Part `synthetic`: FAISS index kinds on synthetic vector sets of growing size.

The corpora at hand stop at 45,043 chunks, but the choice of index kind (exact below 50,000
vectors, IVF above) and IVF's calibrated nprobe must hold far beyond: 20,000 and 50,000 vectors
with --quick, 200,000 more in a full run, 1,000,000 with --large. The vectors are shaped like
real ones (see `synthetic`), fitted on medquad-small's chunk vectors, and measured with
`ann.ann_sweep` (HNSW only up to 50,000: it builds too slowly beyond).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from ann import ann_sweep
from common import large_index


def synthetic(real: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n normalised vectors shaped like real embeddings, not trivially clustered.

    A Gaussian mixture in the principal subspace of the real chunk vectors: 10,000 component
    centres drawn from N(mean, real covariance), each point = centre + 0.5 x a second draw from
    the real covariance, plus isotropic noise at the real residual variance; then normalised.
    """
    rng = np.random.default_rng(seed)
    mean = real.mean(axis=0)
    _, s, vt = np.linalg.svd(real - mean, full_matrices=False)
    rank = 128
    scale = (s[:rank] / math.sqrt(len(real) - 1)).astype(np.float32)
    basis = vt[:rank].astype(np.float32)
    residual = float(np.sqrt((s[rank:] ** 2).sum() / (len(real) - 1) / real.shape[1]))
    centres = mean + (rng.standard_normal((10_000, rank), dtype=np.float32) * scale) @ basis
    out = np.empty((n, real.shape[1]), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        z = rng.standard_normal((m, rank), dtype=np.float32) * (0.5 * scale)
        x = centres[rng.integers(0, len(centres), m)] + z @ basis
        x += rng.standard_normal(x.shape, dtype=np.float32) * residual
        out[start : start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def part(work: Path, backend: str, large: str, quick: bool, args) -> dict:
    """Index kinds on synthetic sets of growing size, shaped like medquad-small's vectors."""
    from qa.store import open_store

    real = np.ascontiguousarray(open_store(large_index(work, backend, "medquad-small")).open()
                                .vectors)
    sizes = [20_000, 50_000] if quick else [20_000, 50_000, 200_000]
    if args.large:
        sizes.append(1_000_000)
    rows = []
    for n in sizes:
        data = synthetic(real, n + 1000, seed=n)
        kinds = ["flat", "ivf"] + (["hnsw"] if n <= 50_000 else [])
        rows += ann_sweep(data[:n], data[n:], "synthetic", kinds,
                          n_latency=100 if n > 200_000 else 200)
        del data
    return {"rows": rows, "fitted_on": "medquad-small"}
