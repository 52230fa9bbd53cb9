#!/usr/bin/env bash
# Installs what lasthop needs on a Debian/Ubuntu machine: `install.sh demo` for the demo,
# `install.sh test` (the default) for the demo plus the tests' tools and PostgreSQL.
#
# lasthop lives in its own virtual environment, .venv/ beside this script's checkout, never in
# the system Python (Debian's refuses pip: PEP 668). /usr/local/bin/lasthop links to it, so the
# command is found as root with or without sudo (sudo resets PATH to one that has /usr/local/bin).
# Safe to run again: with everything in place it changes nothing and downloads nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-test}
case $what in demo | test) ;; *) echo "usage: $0 [demo|test]" >&2; exit 2 ;; esac

say() { echo "install: $*"; }
root() { [ "$(id -u)" = 0 ]; }

# --- Debian packages --------------------------------------------------------------------------------
# Debian's own python3 unless PYTHON names another: what a user's machine has, not a developer's pyenv.
python=${PYTHON:-}
if [ -z "$python" ]; then
  if [ -x /usr/bin/python3 ]; then python=/usr/bin/python3; else python=$(command -v python3 || true); fi
fi
need=()
[ -n "$python" ] || { need+=(python3 python3-venv); python=/usr/bin/python3; }
# Debian ships venv's pip bootstrap (ensurepip) separately, in python3-venv.
if [ -x "$python" ] && ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then need+=(python3-venv); fi
[ -x /usr/lib/frr/zebra ] || need+=(frr)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh-keygen >/dev/null || need+=(openssh-client)
command -v ip >/dev/null || need+=(iproute2)
command -v pgrep >/dev/null || need+=(procps)
command -v unshare >/dev/null || need+=(util-linux)
# PostgreSQL is for the tests and for several instances sharing state; the demo runs on SQLite.
[ "$what" = test ] && ! command -v pg_lsclusters >/dev/null && need+=(postgresql)
# The keepalived comparison (bench failover), which the tests run at its tiny size: keepalived, and
# curl for its check script.
[ "$what" = test ] && [ ! -x /usr/sbin/keepalived ] && need+=(keepalived)
[ "$what" = test ] && [ ! -x /usr/bin/curl ] && need+=(curl)
# A transaction-mode pooler, which the tests put between lasthop and PostgreSQL to see it refused.
[ "$what" = test ] && [ ! -x /usr/sbin/pgbouncer ] && need+=(pgbouncer)
if [ ${#need[@]} -gt 0 ]; then
  root || { echo "install: ${need[*]} missing; run as root (sudo, or su -c) so apt can install them" >&2; exit 1; }
  say "apt-get install ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# --- the virtual environment ------------------------------------------------------------------------
venv=$PWD/.venv
if ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
  say "python virtual environment in $venv ($("$python" --version 2>&1))"
  rm -rf "$venv"
  "$python" -m venv "$venv"
fi
# A stamp per extra, holding the hash of pyproject.toml: a second run with the same dependencies
# skips pip altogether (no index lookups), and a changed pyproject.toml installs again.
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
stamp() { cat "$venv/.lasthop-$1" 2>/dev/null || true; }
if [ "$(stamp test)" != "$want" ] && { [ "$what" = test ] || [ "$(stamp demo)" != "$want" ]; }; then
  spec=.
  [ "$what" = test ] && spec='.[test]'
  say "pip install -e '$spec' into $venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$spec"
  echo "$want" >"$venv/.lasthop-$what"
fi

if root; then
  link=/usr/local/bin/lasthop
  if [ "$(readlink "$link" 2>/dev/null)" != "$venv/bin/lasthop" ]; then
    if [ -e "$link" ] || [ -L "$link" ]; then
      say "$link was $(readlink "$link" 2>/dev/null || echo a file); it now runs this checkout"
    fi
    ln -sfn "$venv/bin/lasthop" "$link"
    say "linked $link -> $venv/bin/lasthop"
  fi
else
  say "not root: run lasthop as $venv/bin/lasthop (as root, install links it into /usr/local/bin)"
fi

[ "$what" = test ] && bash scripts/postgres.sh
exit 0
