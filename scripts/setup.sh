#!/usr/bin/env bash
# Idempotent setup of a nodegate checkout on Debian 12 (`make setup`).
#
# 1. Debian packages: installed only when missing; `apt-get update` runs only
#    when something has to be installed.
# 2. Kernel headers for bcc: when the running kernel ships none of its own,
#    /lib/modules/$(uname -r)/{build,source} point at the newest Debian
#    linux-headers-*-amd64 / -common. Real headers are never touched.
# 3. .venv, made by Debian's /usr/bin/python3 (not pyenv's), seeing Debian's
#    bcc module (python3-bpfcc) and nothing else from dist-packages.
# 4. `pip install -e '.[dev]'` when pyproject.toml changed since the last one
#    (or a top-level package appeared).
# 5. A check that bcc imports from Debian and compiles a program, whenever a
#    step above changed something.
# 6. l7's request-path modules compiled with mypyc (scripts/build_native.py)
#    when their sources changed since the last build (~40 s; a current build
#    is checked in milliseconds).
#
# A run that finds everything in place does no network I/O and takes well
# under a second. Needs root only when there is something to install or link.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
VENV=$ROOT/.venv
SYS_PY=/usr/bin/python3
DEBIAN_BCC=/usr/lib/python3/dist-packages/bcc
STAMPS=$ROOT/.stamps
PIP_STAMP=$STAMPS/pip-install         # pyproject hash + checkout path of the last install
VERIFY_STAMP=$STAMPS/bcc-verified     # bcc checked since the last change
UNAVAILABLE=$STAMPS/apt-unavailable   # optional packages this apt cannot find

# gcc and python3-dev: mypyc's C for l7 (step 6).
REQUIRED_PKGS=(python3-bpfcc linux-headers-amd64 iproute2 gcc python3-dev)
OPTIONAL_PKGS=(python3-venv python3-pip bpfcc-tools libbpfcc nftables vagrant openssl)

changed=0

log() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }
need_root() { [[ $EUID -eq 0 ]] || die "$1 needs root (run make setup as root)"; }

# --- 1. Debian packages -----------------------------------------------------

# Prints the packages among "$@" that dpkg does not have installed.
missing_pkgs() {
    local installed
    installed=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "$@" 2>/dev/null \
        | awk '$2 == "ii" { print $1 }' || true)
    local p
    for p in "$@"; do
        grep -qxF "$p" <<<"$installed" || echo "$p"
    done
}

has_candidate() {
    local c
    c=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ { print $2 }')
    [[ -n $c && $c != "(none)" ]]
}

apt_get() {
    DEBIAN_FRONTEND=noninteractive apt-get -q -o Dpkg::Use-Pty=0 "$@" </dev/null
}

install_packages() {
    local -a wanted=("${REQUIRED_PKGS[@]}" "${OPTIONAL_PKGS[@]}")
    local -a missing=() unavailable=()
    [[ -f $UNAVAILABLE ]] && mapfile -t unavailable <"$UNAVAILABLE"
    mapfile -t missing < <(missing_pkgs "${wanted[@]}")
    local p u
    local -a todo=()
    for p in ${missing[@]+"${missing[@]}"}; do
        for u in ${unavailable[@]+"${unavailable[@]}"}; do
            if [[ $p == "$u" ]]; then continue 2; fi
        done
        todo+=("$p")
    done
    ((${#todo[@]})) || return 0

    need_root "installing ${todo[*]}"
    log "installing Debian packages: ${todo[*]}"
    local updated=0
    for p in "${todo[@]}"; do
        if ! has_candidate "$p"; then
            apt_get update
            updated=1
            break
        fi
    done

    local -a install=()
    for p in "${todo[@]}"; do
        if has_candidate "$p"; then
            install+=("$p")
        elif [[ " ${REQUIRED_PKGS[*]} " == *" $p "* ]]; then
            die "required package $p is not available from apt"
        else
            log "warning: optional package $p is not available from apt; skipping it"
            mkdir -p "$STAMPS"
            echo "$p" >>"$UNAVAILABLE"
        fi
    done
    ((${#install[@]})) || return 0
    # No recommends: vagrant's would pull in libvirt and qemu.
    if ! apt_get install -y --no-install-recommends "${install[@]}"; then
        ((updated)) && die "apt-get install failed"
        log "install failed; refreshing package lists and retrying"
        apt_get update
        apt_get install -y --no-install-recommends "${install[@]}" || die "apt-get install failed"
    fi
    changed=1
}

# --- 2. kernel headers for bcc ----------------------------------------------

link_kernel_headers() {
    local krel moddir
    krel=$(uname -r)
    moddir=/lib/modules/$krel
    # The running kernel has headers of its own: Debian's package for it, or
    # CONFIG_IKHEADERS (bcc reads /sys/kernel/kheaders.tar.xz by itself).
    [[ -d /usr/src/linux-headers-$krel || -e /sys/kernel/kheaders.tar.xz ]] && return 0
    # Real headers put there by hand or by another package: leave them alone.
    # (Ours are links into /usr/src/linux-headers-*; a dangling link is no one's.)
    local current
    current=$(readlink "$moddir/build" || true)
    if [[ -e $moddir/build && ! ( -L $moddir/build && $current == /usr/src/linux-headers-* ) ]]; then
        return 0
    fi

    local build source
    build=$(find /usr/src -maxdepth 1 -name 'linux-headers-*-amd64' -type d | sort -V | tail -n 1)
    [[ -n $build ]] || die "no /usr/src/linux-headers-*-amd64 (is linux-headers-amd64 installed?)"
    source=${build%-amd64}-common
    [[ -d $source ]] || die "$build has no matching $source"

    local name want
    for name in build source; do
        want=$build
        [[ $name == source ]] && want=$source
        [[ -L $moddir/$name && $(readlink "$moddir/$name") == "$want" ]] && continue
        need_root "linking $moddir/$name"
        mkdir -p "$moddir"
        ln -sfn "$want" "$moddir/$name"
        log "linked $moddir/$name -> $want (kernel $krel ships no headers)"
        changed=1
    done
}

# --- 3. the virtualenv ------------------------------------------------------

venv_is_debian() {
    [[ -x $VENV/bin/python && -f $VENV/pyvenv.cfg ]] || return 1
    grep -qxE 'home *= */usr/bin' "$VENV/pyvenv.cfg" || return 1
    # Same minor version as Debian's python3 (a point release keeps the venv).
    local want
    want=$("$SYS_PY" -c 'import sys; print("%d\\.%d" % sys.version_info[:2])')
    grep -qxE "version(_info)? *= *${want}(\\..*)?" "$VENV/pyvenv.cfg"
}

make_venv() {
    [[ -x $SYS_PY ]] || die "$SYS_PY is missing (python3 package)"
    if ! venv_is_debian; then
        if [[ -e $VENV ]]; then
            local made_by
            made_by=$(grep -E '^(home|version) ' "$VENV/pyvenv.cfg" 2>/dev/null | tr '\n' ' ' || true)
            log "$VENV was not made by $SYS_PY (${made_by:-no pyvenv.cfg}); recreating it"
            rm -rf "$VENV"
        fi
        rm -f "$PIP_STAMP" "$VERIFY_STAMP"
        log "creating $VENV with $SYS_PY"
        "$SYS_PY" -m venv "$VENV"
        changed=1
    fi

    # Debian's bcc, alone: a folder holding one symlink, named by a .pth file.
    local site bccdir pth
    site=$(echo "$VENV"/lib/python3.*/site-packages)
    [[ -d $site ]] || die "no site-packages in $VENV"
    bccdir=$VENV/debian-bcc
    pth=$site/debian-bcc.pth
    [[ -d $DEBIAN_BCC ]] || die "$DEBIAN_BCC is missing (python3-bpfcc)"
    if [[ $(readlink "$bccdir/bcc" 2>/dev/null) != "$DEBIAN_BCC" ]]; then
        mkdir -p "$bccdir"
        ln -sfn "$DEBIAN_BCC" "$bccdir/bcc"
        changed=1
    fi
    if [[ ! -f $pth || $(<"$pth") != "$bccdir" ]]; then
        echo "$bccdir" >"$pth"
        changed=1
    fi
    # The PyPI distribution named bcc is an unrelated library that would
    # shadow Debian's module (site-packages comes before .pth folders).
    if compgen -G "$site/bcc" >/dev/null || compgen -G "$site/bcc-*.dist-info" >/dev/null; then
        log "removing the PyPI package 'bcc' from $VENV (not the BPF Compiler Collection)"
        "$VENV/bin/python" -m pip uninstall -y -q bcc 2>/dev/null || true
        rm -rf "$site/bcc" "$site"/bcc-*.dist-info   # whatever pip did not own
        changed=1
    fi
}

# --- 4. the project and its dev tools ----------------------------------------

pip_install() {
    # The editable install maps each top-level package that exists when it
    # runs, so a package appearing later (agent/, lab/...) also calls for one.
    local want pkgs
    pkgs=$(for p in agent bpf l7 lab; do if [[ -f $p/__init__.py ]]; then echo -n "$p,"; fi; done)
    want="$(sha256sum pyproject.toml | cut -d' ' -f1) $ROOT $pkgs"
    [[ -f $PIP_STAMP && $(<"$PIP_STAMP") == "$want" ]] && return 0
    log "pip install -e '.[dev]' (pyproject.toml or the set of packages changed since the last one)"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --progress-bar off \
        -e "$ROOT[dev]"
    mkdir -p "$STAMPS"
    echo "$want" >"$PIP_STAMP"
    changed=1
}

# --- 5. bcc works from the venv ---------------------------------------------

verify_bcc() {
    ((changed)) || [[ ! -f $VERIFY_STAMP ]] || return 0
    rm -f "$VERIFY_STAMP"
    log "checking that .venv compiles BPF with Debian's bcc"
    "$VENV/bin/python" - "$DEBIAN_BCC" <<'EOF'
import os
import sys

import bcc
from bcc import BPF

where = os.path.realpath(os.path.dirname(bcc.__file__))
if where != sys.argv[1]:
    sys.exit(f"setup: error: bcc comes from {where}, not Debian's {sys.argv[1]}")
BPF(text="int f(void *ctx) { return 0; }")
print(f"setup: bcc ok ({where})", file=sys.stderr)
EOF
    mkdir -p "$STAMPS"
    touch "$VERIFY_STAMP"
}

# --- 6. l7 compiled ------------------------------------------------------------

build_native() {
    "$VENV/bin/python" -W ignore scripts/build_native.py || die "compiling l7 failed (above)"
}

install_packages
link_kernel_headers
make_venv
pip_install
verify_bcc
build_native
