#!/usr/bin/env bash
# A k3s agent: joins the server and loads the nodegate image the server built.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
# shellcheck source=vagrant/provision/lib.sh
. "$(dirname "$0")/lib.sh" 2>/dev/null || . /nodegate/vagrant/provision/lib.sh

: "${NODE_IP:?}" "${SERVER_IP:?}" "${K3S_VERSION:?}" "${K3S_TOKEN:?}"
IFACE=$(iface_of "$NODE_IP")
[[ -n $IFACE ]] || { echo "no interface holds $NODE_IP" >&2; exit 1; }

if ! systemctl is-active -q k3s-agent; then
    K3S_URL="https://$SERVER_IP:6443" install_k3s agent \
        --node-ip "$NODE_IP" --flannel-iface "$IFACE"
fi
retry 60 5 systemctl is-active -q k3s-agent

retry 60 5 curl -sfo /tmp/nodegate.tar "http://$SERVER_IP:8088/nodegate.tar"
retry 12 5 k3s ctr images import /tmp/nodegate.tar
rm -f /tmp/nodegate.tar
