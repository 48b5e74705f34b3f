#!/usr/bin/env bash
# all.sh: every scripted benchmark, one after another (each in its own scratch namespace), then the
# RESULT lines together. Output is also kept in /tmp/skbench-results-<time>.txt.
here=$(dirname "$0")
out=/tmp/skbench-results-$(date +%Y%m%dT%H%M%S).txt
for b in startup plugin-latency docker-run store cluster-alloc; do
  echo "=== $b" | tee -a "$out"
  bash "$here/$b.sh" 2>&1 | tee -a "$out"
done
echo "=== summary" | tee -a "$out"
grep '^RESULT' "$out" | tee -a "$out.summary"
