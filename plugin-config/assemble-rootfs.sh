#!/usr/bin/env bash
# assemble-rootfs.sh SKEIN_BINARY ROOTFS_DIR
#
# Builds the managed plugin's root filesystem from files of the machine (or build stage) it runs on:
#   /usr/bin/skein                      the NativeAOT binary (entrypoint "skein serve")
#   /usr/sbin/iptables{,-restore,-save}, ip6tables{,-restore,-save}
#                                       xtables-nft-multi: the nf_tables backend, the one dockerd uses on
#                                       Debian bookworm (decisions #16: rules in a legacy table would not
#                                       override a DROP in the nft FORWARD chain)
#   the xtables extension modules       iptables dlopens one per match/target (-m conntrack, -j MASQUERADE...)
#   every shared library of the above   resolved with the dynamic loader (what ldd prints), glibc and its
#                                       loader included; merged-/usr layout like Debian's
#   libssl/libcrypto (if present)       .NET loads OpenSSL at run time for consul+https / etcd+https
#   /run/docker/plugins /var/lib/skein /tmp /etc/{passwd,group,protocols,nsswitch.conf}
# Used by build.sh (on the host) and by the Dockerfile (in a Debian stage), so both give the same tree.
# Needs: bash, coreutils, the dynamic loader; no network.
set -euo pipefail

die() { echo "assemble-rootfs: $*" >&2; exit 1; }
[[ $# -eq 2 ]] || die "usage: assemble-rootfs.sh SKEIN_BINARY ROOTFS_DIR"
binary=$1 root=$2
[[ -f $binary && -x $binary ]] || die "skein binary '$binary' is missing or not executable"
[[ -e $root && -n $(ls -A "$root" 2>/dev/null) ]] && die "rootfs directory '$root' exists and is not empty"

# The nft variant of iptables, as on the host's dockerd. iptables-legacy would program other tables.
nft_multi=
for candidate in /usr/sbin/xtables-nft-multi /sbin/xtables-nft-multi; do
  [[ -x $candidate ]] && { nft_multi=$(readlink -f "$candidate"); break; }
done
[[ -n $nft_multi ]] || die "xtables-nft-multi not found: install iptables (Debian: apt-get install iptables)"

# Loader and library lookup the way the binary itself will see them.
loader=$(ldd "$nft_multi" | awk '/ld-linux/ { print $1 }')
[[ -n $loader && -e $loader ]] || die "cannot find the dynamic loader of $nft_multi"

# Merged /usr: /lib/X and /usr/lib/X are the same file on bookworm; keep one copy under /usr.
usr_path() { case $1 in /usr/*) echo "$1" ;; *) echo "/usr$1" ;; esac; }

declare -A copied=()
copy_file() { # copy_file HOST_PATH [ROOTFS_PATH]: content of the (dereferenced) file, once
  local source=$1 target=${2:-$(usr_path "$1")}
  [[ -n ${copied[$target]:-} ]] && return 0
  mkdir -p "$root$(dirname "$target")"
  cp -L --preserve=mode "$source" "$root$target"
  copied[$target]=1
}
copy_libraries_of() { # every shared object ELF_FILE loads, as the loader resolves them
  local elf=$1 line path
  while read -r line; do
    case $line in
      *"=> not found"*) die "$elf needs ${line%% *}, which is not installed" ;;
      *"=> "/*) path=${line#*=> }; path=${path%% (*}; copy_file "$path" ;;
    esac
  done < <(ldd "$elf" 2>/dev/null || true)
}

mkdir -p "$root"
for dir in usr/bin usr/sbin usr/lib etc run/docker/plugins var/lib/skein tmp proc sys dev; do
  mkdir -p "$root/$dir"
done
chmod 1777 "$root/tmp"
chmod 0700 "$root/var/lib/skein"
for link in bin sbin lib; do ln -sfn "usr/$link" "$root/$link"; done

copy_file "$binary" /usr/bin/skein
chmod 0755 "$root/usr/bin/skein"
copy_libraries_of "$binary"

copy_file "$nft_multi" /usr/sbin/xtables-nft-multi
for name in iptables iptables-restore iptables-save ip6tables ip6tables-restore ip6tables-save; do
  ln -sfn xtables-nft-multi "$root/usr/sbin/$name"
done
copy_libraries_of "$nft_multi"

# Extension modules live next to libxtables (XTABLES_LIBDIR compiled into it).
libxtables=$(ldd "$nft_multi" | awk '/libxtables/ { print $3 }')
modules=$(dirname "$(readlink -f "$libxtables")")/xtables
[[ -d $modules ]] || die "xtables extension directory $modules not found"
for module in "$modules"/*.so; do
  copy_file "$module"
  copy_libraries_of "$module"
done

# The loader at the path every binary names (PT_INTERP), e.g. /lib64/ld-linux-x86-64.so.2.
copy_file "$loader" "$(usr_path "$loader")"
case $loader in
  /lib64/*) ln -sfn usr/lib64 "$root/lib64" ;;
esac

# OpenSSL is loaded with dlopen only when a TLS store URL is used; without it consul+https cannot work.
multiarch=$(dirname "$(ldd "$nft_multi" | awk '/libc\.so/ { print $3 }')")
for lib in libssl.so.3 libcrypto.so.3; do
  [[ -e $multiarch/$lib ]] && { copy_file "$multiarch/$lib"; copy_libraries_of "$multiarch/$lib"; }
done
if [[ -s /etc/ssl/certs/ca-certificates.crt ]]; then
  copy_file /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
fi

printf 'root:x:0:0:root:/:/usr/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\n' >"$root/etc/group"
printf 'hosts: files dns\nprotocols: files\nservices: files\n' >"$root/etc/nsswitch.conf"
[[ -s /etc/protocols ]] && copy_file /etc/protocols /etc/protocols
# Mount targets the engine fills in (bind-mounted from the host at start).
: >"$root/etc/hosts"; : >"$root/etc/resolv.conf"; : >"$root/etc/hostname"

# Sanity: the tree runs on its own (catches a missing library now, not at `docker plugin enable`).
if [[ $(id -u) == 0 ]] && command -v chroot >/dev/null; then
  chroot "$root" /usr/bin/skein --help >/dev/null || die "skein does not run inside $root"
  chroot "$root" /usr/sbin/iptables -V | grep -q nf_tables || die "iptables inside $root is not the nf_tables variant"
fi
du -sk "$root" | awk '{ printf "assemble-rootfs: %s KiB in %s\n", $1, $2 }' >&2
