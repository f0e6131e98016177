#!/usr/bin/env bash
# Runs a command where a Docker daemon answers:
#
#   scripts/lambda_image/with_docker.sh COMMAND [ARG...]
#
# Installs Debian's docker.io and debootstrap when they are missing (as root: CI runs on a fresh
# machine), starts a dockerd only if none answers, and stops the one it started when COMMAND
# ends. Exits with COMMAND's status.
set -euo pipefail
[ "$#" -gt 0 ] || { echo "usage: with_docker.sh COMMAND [ARG...]" >&2; exit 2; }

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "with_docker: ${missing[*]} missing; install them (apt-get install ${missing[*]}) or run as root" >&2
    exit 1
  fi
  echo "with_docker: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

started=""
stop() {
  if [ -n "$started" ] && kill -0 "$started" 2>/dev/null; then
    echo "with_docker: stopping the dockerd it started"
    kill "$started"
    wait "$started" 2>/dev/null || true
  fi
}
trap stop EXIT
if ! docker info >/dev/null 2>&1; then
  log=$(mktemp /tmp/dockerd.XXXXXX.log)
  echo "with_docker: starting dockerd (log: $log)"
  dockerd >"$log" 2>&1 &
  started=$!
  for _ in $(seq 1 120); do
    docker info >/dev/null 2>&1 && break
    kill -0 "$started" 2>/dev/null || { tail -n 20 "$log" >&2; exit 1; }
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || { echo "with_docker: dockerd does not answer" >&2; tail -n 20 "$log" >&2; exit 1; }
fi

status=0
"$@" || status=$?
exit "$status"
