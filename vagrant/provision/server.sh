#!/usr/bin/env bash
# The k3s server: builds the nodegate image, serves it to the agents, installs the Gateway API
# CRDs, nodegate (deploy/daemonset.yaml) and examples/quickstart/.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
# shellcheck source=vagrant/provision/lib.sh
. "$(dirname "$0")/lib.sh" 2>/dev/null || . /nodegate/vagrant/provision/lib.sh

: "${NODE_IP:?}" "${K3S_VERSION:?}" "${K3S_TOKEN:?}" "${GATEWAY_API:?}"
IFACE=$(iface_of "$NODE_IP")
[[ -n $IFACE ]] || { echo "no interface holds $NODE_IP" >&2; exit 1; }

# No traefik or servicelb: nodegate serves ports 80 and the Gateway listeners on the nodes.
if ! systemctl is-active -q k3s; then
    install_k3s server \
        --node-ip "$NODE_IP" --flannel-iface "$IFACE" \
        --disable traefik --disable servicelb \
        --write-kubeconfig-mode 0644
fi
export KUBECONFIG=/etc/rancher/k3s/k3s.yaml
kubectl() { k3s kubectl "$@"; }
retry 60 5 kubectl get --raw /readyz >/dev/null

# The image, built from this checkout, imported into k3s here and served to the agents.
apt-get install -y -q --no-install-recommends docker.io python3
docker build -f /nodegate/deploy/Dockerfile -t nodegate:dev /nodegate
mkdir -p /srv/nodegate
docker save nodegate:dev -o /srv/nodegate/nodegate.tar.tmp
mv /srv/nodegate/nodegate.tar.tmp /srv/nodegate/nodegate.tar
k3s ctr images import /srv/nodegate/nodegate.tar
systemctl stop nodegate-image 2>/dev/null || true
systemctl reset-failed nodegate-image 2>/dev/null || true
systemd-run --unit nodegate-image --property=Restart=always \
    python3 -m http.server --bind "$NODE_IP" --directory /srv/nodegate 8088

# Gateway API CRDs (experimental channel: TCPRoute and UDPRoute), then nodegate.
kubectl apply --server-side --force-conflicts \
    -f "https://github.com/kubernetes-sigs/gateway-api/releases/download/$GATEWAY_API/experimental-install.yaml"
kubectl wait --for condition=Established --timeout=120s crd --all
kubectl apply -f /nodegate/deploy/daemonset.yaml
# L4 programs go on the lab's private interface only (not on flannel, cni0 or the veths).
kubectl -n nodegate patch daemonset nodegate --type=json -p \
    "[{\"op\":\"add\",\"path\":\"/spec/template/spec/containers/0/args\",\"value\":[\"--l4-interfaces\",\"$IFACE\"]}]"
kubectl -n nodegate rollout status daemonset/nodegate --timeout=10m

kubectl apply -f /nodegate/examples/quickstart/
kubectl -n quickstart wait --for=condition=Available deployment --all --timeout=10m
kubectl wait --for=condition=Programmed --timeout=5m -n quickstart gateway/demo || true
kubectl get gatewayclass,gateway,httproute,tcproute,udproute -A
