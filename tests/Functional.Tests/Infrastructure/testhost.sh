#!/usr/bin/env bash
# testhost.sh - namespace and dockerd plumbing for skein's functional tests (the test logic is xunit).
#
#   testhost.sh netns-up NS OUTNS HOST_IP OUT_IP   two netns joined by a veth (/24), default route of
#                                                  NS via OUT_IP; links are created inside the
#                                                  namespaces, nothing appears in the caller's netns
#   testhost.sh dockerd-start DIR NS HOST_IP       dockerd inside NS with a private mount+uts ns in
#                                                  which DIR/plugins is /run/docker/plugins and
#                                                  DIR/etc-docker is /etc/docker; waits until it answers
#   testhost.sh dockerd-stop DIR [kill]            TERM (or KILL) by pidfile, wait for exit
#   testhost.sh image DIR NAME                     busybox rootfs -> docker import NAME (once per dockerd)
#   testhost.sh teardown DIR NS OUTNS              remove everything the above made, idempotent
#   testhost.sh sweep PREFIX                       teardown of leftovers of dead test processes
#
# Every path lives under DIR (one temp dir per fixture); DIR/owner holds the test process id.
# Why dockerd is launched this way: `ip netns exec` remounts /sys and drops the cgroup mounts dockerd
# needs; legacy plugin sockets and the engine key live at fixed paths, so each test dockerd gets its
# own /run/docker/plugins and /etc/docker in its own mount namespace (propagation slave: nothing
# leaks back to the host).
set -uo pipefail
export PATH=/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin
DOCKER=/usr/bin/docker
DOCKERD=/usr/sbin/dockerd
APPLETS="sh ash ping ping6 ip ifconfig sleep cat nc wget hostname true false echo ls ps grep awk sed
 head tail wc env date uname id kill timeout netstat route arp seq mkdir rm mount tee sort cut tr
 printf test [ which nslookup udhcpc httpd ifup"

die() { echo "testhost: $*" >&2; exit 1; }
d() { local dir=$1; shift; DOCKER_CONFIG=$dir/cli timeout "${DTO:-60}" "$DOCKER" -H "unix://$dir/docker.sock" "$@"; }
# alive PID PATTERN: PID runs and its command line contains PATTERN (guards against pid reuse)
alive() { [[ -n ${1:-} && -r /proc/$1/cmdline ]] && tr '\0' ' ' 2>/dev/null </proc/"$1"/cmdline | grep -qF -- "$2"; }
stop_pid() { # stop_pid PID PATTERN GRACE_SECONDS [SIGNAL]
  local p=$1 pat=$2 grace=$3 sig=${4:-TERM} i
  alive "$p" "$pat" || return 0
  kill -"$sig" "$p" 2>/dev/null
  for ((i = 0; i < grace * 10; i++)); do alive "$p" "$pat" || return 0; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null; sleep 0.2
}
dockerd_pid() { local p; p=$(cat "$1/docker.pid" 2>/dev/null) && alive "$p" "$1/docker.sock" && echo "$p"; }

netns_up() {
  local ns=$1 out=$2 hip=$3 oip=$4 veth_h="${1//-/}"; veth_h=${veth_h:0:13}h
  local veth_o=${veth_h%h}o
  ip netns add "$ns" || die "ip netns add $ns"
  ip netns add "$out" || die "ip netns add $out"
  ip -n "$ns" link set lo up && ip -n "$out" link set lo up || die "lo up"
  ip link add "$veth_h" netns "$ns" type veth peer name "$veth_o" netns "$out" || die "veth $veth_h/$veth_o"
  ip -n "$ns" addr add "$hip/24" dev "$veth_h" && ip -n "$out" addr add "$oip/24" dev "$veth_o" || die "addresses"
  ip -n "$ns" link set "$veth_h" up && ip -n "$out" link set "$veth_o" up || die "veth up"
  ip -n "$ns" route add default via "$oip" || die "default route"
  echo "$veth_h"
}

dockerd_start() {
  local dir=$1 ns=$2 hip=$3
  dockerd_pid "$dir" >/dev/null && return 0
  mkdir -p "$dir"/{data,exec,plugins,etc-docker/plugins,cli} || die "mkdir $dir"
  [[ -s $dir/daemon.json ]] || echo '{}' >"$dir/daemon.json"
  rm -f "$dir/docker.sock" "$dir/docker.pid"
  # A containerd left from a killed dockerd would be "adopted" and time the new dockerd out.
  local cp; cp=$(cat "$dir/exec/containerd/containerd.pid" 2>/dev/null)
  [[ -n $cp ]] && stop_pid "$cp" "$dir/exec/containerd" 5
  rm -f "$dir/exec/containerd/containerd.pid"
  [[ -d /run/docker/plugins ]] || mkdir -p /run/docker/plugins
  local launcher="set -e; hostname '$ns'; mkdir -p '$dir/.cg'
    mount --move /sys/fs/cgroup '$dir/.cg' || mount --rbind /sys/fs/cgroup '$dir/.cg'
    umount -l /sys; mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
    mount --move '$dir/.cg' /sys/fs/cgroup
    mount --bind '$dir/etc-docker' /etc/docker
    mount --bind '$dir/plugins' /run/docker/plugins"'
    exec "$0" "$@"'
  setsid unshare --mount --uts --propagation slave -- nsenter --net="/run/netns/$ns" -- \
    sh -c "$launcher" "$DOCKERD" --config-file "$dir/daemon.json" --data-root "$dir/data" \
    --exec-root "$dir/exec" -H "unix://$dir/docker.sock" --pidfile "$dir/docker.pid" \
    --dns "$hip" --log-level info </dev/null >>"$dir/dockerd.log" 2>&1 &
  echo $! >"$dir/launcher.pid"
  local end=$((SECONDS + 90))
  until DTO=5 d "$dir" info >/dev/null 2>&1; do
    if ((SECONDS >= end)); then tail -20 "$dir/dockerd.log" >&2; die "dockerd in $ns not answering after 90 s"; fi
    if ! kill -0 "$(cat "$dir/launcher.pid")" 2>/dev/null && ! dockerd_pid "$dir" >/dev/null; then
      tail -20 "$dir/dockerd.log" >&2; die "dockerd in $ns exited during start"
    fi
    sleep 0.3
  done
}

dockerd_stop() {
  local dir=$1 how=${2:-term} p
  p=$(dockerd_pid "$dir") || return 0
  if [[ $how == kill ]]; then
    kill -KILL "$p"
    local i; for ((i = 0; i < 50; i++)); do alive "$p" "$dir/docker.sock" || break; sleep 0.1; done
  else
    stop_pid "$p" "$dir/docker.sock" 30
  fi
}

image() {
  local dir=$1 name=$2 r=$1/image/rootfs a
  DTO=10 d "$dir" image inspect "$name" >/dev/null 2>&1 && return 0
  if [[ ! -s $dir/image/rootfs.tar ]]; then
    rm -rf "$dir/image"; mkdir -p "$r"/{bin,etc,tmp,root,proc,sys,dev,var/www}
    chmod 1777 "$r/tmp"
    cp /bin/busybox "$r/bin/busybox" || die "busybox-static missing (/bin/busybox)"
    for a in $APPLETS; do ln -sf busybox "$r/bin/$a"; done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$r/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/etc/group"
    tar -C "$r" --numeric-owner -cf "$dir/image/rootfs.tar" . || die "tar rootfs"
  fi
  d "$dir" import --change 'CMD ["/bin/sh"]' --change 'ENV PATH=/bin' "$dir/image/rootfs.tar" "$name" >/dev/null || die "docker import $name"
}

teardown() {
  local dir=$1 ns=$2 out=$3 p ids
  if [[ -d $dir ]]; then
    if dockerd_pid "$dir" >/dev/null && DTO=10 d "$dir" info >/dev/null 2>&1; then
      ids=$(DTO=10 d "$dir" ps -aq 2>/dev/null)
      [[ -n $ids ]] && DTO=60 d "$dir" rm -f $ids >/dev/null 2>&1
      for p in $(DTO=10 d "$dir" network ls -q --filter type=custom 2>/dev/null); do DTO=20 d "$dir" network rm "$p" >/dev/null 2>&1; done
    fi
    dockerd_stop "$dir"
    # what a killed dockerd leaves: containerd, shims, container processes (by their cgroups)
    for p in $(grep -lsF -- "$dir/" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3); do
      [[ $p == "$$" ]] && continue
      case $(tr '\0' '\n' 2>/dev/null </proc/"$p"/cmdline | head -1) in
        *containerd* | *dockerd* | *skein* | *dotnet*) stop_pid "$p" "$dir/" 5 ;;
      esac
    done
    local cid f
    for cid in $(ls "$dir/data/containers" 2>/dev/null); do
      for f in /sys/fs/cgroup/*/docker/"$cid"/cgroup.procs; do
        [[ -r $f ]] && for p in $(cat "$f"); do kill -KILL "$p" 2>/dev/null; done
      done
      sleep 0.2
      for f in /sys/fs/cgroup/*/docker/"$cid"; do [[ -d $f ]] && rmdir "$f" 2>/dev/null; done
    done
  fi
  # anything still running inside our namespaces (skein, nc, ...)
  for n in "$ns" "$out"; do
    [[ -e /run/netns/$n ]] || continue
    for p in $(ip netns pids "$n" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
  done
  sleep 0.2
  for n in "$ns" "$out"; do [[ -e /run/netns/$n ]] && ip netns del "$n" 2>/dev/null; done
  if [[ -d $dir ]]; then
    for p in $(findmnt -rn -o TARGET | grep -F "$dir/" | sort -r); do umount -l "$p" 2>/dev/null; done
    rm -rf --one-file-system "$dir" 2>/dev/null || { sleep 1; rm -rf --one-file-system "$dir"; }
  fi
  return 0
}

# Leftovers of test processes that died without disposing (e.g. a killed test host).
sweep() {
  local prefix=$1 dir owner ns
  for dir in /tmp/"$prefix"*; do
    [[ -d $dir && -r $dir/owner ]] || continue
    owner=$(cat "$dir/owner")
    kill -0 "$owner" 2>/dev/null && continue
    ns=$(basename "$dir")
    echo "testhost: removing leftovers of dead test process $owner: $dir" >&2
    teardown "$dir" "$ns" "$ns-o"
  done
}

[[ $(id -u) == 0 ]] || die "must run as root"
cmd=${1:-}; shift || true
case $cmd in
  netns-up) netns_up "$@" ;;
  dockerd-start) dockerd_start "$@" ;;
  dockerd-stop) dockerd_stop "$@" ;;
  image) image "$@" ;;
  teardown) teardown "$@" ;;
  sweep) sweep "$@" ;;
  *) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
