#!/usr/bin/env python3
"""Markdown report of the side-by-side ANN comparison (see README.md beside this file).

    report.py [--target-recall 0.95] [--ours crossmodal-hnsw] PATH...

Each PATH is a JSON-lines file written as OUT/<dataset>/<round>-<library>.jsonl, or a
directory searched for such files. The dataset is the file's parent directory, the round
is the file name up to its first '-', and the library is the first word of the "library"
field (so "crossmodal-hnsw 0.1.0 (hnsw_rs 0.3.5)" and "faiss-hnsw 1.15.1" group as
"crossmodal-hnsw" and "faiss-hnsw").

Per dataset it prints the build time, index memory, recall@10 and queries/s per ef, the
queries/s at the smallest ef whose recall@10 >= the target, and the ratios of ours to the
best peer, computed within each round and summarised as median [min-max] over rounds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

TARGETS = {"qps": (">=", 1.0), "build": ("<=", 1.5), "memory": ("<=", 1.3)}


def read_runs(paths: list[Path]):
    """runs[dataset][library][round] = {"name", "build": {...}, "search": {ef: {...}}}"""
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files.extend(sorted(p.rglob("*.jsonl")))
        else:
            files.append(p)
    runs: dict = defaultdict(lambda: defaultdict(dict))
    for f in files:
        dataset = f.parent.name
        rnd = f.name.split("-", 1)[0]
        build, search, name = None, {}, None
        for line in f.read_text().splitlines():
            line = line.strip()
            if not line.startswith("{"):
                continue  # tolerate stray non-JSON lines
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "library" not in obj or "phase" not in obj:
                continue
            name = obj["library"]
            if obj["phase"] == "build":
                build = obj
            elif obj["phase"] == "search":
                search[int(obj["ef"])] = obj
        if name is None or build is None:
            print(f"report: {f}: no build line, skipped", file=sys.stderr)
            continue
        family = name.split()[0]
        runs[dataset][family][rnd] = {"name": name, "build": build, "search": search, "file": f}
    return runs


def qps_at(run: dict, target: float):
    """(qps, ef) at the smallest ef with recall >= target, or None."""
    for ef in sorted(run["search"]):
        s = run["search"][ef]
        if s["recall"] >= target:
            return s["qps"], ef
    return None


def med(values):
    return statistics.median(values) if values else None


def spread(values, fmt="{:.2f}") -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(med(values))} [{fmt.format(min(values))}\u2013{fmt.format(max(values))}]"


def mib(b) -> str:
    return "n/a" if b is None else f"{b / 2**20:.1f}"


def round_key(r: str):
    return (0, int(r)) if r.isdigit() else (1, r)


def ratios(libs: dict, ours: str, peers: list, target: float, memory_bound: float = 1.3) -> list[str]:
    """The ratio table of `ours` against the best of `peers`, round by round."""
    out = []
    if ours in libs and peers:
        qps_r, build_r, mem_r, best_q, best_b = [], [], [], [], []
        for r in sorted(libs[ours], key=round_key):
            mine = libs[ours][r]
            others = {p: libs[p][r] for p in peers if r in libs[p]}
            if not others:
                continue
            mem_r.append(mine["build"]["index_rss_bytes"] / mine["build"]["raw_bytes"])
            fastest = min(others, key=lambda p: others[p]["build"]["build_s"])
            build_r.append(mine["build"]["build_s"] / others[fastest]["build"]["build_s"])
            best_b.append(fastest)
            peer_q = {p: qps_at(o, target) for p, o in others.items()}
            peer_q = {p: v[0] for p, v in peer_q.items() if v is not None}
            my_q = qps_at(mine, target)
            if peer_q and my_q is not None:
                bp = max(peer_q, key=peer_q.get)
                qps_r.append(my_q[0] / peer_q[bp])
                best_q.append(bp)
            elif peer_q:
                qps_r.append(0.0)
                best_q.append(max(peer_q, key=peer_q.get))

        def verdict(kind, values):
            if not values:
                return "n/a"
            op, bound = TARGETS[kind]
            if kind == "memory":
                bound = memory_bound
            m = med(values)
            ok = m >= bound if op == ">=" else m <= bound
            return f"{op} {bound:g}: {'met' if ok else 'NOT met'}"

        def who(names):
            return ", ".join(f"{n} \u00d7{names.count(n)}" for n in sorted(set(names)))

        out.append(f"Ratios of {ours} to the best peer (per round, median [min\u2013max] over "
                   f"{len(mem_r)} rounds):")
        out.append("")
        out.append("| ratio | value | target | best peer (rounds) |")
        out.append("|---|---|---|---|")
        out.append(f"| queries/s at recall@10 \u2265 {target:g}: ours / best peer's | "
                   f"{spread(qps_r)} | {verdict('qps', qps_r)} | {who(best_q)} |")
        out.append(f"| build time: ours / fastest peer's | {spread(build_r)} | "
                   f"{verdict('build', build_r)} | {who(best_b)} |")
        out.append(f"| index RSS / raw vector bytes (ours) | {spread(mem_r)} | "
                   f"{verdict('memory', mem_r)} | \u2014 |")
        if any(v == 0.0 for v in qps_r):
            out.append("")
            out.append(f"(A ratio of 0 means {ours} did not reach the recall target in that round.)")
        out.append("")
    elif ours not in libs:
        out.append(f"({ours} has no runs for this dataset: no ratios.)")
        out.append("")

    return out


def draw(dataset: str, libs: dict, families: list):
    """recall@10 against queries/s (log), one line per library (medians over rounds), as
    ann-benchmarks draws it; saved beside the report. None if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for fam in families:
        efs = sorted({ef for r in libs[fam].values() for ef in r["search"]})
        pts = []
        for ef in efs:
            ss = [r["search"][ef] for r in libs[fam].values() if ef in r["search"]]
            pts.append((med([x["recall"] for x in ss]), med([x["qps"] for x in ss])))
        style = "-" if fam.startswith("crossmodal") else "--"
        ax.plot([p[0] for p in pts], [p[1] for p in pts], style, marker="o", markersize=3, label=fam)
    ax.set_yscale("log")
    ax.set_xlabel("recall@10")
    ax.set_ylabel("queries/s (one thread, one query per call)")
    ax.set_title(dataset)
    ax.axvline(0.95, color="grey", linewidth=0.5)
    ax.grid(True, which="both", linewidth=0.3)
    ax.legend(fontsize=7)
    name = f"{dataset}.png"
    fig.tight_layout()
    fig.savefig(OUT_DIR / name, dpi=120)
    plt.close(fig)
    return name


def report_dataset(dataset: str, libs: dict, target: float, ours: str) -> list[str]:
    out = [f"## {dataset}", ""]
    families = sorted(libs, key=lambda f: (f != ours, f))
    any_run = next(iter(next(iter(libs.values())).values()))
    raw = any_run["build"]["raw_bytes"]
    meta = any_run["build"]
    rounds_all = sorted({r for f in families for r in libs[f]}, key=round_key)
    out.append(f"Raw vectors: {mib(raw)} MiB. Rounds: {len(rounds_all)}. "
               + (f"M={meta['m']}, ef_construction={meta['ef_construction']}. "
                  if "m" in meta else "")
               + f"Search: k=10, one query per call, 1 thread.")
    out.append("")

    # Summary table.
    out.append(f"| library | build s | build threads | index RSS MiB | RSS / raw | "
               f"RSS MiB after malloc_trim | reported MiB | "
               f"queries/s at recall@10 \u2265 {target:g} (ef) | same ef, one batch call |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    for fam in families:
        runs = libs[fam]
        rs = sorted(runs, key=round_key)
        name = runs[rs[-1]]["name"]
        builds = [runs[r]["build"]["build_s"] for r in rs]
        threads = sorted({runs[r]["build"].get("build_threads") for r in rs}, key=str)
        rss = [runs[r]["build"]["index_rss_bytes"] for r in rs]
        reported = [runs[r]["build"].get("index_reported_bytes") for r in rs]
        reported = [x for x in reported if x is not None]
        trimmed = [runs[r]["build"].get("index_rss_trimmed_bytes") for r in rs]
        trimmed = [x / 2**20 for x in trimmed if x is not None]
        hits = [qps_at(runs[r], target) for r in rs]
        reached = [h for h in hits if h is not None]
        batch = [runs[r]["search"][h[1]].get("batch_qps") for r, h in zip(rs, hits) if h]
        batch = [b for b in batch if b is not None]
        if reached:
            efs = sorted({h[1] for h in reached})
            q = spread([h[0] for h in reached], "{:.0f}") + f" (ef {'/'.join(map(str, efs))})"
            if len(reached) < len(hits):
                q += f", reached in {len(reached)}/{len(hits)} rounds"
        else:
            best = max((s["recall"] for r in rs for s in runs[r]["search"].values()), default=0)
            q = f"not reached (best recall {best:.3f})"
        out.append(
            f"| {name} | {spread(builds)} | {'/'.join(map(str, threads))} | "
            f"{spread([x / 2**20 for x in rss], '{:.1f}')} | "
            f"{spread([x / raw for x in rss])} | {spread(trimmed, '{:.1f}')} | "
            f"{spread([x / 2**20 for x in reported], '{:.1f}') if reported else 'n/a'} | {q} | "
            f"{spread(batch, '{:.0f}')} |"
        )
    out.append("")

    # Sweep table: recall@10 and queries/s per ef (median over rounds).
    efs = sorted({ef for fam in families for r in libs[fam].values() for ef in r["search"]})
    out.append("Recall@10 / queries/s per ef (median over rounds):")
    out.append("")
    out.append("| ef | " + " | ".join(families) + " |")
    out.append("|---|" + "---|" * len(families))
    for ef in efs:
        cells = []
        for fam in families:
            ss = [r["search"][ef] for r in libs[fam].values() if ef in r["search"]]
            if not ss:
                cells.append("")
                continue
            cells.append(f"{med([s['recall'] for s in ss]):.3f} / "
                         f"{med([s['qps'] for s in ss]):.0f}")
        out.append(f"| {ef} | " + " | ".join(cells) + " |")
    out.append("")

    # Ratios of ours to the best peer, within each round: the f32 index against the f32
    # peers, the int8 mode against the 8-bit and half-precision peers.
    f32_peers = [f for f in families if f in F32_PEERS]
    q_peers = [f for f in families if f in QUANTIZED_PEERS]
    out.extend(ratios(libs, ours, f32_peers, target))
    if QUANTIZED_OURS in libs:
        out.extend(ratios(libs, QUANTIZED_OURS, q_peers, target, memory_bound=0.6))
    plot = draw(dataset, libs, families)
    if plot:
        out.append(f"![recall@10 against queries/s, {dataset}]({plot})")
        out.append("")
    return out


F32_PEERS = {"faiss-hnsw", "usearch", "hnswlib"}
QUANTIZED_PEERS = {"faiss-hnsw-sq8", "usearch-i8", "usearch-f16"}
QUANTIZED_OURS = "crossmodal-hnsw-int8"
OUT_DIR = Path(".")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="+", type=Path)
    ap.add_argument("--target-recall", type=float, default=0.95)
    ap.add_argument("--ours", default="crossmodal-hnsw")
    args = ap.parse_args()
    global OUT_DIR
    OUT_DIR = args.paths[0] if args.paths[0].is_dir() else args.paths[0].parent
    runs = read_runs(args.paths)
    if not runs:
        sys.exit("report: no runs found")
    lines = ["# ANN comparison", ""]
    for p in args.paths:
        env = p / "env.json" if p.is_dir() else None
        if env is not None and env.exists():
            for k, v in json.loads(env.read_text()).items():
                lines.append(f"- {k}: {v}")
            lines.append("")
    for dataset in sorted(runs):
        lines.extend(report_dataset(dataset, runs[dataset], args.target_recall, args.ours))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
