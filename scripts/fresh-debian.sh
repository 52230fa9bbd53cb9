#!/usr/bin/env bash
# Runs the README's test command on a throw-away minimal Debian 12, the way a newcomer would.
#
#   sudo bash scripts/fresh-debian.sh [COMMAND]      (default COMMAND: make test)
#
# Builds a root with `mmdebstrap --variant=minbase` (no python3, no sudo, no PostgreSQL, no frr:
# what a container or a minimal server has) plus make and ca-certificates, clones this checkout's
# HEAD into it, and runs COMMAND there as root with a clean `env -i` PATH. `make test` includes
# the scripted demo (tests/bot/test_demo_lab.py). Everything is removed afterwards; the
# bootstrapped root is cached as a tar in /var/tmp (FRESH_REBUILD=1 builds it again).
#
# How a chroot differs from a real machine: there is no init system, so apt starts nothing
# (scripts/postgres.sh starts PostgreSQL itself, as in a container); the network, kernel and
# process table are the host's, so a PostgreSQL of the host's already holds port 5432 and the
# chroot's cluster is created on the next free port, which the tests then use.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "fresh-debian: run as root (it uses chroot and mounts)" >&2; exit 2; }
repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
command=${1:-make test}
tar=/var/tmp/lasthop-bookworm.tar
root=$(mktemp -d /var/tmp/lasthop-fresh.XXXXXX)

cleanup() {
  local p
  for p in /proc/[0-9]*; do  # every process whose root is the chroot
    case $(readlink "$p/root" 2>/dev/null) in "$root" | "$root"/*) kill -KILL "${p#/proc/}" 2>/dev/null || true ;; esac
  done
  # The lab's network namespaces are bind mounts under the chroot's /run/netns: unmounting them
  # with everything else lets the kernel free them once their processes are gone.
  awk -v r="$root" '$5 == r || index($5, r "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf --one-file-system "$root"
}
trap cleanup EXIT

# The host's own Debian mirror and how its apt talks to it (a snapshot's Release dates, say).
sources=()
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  [ -s "$f" ] && grep -qE '^[^#]*/debian' "$f" && sources+=("$f")
done
acquire=$(grep -hE '^[[:space:]]*Acquire::Check-(Valid-Until|Date)' /etc/apt/apt.conf.d/* 2>/dev/null || true)

if [ ! -s "$tar" ] || [ -n "${FRESH_REBUILD:-}" ]; then
  command -v mmdebstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq mmdebstrap >/dev/null; }
  echo "fresh-debian: bootstrapping Debian 12 (minbase + make) into $tar"
  opts=()
  [ -n "$acquire" ] && { echo "$acquire" >"$root/.acquire"; opts=(--aptopt="$root/.acquire"); }
  mmdebstrap "${opts[@]}" --variant=minbase --include=ca-certificates,make --format=tar bookworm "$tar.part" "${sources[@]}"
  mv "$tar.part" "$tar"
  rm -f "$root/.acquire"
fi
tar -C "$root" --numeric-owner -xpf "$tar"
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
# Machine access only, nothing lasthop could lean on: the host's apt mirror, and the CA of a
# TLS-intercepting proxy with pip's setting for it, where the host has them.
if [ ${#sources[@]} -gt 0 ]; then
  rm -f "$root"/etc/apt/sources.list "$root"/etc/apt/sources.list.d/*
  for f in "${sources[@]}"; do cp "$f" "$root/etc/apt/sources.list.d/$(basename "$f")"; done
fi
[ -n "$acquire" ] && echo "$acquire" >"$root/etc/apt/apt.conf.d/99host-mirror"
if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
  chroot "$root" /usr/sbin/update-ca-certificates >/dev/null 2>&1 || true
fi
cert=$(sed -nE 's/^[[:space:]]*cert[[:space:]]*=[[:space:]]*(.+)$/\1/p' /etc/pip.conf 2>/dev/null | tail -n 1)
[ -n "$cert" ] && printf '[global]\ncert = %s\n' "$cert" >"$root/etc/pip.conf"
git clone -q "$repo" "$root/root/lasthop"
# / must be a mount point inside: `ip netns exec` makes it a slave mount.
mount --bind "$root" "$root" && mount --make-private "$root"
mount --bind /proc "$root/proc"
mount --rbind /sys "$root/sys" && mount --make-rslave "$root/sys"
mount --bind /dev "$root/dev" && mount --bind /dev/pts "$root/dev/pts"
mount -t tmpfs -o mode=755 run "$root/run" && install -d -m 1777 "$root/run/lock"
mount -t tmpfs -o mode=1777 shm "$root/dev/shm"

echo "fresh-debian: cd /root/lasthop && $command"
start=$SECONDS
set +e
chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
  TERM=dumb CI=true /bin/sh -c "cd /root/lasthop && $command" </dev/null
rc=$?
set -e
echo "fresh-debian: '$command' exited $rc after $((SECONDS - start)) s"
exit $rc
