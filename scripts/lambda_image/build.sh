#!/usr/bin/env bash
# Makes the Docker image `sam local invoke --invoke-image IMAGE` runs the functions in.
#
#   scripts/lambda_image/build.sh IMAGE [PYTHON312]
#
# Nothing happens if IMAGE exists. Otherwise the real Lambda base image for x86_64
# (public.ecr.aws/lambda/python:3.12) is pulled and tagged IMAGE; where it cannot be pulled,
# a stand-in is built without any registry image:
#
#   1. a Debian root filesystem (debootstrap --variant=minbase, from the mirror apt is
#      configured with) with the shared libraries CPython's extension modules load;
#   2. the installation of the python3.12 PYTHON312 (default: pyenv's newest 3.12) copied to /var/lang,
#      where the Lambda image keeps its interpreter (its test suite, site-packages and tkinter
#      left out);
#   3. the Lambda Runtime Interface Client (awslambdaric) installed in /var/runtime, started by
#      /var/runtime/bootstrap (scripts/lambda_image/bootstrap);
#   4. `docker import` of that tree.
#
# SAM CLI adds its runtime interface emulator and the layers on top of IMAGE itself.
# Needs root (debootstrap) and a running Docker daemon (scripts/lambda_image/dockerd.sh).
set -euo pipefail

IMAGE=${1:?usage: build.sh IMAGE [PYTHON312]}
PYTHON=${2:-}
HERE=$(cd "$(dirname "$0")" && pwd)
UPSTREAM=public.ecr.aws/lambda/python:3.12
SUITE=bookworm
# Shared libraries the extension modules of a CPython build link against (ssl, ctypes, sqlite3,
# readline, curses, bz2, lzma, zlib, pyexpat, nis...); minbase has libc, libuuid and little else.
LIBS=libssl3,libffi8,libsqlite3-0,libnsl2,libtirpc3,libreadline8,libncursesw6,libbz2-1.0,liblzma5,zlib1g,libexpat1,libgdbm6,ca-certificates

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "lambda image: $IMAGE exists"
  exit 0
fi

if timeout 120 docker pull --platform linux/amd64 "$UPSTREAM" >/dev/null 2>&1; then
  docker tag "$UPSTREAM" "$IMAGE"
  echo "lambda image: $IMAGE is $UPSTREAM"
  exit 0
fi
echo "lambda image: $UPSTREAM cannot be pulled; building a stand-in as $IMAGE"

if [ -z "$PYTHON" ]; then
  PYTHON=$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12 2>/dev/null | sort -V | tail -n 1 || true)
fi
if [ -z "$PYTHON" ] || ! "$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 12)'; then
  echo "lambda image: no Python 3.12 to copy (pass one: build.sh IMAGE /path/to/python3.12)" >&2
  exit 1
fi
# A virtualenv's interpreter stands for the installation it was made from.
PREFIX=$("$PYTHON" -c 'import sys; print(sys.base_prefix)')
case "$PREFIX" in
  /usr | /usr/local | /)
    echo "lambda image: $PYTHON is installed in $PREFIX, shared with other software; pass a" >&2
    echo "              self-contained Python 3.12 (e.g. pyenv's): build.sh IMAGE /path/to/python3.12" >&2
    exit 1
    ;;
esac
"$PREFIX/bin/python3.12" -c 'import platform, sys; sys.exit(platform.machine() != "x86_64")' || {
  echo "lambda image: $PREFIX is not an x86_64 Python; the stand-in is x86_64 only" >&2
  exit 1
}

# The mirror apt already uses: a deb822 "URIs:" line, else a one-line "deb URL suite" entry.
mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ {print $2; exit}')
if [ -z "$mirror" ]; then
  mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
    awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }')
fi
if [ -z "$mirror" ]; then
  echo "lambda image: no Debian mirror in the apt configuration" >&2
  exit 1
fi

work=$(mktemp -d /tmp/lambda-image.XXXXXX)
root="$work/root"
cleanup() {
  # debootstrap mounts /proc and /sys in the target; a failed run may leave them mounted.
  for mount in "$root/proc" "$root/sys"; do
    if mountpoint -q "$mount" 2>/dev/null; then umount -l "$mount" || true; fi
  done
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

echo "lambda image: debootstrap $SUITE (minbase)"
debootstrap --variant=minbase --include="$LIBS" "$SUITE" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -n 20 "$work/debootstrap.log" >&2
  exit 1
}

echo "lambda image: $PREFIX -> /var/lang"
mkdir -p "$root/var/lang" "$root/var/runtime" "$root/var/task" "$root/opt"
tar -C "$PREFIX" -cf - \
  --exclude='./lib/python3.12/test' --exclude='./lib/python3.12/idlelib' \
  --exclude='./lib/python3.12/tkinter' --exclude='./lib/python3.12/turtledemo' \
  --exclude='./lib/python3.12/site-packages/*' --exclude='./lib/python3.12/lib-dynload/_tkinter*' \
  --exclude='./lib/libpython3.12.a' --exclude='./lib/python3.12/config-3.12-*/libpython3.12.a' \
  --exclude='__pycache__' . | tar -C "$root/var/lang" -xf -
# The interpreter finds libpython through its RUNPATH (the original prefix) or the loader's cache.
echo /var/lang/lib >"$root/etc/ld.so.conf.d/var-lang.conf"
chroot "$root" /sbin/ldconfig
chroot "$root" /var/lang/bin/python3.12 -c 'import ssl, ctypes, sqlite3, lzma, bz2, zlib, decimal, json'

echo "lambda image: awslambdaric -> /var/runtime"
"$PREFIX/bin/python3.12" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-compile \
  --only-binary=:all: --target "$root/var/runtime" awslambdaric
install -m 0755 "$HERE/bootstrap" "$root/var/runtime/bootstrap"
chroot "$root" env PYTHONPATH=/var/runtime /var/lang/bin/python3.12 -c 'import awslambdaric.bootstrap'

# Debian's apt caches and docs are not needed in a function's image.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
  "$root"/usr/share/man/* "$root"/usr/share/locale/*

echo "lambda image: docker import $IMAGE"
tar -C "$root" --numeric-owner --one-file-system --exclude='./proc/*' --exclude='./sys/*' --exclude='./dev/*' \
  -cf - . |
  docker import \
    -c 'ENV PATH=/var/lang/bin:/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 TZ=:/etc/localtime' \
    -c 'ENV LAMBDA_TASK_ROOT=/var/task LAMBDA_RUNTIME_DIR=/var/runtime' \
    -c 'WORKDIR /var/task' \
    -c 'ENTRYPOINT ["/var/runtime/bootstrap"]' \
    -m "graphflow stand-in for $UPSTREAM (scripts/lambda_image/build.sh)" \
    - "$IMAGE" >/dev/null
echo "lambda image: $IMAGE built"
