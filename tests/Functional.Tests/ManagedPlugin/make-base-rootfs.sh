#!/usr/bin/env bash
# make-base-rootfs.sh DIR - a stand-in for debian:bookworm-slim built from this (bookworm) machine's own files,
# for building the Dockerfile's runtime stage with no registry: `tar -C DIR -c . | docker import - debian:bookworm-slim`.
# It holds what the Dockerfile's "os" stage runs: dash as /bin/sh, bash, the coreutils and ldd that
# plugin-config/assemble-rootfs.sh uses, and iptables (nf_tables build) with its extension modules, which the real
# image would get from `apt-get install iptables libssl3 ca-certificates`; every binary with its shared libraries (merged /usr layout).
set -euo pipefail
die() { echo "make-base-rootfs: $*" >&2; exit 1; }
[[ $# -eq 1 ]] || die "usage: make-base-rootfs.sh DIR"
root=$1
[[ -e $root && -n $(ls -A "$root" 2>/dev/null) ]] && die "$root exists and is not empty"
mkdir -p "$root"/{usr/bin,usr/sbin,usr/lib,usr/local/bin,etc,tmp,root,proc,sys,dev,run,var/lib,var/cache}
chmod 1777 "$root/tmp"
for link in bin sbin lib; do ln -sfn "usr/$link" "$root/$link"; done

usr_path() { case $1 in /usr/*) echo "$1" ;; *) echo "/usr$1" ;; esac; }
copy() { # copy HOST_PATH: the dereferenced file at its merged-/usr path, plus its libraries
  local source=$1 target line lib
  target=$(usr_path "$source")
  [[ -e $root$target ]] && return 0
  mkdir -p "$root$(dirname "$target")"
  cp -L --preserve=mode "$source" "$root$target"
  while read -r line; do
    case $line in
      *"=> "/*) lib=${line#*=> }; lib=${lib%% (*}; copy "$lib" ;;
      /*) lib=${line%% (*}; copy "$lib" ;;
    esac
  done < <(ldd "$source" 2>/dev/null || true)
}

for tool in dash bash ls cp ln mkdir rm chmod readlink dirname basename cat du id chroot awk mawk grep sed \
  env true false uname sort cut tr head tail touch mktemp ldd; do
  path=$(type -P "$tool") || die "$tool not installed here"
  copy "$(readlink -f "$path")"
  [[ $(basename "$(readlink -f "$path")") == "$tool" ]] || ln -sfn "$(basename "$(readlink -f "$path")")" "$root/usr/bin/$tool"
done
ln -sfn dash "$root/usr/bin/sh"

multi=$(readlink -f /usr/sbin/xtables-nft-multi)
copy "$multi"
for name in iptables iptables-restore iptables-save ip6tables ip6tables-restore ip6tables-save; do
  ln -sfn xtables-nft-multi "$root/usr/sbin/$name"
done
modules=$(dirname "$(readlink -f "$(ldd "$multi" | awk '/libxtables/ { print $3 }')")")/xtables
for module in "$modules"/*.so; do copy "$module"; done
loader=$(ldd "$multi" | awk '/ld-linux/ { print $1 }')
case $loader in /lib64/*) ln -sfn usr/lib64 "$root/lib64" ;; esac

# What the Dockerfile would otherwise install with apt (libssl3, ca-certificates).
for lib in "$(dirname "$(readlink -f "$(ldd "$multi" | awk '/libc\.so/ { print $3 }')")")"/{libssl.so.3,libcrypto.so.3}; do
  [[ -e $lib ]] && copy "$lib"
done
if [[ -s /etc/ssl/certs/ca-certificates.crt ]]; then
  mkdir -p "$root/etc/ssl/certs" && cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
fi

for file in /etc/os-release /etc/debian_version /etc/passwd /etc/group /etc/protocols; do
  [[ -e $file ]] && cp -L "$file" "$root$file"
done
printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
