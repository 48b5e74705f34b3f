# common.sh - shared plumbing of the scripted benchmarks (sourced, not run).
# A scratch "host": network namespace (+ optional private dockerd) made by the functional tests'
# testhost.sh, skein started inside it, everything removed on exit.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
TESTHOST=$ROOT/tests/Functional.Tests/Infrastructure/testhost.sh
ART=${SKEIN_BENCH_ARTIFACTS:-/tmp/skbench-artifacts}
export PATH=/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
[[ -x $(command -v dotnet) ]] || export PATH=$PATH:/usr/share/dotnet

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
[[ $(id -u) == 0 ]] || die "must run as root (network namespaces, dockerd)"

# source_stamp: what the sources are (commit and uncommitted changes), so a build from other sources is never
# reused silently; outside a git checkout, a fresh value every time (always rebuild).
source_stamp() {
  if git -C "$ROOT" rev-parse HEAD >/dev/null 2>&1; then
    { git -C "$ROOT" rev-parse HEAD; git -C "$ROOT" status --porcelain --untracked-files=no -- src tests/Benchmarks; git -C "$ROOT" diff -- src tests/Benchmarks; } | sha1sum | cut -c1-16
  else
    date +%s%N
  fi
}

# skein_binary: $SKEIN_BINARY, else a NativeAOT publish of src/Driver (the figures are about the AOT binary)
skein_binary() {
  if [[ -n ${SKEIN_BINARY:-} ]]; then echo "$SKEIN_BINARY"; return; fi
  local out=$ART/aot stamp
  stamp=$(source_stamp)
  if [[ ! -x $out/skein || -n ${SKEIN_BENCH_REBUILD:-} || $(cat "$out/.source" 2>/dev/null) != "$stamp" ]]; then
    log "publishing skein with NativeAOT to $out"
    dotnet publish "$ROOT/src/Driver" -c Release -r linux-x64 -o "$out" --artifacts-path "$ART/build" >"$ART/publish.log" 2>&1 \
      || { tail -30 "$ART/publish.log" >&2; die "AOT publish failed (log: $ART/publish.log)"; }
    echo "$stamp" >"$out/.source"
  fi
  echo "$out/skein"
}

# bench_client ARGS...: the C# driver in tests/Benchmarks (Release build)
bench_client() {
  local dll=$ART/bin/Benchmarks/release/Benchmarks.dll stamp
  stamp=$(source_stamp)
  if [[ ! -f $dll || -n ${SKEIN_BENCH_REBUILD:-} || $(cat "$ART/client.source" 2>/dev/null) != "$stamp" ]]; then
    log "building tests/Benchmarks (Release)"
    dotnet build "$ROOT/tests/Benchmarks" -c Release --artifacts-path "$ART" >"$ART/client-build.log" 2>&1 \
      || { tail -30 "$ART/client-build.log" >&2; die "benchmark client build failed"; }
    echo "$stamp" >"$ART/client.source"
  fi
  dotnet "$dll" "$@"
}

ID=skbench-$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')
DIR=/tmp/$ID NS=$ID OUT=$ID-o HOST_IP=198.18.0.1 OUT_IP=198.18.0.2
SOCK=$DIR/plugins/skein.sock
SKEIN_PID=

# lab_up [dockerd]: namespace pair, optionally dockerd + busybox image; then skein unless NO_SKEIN=1
lab_up() {
  mkdir -p "$ART" "$DIR/plugins" && echo $$ >"$DIR/owner"
  bash "$TESTHOST" sweep skbench- || true
  trap lab_down EXIT
  bash "$TESTHOST" netns-up "$NS" "$OUT" "$HOST_IP" "$OUT_IP" >/dev/null || die "netns-up"
  if [[ ${1:-} == dockerd ]]; then
    bash "$TESTHOST" dockerd-start "$DIR" "$NS" "$HOST_IP" || die "dockerd-start"
    bash "$TESTHOST" image "$DIR" skein-busybox || die "image"
  fi
  [[ ${NO_SKEIN:-0} == 1 ]] && return 0
  local bin; bin=$(skein_binary) || exit 1
  nsenter --net="/run/netns/$NS" -- "$bin" serve --socket "$SOCK" --state-dir "$DIR/skein-state" </dev/null >>"$DIR/skein.log" 2>&1 &
  SKEIN_PID=$!
  local i
  for ((i = 0; i < 300; i++)); do [[ -S $SOCK ]] && break; kill -0 "$SKEIN_PID" 2>/dev/null || break; sleep 0.1; done
  [[ -S $SOCK ]] || { tail -20 "$DIR/skein.log" >&2; die "skein did not create $SOCK"; }
  log "lab $ID up (skein pid $SKEIN_PID: $bin)"
}

lab_down() {
  if [[ -n $SKEIN_PID ]] && kill -0 "$SKEIN_PID" 2>/dev/null; then
    kill -TERM "$SKEIN_PID" 2>/dev/null
    local i; for ((i = 0; i < 50; i++)); do kill -0 "$SKEIN_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SKEIN_PID" 2>/dev/null
  fi
  bash "$TESTHOST" teardown "$DIR" "$NS" "$OUT"
}

d() { DOCKER_CONFIG=$DIR/cli timeout 120 /usr/bin/docker -H "unix://$DIR/docker.sock" "$@"; }

median() { sort -n | awk '{a[NR]=$1} END{if(!NR){print "n/a";exit} if(NR%2) m=a[(NR+1)/2]; else m=(a[NR/2]+a[NR/2+1])/2; printf "%.4f\n", m}'; }
