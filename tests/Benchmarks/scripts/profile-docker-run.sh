#!/usr/bin/env bash
# profile-docker-run.sh [N]: where a `docker run --rm` on a skein network spends its time in skein.
# Runs N containers on a skein network (after one warm-up) with skein at debug level and strace attached,
# then prints per plugin call the median duration skein measured, the summed median per container, and the
# fsync/fdatasync calls per container with their total time. Not a figure for the README: strace slows skein
# down; use it to see which calls and which system calls cost what, then measure with docker-run.sh.
source "$(dirname "$0")/common.sh"
N=${1:-${BENCH_RUNS:-10}}
command -v strace >/dev/null || die "strace is needed (apt-get install strace)"
export SKEIN_LOG_LEVEL=debug
lab_up dockerd
d network create -d skein --ipam-driver skein profnet >/dev/null || { tail -20 "$DIR/skein.log" >&2; die "network create failed"; }
d run --rm --network profnet skein-busybox true >/dev/null || die "warm-up run failed"

TRACE=$DIR/strace.txt STRACE_PID=
if [[ ${PROFILE_STRACE:-1} == 1 ]]; then # PROFILE_STRACE=0: durations without strace's overhead, no fsync count
  strace -f -tt -T -e trace=fsync,fdatasync,sync_file_range,renameat,renameat2 -p "$SKEIN_PID" -o "$TRACE" 2>/dev/null &
  STRACE_PID=$!
  sleep 1
fi
mark=$(wc -l <"$DIR/skein.log")
t0=$(date +%s%N)
for ((i = 0; i < N; i++)); do
  d run --rm --network profnet skein-busybox true >/dev/null || die "docker run failed"
done
t1=$(date +%s%N)
sleep 0.5
[[ -n $STRACE_PID ]] && { kill -INT "$STRACE_PID" 2>/dev/null; wait "$STRACE_PID" 2>/dev/null; }
d network rm profnet >/dev/null
cp "$DIR/skein.log" "$ART/profile-skein.log"; [[ -n $STRACE_PID ]] && cp "$TRACE" "$ART/profile-strace.txt"

echo "skein per-call durations over $N containers (debug log), ms"
tail -n +"$((mark + 1))" "$DIR/skein.log" | grep -oE '[A-Za-z.]+ ok in [0-9.]+ ms' \
  | awk '{ms[$1] = ms[$1] " " $4; n[$1]++; sum[$1] += $4}
         END { for (c in n) printf "  %-45s calls %3d  mean %7.2f\n", c, n[c], sum[c] / n[c] }' | sort
total=$(tail -n +"$((mark + 1))" "$DIR/skein.log" | grep -oE ' ok in [0-9.]+ ms' | awk -v n="$N" '{s += $3} END {printf "%.1f", s / n}')
tail -n +"$((mark + 1))" "$DIR/skein.log" | grep -oE 'in the background in [0-9.]+ ms' \
  | awk '{s += $5; n++} END {if (n) printf "  veth pairs deleted after the answer: %d, %.1f ms each on average (off Docker'"'"'s path)\n", n, s / n}'
echo "  skein time per container (sum of call durations): $total ms; wall per container $(((t1 - t0) / N / 1000000)) ms"
[[ -n $STRACE_PID ]] && awk -v n="$N" '/fsync|fdatasync/ { c++; if (match($0, /<[0-9.]+>/)) s += substr($0, RSTART + 1, RLENGTH - 2) }
  END { printf "  fsync+fdatasync per container: %.1f, %.2f ms each on average, %.1f ms per container\n", c / n, c ? s / c * 1000 : 0, s / n * 1000 }' "$TRACE"
echo "RESULT profile_skein_ms_per_container=$total"
