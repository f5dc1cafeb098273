#!/usr/bin/env bash
# The project's test command (README): installs and starts the local servers the backend tests
# talk to on 127.0.0.1 (an S3-compatible server, moto; an OpenSearch-compatible server for index
# lifecycle and bulk, osmem-server), runs every test of the workspace, and stops the servers.
# Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

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

cargo test --workspace "$@"
