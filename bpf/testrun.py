"""BPF_PROG_TEST_RUN for the packet tables: one packet in, the verdict and
the packet as the program left it out. Nothing is sent anywhere: XDP_TX
and redirects are only reported. bpf_fib_lookup inside answers from the
network namespace of the calling thread, with ifindex as the ingress.
"""

from __future__ import annotations

import struct

from bpf import syscall

XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT = range(5)
TC_ACT_OK, TC_ACT_SHOT, TC_ACT_REDIRECT = 0, 2, 7


def run_xdp(prog_fd: int, packet: bytes, ingress_ifindex: int) -> tuple[int, bytes]:
    # struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex
    ctx = struct.pack("=6I", 0, len(packet), 0, ingress_ifindex, 0, 0)
    return syscall.prog_test_run(prog_fd, packet, ctx)


# struct __sk_buff up to and including ifindex (offset 40): the kernel takes
# ifindex (the device the skb arrives on) and wants the fields before it zero.
_SKB_IFINDEX_OFF = 40


def run_tc(prog_fd: int, packet: bytes, ifindex: int) -> tuple[int, bytes]:
    ctx = bytearray(_SKB_IFINDEX_OFF + 4)
    struct.pack_into("=I", ctx, _SKB_IFINDEX_OFF, ifindex)
    return syscall.prog_test_run(prog_fd, packet, bytes(ctx))
