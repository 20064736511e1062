#!/usr/bin/env bash
# Every node of the lab: the kernel headers bcc compiles against, and the BPF filesystem
# the DaemonSet mounts (pinned maps outlive an agent restart).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

apt-get update -q
apt-get install -y -q --no-install-recommends \
    curl ca-certificates iproute2 "linux-headers-$(uname -r)"

if ! mountpoint -q /sys/fs/bpf; then
    mount -t bpf bpf /sys/fs/bpf
fi
grep -q '^bpf /sys/fs/bpf' /etc/fstab || echo 'bpf /sys/fs/bpf bpf defaults 0 0' >>/etc/fstab
