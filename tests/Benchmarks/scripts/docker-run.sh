#!/usr/bin/env bash
# docker-run.sh [N]: `docker run --rm busybox true` on a skein network vs Docker's built-in bridge,
# same dockerd, N interleaved rounds (order rotating), medians and their ratio (goal: <= 1.02).
# Also measured in the same rounds: a user-defined network of Docker's own bridge driver. The engine gives
# every user-defined network (skein's included) its embedded DNS resolver, set up inside each container's
# namespace at start, and the built-in "bridge" network none; the user-defined bridge shows that share.
source "$(dirname "$0")/common.sh"
N=${1:-${BENCH_RUNS:-15}}
lab_up dockerd
d network create -d skein --ipam-driver skein benchnet >/dev/null || { tail -20 "$DIR/skein.log" >&2; die "network create on skein failed"; }
d network create -d bridge benchbr >/dev/null || die "network create of a user-defined bridge network failed"
run_once() { # run_once NETWORK -> seconds
  local t0 t1; t0=$(date +%s%N)
  d run --rm --network "$1" skein-busybox true >/dev/null 2>"$DIR/run.err" || { cat "$DIR/run.err" >&2; die "docker run on $1 failed"; }
  t1=$(date +%s%N); echo "$(((t1 - t0) / 1000))" | awk '{printf "%.4f\n", $1/1e6}'
}
for net in benchnet bridge benchbr; do run_once "$net" >/dev/null; done # warm-up: image layers, plugin activation
sk=() br=() ub=()
for ((i = 0; i < N; i++)); do
  case $((i % 3)) in
    0) sk+=("$(run_once benchnet)"); br+=("$(run_once bridge)"); ub+=("$(run_once benchbr)") ;;
    1) br+=("$(run_once bridge)"); ub+=("$(run_once benchbr)"); sk+=("$(run_once benchnet)") ;;
    2) ub+=("$(run_once benchbr)"); sk+=("$(run_once benchnet)"); br+=("$(run_once bridge)") ;;
  esac
done
msk=$(printf '%s\n' "${sk[@]}" | median); mbr=$(printf '%s\n' "${br[@]}" | median); mub=$(printf '%s\n' "${ub[@]}" | median)
d network rm benchnet benchbr >/dev/null
ratio=$(awk -v a="$msk" -v b="$mbr" 'BEGIN{printf "%.3f", a/b}')
ratio_ub=$(awk -v a="$msk" -v b="$mub" 'BEGIN{printf "%.3f", a/b}')
echo "docker run --rm true, median of $N interleaved runs each, dockerd $(d version -f '{{.Server.Version}}'), $(nproc) cores"
echo "  skein network: ${msk} s   bridge: ${mbr} s   ratio skein/bridge: $ratio"
echo "  user-defined bridge network (embedded DNS like skein's): ${mub} s   ratio skein/user-defined bridge: $ratio_ub"
echo "RESULT docker_run_skein_s=$msk docker_run_bridge_s=$mbr ratio=$ratio docker_run_userbridge_s=$mub ratio_userbridge=$ratio_ub"
