#!/usr/bin/env bash
# A k3s agent: joins the server and loads the nodegate image the server built.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
# shellcheck source=vagrant/provision/lib.sh
. "$(dirname "$0")/lib.sh" 2>/dev/null || . /nodegate/vagrant/provision/lib.sh

: "${NODE_IP:?}" "${SERVER_IP:?}" "${K3S_VERSION:?}" "${K3S_TOKEN:?}"
IFACE=$(iface_of "$NODE_IP")
[[ -n $IFACE ]] || { echo "no interface holds $NODE_IP" >&2; exit 1; }

# The image first: k3s imports every tarball in agent/images/ when it starts, so the
# nodegate Pod never tries to pull nodegate:dev from a registry.
images=/var/lib/rancher/k3s/agent/images
mkdir -p "$images"
retry 60 5 curl -sfo /tmp/nodegate.tar "http://$SERVER_IP:8088/nodegate.tar"
mv /tmp/nodegate.tar "$images/nodegate.tar"

if ! systemctl is-active -q k3s-agent; then
    K3S_URL="https://$SERVER_IP:6443" install_k3s agent \
        --node-ip "$NODE_IP" --flannel-iface "$IFACE"
else
    k3s ctr images import "$images/nodegate.tar"  # a re-provision: the image may be new
fi
retry 60 5 systemctl is-active -q k3s-agent
