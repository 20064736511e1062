/* structs.h: map keys and values. These C structs are the one definition:
 * bcc builds the ctypes types the Python side uses from them. Byte order is
 * stated by type: __be fields are network order (Python packs them with "!"),
 * the others host order. */
#ifndef NG_STRUCTS_H
#define NG_STRUCTS_H

/* A listener: (address, port, protocol); address 0 = any local address. */
struct svc_key {
	__be32 addr;
	__be16 port;
	u8 proto; /* IPPROTO_TCP or IPPROTO_UDP */
	u8 pad;
};

struct svc_val {
	u32 id;    /* counter slot in ng_stats, stable for the listener's life */
	u32 table; /* the live table: ng_maglev/ng_backends block index */
	u32 flags; /* NG_SVC_* */
	u32 gen;   /* the agent's generation that wrote it (for debugging) */
};

struct backend_val {
	__be32 addr;      /* endpoint address */
	__be32 snat_addr; /* the node's address toward it (full-NAT source) */
	__be16 port;      /* endpoint port */
	u16 flags;        /* NG_BACKEND_* */
};

/* A packet's flow as it arrives, in either direction. */
struct ct_key {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	u8 proto;
	u8 pad[3];
};

/* What to rewrite a packet of the flow to; forward entries (client ->
 * listener) rewrite to node -> backend, reply entries (backend -> node) to
 * listener -> client. */
struct ct_val {
	u64 last_seen; /* bpf_ktime_get_ns() */
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	u32 svc; /* counter slot */
	u32 flags; /* NG_CT_* */
};

struct stats_val {
	u64 packets;       /* client -> backend */
	u64 bytes;
	u64 reply_packets; /* backend -> client */
	u64 reply_bytes;
	u64 new_flows;
	u64 drops[NG_DROP_REASONS];
};

/* What the agent configured, for `nodegate cleanup` (one entry). */
struct params_val {
	u32 snat_lo;
	u32 snat_hi;
	u32 reserved; /* 1 if the agent added the range to ip_local_reserved_ports */
	u32 pad;
};

/* A parsed IPv4 TCP/UDP packet. */
struct pkt {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	u8 proto;
	u8 tcp_flags; /* TCP header byte 13 */
	u8 ttl;
	u8 l4_hlen;    /* TCP header length in bytes */
	u16 tot_len;  /* IPv4 total length */
	u16 l4_len;   /* tot_len - 20 */
	u32 seq;      /* TCP, host order */
	u32 ifindex;  /* ingress */
	u32 len;      /* whole frame */
};

/* The rewrite decided for a packet and where it goes. */
struct nat {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	u32 ifindex;
	u8 smac[6];
	u8 dmac[6];
};

#endif
