#!/usr/bin/env bash
# The client: HTTP, TCP and UDP through the quickstart Gateway on every node (vagrant/smoke.py).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
: "${NODE_IPS:?}"

apt-get update -q
apt-get install -y -q --no-install-recommends python3

args=()
for ip in $NODE_IPS; do
    args+=(--address "$ip")
done
python3 /nodegate/vagrant/smoke.py "${args[@]}"
