#!/usr/bin/env bash
# Start ONE private Redis and ONE private PostgreSQL on free loopback ports in a temporary
# directory, run the given command with REDIS_URL and HUB_TEST_POSTGRES_URL set, and stop both
# services whatever happens. PostgreSQL refuses to run as root, so as root it runs as `nobody`.
set -euo pipefail

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

WORK=$(mktemp -d /tmp/wharf-services.XXXXXX)
chmod 755 "$WORK"
REDIS_PORT=$(free_port)
PG_PORT=$(free_port)
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$PG_BIN/initdb" ] || { echo "PostgreSQL server binaries not found (apt-get install postgresql)"; exit 1; }

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi
}

cleanup() {
  set +e
  [ -f "$WORK/redis.pid" ] && kill "$(cat "$WORK/redis.pid")" 2>/dev/null
  [ -d "$WORK/pg" ] && as_pg "$PG_BIN/pg_ctl" -D "$WORK/pg" -m immediate stop >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --databases 256 \
  --daemonize yes --pidfile "$WORK/redis.pid" --logfile "$WORK/redis.log" --dir "$WORK"

mkdir -p "$WORK/pg"
[ "$(id -u)" = 0 ] && chown nobody "$WORK/pg"
as_pg "$PG_BIN/initdb" -D "$WORK/pg" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$WORK/initdb.log" 2>&1 \
  || { cat "$WORK/initdb.log"; exit 1; }
as_pg "$PG_BIN/pg_ctl" -D "$WORK/pg" -l "$WORK/pg/server.log" -w -t 60 start \
  -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -c unix_socket_directories=$WORK/pg -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" >/dev/null \
  || { cat "$WORK/pg/server.log"; exit 1; }

for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
export HUB_TEST_REDIS_URL="$REDIS_URL"
export HUB_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$PG_PORT/wharf"
echo "services: redis on $REDIS_PORT, postgresql on $PG_PORT"
"$@"
