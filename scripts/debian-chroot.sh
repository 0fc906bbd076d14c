#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Debian chroots, to run pythanc's test suite against the Orthanc of each Debian release
# (bookworm: 1.10.1, trixie: 1.12.7, forky: 1.13.0) whatever release the host is.  As root:
#
#   scripts/debian-chroot.sh make  RELEASE           debootstrap a minbase chroot (once; reused after)
#   scripts/debian-chroot.sh run   RELEASE -- CMD... run CMD in /pythanc of the chroot
#   scripts/debian-chroot.sh clean RELEASE           unmount leftovers and delete the chroot
#
# RELEASE is bookworm, trixie or forky.  This script owns, in the checkout:
#   .cache/chroots/RELEASE/       the chroot; complete once it holds /.pythanc-chroot-complete
#   .cache/chroots/RELEASE.lock   one make/run/clean of a release at a time
#   .cache/debootstrap/RELEASE/   the .debs that debootstrap downloaded (a new `make` reuses them)
#
# `run` copies the checkout's working tree (tracked files as they are now, uncommitted changes
# included, plus untracked files that .gitignore does not ignore) to /pythanc in the chroot, fresh
# each run except /pythanc/.venv, which is kept between runs.  It mounts proc, /dev, /dev/pts, a
# tmpfs on /dev/shm, and the shared data folder ($PYTHANC_SHARED, else ../shared beside the
# checkout) read-only on /shared; inside, PYTHANC_SHARED=/shared, HOME=/root, LANG=C.UTF-8, CI
# passed through, and SSL_CERT_FILE and PIP_CERT name a copy of the host's CA bundle.  The mounts
# are made in a private mount namespace and CMD runs in a PID namespace of its own: the mounts are
# taken down on exit (and checked with /proc/self/mounts), and even if this script is killed they
# cannot outlive it, nor can a process that CMD left running (every process of the PID namespace
# is killed when CMD ends).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd -P)
SELF="$ROOT/scripts/$(basename "$0")"
# Physical paths throughout: /proc/self/mounts names mount points by them.
mkdir -p "$ROOT/.cache"
CACHE=$(cd "$ROOT/.cache" && pwd -P)
case "$CACHE" in *[[:space:]]*) echo "debian-chroot: the checkout's path has a blank: $CACHE" >&2; exit 1;; esac
MIRROR=http://deb.debian.org/debian
STAMP=.pythanc-chroot-complete
RELEASES="bookworm trixie forky"
CHROOT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

die() { echo "debian-chroot: $*" >&2; exit 1; }
say() { echo "debian-chroot: $*" >&2; }

usage() {
  sed -n '4,10p' "$SELF" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

check_release() {
  case " $RELEASES " in *" $1 "*) ;; *) die "unknown release '$1' (one of: $RELEASES)";; esac
}

# Takes the release's lock on fd 9 (closed for the commands that run in the chroot).
lock_release() {
  mkdir -p "$CACHE/chroots"
  exec 9>"$CACHE/chroots/$1.lock"
  flock -n 9 || die "$1: another make/run/clean of this chroot is under way"
}

# Mount points under $1 in this mount namespace, deepest (last mounted) first.
mounts_under() {
  awk -v p="$1" '$2 == p || index($2, p "/") == 1 { print $2 }' /proc/self/mounts | tac
}

# Unmounts everything under $1: plain umount, retried for a bounded time while busy, `umount -l`
# only as a last resort.  Fails if something is still mounted afterwards.
unmount_under() {
  local dir=$1 m tries
  for tries in 1 2 3 4 5 6 7 8 9 10; do
    [ -z "$(mounts_under "$dir")" ] && return 0
    while read -r m; do
      [ -n "$m" ] && umount "$m" 2>/dev/null || true
    done < <(mounts_under "$dir")
    [ -z "$(mounts_under "$dir")" ] && return 0
    sleep 0.5   # a busy mount (a process closing its files): retry, 10 times at most
  done
  while read -r m; do
    [ -n "$m" ] || continue
    say "warning: $m still busy, lazy unmount"
    umount -l "$m" || true
  done < <(mounts_under "$dir")
  if [ -n "$(mounts_under "$dir")" ]; then
    say "error: still mounted under $dir:"; mounts_under "$dir" >&2
    return 1
  fi
}

# ---- make ----------------------------------------------------------------------------------------
cmd_make() {
  [ $# = 1 ] || usage
  local rel=$1 ch="$CACHE/chroots/$1" debs="$CACHE/debootstrap/$1" script start
  check_release "$rel"
  lock_release "$rel"
  if [ -e "$ch/$STAMP" ]; then
    say "$rel: reusing $ch"
    return 0
  fi
  if [ -e "$ch" ]; then
    say "$rel: removing an incomplete chroot"
    remove_chroot "$ch"
  fi
  if ! command -v debootstrap >/dev/null 2>&1; then
    say "installing debootstrap on the host"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  fi
  # An older debootstrap knows a newer release only as the script of sid (the same layout).
  script=/usr/share/debootstrap/scripts/$rel
  [ -e "$script" ] || script=/usr/share/debootstrap/scripts/sid
  mkdir -p "$ch" "$debs"
  start=$SECONDS
  say "$rel: debootstrap --variant=minbase $rel from $MIRROR (log: $ch.debootstrap.log)"
  # In a mount namespace of its own: debootstrap's mounts (proc, sys, dev) cannot be left behind.
  if ! unshare --mount --propagation private \
         debootstrap --variant=minbase --cache-dir="$debs" "$rel" "$ch" "$MIRROR" "$script" \
         >"$ch.debootstrap.log" 2>&1; then
    tail -n 30 "$ch.debootstrap.log" >&2
    die "$rel: debootstrap failed (log: $ch.debootstrap.log)"
  fi
  configure_chroot "$ch"
  echo "$rel made $(date -u +%FT%TZ) by debootstrap $(dpkg-query -W -f '${Version}' debootstrap)" > "$ch/$STAMP"
  say "$rel: made in $((SECONDS - start)) s"
}

# Files written once into a new chroot.
configure_chroot() {
  local ch=$1
  # Debian's orthanc package would start its service: no service starts inside the chroot.
  printf '#!/bin/sh\n# pythanc chroot: no service starts here\nexit 101\n' > "$ch/usr/sbin/policy-rc.d"
  chmod 755 "$ch/usr/sbin/policy-rc.d"
  # testing's Release file can be past its Valid-Until; no translations; a throwaway system.
  cat > "$ch/etc/apt/apt.conf.d/99pythanc-chroot" <<'EOF'
// pythanc chroot (scripts/debian-chroot.sh)
Acquire::Check-Valid-Until "false";
Acquire::Languages "none";
APT::Install-Recommends "false";
EOF
  cat > "$ch/etc/dpkg/dpkg.cfg.d/99pythanc-chroot" <<'EOF'
# pythanc chroot (scripts/debian-chroot.sh): a throwaway system, no fsync, no documentation
force-unsafe-io
path-exclude=/usr/share/doc/*
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
EOF
  grep -qs localhost "$ch/etc/hosts" || printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >> "$ch/etc/hosts"
  mkdir -p "$ch/shared" "$ch/pythanc" "$ch/dev/pts" "$ch/dev/shm"
  copy_host_files "$ch"
}

# Refreshed at each run: the host's DNS and CA bundle (pip needs them: the host's bundle may hold
# the CA of a proxy between this machine and PyPI).  Debian's ca-certificates package, once apt
# installs it in the chroot (as a dependency), rewrites /etc/ssl/certs/ca-certificates.crt from
# Mozilla's list only; so a second copy that no package touches, $HOST_CA, is the one that
# SSL_CERT_FILE and PIP_CERT name inside.
HOST_CA=/etc/ssl/pythanc-host-ca-certificates.crt
copy_host_files() {
  local ch=$1
  rm -f "$ch/etc/resolv.conf"
  cp -L /etc/resolv.conf "$ch/etc/resolv.conf"
  if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    mkdir -p "$ch/etc/ssl/certs"
    cp -L /etc/ssl/certs/ca-certificates.crt "$ch/etc/ssl/certs/ca-certificates.crt"
    cp -L /etc/ssl/certs/ca-certificates.crt "$ch$HOST_CA"
  fi
}

# ---- run -----------------------------------------------------------------------------------------
cmd_run() {
  [ $# -ge 1 ] || usage
  local rel=$1 ch="$CACHE/chroots/$1" shared
  shift
  [ "${1:-}" = "--" ] && shift
  [ $# -ge 1 ] || usage
  check_release "$rel"
  lock_release "$rel"
  [ -e "$ch/$STAMP" ] || die "$rel: no chroot; make it first: scripts/debian-chroot.sh make $rel"
  shared=${PYTHANC_SHARED:-$ROOT/../shared}
  [ -d "$shared" ] || die "shared data folder not found: $shared (set PYTHANC_SHARED)"
  shared=$(cd "$shared" && pwd -P)
  [ -z "$(mounts_under "$ch")" ] || unmount_under "$ch"   # leftovers of an older version
  copy_host_files "$ch"
  copy_checkout "$ch"
  # The rest in a private mount namespace: same process (no fork), so signals reach it as before.
  exec unshare --mount --propagation private -- "$SELF" __inside "$rel" "$shared" "$@"
}

# /pythanc in the chroot: the checkout's working tree now, but its .venv is kept.
copy_checkout() {
  local ch=$1 dst="$1/pythanc"
  git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1 || die "$ROOT is not a git checkout"
  mkdir -p "$dst"
  find "$dst" -mindepth 1 -maxdepth 1 ! -name .venv -exec rm -rf --one-file-system {} +
  (cd "$ROOT" &&
    git ls-files -z --cached --others --exclude-standard |
    grep -z -v -E '^(\.venv|\.cache|build)(/|$)' |
    while IFS= read -r -d '' f; do
      # a tracked file deleted in the working tree is left out, as on the host
      if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi
    done |
    tar --null --no-recursion -T - -cf -) | tar -C "$dst" -xf -
}

# Runs in the private mount namespace made by cmd_run (lock fd 9 still held).
cmd_inside() {
  local rel=$1 shared=$2 ch="$CACHE/chroots/$1" rc=0 ca=()
  shift 2
  [ -f "$ch$HOST_CA" ] && ca=(SSL_CERT_FILE="$HOST_CA" PIP_CERT="$HOST_CA")
  trap 'cleanup_inside "$ch"' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP
  mount --bind /dev "$ch/dev"
  mount --bind /dev/pts "$ch/dev/pts"
  mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$ch/dev/shm"
  mount --bind "$shared" "$ch/shared"
  mount -o remount,bind,ro "$ch/shared"
  # CMD in a PID namespace whose init is bash (it reaps orphans); proc mounted for that namespace.
  # When CMD ends, every process left there is killed; if this script is killed, even by SIGKILL,
  # unshare is too (--pdeathsig) and so is CMD with all of the namespace (--kill-child).
  setpriv --pdeathsig SIGKILL -- unshare --pid --fork --kill-child=SIGKILL --mount-proc="$ch/proc" \
    chroot "$ch" /usr/bin/env -i HOME=/root PATH="$CHROOT_PATH" LANG=C.UTF-8 \
      PYTHANC_SHARED=/shared ${CI+CI="$CI"} ${TERM+TERM="$TERM"} "${ca[@]}" \
      /bin/bash -c 'cd /pythanc || exit 1; "$@"; exit $?' pythanc-chroot "$@" 9>&- || rc=$?
  exit "$rc"
}

cleanup_inside() {
  local rc=$? ch=$1
  trap - EXIT INT TERM HUP
  if ! unmount_under "$ch"; then
    rc=1
  fi
  exit "$rc"
}

# ---- clean ---------------------------------------------------------------------------------------
remove_chroot() {
  local ch=$1
  unmount_under "$ch" || die "not deleting $ch: something is still mounted under it"
  # --one-file-system: never follow into a mount (e.g. the host's /dev) if one appeared anyway
  rm -rf --one-file-system "$ch" "$ch.debootstrap.log"
}

cmd_clean() {
  [ $# = 1 ] || usage
  local rel=$1 ch="$CACHE/chroots/$1"
  check_release "$rel"
  lock_release "$rel"
  if [ -e "$ch" ]; then
    remove_chroot "$ch"
    say "$rel: deleted $ch"
  else
    unmount_under "$ch"
    say "$rel: no chroot"
  fi
  rm -f "$CACHE/chroots/$rel.lock"
}

[ "$(id -u)" = 0 ] || die "must run as root"
[ $# -ge 1 ] || usage
sub=$1
shift
case "$sub" in
  make) cmd_make "$@" ;;
  run) cmd_run "$@" ;;
  clean) cmd_clean "$@" ;;
  __inside) cmd_inside "$@" ;;
  -h|--help|help) usage ;;
  *) usage ;;
esac
