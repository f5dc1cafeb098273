#!/usr/bin/env bash
# Side-by-side ANN comparison: crossmodal-hnsw (Rust) against faiss-cpu HNSW, usearch and
# hnswlib over the same vectors and queries. See README.md beside this file.
#
#   bash benches/ann_compare/run.sh
#
# Knobs (environment):
#   ROUNDS=3                 rounds; each runs every candidate once per dataset, in LIBRARIES order
#   DATASETS="synthetic minilm"
#   N=100000 DIM=512 NQ=1000 synthetic size; DIM may be a list ("512 1024")
#   SIGMA=2.0 CLUSTERS=500   synthetic cluster spread and count
#   MINILM_MIN_N=20000 MINILM_MAX_N=29000   minilm base size bounds (NQ queries held out)
#   M=16 EFC=200 EFS=10,12,16,20,24,32,40,48,64,80,96,128,160,200,256
#   LIBRARIES="crossmodal-hnsw crossmodal-hnsw-int8 faiss faiss-sq8 usearch usearch-i8 usearch-f16 hnswlib"
#   BUILD_THREADS=<all cores> threads the Python peers may build with (the Rust runner uses
#                            std::thread::available_parallelism and reports it)
#   ANN_VENV=$HOME/.cache/crossmodal/ann-venv   Python venv (created/reused)
#   ANN_PYTHON=python3.11    interpreter the venv is created with
#   ANN_DATA=$HOME/.cache/crossmodal/ann-data   datasets (made once, then reused)
#   OUT=$HOME/.cache/crossmodal/ann-results/<date-time>   JSON lines and report.md
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

ROUNDS="${ROUNDS:-3}"
DATASETS="${DATASETS:-synthetic minilm}"
N="${N:-100000}"
DIM="${DIM:-512}"
NQ="${NQ:-1000}"
SIGMA="${SIGMA:-2.0}"
CLUSTERS="${CLUSTERS:-500}"
MINILM_MIN_N="${MINILM_MIN_N:-20000}"
MINILM_MAX_N="${MINILM_MAX_N:-29000}"
M="${M:-16}"
EFC="${EFC:-200}"
EFS="${EFS:-10,12,16,20,24,32,40,48,64,80,96,128,160,200,256}"
LIBRARIES="${LIBRARIES:-crossmodal-hnsw crossmodal-hnsw-int8 faiss faiss-sq8 usearch usearch-i8 usearch-f16 hnswlib}"
BUILD_THREADS="${BUILD_THREADS:-$(nproc)}"
ANN_VENV="${ANN_VENV:-$HOME/.cache/crossmodal/ann-venv}"
ANN_DATA="${ANN_DATA:-$HOME/.cache/crossmodal/ann-data}"
OUT="${OUT:-$HOME/.cache/crossmodal/ann-results/$(date +%Y%m%d-%H%M%S)}"

log() { printf '[ann_compare] %s\n' "$*" >&2; }

# --- Python environment ------------------------------------------------------------------
if [[ ! -x "$ANN_VENV/bin/python" ]]; then
    log "creating venv $ANN_VENV"
    mkdir -p "$(dirname "$ANN_VENV")"
    # The pins are checked on CPython 3.11; ANN_PYTHON picks another interpreter.
    "${ANN_PYTHON:-$(command -v python3.11 || command -v python3)}" -m venv "$ANN_VENV"
fi
PY="$ANN_VENV/bin/python"
log "installing $HERE/requirements.txt into $ANN_VENV"
"$PY" -m pip install --quiet --disable-pip-version-check -r "$HERE/requirements.txt"

# --- datasets ----------------------------------------------------------------------------
mkdir -p "$ANN_DATA"
DIRS=()
for ds in $DATASETS; do
    case "$ds" in
        synthetic)
            for dim in $DIM; do
                log "dataset synthetic n=$N dim=$dim nq=$NQ sigma=$SIGMA clusters=$CLUSTERS"
                dir="$("$PY" "$HERE/make_data.py" --out "$ANN_DATA" synthetic \
                    --n "$N" --dim "$dim" --nq "$NQ" --sigma "$SIGMA" --clusters "$CLUSTERS" | tail -n 1)"
                DIRS+=("$dir")
            done
            ;;
        minilm)
            log "dataset minilm min_n=$MINILM_MIN_N max_n=$MINILM_MAX_N nq=$NQ"
            minilm=(--out "$ANN_DATA" minilm --min-n "$MINILM_MIN_N" --max-n "$MINILM_MAX_N" --nq "$NQ")
            if ! dir="$("$PY" "$HERE/make_data.py" --check "${minilm[@]}" 2>/dev/null | tail -n 1)"; then
                log "installing $HERE/requirements-embed.txt (torch, sentence-transformers) to embed"
                "$PY" -m pip install --quiet --disable-pip-version-check -r "$HERE/requirements-embed.txt"
                dir="$(HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 "$PY" "$HERE/make_data.py" "${minilm[@]}" | tail -n 1)"
            fi
            DIRS+=("$dir")
            ;;
        *)
            log "unknown dataset $ds (synthetic, minilm)"
            exit 2
            ;;
    esac
done

# --- the Rust runner, built once up front so that no round pays for compiling -------------
# The Rust runner, as run for each round (from the repository root):
#   cargo bench --quiet -p crossmodal-benches --bench ann_compare -- --data DIR --m M \
#       --ef-construction EFC --efs LIST
run_rust() { (cd "$ROOT" && cargo bench --quiet -p crossmodal-benches --bench ann_compare -- "$@"); }
if [[ " $LIBRARIES " == *" crossmodal-hnsw"* ]]; then
    log "building the Rust runner (cargo bench --no-run)"
    (cd "$ROOT" && cargo bench --quiet -p crossmodal-benches --bench ann_compare --no-run)
fi

# --- environment record ------------------------------------------------------------------
mkdir -p "$OUT"
"$PY" - "$OUT/env.json" "$BUILD_THREADS" "$ROUNDS" "$LIBRARIES" "$ROOT" <<'PYEOF'
import json, platform, subprocess, sys, importlib.metadata as md
out, threads, rounds, libs, root = sys.argv[1:]
def cmd(*a):
    try:
        return subprocess.run(a, capture_output=True, text=True, cwd=root).stdout.strip()
    except OSError:
        return "n/a"
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
pkgs = ", ".join(f"{p} {md.version(p)}" for p in ("numpy", "faiss-cpu", "usearch", "chroma-hnswlib"))
env = {
    "date": cmd("date", "-u", "+%Y-%m-%dT%H:%M:%SZ"),
    "cpu": f"{cpu}, {len(__import__('os').sched_getaffinity(0))} cores available",
    "kernel": platform.release(),
    "python": platform.python_version() + "; " + pkgs,
    "rustc": cmd("rustc", "--version"),
    "commit": cmd("git", "rev-parse", "--short", "HEAD") + (" (dirty)" if cmd("git", "status", "--porcelain", "--untracked-files=no") else ""),
    "rounds": rounds,
    "candidates (in run order)": libs,
    "build threads (Python peers)": threads,
}
json.dump(env, open(out, "w"), indent=2)
PYEOF

# --- rounds ------------------------------------------------------------------------------
FAILED=0
for ((round = 1; round <= ROUNDS; round++)); do
    for dir in "${DIRS[@]}"; do
        ds="$(basename "$dir")"
        mkdir -p "$OUT/$ds"
        for lib in $LIBRARIES; do
            file="$OUT/$ds/$round-$lib.jsonl"
            log "round $round/$ROUNDS  $ds  $lib"
            if [[ "$lib" == crossmodal-hnsw ]]; then
                run=(run_rust --data "$dir" --m "$M" \
                    --ef-construction "$EFC" --efs "$EFS")
            elif [[ "$lib" == crossmodal-hnsw-int8 ]]; then
                run=(run_rust --data "$dir" --m "$M" \
                    --ef-construction "$EFC" --efs "$EFS" --quantization int8)
            else
                run=("$PY" "$HERE/peers.py" --data "$dir" --library "$lib" --m "$M" \
                    --ef-construction "$EFC" --efs "$EFS" --build-threads "$BUILD_THREADS")
            fi
            if ! "${run[@]}" >"$file.part"; then
                log "FAILED: round $round $ds $lib (output kept in $file.failed)"
                mv "$file.part" "$file.failed"
                FAILED=1
                continue
            fi
            mv "$file.part" "$file"
        done
    done
done

# --- report ------------------------------------------------------------------------------
"$PY" "$HERE/report.py" "$OUT" | tee "$OUT/report.md"
log "JSON lines and report.md in $OUT"
exit "$FAILED"
