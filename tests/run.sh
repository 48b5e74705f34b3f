#!/usr/bin/env bash
# The whole test suite on a fresh Debian bookworm machine (run as root):
# installs what the tests need, publishes the NativeAOT binary (failing on any trim/AOT warning),
# then runs every test project. Prints "N passed, N failed, N skipped" last.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

need=()
for pkg in docker.io busybox-static iptables iproute2 etcd-server clang zlib1g-dev kmod; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
modprobe br_netfilter 2>/dev/null || true
modprobe vxlan 2>/dev/null || true

work=$(mktemp -d /tmp/skein-ci.XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "== NativeAOT publish (trim/AOT warnings are errors)"
dotnet publish src/Driver -c Release -r linux-x64 -o "$work/aot" -p:TreatWarningsAsErrors=true \
  -warnaserror -nologo -v:q
export SKEIN_BINARY="$work/aot/skein"
ls -l "$SKEIN_BINARY"

echo "== build"
dotnet build Driver.sln -c Release -nologo -v:q

status=0
passed=0; failed=0; skipped=0
for proj in tests/Ipam.Tests tests/Driver.Tests tests/Functional.Tests; do
  echo "== test $proj"
  log="$work/$(basename "$proj").log"
  set +e
  dotnet test "$proj" -c Release --no-build -nologo --blame-hang-timeout 15m \
    --logger "console;verbosity=normal" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  [ "$rc" -eq 0 ] || status=1
  # dotnet test's summary: "Total tests: N" then "Passed: N", "Failed: N", "Skipped: N" lines.
  count() { grep -E "^[[:space:]]+$1: [0-9]+\$" "$log" | tail -1 | grep -oE '[0-9]+' || true; }
  p=$(count Passed); f=$(count Failed); s=$(count Skipped)
  line=$(grep -E '^Total tests: [0-9]+' "$log" | tail -1 || true)
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0})); skipped=$((skipped + ${s:-0}))
  if [ -z "$line" ] && [ "$rc" -ne 0 ]; then failed=$((failed + 1)); fi
done

echo "$passed passed, $failed failed, $skipped skipped"
exit $status
