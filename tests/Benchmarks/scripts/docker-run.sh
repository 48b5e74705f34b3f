#!/usr/bin/env bash
# docker-run.sh [N]: `docker run --rm busybox true` on a skein network vs Docker's built-in bridge,
# same dockerd, N interleaved pairs (order alternating), medians and their ratio (goal: <= 1.02).
source "$(dirname "$0")/common.sh"
N=${1:-${BENCH_RUNS:-15}}
lab_up dockerd
d network create -d skein --ipam-driver skein benchnet >/dev/null || { tail -20 "$DIR/skein.log" >&2; die "network create on skein failed"; }
run_once() { # run_once NETWORK -> seconds
  local t0 t1; t0=$(date +%s%N)
  d run --rm --network "$1" skein-busybox true >/dev/null 2>"$DIR/run.err" || { cat "$DIR/run.err" >&2; die "docker run on $1 failed"; }
  t1=$(date +%s%N); echo "$(((t1 - t0) / 1000))" | awk '{printf "%.4f\n", $1/1e6}'
}
run_once benchnet >/dev/null; run_once bridge >/dev/null   # warm-up: image layers, plugin activation
sk=() br=()
for ((i = 0; i < N; i++)); do
  if ((i % 2)); then br+=("$(run_once bridge)"); sk+=("$(run_once benchnet)")
  else sk+=("$(run_once benchnet)"); br+=("$(run_once bridge)"); fi
done
msk=$(printf '%s\n' "${sk[@]}" | median); mbr=$(printf '%s\n' "${br[@]}" | median)
d network rm benchnet >/dev/null
ratio=$(awk -v a="$msk" -v b="$mbr" 'BEGIN{printf "%.3f", a/b}')
echo "docker run --rm true, median of $N interleaved runs, dockerd $(d version -f '{{.Server.Version}}'), $(nproc) cores"
echo "  skein network: ${msk} s   bridge: ${mbr} s   ratio skein/bridge: $ratio"
echo "RESULT docker_run_skein_s=$msk docker_run_bridge_s=$mbr ratio=$ratio"
