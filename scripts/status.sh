#!/usr/bin/env bash
# Show the state of every process of the local stack.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/stack-env.sh
exec supervisorctl -c "$OPS_VAR_DIR/ops/supervisord.conf" status
