"""The datapath's configuration and the -D flags it becomes.

Everything the C takes at compile time (DESIGN: compile-time
specialisation) is here, checked once. Changing a size means a new map
layout: the pinned maps must be removed first (`nodegate cleanup`).
"""

from __future__ import annotations

from dataclasses import dataclass

_SECOND_NS = 1_000_000_000


def _is_prime(n: int) -> bool:
    if n < 2:
        return False
    i = 2
    while i * i <= n:
        if n % i == 0:
            return False
        i += 1
    return True


@dataclass(frozen=True)
class Options:
    pin_dir: str = "/sys/fs/bpf/nodegate"
    snat_ports: tuple[int, int] = (61000, 65000)
    tcp_timeout: float = 3600.0  # idle established TCP
    tcp_fin_timeout: float = 10.0  # after a FIN or RST
    udp_timeout: float = 30.0  # idle UDP
    max_services: int = 64
    max_backends: int = 256  # endpoints per service
    maglev_size: int = 16381  # a prime; at least 100 x the endpoints for even shares
    ct_size: int = 131072

    def __post_init__(self) -> None:
        lo, hi = self.snat_ports
        if not 1024 <= lo <= hi <= 65535:
            raise ValueError(f"snat_ports {self.snat_ports}: want 1024 <= lo <= hi <= 65535")
        if not _is_prime(self.maglev_size):
            raise ValueError(f"maglev_size {self.maglev_size} is not a prime")
        for name in ("tcp_timeout", "tcp_fin_timeout", "udp_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if not self.pin_dir.startswith("/"):
            raise ValueError(f"pin_dir {self.pin_dir!r} is not absolute")
        if self.max_services < 1 or self.max_backends < 1 or self.ct_size < 2:
            raise ValueError("max_services, max_backends and ct_size must be positive")

    def cflags(self) -> list[str]:
        lo, hi = self.snat_ports
        return [
            f'-DNG_PIN_DIR="{self.pin_dir}"',
            f"-DNG_MAX_SVC={self.max_services}",
            f"-DNG_MAX_BACKENDS={self.max_backends}",
            f"-DNG_MAGLEV_M={self.maglev_size}",
            f"-DNG_CT_SIZE={self.ct_size}",
            f"-DNG_SNAT_LO={lo}",
            f"-DNG_SNAT_HI={hi}",
            f"-DNG_TCP_TIMEOUT_NS={int(self.tcp_timeout * _SECOND_NS)}ULL",
            f"-DNG_TCP_FIN_TIMEOUT_NS={int(self.tcp_fin_timeout * _SECOND_NS)}ULL",
            f"-DNG_UDP_TIMEOUT_NS={int(self.udp_timeout * _SECOND_NS)}ULL",
        ]
