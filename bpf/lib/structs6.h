/* structs6.h: the IPv6 counterparts of structs.h. Addresses are four __be32
 * words in network order (Python: struct.unpack("=4I", inet_pton(...))). The
 * value of a listener is struct svc_val, shared with IPv4: counter slots and
 * tables come from one pool. */
#ifndef NG_STRUCTS6_H
#define NG_STRUCTS6_H

struct svc6_key {
	__be32 addr[4]; /* :: = any local address */
	__be16 port;
	u8 proto;
	u8 pad;
};

struct backend6_val {
	__be32 addr[4];
	__be32 snat_addr[4];
	__be16 port;
	u16 flags; /* NG_BACKEND_* */
};

struct ct6_key {
	__be32 saddr[4];
	__be32 daddr[4];
	__be16 sport;
	__be16 dport;
	u8 proto;
	u8 pad[3];
};

struct ct6_val {
	u64 last_seen;
	__be32 saddr[4];
	__be32 daddr[4];
	__be16 sport;
	__be16 dport;
	u32 svc;
	u32 flags; /* NG_CT_* */
};

struct pkt6 {
	__be32 saddr[4];
	__be32 daddr[4];
	__be16 sport;
	__be16 dport;
	u8 proto;
	u8 tcp_flags;
	u8 hop;
	u8 l4_hlen;
	u16 l4_len; /* payload length */
	u16 pad;
	u32 seq;
	u32 ifindex;
	u32 len;
};

struct nat6 {
	__be32 saddr[4];
	__be32 daddr[4];
	__be16 sport;
	__be16 dport;
	u32 ifindex;
	u8 smac[6];
	u8 dmac[6];
};

#endif
