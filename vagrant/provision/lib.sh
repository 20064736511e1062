# Shared by server.sh and agent.sh (sourced).

# The interface that holds $1 (the lab's private network), e.g. eth1.
iface_of() {
    ip -o -4 address show | awk -v ip="$1" '{split($4, a, "/"); if (a[1] == ip) print $2}' | head -n 1
}

# Run "$@" until it succeeds, at most $1 times, $2 seconds apart.
retry() {
    local tries=$1 pause=$2 i
    shift 2
    for ((i = 1; i <= tries; i++)); do
        "$@" && return 0
        echo "attempt $i/$tries failed: $*" >&2
        sleep "$pause"
    done
    return 1
}

# k3s, pinned to $K3S_VERSION; "$@" are the install script's arguments (server|agent ...).
install_k3s() {
    curl -sfL https://get.k3s.io -o /tmp/k3s-install.sh
    INSTALL_K3S_VERSION="$K3S_VERSION" K3S_TOKEN="$K3S_TOKEN" sh /tmp/k3s-install.sh "$@"
}
