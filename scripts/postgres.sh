#!/usr/bin/env bash
# A PostgreSQL for the tests (and for trying several lasthop instances), on a stock Debian machine.
#
# - Starts the local cluster when nothing else has: in a container or a chroot there is no init
#   system, so the cluster apt created is never started.
# - Gives the tests a role of their own, lasthop_test (LOGIN CREATEDB, a random password), made over
#   the local socket as the postgres user (peer authentication, as Debian ships it), and checks that
#   it logs in over TCP on 127.0.0.1 with that password: the stock pg_hba.conf asks for one there,
#   and nothing here relies on a server that trusts every local login.
# - Writes the URL, password included, to $URL_FILE (root only). tests/bot/state/conftest.py reads
#   it unless LASTHOP_TEST_PG_URL is set.
# Safe to run again: with the cluster up and the URL still logging in, it changes nothing.
set -euo pipefail
URL_FILE=${LASTHOP_TEST_PG_URL_FILE:-/var/lib/lasthop/test-postgres.url}
ROLE=lasthop_test
say() { echo "postgres: $*"; }
fail() { echo "postgres: $*" >&2; exit 1; }

command -v pg_lsclusters >/dev/null || fail "PostgreSQL is not installed (apt-get install postgresql)"

works() {  # the URL in $URL_FILE logs in over TCP
  [ -s "$URL_FILE" ] || return 1
  local url
  url=$(cat "$URL_FILE")
  psql "${url/+psycopg/}" -X -q -t -c 'SELECT 1' >/dev/null 2>&1
}

# The newest cluster; a machine with none (apt's was dropped) gets one.
read -r version cluster port status _ < <(pg_lsclusters -h | sort -V -k1,1 | tail -n 1) || true
if [ -z "${version:-}" ]; then
  [ "$(id -u)" = 0 ] || fail "no PostgreSQL cluster; run as root to create one"
  version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
  say "creating cluster $version/main"
  pg_createcluster "$version" main >/dev/null
  read -r version cluster port status _ < <(pg_lsclusters -h | sort -V -k1,1 | tail -n 1)
fi

if [ "$status" != online ]; then
  [ "$(id -u)" = 0 ] || fail "cluster $version/$cluster is $status; run as root to start it"
  say "starting cluster $version/$cluster on port $port"
  if [ -d /run/systemd/system ]; then
    systemctl start "postgresql@$version-$cluster"
  elif ! pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start; then
    tail -n 5 "/var/log/postgresql/postgresql-$version-$cluster.log" >&2 2>/dev/null || true
    fail "cluster $version/$cluster did not start (port $port; its log is above)"
  fi
fi
for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p "$port" && break; sleep 1; done
pg_isready -q -h 127.0.0.1 -p "$port" || fail "cluster $version/$cluster does not answer on 127.0.0.1:$port"

if works && grep -q "@127.0.0.1:$port/" "$URL_FILE"; then
  exit 0
fi
[ "$(id -u)" = 0 ] || fail "no working test login in $URL_FILE; run as root to make one"

password=$(od -An -tx1 -N18 /dev/urandom | tr -d ' \n')
# The password goes in on stdin, never on a command line that ps could show.
runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$port" -d postgres >/dev/null <<SQL
SELECT 'CREATE ROLE $ROLE' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE')\gexec
ALTER ROLE $ROLE LOGIN CREATEDB PASSWORD '$password';
SQL
install -d -m 700 "$(dirname "$URL_FILE")"
umask 077
echo "postgresql+psycopg://$ROLE:$password@127.0.0.1:$port/postgres" >"$URL_FILE.tmp"
mv "$URL_FILE.tmp" "$URL_FILE"
works || fail "role $ROLE cannot log in on 127.0.0.1:$port with its password (check pg_hba.conf: 'host all all 127.0.0.1/32 scram-sha-256')"
say "role $ROLE on 127.0.0.1:$port for the tests; its URL is in $URL_FILE"
