#!/usr/bin/env bash
# startup.sh [RUNS]: time from exec to an answering socket, and idle RSS, of the NativeAOT skein binary.
source "$(dirname "$0")/common.sh"
NO_SKEIN=1 lab_up
bench_client scripted-startup --binary "$(skein_binary)" --netns "$NS" --dir "$DIR" --runs "${1:-10}" || die "start-up benchmark failed"
