#!/bin/sh
# As the official mysql image: on an empty data directory, create
# MYSQL_DATABASE and MYSQL_USER (password MYSQL_PASSWORD, all rights on that
# database), give root a random password, then run the server for the network.
# A start interrupted before the end of that starts it again from empty.
set -eu
datadir=/var/lib/mysql
done_mark="$datadir/.initialized"
if [ ! -e "$done_mark" ]; then
  rm -rf "${datadir:?}"/* "${datadir:?}"/.[!.]*
  # Besides root, mysql@localhost: this OS user, through the socket.
  mariadb-install-db --datadir="$datadir" --skip-test-db \
    --auth-root-authentication-method=socket --auth-root-socket-user=mysql >/dev/null
  socket=/run/mysqld/init.sock
  mariadbd --datadir="$datadir" --skip-networking --socket="$socket" &
  pid=$!
  i=0
  until mariadb-admin --socket="$socket" ping >/dev/null 2>&1; do
    i=$((i + 1)); [ "$i" -lt 120 ] || { echo "mariadbd did not start" >&2; exit 1; }
    sleep 0.5
  done
  root_password=$(head -c 24 /dev/urandom | base64)
  mariadb --socket="$socket" <<SQL
CREATE DATABASE IF NOT EXISTS \`${MYSQL_DATABASE}\` CHARACTER SET utf8mb4;
CREATE USER '${MYSQL_USER}'@'%' IDENTIFIED BY '${MYSQL_PASSWORD}';
GRANT ALL ON \`${MYSQL_DATABASE}\`.* TO '${MYSQL_USER}'@'%';
ALTER USER 'root'@'localhost' IDENTIFIED BY '${root_password}';
SQL
  kill "$pid"
  wait "$pid" || true
  touch "$done_mark"
fi
exec "$@" --datadir="$datadir" --bind-address=0.0.0.0
