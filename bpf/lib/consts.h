/* consts.h: compile-time constants. Every one can be set with -D by
 * bpf/options.py (the Python side passes the agent's configuration), and
 * has the default below otherwise. Times are in nanoseconds of
 * bpf_ktime_get_ns() (CLOCK_MONOTONIC). */
#ifndef NG_CONSTS_H
#define NG_CONSTS_H

#ifndef NG_PIN_DIR
#define NG_PIN_DIR "/sys/fs/bpf/nodegate"
#endif

/* Listeners (services) at most; also the number of counter slots. */
#ifndef NG_MAX_SVC
#define NG_MAX_SVC 64
#endif

/* Maglev lookup table size per service: a prime. */
#ifndef NG_MAGLEV_M
#define NG_MAGLEV_M 16381
#endif

/* Backend endpoints per service at most. */
#ifndef NG_MAX_BACKENDS
#define NG_MAX_BACKENDS 256
#endif

/* Two tables per service: a new one is written while the old one serves. */
#define NG_TABLES (2 * NG_MAX_SVC)

/* Conntrack entries (two per flow: one per direction). */
#ifndef NG_CT_SIZE
#define NG_CT_SIZE 131072
#endif

#ifndef NG_TCP_TIMEOUT_NS
#define NG_TCP_TIMEOUT_NS (3600ULL * 1000000000ULL)
#endif
#ifndef NG_TCP_FIN_TIMEOUT_NS
#define NG_TCP_FIN_TIMEOUT_NS (10ULL * 1000000000ULL)
#endif
#ifndef NG_UDP_TIMEOUT_NS
#define NG_UDP_TIMEOUT_NS (30ULL * 1000000000ULL)
#endif
/* last_seen is rewritten at most this often per entry (cache lines). */
#define NG_CT_REFRESH_NS (1000000000ULL)

/* Source ports for full NAT: [NG_SNAT_LO, NG_SNAT_HI], reserved by the agent. */
#ifndef NG_SNAT_LO
#define NG_SNAT_LO 61000
#endif
#ifndef NG_SNAT_HI
#define NG_SNAT_HI 65000
#endif
#define NG_SNAT_RANGE (NG_SNAT_HI - NG_SNAT_LO + 1)
#ifndef NG_SNAT_TRIES
#define NG_SNAT_TRIES 8
#endif

/* A closing flow's NAT port may go to a new flow after this much quiet
 * (after a RST: at once). Without it, a range of N ports would cap new
 * connections to one backend endpoint at N per NG_TCP_FIN_TIMEOUT_NS. */
#ifndef NG_PORT_REUSE_NS
#define NG_PORT_REUSE_NS (1000000000ULL)
#endif

/* XDP hands longer frames (generic XDP sees GRO/GSO packets) to tc, which
 * rewrites them with the skb's checksum and segmentation state intact. */
#ifndef NG_XDP_MAX_FRAME
#define NG_XDP_MAX_FRAME 1518
#endif

/* svc_val.flags */
#define NG_SVC_REJECT 1 /* no backend with weight > 0: reject everything */

/* backend_val.flags */
#define NG_BACKEND_INVALID 1 /* the spec's invalid backendRef: RST (TCP) or drop (UDP) */

/* ct_val.flags */
#define NG_CT_REPLY 1   /* the entry matches backend -> node packets */
#define NG_CT_CLOSING 2 /* a FIN or RST was seen: NG_TCP_FIN_TIMEOUT_NS applies */
#define NG_CT_RESET 4   /* a RST was seen: the NAT port is free at once */

/* Drop reasons: the index into stats_val.drops. Keep bpf/counters.py in step. */
#define NG_DROP_MALFORMED 0  /* truncated or inconsistent headers, bad IP checksum */
#define NG_DROP_INVALID 1    /* the share of an invalid backend (UDP, TCP non-SYN) */
#define NG_DROP_REJECTED 2   /* TCP SYN answered with RST (invalid backend or none) */
#define NG_DROP_NO_BACKEND 3 /* non-SYN or UDP to a listener with no backend */
#define NG_DROP_NO_PORT 4    /* no free full-NAT source port */
#define NG_DROP_FIB 5        /* no route to the backend or client, forwarding off */
#define NG_DROP_CT 6         /* conntrack map update failed */
#define NG_DROP_REASONS 7

/* Counters of packets no listener owns (malformed) go to this slot. */
#define NG_STATS_GLOBAL NG_MAX_SVC

#define NG_ETH_HLEN 14
#define NG_IP_HLEN 20
#define NG_L4_OFF (NG_ETH_HLEN + NG_IP_HLEN)

/* Results of parsing, and of the common code before the hook-specific end. */
#define NG_PASS 0    /* not ours: hand to the stack untouched */
#define NG_DROP 1    /* drop */
#define NG_FWD 2     /* rewritten: redirect to nat.ifindex */
#define NG_RESET 3   /* answer with a TCP RST to the sender */
#define NG_NEIGH 4   /* rewrite, then let the kernel resolve the next hop (tc) */

#endif
