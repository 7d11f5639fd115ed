#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster on localhost and print its SQLAlchemy URL on stdout.
#
#   export NBRISK_TEST_PG_URL="$(bash .ci/postgres.sh)"
#
# The cluster lives in a fresh temporary directory, listens on 127.0.0.1 only (port 5433, or the
# next free one), and has a login role `nbrisk` (password auth, CREATEDB: the tests make one
# database per test) owning database `nbrisk_test`. Stop it with the command printed on stderr.
set -euo pipefail

PORT="${NBRISK_PG_PORT:-5433}"
BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
if [ -z "$BIN" ] || [ ! -x "$BIN/initdb" ]; then
  echo "postgres.sh: PostgreSQL server binaries not found (apt-get install -y postgresql)" >&2
  exit 1
fi

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for _ in $(seq 1 20); do port_busy "$PORT" && PORT=$((PORT + 1)) || break; done

DIR="$(mktemp -d /tmp/nbrisk-pg.XXXXXX)"
RUN_AS=()
if [ "$(id -u)" -eq 0 ]; then
  # initdb and postgres refuse to run as root
  id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql postgres
  chown postgres "$DIR"
  RUN_AS=(runuser -u postgres --)
fi
PASSWORD="nbrisk-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"

"${RUN_AS[@]}" "$BIN/initdb" -D "$DIR/data" -U postgres -E UTF8 --auth-local=trust --auth-host=scram-sha-256 \
  >"$DIR/initdb.log" 2>&1
"${RUN_AS[@]}" "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
  -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null
"${RUN_AS[@]}" "$BIN/psql" -h "$DIR" -p "$PORT" -U postgres -d postgres -qAt -v ON_ERROR_STOP=1 \
  -c "CREATE ROLE nbrisk LOGIN CREATEDB PASSWORD '$PASSWORD'" \
  -c "CREATE DATABASE nbrisk_test OWNER nbrisk" >/dev/null

echo "postgres.sh: cluster in $DIR on 127.0.0.1:$PORT; stop with: ${RUN_AS[*]} $BIN/pg_ctl -D $DIR/data stop" >&2
echo "postgresql+psycopg://nbrisk:$PASSWORD@127.0.0.1:$PORT/nbrisk_test"
