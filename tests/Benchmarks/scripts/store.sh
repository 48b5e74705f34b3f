#!/usr/bin/env bash
# store.sh [SECONDS]: conditional writes/s (1 and 8 clients) and write-to-watch latency against a real etcd
# started on loopback by the benchmark itself, with the embedded store measured in the same run.
set -euo pipefail
. "$(dirname "$0")/common.sh"
command -v etcd >/dev/null || die "etcd is not installed (apt-get install etcd-server)"
bench_client scripted-store --seconds "${1:-5}"
