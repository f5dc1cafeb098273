#!/usr/bin/env bash
# Installs, starts and stops the OpenSearch-compatible server the crossmodal-opensearch tests run
# index lifecycle, mapping, bulk, delete and catalog checks against: `osmem-server` (PyPI package
# `osmem-server`, a static in-memory OpenSearch-3.x-compatible server; it refuses k-NN queries,
# which the crate's own k-NN test server answers) in a Python virtual environment, on 127.0.0.1.
#
#   scripts/opensearch-server.sh install   create the venv (if missing) and pip install osmem-server
#   scripts/opensearch-server.sh start     start osmem-server on a free loopback port, wait until it
#                                          answers, print the `export` line the tests read:
#                                            CROSSMODAL_OSMEM_URL=http://127.0.0.1:PORT
#   scripts/opensearch-server.sh stop      stop the server started by `start` (by its PID)
#   scripts/opensearch-server.sh env       print the export line of the running server again
#
# Usage from a CI script:
#   scripts/opensearch-server.sh install
#   eval "$(scripts/opensearch-server.sh start)"
#   cargo test -p crossmodal-opensearch
#   scripts/opensearch-server.sh stop
#
# Environment:
#   CROSSMODAL_VENV             the virtual environment (default $HOME/.cache/crossmodal/venv,
#                               shared with scripts/s3-server.sh)
#   CROSSMODAL_OPENSEARCH_STATE where the PID, port and log files go
#                               (default $CROSSMODAL_VENV/../opensearch-server)
#   PYTHON                      the interpreter that creates the venv (default python3)
#   OPENSEARCH_SERVER_WAIT      seconds `start` waits for the server to answer (default 30)
set -euo pipefail

VENV="${CROSSMODAL_VENV:-$HOME/.cache/crossmodal/venv}"
STATE="${CROSSMODAL_OPENSEARCH_STATE:-$(dirname "$VENV")/opensearch-server}"
PYTHON="${PYTHON:-python3}"
WAIT="${OPENSEARCH_SERVER_WAIT:-30}"
PIDFILE="$STATE/osmem.pid"
PORTFILE="$STATE/osmem.port"
LOGFILE="$STATE/osmem.log"
# Pinned so every machine runs the server the tests were checked against.
PACKAGES=("osmem-server==0.1.6")

log() { echo "opensearch-server: $*" >&2; }

# The server binary the wheel bundles (it installs no console script of its own).
osmem_bin() {
    "$VENV/bin/python" -c 'import osmem_server; print(osmem_server.resolve_binary())' 2>/dev/null
}

install() {
    local bin
    if [[ -x "$VENV/bin/python" ]] && bin="$(osmem_bin)" && [[ -x "$bin" ]]; then
        log "osmem-server already installed in $VENV"
        return 0
    fi
    if [[ ! -x "$VENV/bin/python" ]]; then
        log "creating virtual environment $VENV"
        mkdir -p "$(dirname "$VENV")"
        "$PYTHON" -m venv "$VENV"
    fi
    log "installing ${PACKAGES[*]} into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PACKAGES[@]}" >&2
    bin="$(osmem_bin)" && [[ -x "$bin" ]] || { log "osmem-server binary missing after install"; exit 1; }
}

free_port() {
    "$VENV/bin/python" - <<'EOF'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
EOF
}

running_pid() {
    [[ -f "$PIDFILE" ]] || return 1
    local pid
    pid="$(cat "$PIDFILE")"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

print_env() {
    echo "export CROSSMODAL_OSMEM_URL=http://127.0.0.1:$(cat "$PORTFILE")"
}

answers() {
    # The cluster info document on GET / means the server is up.
    "$VENV/bin/python" - "$1" <<'EOF'
import json, sys, urllib.request
try:
    with urllib.request.urlopen("http://127.0.0.1:%s/" % sys.argv[1], timeout=1) as r:
        json.load(r)["version"]["number"]
except Exception:
    sys.exit(1)
EOF
}

start() {
    local bin
    bin="$(osmem_bin)" && [[ -x "$bin" ]] || { log "osmem-server is not installed: run '$0 install' first"; exit 1; }
    mkdir -p "$STATE"
    if pid="$(running_pid)"; then
        log "already running (PID $pid)"
        print_env
        return 0
    fi
    local port started
    port="$(free_port)"
    started="$(date +%s.%N)"
    # setsid: the server outlives the calling shell and never receives its terminal's signals;
    # -no-stdin-watch: it would otherwise exit when its (closed) stdin ends.
    setsid "$bin" -addr "127.0.0.1:$port" -no-stdin-watch -no-ja >"$LOGFILE" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" >"$PIDFILE"
    echo "$port" >"$PORTFILE"
    local deadline=$(( $(date +%s) + WAIT ))
    until answers "$port"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "osmem-server exited during start-up; its log:"
            cat "$LOGFILE" >&2
            rm -f "$PIDFILE"
            exit 1
        fi
        if (( $(date +%s) >= deadline )); then
            log "osmem-server did not answer on port $port within ${WAIT}s; its log:"
            cat "$LOGFILE" >&2
            kill "$pid" 2>/dev/null || true
            rm -f "$PIDFILE"
            exit 1
        fi
        sleep 0.1
    done
    log "osmem-server PID $pid on 127.0.0.1:$port, ready after $(awk "BEGIN{printf \"%.2f\", $(date +%s.%N) - $started}")s"
    print_env
}

stop() {
    local pid
    if ! pid="$(running_pid)"; then
        log "not running"
        rm -f "$PIDFILE"
        return 0
    fi
    kill "$pid"
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "PID $pid did not stop after SIGTERM; sending SIGKILL"
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$PIDFILE"
    log "stopped PID $pid"
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    env)
        running_pid >/dev/null || { log "not running"; exit 1; }
        print_env
        ;;
    *)
        echo "usage: $0 install|start|stop|env" >&2
        exit 2
        ;;
esac
