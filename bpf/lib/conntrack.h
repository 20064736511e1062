/* conntrack.h: flow entries in ng_ct, one per direction. A forward entry
 * (client -> listener) and its reply entry (backend -> node) name each
 * other: the peer's key is the entry's rewrite turned around. */
#ifndef NG_CONNTRACK_H
#define NG_CONNTRACK_H

/* Returns: whether an entry is past its timeout (and so is no flow). */
static __always_inline int ct_expired(const struct ct_val *v, u64 now, u8 proto)
{
	u64 timeout = NG_UDP_TIMEOUT_NS;
	if (proto == IPPROTO_TCP)
		timeout = (v->flags & NG_CT_CLOSING) ? NG_TCP_FIN_TIMEOUT_NS : NG_TCP_TIMEOUT_NS;
	return now - v->last_seen > timeout;
}

/* Returns: the key of the other direction's entry. */
static __always_inline struct ct_key ct_peer_key(const struct ct_val *v, u8 proto)
{
	struct ct_key k = {.saddr = v->daddr, .daddr = v->saddr,
			   .sport = v->dport, .dport = v->sport, .proto = proto};
	return k;
}

/* A FIN or RST ends the flow sooner, in both directions' entries. */
static __always_inline void ct_mark_closing(struct ct_val *v, u8 proto, u32 flags)
{
	v->flags |= flags;
	struct ct_key pk = ct_peer_key(v, proto);
	struct ct_val *peer = ng_ct.lookup(&pk);
	if (peer)
		peer->flags |= flags;
}

/* Returns: whether a reply entry's NAT port may go to a new flow. */
static __always_inline int ct_port_free(const struct ct_val *v, u64 now, u8 proto)
{
	if (ct_expired(v, now, proto))
		return 1;
	if (v->flags & NG_CT_RESET)
		return 1;
	return (v->flags & NG_CT_CLOSING) && now - v->last_seen > NG_PORT_REUSE_NS;
}

/* Returns: the live entry for the packet's flow, or NULL. A SYN that reuses
 * the 4-tuple of a closing connection starts a new flow. */
static __always_inline struct ct_val *ct_lookup(const struct pkt *p, u64 now)
{
	struct ct_key k = {.saddr = p->saddr, .daddr = p->daddr,
			   .sport = p->sport, .dport = p->dport, .proto = p->proto};
	struct ct_val *v = ng_ct.lookup(&k);
	if (!v || ct_expired(v, now, p->proto))
		return NULL;
	if ((v->flags & (NG_CT_CLOSING | NG_CT_REPLY)) == NG_CT_CLOSING && tcp_is_syn(p))
		return NULL;
	if (now - v->last_seen > NG_CT_REFRESH_NS)
		v->last_seen = now;
	if (p->proto == IPPROTO_TCP && (p->tcp_flags & (NG_TCP_FIN | NG_TCP_RST))) {
		u32 flags = NG_CT_CLOSING | ((p->tcp_flags & NG_TCP_RST) ? NG_CT_RESET : 0);
		if ((v->flags & flags) != flags)
			ct_mark_closing(v, p->proto, flags);
	}
	return v;
}

/* Claims a full-NAT source port toward backend b for the flow: writes the
 * reply entry. Probes NG_SNAT_TRIES ports from a hash of the flow, so the
 * same flow gets the same port again whenever it is free.
 * Returns: the port (network order), or 0 if none was free. */
static __always_inline __be16 ct_claim_port(const struct pkt *p, const struct backend_val *b,
					    u32 svc, u64 now)
{
	u32 h = flow_hash(p, 0x9e3779b9);
	struct ct_val rv = {.last_seen = now, .saddr = p->daddr, .daddr = p->saddr,
			    .sport = p->dport, .dport = p->sport, .svc = svc, .flags = NG_CT_REPLY};
	for (int i = 0; i < NG_SNAT_TRIES; i++) {
		__be16 port = htons(NG_SNAT_LO + (h + i) % NG_SNAT_RANGE);
		struct ct_key rk = {.saddr = b->addr, .daddr = b->snat_addr,
				    .sport = b->port, .dport = port, .proto = p->proto};
		struct ct_val *old = ng_ct.lookup(&rk);
		if (!old) {
			if (ng_ct.insert(&rk, &rv) == 0)
				return port;
			continue;
		}
		int ours = old->daddr == p->saddr && old->dport == p->sport &&
			   old->saddr == p->daddr && old->sport == p->dport;
		if (ours || ct_port_free(old, now, p->proto)) {
			if (ng_ct.update(&rk, &rv) == 0)
				return port;
		}
	}
	return 0;
}

#endif
