#!/usr/bin/env bash
# multihost.sh - several "docker hosts" on one machine for skein's multi-host tests and benchmarks.
#
# A lab lives in one directory DIR (/tmp/skmh-XXXXXX); its basename RUN names every namespace, so a
# crashed run never blocks the next one:
#   RUN-s        the "store" namespace: bridge ulbr 198.18.K.254/24 (the underlay), etcd or Consul
#   RUN-hI       host I (1..N): ul0 198.18.K.I/24, a veth whose other end is a port of ulbr; no
#                default route, so no packet can leave the lab's namespaces
#   DIR/hI       host I's dockerd (see testhost.sh: own data/exec root, pidfile, socket, private
#                /run/docker/plugins and /etc/docker in its own mount+uts namespace)
#
#   multihost.sh net-up DIR K N               namespaces + underlay; DIR/owner must exist
#   multihost.sh dockerd-start DIR I          dockerd of host I (waits until it answers)
#   multihost.sh dockerd-stop DIR I [kill]    TERM (or KILL) host I's dockerd
#   multihost.sh image DIR I NAME [TAR]       busybox image (or TAR, a rootfs tarball) as NAME on host I
#   multihost.sh etcd-start DIR K             etcd 3.4 in RUN-s on 198.18.K.254:2379 (+127.0.0.1)
#   multihost.sh etcd-stop DIR [kill]         stop it (its data stays: etcd-start resumes it)
#   multihost.sh skein-start DIR I STORE K [ARGS...]   skein of host I in the dockerd's namespaces
#                                             (for scripts; the xunit harness runs skein itself)
#   multihost.sh skein-stop DIR I [kill]
#   multihost.sh dockerd-pid DIR I            pid of host I's dockerd (for nsenter -t PID -n -m -u)
#   multihost.sh docker DIR I ARGS...         /usr/bin/docker against host I
#   multihost.sh teardown DIR                 remove everything of the lab, idempotent
#   multihost.sh sweep PREFIX                 teardown of labs whose owner process is gone
set -uo pipefail
export PATH=/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TESTHOST=$HERE/testhost.sh

die() { echo "multihost: $*" >&2; exit 1; }
run_of() { basename "$1"; }
alive() { [[ -n ${1:-} && -r /proc/$1/cmdline ]] && tr '\0' ' ' 2>/dev/null </proc/"$1"/cmdline | grep -qF -- "$2"; }
stop_pid() { # stop_pid PID PATTERN GRACE_SECONDS [SIGNAL]
  local p=$1 pat=$2 grace=$3 sig=${4:-TERM} i
  alive "$p" "$pat" || return 0
  kill -"$sig" "$p" 2>/dev/null
  for ((i = 0; i < grace * 10; i++)); do alive "$p" "$pat" || return 0; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null; sleep 0.2
}
hosts_of() { local d; for d in "$1"/h[0-9]*; do [[ -d $d ]] && echo "${d##*/h}"; done; }

net_up() {
  local dir=$1 k=$2 n=$3 run i s
  run=$(run_of "$dir"); s=$run-s
  [[ -r $dir/owner ]] || die "$dir/owner missing (write the owning process id first)"
  [[ $k =~ ^[0-9]+$ && $k -le 255 ]] || die "K must be 0..255, got '$k'"
  [[ $n =~ ^[1-9]$ ]] || die "N must be 1..9, got '$n'"
  ip netns add "$s" || die "ip netns add $s"
  ip -n "$s" link set lo up || die "lo up in $s"
  ip -n "$s" link add ulbr type bridge || die "bridge ulbr in $s"
  ip -n "$s" addr add "198.18.$k.254/24" dev ulbr && ip -n "$s" link set ulbr up || die "ulbr address/up"
  for ((i = 1; i <= n; i++)); do
    ip netns add "$run-h$i" || die "ip netns add $run-h$i"
    ip -n "$run-h$i" link set lo up || die "lo up in $run-h$i"
    # created inside the store namespace, the peer moved straight into the host: nothing in ours
    ip -n "$s" link add "h$i" type veth peer name ul0 netns "$run-h$i" || die "veth h$i/ul0"
    ip -n "$s" link set "h$i" master ulbr && ip -n "$s" link set "h$i" up || die "h$i on ulbr"
    ip -n "$run-h$i" addr add "198.18.$k.$i/24" dev ul0 && ip -n "$run-h$i" link set ul0 up || die "ul0 of host $i"
    mkdir -p "$dir/h$i"
    echo "$k" >"$dir/h$i/underlay-k"
  done
  for ((i = 1; i <= n; i++)); do
    local t
    for ((t = 0; t < 50; t++)); do
      ip netns exec "$run-h$i" busybox ping -c1 -W1 "198.18.$k.254" >/dev/null 2>&1 && break
      sleep 0.1
    done
    ((t < 50)) || die "host $i cannot reach the store over the underlay"
  done
}

host_ip() { echo "198.18.$(cat "$1/h$2/underlay-k").$2"; }
dockerd_start() { bash "$TESTHOST" dockerd-start "$1/h$2" "$(run_of "$1")-h$2" "$(host_ip "$1" "$2")"; }
dockerd_stop() { bash "$TESTHOST" dockerd-stop "$1/h$2" "${3:-term}"; }
dockerd_pid() { local p; p=$(cat "$1/h$2/docker.pid" 2>/dev/null) && alive "$p" "$1/h$2/docker.sock" && echo "$p"; }
image() {
  local dir=$1 i=$2 name=$3 tar=${4:-}
  if [[ -z $tar ]]; then bash "$TESTHOST" image "$dir/h$i" "$name"; return; fi
  DOCKER_CONFIG=$dir/h$i/cli timeout 60 /usr/bin/docker -H "unix://$dir/h$i/docker.sock" image inspect "$name" >/dev/null 2>&1 && return 0
  DOCKER_CONFIG=$dir/h$i/cli timeout 120 /usr/bin/docker -H "unix://$dir/h$i/docker.sock" import \
    --change 'CMD ["/bin/sh"]' --change 'ENV PATH=/bin' "$tar" "$name" >/dev/null || die "import $tar as $name on host $i"
}

etcd_start() {
  local dir=$1 k=$2 run s p
  run=$(run_of "$dir"); s=$run-s
  p=$(cat "$dir/etcd.pid" 2>/dev/null) && alive "$p" "$dir/etcd-data" && return 0
  command -v etcd >/dev/null || die "etcd missing (apt-get install etcd-server)"
  mkdir -p "$dir/etcd-data"
  local client="http://198.18.$k.254:2379" peer="http://127.0.0.1:2380"
  # no setsid: it forks when its caller leads a process group, and the pid file must name etcd itself
  ip netns exec "$s" etcd --name store --data-dir "$dir/etcd-data" \
    --listen-client-urls "$client,http://127.0.0.1:2379" --advertise-client-urls "$client" \
    --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
    --initial-cluster "store=$peer" --initial-cluster-state new \
    --logger zap --log-level warn </dev/null >>"$dir/etcd.log" 2>&1 &
  echo $! >"$dir/etcd.pid"
  local t
  for ((t = 0; t < 150; t++)); do
    ip netns exec "$s" timeout 2 busybox wget -qO- "$client/health" 2>/dev/null | grep -q '"true"' && return 0
    kill -0 "$(cat "$dir/etcd.pid")" 2>/dev/null || { tail -5 "$dir/etcd.log" >&2; die "etcd exited during start"; }
    sleep 0.2
  done
  tail -5 "$dir/etcd.log" >&2; die "etcd not healthy after 30 s"
}
etcd_stop() {
  local dir=$1 p
  p=$(cat "$dir/etcd.pid" 2>/dev/null) || return 0
  if [[ ${2:-term} == kill ]]; then stop_pid "$p" "$dir/etcd-data" 5 KILL; else stop_pid "$p" "$dir/etcd-data" 10; fi
  rm -f "$dir/etcd.pid"
}

skein_bin() {
  [[ -n ${SKEIN_BINARY:-} && -x $SKEIN_BINARY ]] && { echo "$SKEIN_BINARY"; return; }
  die "set SKEIN_BINARY to the skein executable"
}
skein_start() {
  local dir=$1 i=$2 store=$3 k=$4 hd p bin
  shift 4
  hd=$dir/h$i
  p=$(cat "$hd/skein.pid" 2>/dev/null) && alive "$p" "$hd/plugins/skein.sock" && return 0
  bin=$(skein_bin)
  local dp; dp=$(dockerd_pid "$dir" "$i") || die "dockerd of host $i is not running"
  mkdir -p "$hd/skein-state"
  rm -f "$hd/plugins/skein.sock"
  SKEIN_ADVERTISE_ADDR="198.18.$k.$i" SKEIN_NODE_ID="host$i" \
    nsenter -t "$dp" -n -m -u -- "$bin" serve --socket "$hd/plugins/skein.sock" \
    --state-dir "$hd/skein-state" --store "$store" "$@" </dev/null >>"$hd/skein.log" 2>&1 &
  echo $! >"$hd/skein.pid"
  local t
  for ((t = 0; t < 300; t++)); do
    # ready = answers a call that needs its whole start-up (it holds calls until then)
    [[ -S $hd/plugins/skein.sock ]] && { ! command -v curl >/dev/null ||
      curl -sf -m 2 --unix-socket "$hd/plugins/skein.sock" -X POST http://skein/IpamDriver.GetDefaultAddressSpaces >/dev/null 2>&1; } &&
      return 0
    # kill -0, not alive(): until the child has exec'd, its command line is still this script's
    kill -0 "$(cat "$hd/skein.pid")" 2>/dev/null || { tail -20 "$hd/skein.log" >&2; die "skein of host $i exited during start"; }
    sleep 0.1
  done
  tail -20 "$hd/skein.log" >&2; die "skein of host $i not answering after 30 s"
}
skein_stop() {
  local hd=$1/h$2 p
  p=$(cat "$hd/skein.pid" 2>/dev/null) || return 0
  if [[ ${3:-term} == kill ]]; then stop_pid "$p" "$hd/plugins/skein.sock" 5 KILL; else stop_pid "$p" "$hd/plugins/skein.sock" 10; fi
  rm -f "$hd/skein.pid"
}

teardown() {
  local dir=$1 run i p
  run=$(run_of "$dir")
  [[ $run == *-* ]] || die "refusing to tear down '$dir' (expected /tmp/PREFIX-RAND)"
  # hosts in parallel: containers, dockerd, containerd, shims, skein, the host namespace, mounts
  for i in $(hosts_of "$dir"); do
    bash "$TESTHOST" teardown "$dir/h$i" "$run-h$i" "$run-h$i" &
  done
  wait
  for i in $(hosts_of "$dir") 1 2 3 4 5 6 7 8 9; do   # namespaces whose host dir never got made
    [[ -e /run/netns/$run-h$i ]] || continue
    for p in $(ip netns pids "$run-h$i" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
    ip netns del "$run-h$i" 2>/dev/null
  done
  [[ -d $dir ]] && etcd_stop "$dir" kill
  if [[ -e /run/netns/$run-s ]]; then
    for p in $(ip netns pids "$run-s" 2>/dev/null); do
      # the test process itself may hold a socket there, but it never runs inside: only foreign pids here
      [[ $p == "$PPID" || $p == "$$" ]] && continue
      kill -KILL "$p" 2>/dev/null
    done
    sleep 0.2
    ip netns del "$run-s" 2>/dev/null
  fi
  if [[ -d $dir ]]; then
    for p in $(findmnt -rn -o TARGET | grep -F "$dir/" | sort -r); do umount -l "$p" 2>/dev/null; done
    rm -rf --one-file-system "$dir" 2>/dev/null || { sleep 1; rm -rf --one-file-system "$dir"; }
  fi
  return 0
}

sweep() {
  local prefix=$1 dir owner ns run
  [[ $prefix == *- ]] || die "sweep prefix must end in '-' (got '$prefix')"
  for dir in /tmp/"$prefix"*; do
    [[ -d $dir ]] || continue
    owner=$(cat "$dir/owner" 2>/dev/null)
    [[ -n $owner ]] && kill -0 "$owner" 2>/dev/null && continue
    # a lab being created right now has its directory a moment before its owner file
    [[ -z $owner && -z $(find "$dir" -maxdepth 0 -mmin +10 2>/dev/null) ]] && continue
    echo "multihost: removing leftovers of dead test process ${owner:-?}: $dir" >&2
    teardown "$dir"
  done
  # namespaces of a lab whose directory is already gone
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${prefix}[0-9a-f]+-(s|h[0-9])\$"); do
    run=${ns%-*}
    [[ -d /tmp/$run ]] && continue
    echo "multihost: removing orphan namespace $ns" >&2
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
  done
  return 0
}

[[ $(id -u) == 0 ]] || die "must run as root"
cmd=${1:-}; shift || true
case $cmd in
  net-up) net_up "$@" ;;
  dockerd-start) dockerd_start "$@" ;;
  dockerd-stop) dockerd_stop "$@" ;;
  dockerd-pid) dockerd_pid "$@" ;;
  image) image "$@" ;;
  etcd-start) etcd_start "$@" ;;
  etcd-stop) etcd_stop "$@" ;;
  skein-start) skein_start "$@" ;;
  skein-stop) skein_stop "$@" ;;
  docker) dir=$1 i=$2; shift 2
    DOCKER_CONFIG=$dir/h$i/cli exec timeout "${DTO:-600}" /usr/bin/docker -H "unix://$dir/h$i/docker.sock" "$@" ;;
  teardown) teardown "$@" ;;
  sweep) sweep "$@" ;;
  *) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
