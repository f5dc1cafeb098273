#!/usr/bin/env bash
# Installs, starts and stops the S3-compatible server the crossmodal-s3 tests run against:
# `moto_server` (PyPI package `moto`, extra `s3`) in a Python virtual environment, on 127.0.0.1.
#
#   scripts/s3-server.sh install   create the venv (if missing) and pip install moto[s3]
#   scripts/s3-server.sh start     start moto_server on a free loopback port, wait until it answers,
#                                  print the `export` lines the tests read:
#                                    CROSSMODAL_S3_ENDPOINT=http://127.0.0.1:PORT
#                                    CROSSMODAL_MOTO_BIN=/path/to/venv/bin/moto_server
#   scripts/s3-server.sh stop      stop the server started by `start` (by its PID)
#   scripts/s3-server.sh env       print the export lines of the running server again
#
# Usage from a CI script:
#   scripts/s3-server.sh install
#   eval "$(scripts/s3-server.sh start)"
#   cargo test -p crossmodal-s3
#   scripts/s3-server.sh stop
#
# Environment:
#   CROSSMODAL_VENV     the virtual environment (default $HOME/.cache/crossmodal/venv)
#   CROSSMODAL_S3_STATE where the PID, port and log files go (default $CROSSMODAL_VENV/../s3-server)
#   PYTHON              the interpreter that creates the venv (default python3)
#   S3_SERVER_WAIT      seconds `start` waits for the server to answer (default 60)
set -euo pipefail

VENV="${CROSSMODAL_VENV:-$HOME/.cache/crossmodal/venv}"
STATE="${CROSSMODAL_S3_STATE:-$(dirname "$VENV")/s3-server}"
PYTHON="${PYTHON:-python3}"
WAIT="${S3_SERVER_WAIT:-60}"
PIDFILE="$STATE/moto.pid"
PORTFILE="$STATE/moto.port"
LOGFILE="$STATE/moto.log"
MOTO_BIN="$VENV/bin/moto_server"
# Pinned so every machine runs the server the tests were checked against.
PACKAGES=("moto[s3]==5.1.22" "flask==3.1.3" "flask-cors==6.0.5")

log() { echo "s3-server: $*" >&2; }

install() {
    if [[ -x "$MOTO_BIN" ]] && "$VENV/bin/python" -c 'import moto, flask, flask_cors' 2>/dev/null; then
        log "moto_server already installed in $VENV"
        return 0
    fi
    if [[ ! -x "$VENV/bin/python" ]]; then
        log "creating virtual environment $VENV"
        mkdir -p "$(dirname "$VENV")"
        if ! "$PYTHON" -m venv "$VENV" >&2; then
            # Debian's python3 ships venv/ensurepip separately.
            if command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]]; then
                log "python3 -m venv failed; installing python3-venv"
                rm -rf "$VENV"
                apt-get update -qq >&2
                DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
                "$PYTHON" -m venv "$VENV" >&2
            else
                log "python3 -m venv failed: install the python3-venv package"
                exit 1
            fi
        fi
    fi
    log "installing ${PACKAGES[*]} into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PACKAGES[@]}" >&2
    [[ -x "$MOTO_BIN" ]] || { log "moto_server missing after install"; exit 1; }
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
    # The PID must still be ours: a moto_server process (PIDs are reused).
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null \
        && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q moto_server \
        && echo "$pid"
}

print_env() {
    echo "export CROSSMODAL_S3_ENDPOINT=http://127.0.0.1:$(cat "$PORTFILE")"
    echo "export CROSSMODAL_MOTO_BIN=$MOTO_BIN"
}

answers() {
    # Any HTTP answer (moto lists buckets on GET /) means the server is up.
    "$VENV/bin/python" - "$1" <<'EOF'
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen("http://127.0.0.1:%s/" % sys.argv[1], timeout=1)
except urllib.error.HTTPError:
    pass
except Exception:
    sys.exit(1)
EOF
}

start() {
    [[ -x "$MOTO_BIN" ]] || { log "moto_server is not installed: run '$0 install' first"; exit 1; }
    mkdir -p "$STATE"
    if pid="$(running_pid)"; then
        log "already running (PID $pid)"
        print_env
        return 0
    fi
    local port started
    port="$(free_port)"
    started="$(date +%s.%N)"
    # setsid: the server outlives the calling shell and never receives its terminal's signals.
    setsid "$MOTO_BIN" -H 127.0.0.1 -p "$port" >"$LOGFILE" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" >"$PIDFILE"
    echo "$port" >"$PORTFILE"
    local deadline=$(( $(date +%s) + WAIT ))
    until answers "$port"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "moto_server exited during start-up; its log:"
            cat "$LOGFILE" >&2
            rm -f "$PIDFILE"
            exit 1
        fi
        if (( $(date +%s) >= deadline )); then
            log "moto_server did not answer on port $port within ${WAIT}s; its log:"
            cat "$LOGFILE" >&2
            kill "$pid" 2>/dev/null || true
            rm -f "$PIDFILE"
            exit 1
        fi
        sleep 0.1
    done
    log "moto_server PID $pid on 127.0.0.1:$port, ready after $(awk "BEGIN{printf \"%.2f\", $(date +%s.%N) - $started}")s"
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
