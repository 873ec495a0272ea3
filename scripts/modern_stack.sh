#!/usr/bin/env bash
# The modern stack (TFX 1.21 / Python 3.13) on a machine whose glibc is too old for its wheels:
# a Debian 13 root built once with debootstrap from Debian's registry, a venv inside it installed
# from requirements/lock-modern.txt, and commands run in it with the project bind-mounted.
#
#   scripts/modern_stack.sh root            build the root (once; cached in $MODERN_ROOT)
#   scripts/modern_stack.sh venv            install the lock into the root's venv (again only when it changed)
#   scripts/modern_stack.sh resolve         resolve TFX 1.21 afresh in the root and write the lock
#   scripts/modern_stack.sh run CMD [ARG…]  run CMD in the root, in the project, with the venv first on PATH
#
# Mounts are made in a private mount namespace (unshare), so none of them is visible outside it and
# none outlives the command, even if it is killed; a trap also unmounts them in order on any exit.
set -euo pipefail

PROJECT="$(cd "$(dirname "$0")/.." && pwd)"
MODERN_ROOT="${MODERN_ROOT:-$PROJECT/.stack/modern-root}"
SUITE="${MODERN_SUITE:-trixie}"
MIRROR="${MODERN_MIRROR:-http://deb.debian.org/debian}"
LOCK="$PROJECT/requirements/lock-modern.txt"
# Inside the root the project is mounted at its host path (logs, error messages and recorded artifact paths
# read the same on both sides), and the venv lives in /opt.
IN_PROJECT="$PROJECT"
IN_VENV=/opt/tfxpipe-venv
# pyfarmhash (a TFX dependency) has no cp313 wheel and builds from source: hence build-essential.
PACKAGES=python3,python3-venv,python3-pip,python3-dev,build-essential,ca-certificates

EXEC_IN_ROOT=""
die() { echo "modern_stack: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot and mounts)"

build_root() {
    [ -f "$MODERN_ROOT/.built" ] && return 0
    if ! command -v debootstrap >/dev/null; then
        echo "modern_stack: installing debootstrap on the host"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    fi
    rm -rf "$MODERN_ROOT" && mkdir -p "$(dirname "$MODERN_ROOT")"
    echo "modern_stack: debootstrap $SUITE into $MODERN_ROOT (about 2 minutes)"
    debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$MODERN_ROOT" "$MIRROR" \
        > "$(dirname "$MODERN_ROOT")/debootstrap.log" 2>&1 \
        || die "debootstrap failed; see $(dirname "$MODERN_ROOT")/debootstrap.log"
    touch "$MODERN_ROOT/.built"
}

# Runs "$@" chrooted in the root, in a private mount namespace. The body below is the namespace's shell.
in_root() {
    $EXEC_IN_ROOT unshare --mount --propagation private -- bash -euo pipefail -c '
        root=$1 project=$2 in_project=$3; shift 3
        mounted=()
        cleanup() { for ((i=${#mounted[@]}-1; i>=0; i--)); do umount -l "${mounted[i]}" 2>/dev/null || true; done; }
        trap cleanup EXIT
        bind() { mount "$@"; mounted+=("${@: -1}"); }
        bind -t proc proc "$root/proc"
        bind --rbind /sys "$root/sys"
        bind --rbind /dev "$root/dev"
        mkdir -p "$root$in_project" && bind --bind "$project" "$root$in_project"
        # Host tools the tests call, if the host has them (kubectl is one static binary).
        for tool in kubectl; do
            path=$(command -v "$tool" || true)
            [ -n "$path" ] || continue
            touch "$root/usr/local/bin/$tool" && bind --bind -o ro "$path" "$root/usr/local/bin/$tool"
        done
        cp -L /etc/resolv.conf "$root/etc/resolv.conf"
        # The host'"'"'s CA bundle: it may trust a proxy'"'"'s CA that the root'"'"'s stock bundle lacks.
        cp -L "${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}" "$root/etc/ssl/certs/host-ca-bundle.crt"
        # The command runs as a child so that a TERM/INT to this shell reaches it and the trap still unmounts.
        chroot "$root" "$@" & child=$!
        trap '"'"'kill -TERM "$child" 2>/dev/null || true'"'"' TERM INT HUP
        while :; do
            status=0; wait "$child" || status=$?
            kill -0 "$child" 2>/dev/null || exit "$status"
        done
    ' in_root "$MODERN_ROOT" "$PROJECT" "$IN_PROJECT" "$@"
}

# A shell command run inside the root, in the project, with the venv (if any) first on PATH.
root_sh() {
    in_root /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" \
        PATH="$IN_VENV/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180 PYTHONDONTWRITEBYTECODE=1 \
        PIP_CERT=/etc/ssl/certs/host-ca-bundle.crt SSL_CERT_FILE=/etc/ssl/certs/host-ca-bundle.crt \
        REQUESTS_CA_BUNDLE=/etc/ssl/certs/host-ca-bundle.crt \
        ${HTTPS_PROXY:+HTTPS_PROXY="$HTTPS_PROXY"} ${HTTP_PROXY:+HTTP_PROXY="$HTTP_PROXY"} ${NO_PROXY:+NO_PROXY="$NO_PROXY"} \
        ${https_proxy:+https_proxy="$https_proxy"} ${http_proxy:+http_proxy="$http_proxy"} ${no_proxy:+no_proxy="$no_proxy"} ${PYTEST_ADDOPTS:+PYTEST_ADDOPTS="$PYTEST_ADDOPTS"} \
        /bin/bash -euo pipefail -c "cd $(printf %q "$IN_PROJECT") && $1"
}

# The venv is reinstalled when the lock, setup.py or the project's path (its editable install) changes.
lock_stamp() { { cat "$LOCK" "$PROJECT/setup.py"; echo "$PROJECT"; } | sha256sum | cut -d" " -f1; }

install_venv() {
    build_root
    [ -f "$LOCK" ] || die "$LOCK missing; run: $0 resolve"
    local want; want="$(lock_stamp)"
    if [ "$(cat "$MODERN_ROOT$IN_VENV/.installed" 2>/dev/null)" = "$want" ]; then return 0; fi
    echo "modern_stack: installing requirements/lock-modern.txt into the root's venv (a few minutes the first time)"
    root_sh "rm -rf $IN_VENV && python3 -m venv $IN_VENV \
        && pip install -q --no-deps -r requirements/lock-modern.txt \
        && pip install -q --no-deps --no-build-isolation -e . \
        && python -c 'import tfx, tensorflow, pipeline, trainer, serving'"
    echo "$want" > "$MODERN_ROOT$IN_VENV/.installed"
}

# What the lock is resolved from: TFX 1.21 (TF 2.21 no longer pulls TensorBoard, which the Trainer's
# callback needs), kfp (TFX 1.21's kfp extra is empty on Python >= 3.12, but kfp 2.17 installs), the project's
# own requirements (setup.py) and what the tests and benchmarks import.
RESOLVE="tfx==1.21.0 tensorboard dill 'pydantic>=2' PyYAML 'click>=8' rich starlette 'uvicorn[standard]' httpx \
prometheus-client orjson portpicker psutil pytest pytest-timeout pytest-xdist hypothesis schemathesis fastapi scikit-learn \
kubernetes-validate kfp"
LOCK_HEADER="# Fully pinned modern stack for tfxpipe (Python 3.13, tfx==1.21.0), resolved by scripts/modern_stack.sh resolve in a Debian 13 root. Installed with --no-deps so pip never resolves."
resolve_lock() {
    build_root
    local tmp=/opt/tfxpipe-resolve
    root_sh "rm -rf $tmp && python3 -m venv $tmp && $tmp/bin/pip install -q $RESOLVE \
        && (echo '$LOCK_HEADER'; $tmp/bin/pip freeze --all --exclude-editable) > requirements/lock-modern.txt.new && rm -rf $tmp"
    mv "$PROJECT/requirements/lock-modern.txt.new" "$LOCK"
    echo "modern_stack: wrote $LOCK"
}

case "${1:-}" in
    root) build_root ;;
    venv) install_venv ;;
    resolve) resolve_lock ;;
    # exec: the command's exit status is the script's, and a signal to the script reaches the namespace.
    run) shift; install_venv; EXEC_IN_ROOT=exec root_sh "$(printf '%q ' "$@")" ;;
    *) die "usage: $0 root|venv|resolve|run CMD [ARG...]" ;;
esac
