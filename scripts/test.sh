#!/usr/bin/env bash
# The project's test command (README): installs and starts the local servers the backend tests
# talk to (an S3-compatible server on 127.0.0.1), runs every test of the workspace, stops them.
# Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/s3-server.sh install
eval "$(bash scripts/s3-server.sh start)"
trap 'bash scripts/s3-server.sh stop' EXIT

cargo test --workspace "$@"
