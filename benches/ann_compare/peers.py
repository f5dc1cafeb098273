#!/usr/bin/env python3
"""Runs ONE peer HNSW library over a dataset of make_data.py and prints JSON lines.

    peers.py --data DATA/<name> --library faiss|usearch|hnswlib [--m 16]
             [--ef-construction 200] [--efs 10,12,16,...] [--build-threads N]

Output (stdout, one JSON object per line; the Rust runner prints the same):

    {"library": "...", "phase": "build", "build_s": float, "index_rss_bytes": int,
     "index_reported_bytes": int|null, "raw_bytes": n*dim*4, "build_threads": int, ...}
    {"library": "...", "phase": "search", "ef": int, "recall": float, "qps": float,
     "search_threads": 1, "batch_qps": float}                     (one line per ef)

Search is single-threaded and one query at a time (k=10). Before each ef is timed, the
first 50 queries are run untimed (warm-up); then the whole query set is timed. Extra,
informational fields: "index_rss_trimmed_bytes" (RSS growth after glibc malloc_trim(0)) and
"batch_qps" (the whole query set in one call on one thread: no per-call binding cost).
See README.md for the fairness rules.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

WARM_UP = 50
DEFAULT_EFS = "10,12,16,20,24,32,40,48,64,80,96,128,160,200,256"


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def load(data: Path):
    meta = json.loads((data / "meta.json").read_text())
    n, nq, dim, k = meta["n"], meta["nq"], meta["dim"], meta["k"]
    base = np.fromfile(data / "base.f32", dtype="<f4")
    queries = np.fromfile(data / "queries.f32", dtype="<f4")
    gt = np.fromfile(data / "gt.u32", dtype="<u4")
    if base.size != n * dim or queries.size != nq * dim or gt.size != nq * k:
        sys.exit(f"{data}: file sizes do not match meta.json")
    return meta, base.reshape(n, dim), queries.reshape(nq, dim), gt.reshape(nq, k)


def emit(obj: dict) -> None:
    print(json.dumps(obj), flush=True)


# Each peer: build(base) -> reported bytes or None; set_ef(ef); search(q) -> ids (<= k).


class Faiss:
    def __init__(self, dim: int, m: int, efc: int, build_threads: int):
        import faiss

        self.faiss = faiss
        self.name = f"faiss-hnsw {faiss.__version__}"
        self.dim, self.m, self.efc, self.build_threads = dim, m, efc, build_threads
        self.index = None

    def build(self, base: np.ndarray):
        faiss = self.faiss
        faiss.omp_set_num_threads(self.build_threads)
        index = faiss.IndexHNSWFlat(self.dim, self.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = self.efc
        index.add(base)
        faiss.omp_set_num_threads(1)
        self.index = index
        h = index.hnsw
        # Sizes of the C++ vectors behind the index (storage + graph), as faiss holds them.
        return int(index.ntotal * self.dim * 4 + h.neighbors.size() * 4 + h.offsets.size() * 8
                   + h.levels.size() * 4 + h.assign_probas.size() * 8 + h.cum_nneighbor_per_level.size() * 4)

    def set_ef(self, ef: int):
        self.index.hnsw.efSearch = ef

    def search(self, q: np.ndarray):
        _, ids = self.index.search(q, 10)
        return ids[0]

    def search_batch(self, queries: np.ndarray):
        return self.index.search(queries, 10)[1]

    def query_form(self, queries: np.ndarray):
        return [queries[i : i + 1] for i in range(queries.shape[0])]

    def extra(self) -> dict:
        return {"metric": "METRIC_INNER_PRODUCT", "faiss_simd": self.faiss.get_compile_options()}

    def reset_distances(self):
        self.faiss.cvar.hnsw_stats.reset()

    def distances(self):
        return self.faiss.cvar.hnsw_stats.ndis


class FaissSQ8(Faiss):
    """faiss `IndexHNSWSQ` with the 8-bit scalar quantizer (per-dimension ranges trained on the
    base): the graph walk and the final ranking both use the 8-bit codes (faiss has no f32
    re-rank in this index)."""

    def __init__(self, dim: int, m: int, efc: int, build_threads: int):
        super().__init__(dim, m, efc, build_threads)
        self.name = f"faiss-hnsw-sq8 {self.faiss.__version__}"

    def build(self, base: np.ndarray):
        faiss = self.faiss
        faiss.omp_set_num_threads(self.build_threads)
        index = faiss.IndexHNSWSQ(self.dim, faiss.ScalarQuantizer.QT_8bit, self.m,
                                  faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = self.efc
        index.train(base)
        index.add(base)
        faiss.omp_set_num_threads(1)
        self.index = index
        h = index.hnsw
        return int(index.ntotal * self.dim + h.neighbors.size() * 4 + h.offsets.size() * 8
                   + h.levels.size() * 4)


class USearch:
    dtype = "f32"

    def __init__(self, dim: int, m: int, efc: int, build_threads: int):
        import usearch
        from usearch.index import Index

        suffix = "" if self.dtype == "f32" else f"-{self.dtype}"
        self.name = f"usearch{suffix} {usearch.__version__}"
        self.dim, self.m, self.efc, self.build_threads = dim, m, efc, build_threads
        self.Index = Index
        self.index = None

    def build(self, base: np.ndarray):
        index = self.Index(ndim=self.dim, metric="ip", dtype=self.dtype, connectivity=self.m,
                           expansion_add=self.efc, expansion_search=64)
        keys = np.arange(base.shape[0], dtype=np.uint64)
        index.add(keys, base, threads=self.build_threads)
        self.index = index
        return int(index.memory_usage)

    def set_ef(self, ef: int):
        self.index.expansion_search = ef

    def search(self, q: np.ndarray):
        return self.index.search(q, 10, threads=1).keys

    def search_batch(self, queries: np.ndarray):
        return self.index.search(queries, 10, threads=1).keys

    def query_form(self, queries: np.ndarray):
        return [np.ascontiguousarray(queries[i]) for i in range(queries.shape[0])]

    def extra(self) -> dict:
        return {"metric": "ip", "usearch_isa": self.index.hardware_acceleration}


class Hnswlib:
    def __init__(self, dim: int, m: int, efc: int, build_threads: int):
        import hnswlib

        self.hnswlib = hnswlib
        self.name = f"hnswlib {importlib.metadata.version('chroma-hnswlib')} (chroma-hnswlib)"
        self.dim, self.m, self.efc, self.build_threads = dim, m, efc, build_threads
        self.index = None

    def build(self, base: np.ndarray):
        index = self.hnswlib.Index(space="ip", dim=self.dim)
        index.init_index(max_elements=base.shape[0], ef_construction=self.efc, M=self.m)
        index.set_num_threads(self.build_threads)
        index.add_items(base, np.arange(base.shape[0]))
        index.set_num_threads(1)
        self.index = index
        return None

    def set_ef(self, ef: int):
        self.index.set_ef(ef)

    def search(self, q: np.ndarray):
        labels, _ = self.index.knn_query(q, k=10)
        return labels[0]

    def search_batch(self, queries: np.ndarray):
        return self.index.knn_query(queries, k=10, num_threads=1)[0]

    def query_form(self, queries: np.ndarray):
        return [queries[i : i + 1] for i in range(queries.shape[0])]

    def extra(self) -> dict:
        return {"metric": "ip"}


class USearchI8(USearch):
    """usearch with `dtype="i8"` (8-bit vectors for walking and ranking)."""

    dtype = "i8"


class USearchF16(USearch):
    """usearch with `dtype="f16"` (half-precision vectors)."""

    dtype = "f16"


PEERS = {
    "faiss": Faiss,
    "faiss-sq8": FaissSQ8,
    "usearch": USearch,
    "usearch-i8": USearchI8,
    "usearch-f16": USearchF16,
    "hnswlib": Hnswlib,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--library", choices=sorted(PEERS), required=True)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--efs", default=DEFAULT_EFS)
    ap.add_argument("--build-threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--no-batch", dest="batch", action="store_false",
                    help="skip the extra whole-set single-threaded search (batch_qps)")
    args = ap.parse_args()
    efs = [int(e) for e in args.efs.split(",") if e.strip()]

    meta, base, queries, gt = load(args.data)
    n, dim, nq, k = meta["n"], meta["dim"], meta["nq"], meta["k"]
    if k != 10:
        sys.exit("peers.py searches k=10; the dataset has another k")
    peer = PEERS[args.library](dim, args.m, args.ef_construction, args.build_threads)

    rss_before = rss_bytes()
    t0 = time.perf_counter()
    reported = peer.build(base)
    build_s = time.perf_counter() - t0
    rss_after = rss_bytes()
    # Also after handing freed heap back to the OS (glibc keeps freed build temporaries
    # resident); an extra field, the headline number stays the untrimmed one.
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
        rss_trimmed = rss_bytes() - rss_before
    except (OSError, AttributeError):
        rss_trimmed = None
    emit({
        "library": peer.name,
        "phase": "build",
        "build_s": build_s,
        "index_rss_bytes": rss_after - rss_before,
        "index_reported_bytes": reported,
        "raw_bytes": n * dim * 4,
        "build_threads": args.build_threads,
        "index_rss_trimmed_bytes": rss_trimmed,
        "m": args.m,
        "ef_construction": args.ef_construction,
        "dataset": meta["name"],
        **peer.extra(),
    })

    qs = peer.query_form(queries)
    found = np.empty((nq, k), dtype=np.int64)
    search = peer.search
    for ef in efs:
        peer.set_ef(ef)
        for q in qs[:WARM_UP]:
            search(q)
        found.fill(-1)
        if hasattr(peer, "reset_distances"):
            peer.reset_distances()
        t0 = time.perf_counter()
        for i, q in enumerate(qs):
            ids = search(q)
            found[i, : len(ids)] = ids
        seconds = time.perf_counter() - t0
        hits = sum(np.intersect1d(found[i], gt[i]).size for i in range(nq))
        line = {
            "library": peer.name,
            "phase": "search",
            "ef": ef,
            "recall": hits / (nq * k),
            "qps": nq / seconds,
            "search_threads": 1,
        }
        if hasattr(peer, "distances"):
            # Distance evaluations per query (load-independent; faiss counts them itself).
            line["distances_per_query"] = peer.distances() / nq
        if args.batch:
            # The whole query set in one call, still one thread: the library's speed without
            # the per-call cost of its Python binding (same warm-up first).
            peer.search_batch(queries[:WARM_UP])
            t0 = time.perf_counter()
            peer.search_batch(queries)
            line["batch_qps"] = nq / (time.perf_counter() - t0)
        emit(line)


if __name__ == "__main__":
    main()
