#!/usr/bin/env bash
# multihost.sh: multi-host skein on two namespace-hosts (the functional tests' multi-host lab:
# tests/Functional.Tests/Infrastructure/multihost.sh, etcd in the store namespace), against Docker's
# own drivers on the same two hosts, ratios from one run:
#   (a) TCP throughput container A -> container B across the hosts (iperf3, BENCH_IPERF_ROUNDS rounds of
#       BENCH_IPERF_SECS, skein and swarm in rotating order, medians): skein network (VXLAN on UDP
#       BENCH_VXLAN_PORT=4790) vs Docker's swarm overlay (4789) on the same hosts  goal >= 1.0
#       (BENCH_IPERF_NOBRNF=1 adds a diagnostic series: skein with br_netfilter off in the lab hosts)
#   (b) `docker run --rm true` on the skein multi-host network vs Docker's bridge, median of
#       BENCH_RUNS interleaved runs                                               goal <= 1.05
#       (also vs a user-defined bridge network, which has the same embedded DNS set-up as skein's)
#   (c) time from `docker run -d` on host A to the container answering ping from a container on host
#       B, p50/p99 over BENCH_PING_RUNS runs (includes `docker inspect` and a `docker exec` start, so
#       it overstates)                                                            goal p99 <= 1 s
# BENCH_PARTS="skein swarm" (default) or either alone. BENCH_ONLY_IPERF=1 skips (b) and (c).
# BENCH_EXTRA_NETWORKS=N (0..250) creates N more skein networks on both hosts before the measured one.
# BENCH_HOLD=1 keeps the lab up after (a) until the file $LAB/hold is removed (for experiments in it; the
# lab directory is logged, the iperf3 containers are cli-NET on host 1 and srv-NET on host 2).
# Needs root, docker.io 20.10, etcd-server, busybox-static, iperf3 (installed with apt-get if missing).
source "$(dirname "$0")/common.sh"
MH=$ROOT/tests/Functional.Tests/Infrastructure/multihost.sh
RUNS=${BENCH_RUNS:-15}
PING_RUNS=${BENCH_PING_RUNS:-20}
IPERF_SECS=${BENCH_IPERF_SECS:-5}
IPERF_ROUNDS=${BENCH_IPERF_ROUNDS:-8}   # single runs vary by +-10% on a shared 2-core machine
VXLAN_PORT=${BENCH_VXLAN_PORT:-4790}
PARTS=" ${BENCH_PARTS:-skein swarm} "   # which halves to run (the swarm half alone checks the lab)
IMG=skein-bench
SUBNET=10.30.0.0/16
LAB=/tmp/skmh-$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')

if ! command -v iperf3 >/dev/null; then
  log "installing iperf3"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iperf3 >/dev/null || die "apt-get install iperf3 failed"
fi
command -v etcd >/dev/null || die "etcd missing (apt-get install etcd-server)"
export SKEIN_BINARY; SKEIN_BINARY=$(skein_binary) || exit 1

mh() { bash "$MH" "$@"; }
dk() { local h=$1; shift; DTO=${DTO:-120} bash "$MH" docker "$LAB" "$h" "$@"; }
down() {
  for h in 2 1; do DTO=30 dk "$h" swarm leave --force >/dev/null 2>&1; done
  mh teardown "$LAB"
}

# an image with busybox and iperf3 (+ the libraries it links), built offline
image_tar() {
  local r=$LAB/image/rootfs a lib
  mkdir -p "$r"/{bin,etc,tmp,root,proc,sys,dev}
  chmod 1777 "$r/tmp"
  cp /bin/busybox "$r/bin/busybox" || die "busybox-static missing"
  for a in sh ping ping6 ip sleep cat true date hostname; do ln -sf busybox "$r/bin/$a"; done
  cp "$(command -v iperf3)" "$r/bin/iperf3"
  for lib in $(ldd "$(command -v iperf3)" | awk '/=>/ {print $3} !/=>/ && $1 ~ /^\// {print $1}'); do
    [[ -e $lib ]] && cp -L --parents "$lib" "$r/"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\n' >"$r/etc/passwd"
  printf 'root:x:0:\n' >"$r/etc/group"
  chroot "$r" /bin/iperf3 --version >/dev/null 2>&1 || die "iperf3 does not run inside the image rootfs"
  tar -C "$r" --numeric-owner -cf "$LAB/image/bench.tar" .
}

ip_of() { dk "$1" inspect -f "{{(index .NetworkSettings.Networks \"$3\").IPAddress}}" "$2"; }
wait_ping() { # wait_ping HOST CONTAINER IP SECONDS
  local end=$((SECONDS + $4))
  until dk "$1" exec "$2" ping -c1 -W1 "$3" >/dev/null 2>&1; do ((SECONDS < end)) || return 1; sleep 0.2; done
}
iperf_setup() { # iperf_setup NETWORK: iperf3 server on host2, client on host1; prints the server's address
  local net=$1 sip
  dk 2 run -d --name "srv-$net" --network "$net" "$IMG" iperf3 -s >/dev/null || die "iperf3 server on $net"
  dk 1 run -d --name "cli-$net" --network "$net" "$IMG" sleep 3600 >/dev/null || die "iperf3 client on $net"
  sip=$(ip_of 2 "srv-$net" "$net")
  wait_ping 1 "cli-$net" "$sip" 30 || die "host1 cannot reach host2's container ($sip) on $net"
  echo "$sip"
}
iperf_round() { # iperf_round NETWORK SERVER_IP [LABEL] -> receiver Mbit/s of one run
  local v
  v=$(DTO=$((IPERF_SECS + 30)) dk 1 exec "cli-$1" iperf3 -c "$2" -t "$IPERF_SECS" -f m 2>&1 |
    awk '/receiver$/ {for(i=1;i<=NF;i++) if($i=="Mbits/sec") m=$(i-1)} END {print (m==""?0:m)}')
  log "  iperf3 on $1${3:+ ($3)}: $v Mbit/s"
  echo "$v"
}
run_once() { # run_once NETWORK -> seconds of `docker run --rm true` on host1
  local t0 t1; t0=$(date +%s%N)
  dk 1 run --rm --network "$1" "$IMG" true >/dev/null 2>"$LAB/run.err" || { cat "$LAB/run.err" >&2; die "docker run on $1 failed"; }
  t1=$(date +%s%N); awk -v ns=$((t1 - t0)) 'BEGIN{printf "%.4f\n", ns/1e9}'
}
pct() { # pct P: P-th percentile (nearest rank) of stdin
  sort -n | awk -v p="$1" '{a[NR]=$1} END{if(!NR){print "n/a";exit} k=int((p*NR+99)/100); if(k<1)k=1; printf "%.3f\n", a[k]}'
}

trap down EXIT
mkdir -p "$LAB" && echo $$ >"$LAB/owner"
mh sweep skmh- || true
log "lab $LAB: two hosts, etcd in the store namespace"
mh net-up "$LAB" 1 2 || die "net-up"
mh etcd-start "$LAB" 1 || die "etcd"
mh dockerd-start "$LAB" 1 & mh dockerd-start "$LAB" 2 & wait
mh dockerd-pid "$LAB" 1 >/dev/null && mh dockerd-pid "$LAB" 2 >/dev/null || die "dockerd start failed"
image_tar
for h in 1 2; do mh image "$LAB" "$h" "$IMG" "$LAB/image/bench.tar" || die "image on host $h"; done
# skein on UDP 4790: Docker's overlay takes 4789 in each host's namespace, and both run side by side
# so that the throughput rounds can alternate
for h in 1 2; do mh skein-start "$LAB" "$h" etcd://198.18.1.254:2379 1 --vxlan-port "$VXLAN_PORT" || die "skein on host $h"; done
tp_skein=n/a run_sk=n/a run_br=n/a run_ub=n/a p50=n/a p99=n/a tp_swarm=n/a
tps=() tpw=()
if [[ $PARTS == *" skein "* ]]; then
# BENCH_EXTRA_NETWORKS=N: N more skein networks on both hosts, created before the measured one (each adds its
# rules to skein's chains: what a host with many networks costs per packet)
for ((i = 1; i <= ${BENCH_EXTRA_NETWORKS:-0}; i++)); do
  for h in 1 2; do
    dk "$h" network create -d skein --ipam-driver skein --subnet "10.40.$i.0/24" "extra$i" >/dev/null || die "extra network $i on host $h"
  done
done
for h in 1 2; do
  dk "$h" network create -d skein --ipam-driver skein --subnet "$SUBNET" mh >/dev/null ||
    { tail -20 "$LAB/h$h/skein.log" >&2; die "skein network on host $h"; }
done
sip_skein=$(iperf_setup mh) || exit 1

if [[ ${BENCH_ONLY_IPERF:-0} != 1 ]]; then
log "(b) docker run --rm, skein multi-host network vs bridge (and a user-defined bridge network), $RUNS interleaved rounds on host1"
# Every user-defined network (skein's included) gets the engine's embedded DNS resolver at container start and the
# default "bridge" network none: the user-defined bridge network is the like-for-like anchor.
dk 1 network create -d bridge mhub >/dev/null || die "user-defined bridge network on host 1"
run_once mh >/dev/null && run_once bridge >/dev/null && run_once mhub >/dev/null || exit 1
sk=() br=() ub=()
for ((i = 0; i < RUNS; i++)); do
  case $((i % 3)) in
    0) s=$(run_once mh) && b=$(run_once bridge) && u=$(run_once mhub) || exit 1 ;;
    1) b=$(run_once bridge) && u=$(run_once mhub) && s=$(run_once mh) || exit 1 ;;
    2) u=$(run_once mhub) && s=$(run_once mh) && b=$(run_once bridge) || exit 1 ;;
  esac
  sk+=("$s"); br+=("$b"); ub+=("$u")
done
run_sk=$(printf '%s\n' "${sk[@]}" | median); run_br=$(printf '%s\n' "${br[@]}" | median); run_ub=$(printf '%s\n' "${ub[@]}" | median)
dk 1 network rm mhub >/dev/null

log "(c) docker run -d on host1 -> pingable from a container on host2, $PING_RUNS runs"
dk 2 run -d --name prober --network mh "$IMG" sleep 3600 >/dev/null || die "prober"
lat=()
for ((i = 0; i < PING_RUNS; i++)); do
  t0=$(date +%s%N)
  dk 1 run -d --name "pr$i" --network mh "$IMG" sleep 600 >/dev/null || die "docker run pr$i"
  ip=$(ip_of 1 "pr$i" mh)
  # -t: a pty makes ping print each reply as it arrives
  first=$(timeout 20 bash "$MH" docker "$LAB" 2 exec -t prober ping -i 0.02 -w 15 "$ip" |
    while IFS= read -r l; do case $l in *"bytes from"*) date +%s%N; break ;; esac; done)
  [[ -n $first ]] || die "pr$i ($ip) never answered from host2"
  lat+=("$(awk -v ns=$((first - t0)) 'BEGIN{printf "%.4f\n", ns/1e9}')")
  dk 1 rm -f "pr$i" >/dev/null
done
p50=$(printf '%s\n' "${lat[@]}" | pct 50); p99=$(printf '%s\n' "${lat[@]}" | pct 99)
dk 2 rm -f prober >/dev/null
fi
fi

if [[ $PARTS == *" swarm "* ]]; then
log "forming a swarm of the two hosts, attachable overlay"
dk 1 swarm init --advertise-addr 198.18.1.1 --listen-addr 198.18.1.1:2377 --default-addr-pool 10.202.0.0/16 >/dev/null || die "swarm init"
tok=$(dk 1 swarm join-token -q worker) || die "join token"
dk 2 swarm join --token "$tok" --advertise-addr 198.18.1.2 --listen-addr 198.18.1.2:2377 198.18.1.1:2377 >/dev/null || die "swarm join"
dk 1 network create -d overlay --attachable --subnet 10.201.0.0/24 swov >/dev/null || die "overlay network"
sip_swarm=$(iperf_setup swov) || exit 1
fi

# BENCH_IPERF_NOBRNF=1: a third series, skein's network with net.bridge.bridge-nf-call-iptables=0 in both lab
# hosts' namespaces (per-namespace sysctl; never the machine's own): what br_netfilter costs skein's bridge, which
# sits in the host's namespace with Docker's rules and conntrack, while swarm's overlay bridge has a namespace of
# its own with neither. A diagnostic, not a configuration skein could ask for.
brnf() { local h; for h in 1 2; do ip netns exec "$(basename "$LAB")-h$h" sysctl -qw net.bridge.bridge-nf-call-iptables="$1" || return 1; done; }
series=()
[[ -n ${sip_skein:-} ]] && series+=(skein)
[[ -n ${sip_swarm:-} ]] && series+=(swarm)
if [[ ${BENCH_IPERF_NOBRNF:-0} == 1 && -n ${sip_skein:-} ]]; then
  if brnf 1; then series+=(nobrnf); else log "cannot set bridge-nf-call-iptables in the lab namespaces: no nobrnf series"; fi
fi
log "(a) iperf3 host1 -> host2, $IPERF_ROUNDS rounds of ${IPERF_SECS}s, series ${series[*]} in rotating order"
tpn=()
for ((r = 0; r < IPERF_ROUNDS; r++)); do
  n=${#series[@]}
  for ((k = 0; k < n; k++)); do
    case ${series[(r + k) % n]} in
      skein) tps+=("$(iperf_round mh "$sip_skein")") ;;
      swarm) tpw+=("$(iperf_round swov "$sip_swarm")") ;;
      nobrnf) brnf 0 && tpn+=("$(iperf_round mh "$sip_skein" "br_netfilter off")"); brnf 1 || die "cannot restore bridge-nf-call-iptables" ;;
    esac
  done
done
tp_nobrnf=n/a
((${#tpn[@]})) && tp_nobrnf=$(printf '%s\n' "${tpn[@]}" | median | awk '{printf "%.0f", $1}')
((${#tps[@]})) && tp_skein=$(printf '%s\n' "${tps[@]}" | median | awk '{printf "%.0f", $1}')
((${#tpw[@]})) && tp_swarm=$(printf '%s\n' "${tpw[@]}" | median | awk '{printf "%.0f", $1}')

if [[ ${BENCH_HOLD:-0} == 1 ]]; then
  : >"$LAB/hold"
  log "holding lab $LAB (skein server ${sip_skein:-n/a}, swarm server ${sip_swarm:-n/a}); rm $LAB/hold to tear it down"
  while [[ -e $LAB/hold ]]; do sleep 1; done
fi

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a+0>0 && b+0>0) printf "%.3f", a/b; else print "n/a"}'; }
echo "multi-host skein, 2 namespace-hosts, etcd store, dockerd $(dk 1 version -f '{{.Server.Version}}'), $(nproc) cores, kernel $(uname -r)"
echo "  (a) iperf3 TCP host1->host2 container, median of $IPERF_ROUNDS rotating ${IPERF_SECS}s rounds: skein ${tp_skein} Mbit/s  swarm overlay ${tp_swarm} Mbit/s  ratio skein/swarm $(ratio "$tp_skein" "$tp_swarm") (goal >= 1.0)"
[[ $tp_nobrnf != n/a ]] && echo "      skein without br_netfilter in the lab hosts (diagnostic) ${tp_nobrnf} Mbit/s  ratio to skein $(ratio "$tp_nobrnf" "$tp_skein")  to swarm $(ratio "$tp_nobrnf" "$tp_swarm")"
echo "  (b) docker run --rm true, median of $RUNS: skein multi-host ${run_sk} s  bridge ${run_br} s  ratio $(ratio "$run_sk" "$run_br") (goal <= 1.05); user-defined bridge ${run_ub} s  ratio $(ratio "$run_sk" "$run_ub")"
echo "  (c) docker run -d on host1 -> pingable from host2, $PING_RUNS runs: p50 ${p50} s  p99 ${p99} s (goal p99 <= 1 s)"
echo "RESULT mh_iperf_skein_mbits=$tp_skein mh_iperf_swarm_mbits=$tp_swarm mh_iperf_skein_nobrnf_mbits=$tp_nobrnf ratio_throughput=$(ratio "$tp_skein" "$tp_swarm") mh_docker_run_s=$run_sk bridge_docker_run_s=$run_br ratio_run=$(ratio "$run_sk" "$run_br") userbridge_docker_run_s=$run_ub ratio_run_userbridge=$(ratio "$run_sk" "$run_ub") mh_pingable_p50_s=$p50 mh_pingable_p99_s=$p99"
