#!/usr/bin/env bash
# plugin-latency.sh: RequestAddress and CreateEndpoint+Join p50/p99 from one client, and throughput at
# 64 concurrent clients, each next to skein's /Plugin.Activate (trivial handler) in the same run.
# skein runs in a scratch network namespace (CreateEndpoint makes real veth pairs there).
source "$(dirname "$0")/common.sh"
lab_up
bench_client scripted-latency --socket "$SOCK" --clients "${BENCH_CLIENTS:-64}" --seconds "${BENCH_SECONDS:-5}" \
  --iterations "${BENCH_ITERATIONS:-2000}" --endpoint-iterations "${BENCH_ENDPOINT_ITERATIONS:-300}" \
  || { tail -20 "$DIR/skein.log" >&2; die "latency benchmark failed"; }
