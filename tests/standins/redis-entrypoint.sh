#!/bin/sh
# As the official redis image: redis-server given no config file runs with
# protected mode off, so the other containers of the network may connect.
set -eu
if [ "${1:-}" = "redis-server" ]; then
  shift
  set -- redis-server --protected-mode no "$@"
fi
exec "$@"
