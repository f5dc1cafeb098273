#!/usr/bin/env bash
# The project's test command (README). On a fresh machine it does the set-up itself:
#
# 1. system packages the tests use: ffmpeg (video, MP3 and M4A samples), Debian's chromium and
#    chromium-driver (the server's page test), python3 with venv (the local servers). Missing ones
#    are installed with apt-get when this runs as root; otherwise it stops with one line naming
#    them (set CROSSMODAL_ALLOW_SKIPS=1 to run anyway: those tests are then reported as skipped);
# 2. the local servers the backend tests talk to on 127.0.0.1: an S3-compatible server (moto) and
#    an OpenSearch-compatible one (osmem-server), installed into a Python venv and started here;
#    the Bedrock-protocol and OpenSearch k-NN test servers run inside the tests;
# 3. `cargo test --workspace` (extra arguments are passed on), then a summary line: tests passed,
#    skipped (a test that could not run here records itself, see crossmodal-testkit's `skip`;
#    it is never counted as passed), failed, ignored, with every skip and its reason.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "test.sh: $*" >&2; }

# --- 1. system packages -------------------------------------------------------------------
missing=()
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
command -v chromium >/dev/null 2>&1 || [[ -x /usr/bin/chromium ]] || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || [[ -x /usr/bin/chromedriver ]] || missing+=(chromium-driver)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
if [[ ${#missing[@]} -gt 0 ]]; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        say "installing ${missing[*]} (apt-get)"
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    elif [[ "${CROSSMODAL_ALLOW_SKIPS:-0}" == 1 ]]; then
        say "missing ${missing[*]}: the tests that need them will be reported as skipped"
    else
        echo "test.sh: missing system packages: ${missing[*]} (install them, e.g. 'sudo apt-get install ${missing[*]}', or set CROSSMODAL_ALLOW_SKIPS=1)" >&2
        exit 1
    fi
fi

# --- 2. local servers ---------------------------------------------------------------------
bash scripts/s3-server.sh install
bash scripts/opensearch-server.sh install

stop_servers() {
    bash scripts/s3-server.sh stop || true
    bash scripts/opensearch-server.sh stop || true
}
trap stop_servers EXIT
# `eval "$(...)"` would hide a failed start; an assignment keeps its exit status (set -e).
s3_env="$(bash scripts/s3-server.sh start)"
eval "$s3_env"
opensearch_env="$(bash scripts/opensearch-server.sh start)"
eval "$opensearch_env"

# --- 3. the tests, and what ran -----------------------------------------------------------
work="$(mktemp -d)"
export CROSSMODAL_SKIP_LOG="$work/skipped"
: >"$CROSSMODAL_SKIP_LOG"
status=0
cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$work/output" || status=$?

summary="$(python3 - "$work/output" "$CROSSMODAL_SKIP_LOG" "$status" <<'EOF'
import re, sys
out = open(sys.argv[1], errors="replace").read()
skips = [l.strip() for l in open(sys.argv[2], errors="replace") if l.strip()]
passed = failed = ignored = 0
for m in re.finditer(r"test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored", out):
    passed += int(m.group(1)); failed += int(m.group(2)); ignored += int(m.group(3))
ran = passed - len(skips)
line = f"summary: {ran} passed, {len(skips)} skipped, {failed} failed, {ignored} ignored"
if sys.argv[3] != "0" and failed == 0:
    line += f" (cargo test exited with status {sys.argv[3]}: a build or harness failure)"
print(line)
for s in skips:
    print("  " + s)
EOF
)"
echo "$summary"
rm -rf "$work"
exit "$status"
