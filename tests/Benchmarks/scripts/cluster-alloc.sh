#!/usr/bin/env bash
# cluster-alloc.sh [SECONDS]: allocations/s with 8 concurrent simulated hosts on one etcd, skein's per-host
# blocks vs the per-address CAS baseline (one shared bitmap key per subnet, libnetwork's design), and
# conflicts per allocation for both, same run: allocation only with one and with four
# concurrent requests per host, and with churn (allocate + release). The designs run in 5 interleaved rounds (the
# shared machine's load changes fall on all of them; the RESULT line gives the per-round ratio range). Starts its own
# etcd on loopback with a temporary data directory and removes both on exit.
set -euo pipefail
. "$(dirname "$0")/common.sh"
command -v etcd >/dev/null || die "etcd is not installed (apt-get install etcd-server)"
mkdir -p "$ART"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
data=$(mktemp -d /tmp/skbench-etcd-XXXXXX)
client=$(free_port) peer=$(free_port)
etcd --name skbench --data-dir "$data" \
  --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
  --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
  --initial-cluster "skbench=http://127.0.0.1:$peer" --log-level error >"$data.log" 2>&1 &
etcd_pid=$!
cleanup() {
  kill "$etcd_pid" 2>/dev/null || true
  wait "$etcd_pid" 2>/dev/null || true
  rm -rf "$data" "$data.log"
}
trap cleanup EXIT
for ((i = 0; i < 100; i++)); do
  curl -fsS "http://127.0.0.1:$client/health" 2>/dev/null | grep -q true && break
  kill -0 "$etcd_pid" 2>/dev/null || { cat "$data.log" >&2; die "etcd exited during start-up"; }
  sleep 0.1
done
log "etcd up on 127.0.0.1:$client (data $data)"
# Allocation only, one request at a time per host (the headline figure); four at once per host
# (compose-style bursts); and churn (each host releases its oldest address beyond 16).
for run in "1 0" "4 0" "1 16"; do
  read -r per_host window <<<"$run"
  bench_client scripted-cluster-alloc --etcd "http://127.0.0.1:$client/" --seconds "${1:-10}" --hosts 8 --per-host "$per_host" --window "$window"
  export SKEIN_BENCH_REBUILD=
done
