#!/usr/bin/env bash
# Start PostgreSQL, MariaDB and Redis if they are down, and wait until each
# answers. A no-op when all three are up. Used by .ci/run and `make services`.
# The start commands are this machine kind's own (see the machine notes).
set -euo pipefail

READY_TIMEOUT=${READY_TIMEOUT:-60}

postgres_up() { pg_isready -q -h 127.0.0.1 -p 5432; }
postgres_start() { pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start; }

redis_up() { [ "$(redis-cli -h 127.0.0.1 ping 2>/dev/null)" = PONG ]; }
redis_start() {
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
}

mariadb_up() { mysqladmin -h 127.0.0.1 -uroot status >/dev/null 2>&1; }
mariadb_start() { start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd; }

# ensure NAME: start NAME if NAME_up fails, then poll NAME_up until the deadline.
ensure() {
  local name=$1
  if "${name}_up"; then
    echo "services: $name is up"
    return
  fi
  echo "services: starting $name"
  "${name}_start"
  local deadline=$((SECONDS + READY_TIMEOUT))
  until "${name}_up"; do
    if ((SECONDS >= deadline)); then
      echo "services: $name not ready after ${READY_TIMEOUT}s" >&2
      return 1
    fi
    sleep 0.2
  done
  echo "services: $name is up"
}

ensure postgres
ensure mariadb
ensure redis
