#!/usr/bin/env bash
# build.sh [NAME]  -  builds skein's managed (v2) Docker plugin and registers it with `docker plugin create`.
#
#   NAME            plugin reference, default skein:latest; networks then use `-d NAME --ipam-driver NAME`
#                   with the tag written out (the engine registers the driver under name:tag)
#   DOCKER_HOST     the engine to create it in (read by the docker client as usual)
#   SKEIN_BINARY    a NativeAOT `skein` already published; otherwise this runs
#                   `dotnet publish src/Driver -c Release -r linux-<arch>` (restores from the local NuGet cache)
#   SKEIN_PLUGIN_DIR  keep the plugin directory (config.json + rootfs/) there instead of a temp dir
#   DOCKER          docker client, default /usr/bin/docker (Debian's client matches its 20.10 engine)
#
# No registry is contacted: the rootfs is assembled from this machine's files (assemble-rootfs.sh), so the
# iptables inside is the host's nf_tables build, as decisions #16 asks. Then:
#   docker plugin set NAME SKEIN_STORE=consul://... ; docker plugin enable NAME
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
name=${1:-skein:latest}
docker=${DOCKER:-/usr/bin/docker}
die() { echo "build.sh: $*" >&2; exit 1; }

[[ $# -le 1 ]] || die "usage: build.sh [NAME]   (got $# arguments)"
[[ $name =~ ^([a-z0-9.-]+(:[0-9]+)?/)?[a-z0-9]([a-z0-9._/-]*[a-z0-9])?(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$ ]] \
  || die "'$name' is not a plugin reference ([registry[:port]/]lowercase-name[:tag], e.g. skein:latest)"
# The engine registers the drivers under name:tag, so make the tag explicit.
[[ ${name##*/} == *:* ]] || name=$name:latest
[[ -x $docker ]] || die "docker client $docker not found (set DOCKER=...)"
"$docker" version --format '{{.Server.Version}}' >/dev/null 2>&1 \
  || die "no Docker engine answers at ${DOCKER_HOST:-the default socket}"
if "$docker" plugin inspect "$name" >/dev/null 2>&1; then
  die "plugin $name already exists in this engine; remove it first: docker plugin rm -f $name"
fi

work=$(mktemp -d /tmp/skein-plugin-build.XXXXXX)
cleanup() { rm -rf --one-file-system "$work"; }
trap cleanup EXIT

binary=${SKEIN_BINARY:-}
if [[ -z $binary ]]; then
  case $(uname -m) in
    x86_64) rid=linux-x64 ;;
    aarch64) rid=linux-arm64 ;;
    *) die "no NativeAOT runtime identifier for $(uname -m); publish yourself and set SKEIN_BINARY" ;;
  esac
  command -v dotnet >/dev/null || die "dotnet not found: install the .NET 10 SDK or set SKEIN_BINARY"
  echo "build.sh: publishing skein ($rid, NativeAOT)..." >&2
  dotnet publish "$repo/src/Driver" -c Release -r "$rid" -o "$work/publish" --artifacts-path "$work/artifacts" >&2 \
    || die "dotnet publish failed"
  binary=$work/publish/skein
fi
[[ -f $binary ]] || die "SKEIN_BINARY '$binary' does not exist"

plugin_dir=${SKEIN_PLUGIN_DIR:-$work/plugin}
if [[ -e $plugin_dir && -n $(ls -A "$plugin_dir" 2>/dev/null) ]]; then
  die "SKEIN_PLUGIN_DIR '$plugin_dir' is not empty"
fi
mkdir -p "$plugin_dir"
"$here/assemble-rootfs.sh" "$binary" "$plugin_dir/rootfs"
cp "$here/config.json" "$plugin_dir/config.json"

"$docker" plugin create "$name" "$plugin_dir" >/dev/null || die "docker plugin create $name failed"
size=$(du -sk "$plugin_dir/rootfs" | cut -f1)
echo "build.sh: created plugin $name (rootfs ${size} KiB); next: docker plugin enable $name" >&2
echo "$name"
