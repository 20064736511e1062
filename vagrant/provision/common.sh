#!/usr/bin/env bash
# Every node of the lab: the kernel headers bcc compiles against, and the BPF filesystem
# the DaemonSet mounts (pinned maps outlive an agent restart).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

apt-get update -q
apt-get install -y -q --no-install-recommends curl ca-certificates iproute2

# bcc (in the nodegate container) compiles against the running kernel's headers: the
# package when the mirror still has it, else the kernel's own (CONFIG_IKHEADERS), which bcc
# reads from /sys/kernel/kheaders.tar.xz once the module is loaded.
if ! apt-get install -y -q --no-install-recommends "linux-headers-$(uname -r)"; then
    modprobe kheaders
    echo kheaders >/etc/modules-load.d/nodegate-kheaders.conf
fi

if ! mountpoint -q /sys/fs/bpf; then
    mount -t bpf bpf /sys/fs/bpf
fi
grep -q '^bpf /sys/fs/bpf' /etc/fstab || echo 'bpf /sys/fs/bpf bpf defaults 0 0' >>/etc/fstab
