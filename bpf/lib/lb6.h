/* lb6.h: the IPv6 decision, the same steps as lb4.h (conntrack hit, else a
 * listener: Maglev, invalid share, NAT port, both entries; else pass) over
 * the IPv6 maps. */
#ifndef NG_LB6_H
#define NG_LB6_H

struct verdict6 {
	int action;
	u32 slot;
	u32 reason;
	int reply;
	struct nat6 nat;
};

static __always_inline int ct6_expired(const struct ct6_val *v, u64 now, u8 proto)
{
	u64 timeout = NG_UDP_TIMEOUT_NS;
	if (proto == IPPROTO_TCP)
		timeout = (v->flags & NG_CT_CLOSING) ? NG_TCP_FIN_TIMEOUT_NS : NG_TCP_TIMEOUT_NS;
	return now - v->last_seen > timeout;
}

static __always_inline void ct6_mark_closing(struct ct6_val *v, u8 proto, u32 flags)
{
	v->flags |= flags;
	struct ct6_key pk = {.sport = v->dport, .dport = v->sport, .proto = proto};
	a6_copy(pk.saddr, v->daddr);
	a6_copy(pk.daddr, v->saddr);
	struct ct6_val *peer = ng_ct6.lookup(&pk);
	if (peer)
		peer->flags |= flags;
}

/* Returns: the live entry for the packet's flow, or NULL (see ct_lookup). */
static __always_inline struct ct6_val *ct6_lookup(const struct pkt6 *p, u64 now)
{
	struct ct6_key k = {.sport = p->sport, .dport = p->dport, .proto = p->proto};
	a6_copy(k.saddr, p->saddr);
	a6_copy(k.daddr, p->daddr);
	struct ct6_val *v = ng_ct6.lookup(&k);
	if (!v || ct6_expired(v, now, p->proto))
		return NULL;
	if ((v->flags & (NG_CT_CLOSING | NG_CT_REPLY)) == NG_CT_CLOSING && tcp6_is_syn(p))
		return NULL;
	if (now - v->last_seen > NG_CT_REFRESH_NS)
		v->last_seen = now;
	if (p->proto == IPPROTO_TCP && (p->tcp_flags & (NG_TCP_FIN | NG_TCP_RST))) {
		u32 flags = NG_CT_CLOSING | ((p->tcp_flags & NG_TCP_RST) ? NG_CT_RESET : 0);
		if ((v->flags & flags) != flags)
			ct6_mark_closing(v, p->proto, flags);
	}
	return v;
}

static __always_inline int ct6_port_free(const struct ct6_val *v, u64 now, u8 proto)
{
	if (ct6_expired(v, now, proto) || (v->flags & NG_CT_RESET))
		return 1;
	return (v->flags & NG_CT_CLOSING) && now - v->last_seen > NG_PORT_REUSE_NS;
}

/* Returns: the NAT port claimed toward b (network order), or 0. */
static __always_inline __be16 ct6_claim_port(const struct pkt6 *p, const struct backend6_val *b,
					     u32 svc, u64 now)
{
	u32 h = flow6_hash(p, 0x9e3779b9);
	struct ct6_val rv = {.last_seen = now, .sport = p->dport, .dport = p->sport,
			     .svc = svc, .flags = NG_CT_REPLY};
	a6_copy(rv.saddr, p->daddr);
	a6_copy(rv.daddr, p->saddr);
	for (int i = 0; i < NG_SNAT_TRIES; i++) {
		__be16 port = htons(NG_SNAT_LO + (h + i) % NG_SNAT_RANGE);
		struct ct6_key rk = {.sport = b->port, .dport = port, .proto = p->proto};
		a6_copy(rk.saddr, b->addr);
		a6_copy(rk.daddr, b->snat_addr);
		struct ct6_val *old = ng_ct6.lookup(&rk);
		if (!old) {
			if (ng_ct6.insert(&rk, &rv) == 0)
				return port;
			continue;
		}
		int ours = a6_eq(old->daddr, p->saddr) && old->dport == p->sport &&
			   a6_eq(old->saddr, p->daddr) && old->sport == p->dport;
		if (ours || ct6_port_free(old, now, p->proto)) {
			if (ng_ct6.update(&rk, &rv) == 0)
				return port;
		}
	}
	return 0;
}

static __always_inline struct svc_val *lb6_lookup_service(void *ctx, const struct pkt6 *p)
{
	struct svc6_key key = {.port = p->dport, .proto = p->proto};
	a6_copy(key.addr, p->daddr);
	struct svc_val *svc = ng_svc6.lookup(&key);
	if (svc)
		return svc;
	key.addr[0] = key.addr[1] = key.addr[2] = key.addr[3] = 0;
	svc = ng_svc6.lookup(&key);
	if (!svc)
		return NULL;
	if ((ntohl(p->daddr[0]) >> 24) == 0xff)
		return NULL; /* multicast */
	struct bpf_fib_lookup fib = {};
	fib.family = AF_INET6;
	fib.ifindex = p->ifindex;
	a6_copy((__be32 *)fib.ipv6_dst, p->daddr);
	if (bpf_fib_lookup(ctx, &fib, sizeof(fib), 0) != BPF_FIB_LKUP_RET_NOT_FWDED)
		return NULL;
	return svc;
}

static __always_inline struct backend6_val *lb6_pick_backend(const struct svc_val *svc, u32 hash)
{
	u32 table = svc->table;
	if (table >= NG_TABLES)
		return NULL;
	u32 slot = table * NG_MAGLEV_M + hash % NG_MAGLEV_M;
	u32 *idx = ng_maglev.lookup(&slot);
	if (!idx || *idx >= NG_MAX_BACKENDS)
		return NULL;
	u32 bi = table * NG_MAX_BACKENDS + *idx;
	return ng_backends6.lookup(&bi);
}

static __always_inline int lb6_route(void *ctx, const struct pkt6 *p, struct nat6 *n, u16 tot_len)
{
	struct bpf_fib_lookup fib = {};
	fib.family = AF_INET6;
	fib.l4_protocol = p->proto;
	fib.sport = n->sport;
	fib.dport = n->dport;
	fib.tot_len = tot_len;
	fib.ifindex = p->ifindex;
	a6_copy((__be32 *)fib.ipv6_src, n->saddr);
	a6_copy((__be32 *)fib.ipv6_dst, n->daddr);
	int rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		n->ifindex = fib.ifindex;
		__builtin_memcpy(n->smac, fib.smac, 6);
		__builtin_memcpy(n->dmac, fib.dmac, 6);
		return NG_FWD;
	}
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		n->ifindex = fib.ifindex;
		return NG_NEIGH;
	}
	return NG_DROP;
}

static __always_inline void nat6_from_ct(struct nat6 *n, const struct ct6_val *v)
{
	a6_copy(n->saddr, v->saddr);
	a6_copy(n->daddr, v->daddr);
	n->sport = v->sport;
	n->dport = v->dport;
}

static __always_inline int lb6_new_flow(struct pkt6 *p, struct svc_val *svc, u64 now,
					struct verdict6 *v)
{
	v->slot = svc->id < NG_MAX_SVC ? svc->id : NG_STATS_GLOBAL;
	int syn = tcp6_is_syn(p);
	struct backend6_val *b = NULL;
	if (!(svc->flags & NG_SVC_REJECT))
		b = lb6_pick_backend(svc, flow6_hash(p, 0));
	if (!b) {
		v->reason = syn ? NG_DROP_REJECTED : NG_DROP_NO_BACKEND;
		return syn ? NG_RESET : NG_DROP;
	}
	if (b->flags & NG_BACKEND_INVALID) {
		v->reason = syn ? NG_DROP_REJECTED : NG_DROP_INVALID;
		return syn ? NG_RESET : NG_DROP;
	}
	struct backend6_val be = *b;
	__be16 port = ct6_claim_port(p, &be, v->slot, now);
	if (!port) {
		v->reason = NG_DROP_NO_PORT;
		return NG_DROP;
	}
	struct ct6_key fk = {.sport = p->sport, .dport = p->dport, .proto = p->proto};
	a6_copy(fk.saddr, p->saddr);
	a6_copy(fk.daddr, p->daddr);
	struct ct6_val fv = {.last_seen = now, .sport = port, .dport = be.port, .svc = v->slot};
	a6_copy(fv.saddr, be.snat_addr);
	a6_copy(fv.daddr, be.addr);
	if (p->proto == IPPROTO_TCP && (p->tcp_flags & (NG_TCP_FIN | NG_TCP_RST)))
		fv.flags |= NG_CT_CLOSING;
	if (ng_ct6.update(&fk, &fv) != 0) {
		v->reason = NG_DROP_CT;
		return NG_DROP;
	}
	stats_new_flow(v->slot);
	nat6_from_ct(&v->nat, &fv);
	return NG_FWD;
}

static __always_inline void lb6_decide(void *ctx, struct pkt6 *p, u16 route_len,
				       struct verdict6 *v)
{
	u64 now = bpf_ktime_get_ns();
	v->action = NG_PASS;
	v->reply = 0;
	v->reason = 0;
	v->slot = NG_STATS_GLOBAL;
	struct ct6_val *ct = ct6_lookup(p, now);
	if (ct) {
		v->slot = ct->svc < NG_MAX_SVC ? ct->svc : NG_STATS_GLOBAL;
		v->reply = !!(ct->flags & NG_CT_REPLY);
		nat6_from_ct(&v->nat, ct);
	} else {
		struct svc_val *svc = lb6_lookup_service(ctx, p);
		if (!svc)
			return;
		v->action = lb6_new_flow(p, svc, now, v);
		if (v->action != NG_FWD)
			return;
	}
	if (p->hop <= 1) {
		v->action = NG_PASS;
		return;
	}
	v->action = lb6_route(ctx, p, &v->nat, route_len);
	if (v->action == NG_DROP)
		v->reason = NG_DROP_FIB;
}

#endif
