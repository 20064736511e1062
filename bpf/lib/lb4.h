/* lb4.h: what to do with an IPv4 packet, shared by the XDP and tc entries.
 * Only this decides; the entries only carry the decision out. */
#ifndef NG_LB4_H
#define NG_LB4_H

/* The outcome of lb4_decide. */
struct verdict {
	int action;  /* NG_PASS, NG_DROP, NG_FWD, NG_NEIGH or NG_RESET */
	u32 slot;    /* counter slot */
	u32 reason;  /* NG_DROP_* when action is NG_DROP or NG_RESET */
	int reply;   /* the packet goes backend -> client */
	struct nat nat;
};

/* Returns: whether the IPv4 header checksum is right. */
static __always_inline int ip_csum_ok(void *data, void *data_end)
{
	struct iphdr *ip = data + NG_ETH_HLEN;
	if ((void *)(ip + 1) > data_end)
		return 0;
	return csum_fold32(csum_ip_words((const u16 *)ip)) == 0xffff;
}

/* Where the rewritten packet goes: bpf_fib_lookup from the ingress side,
 * as the kernel would route it. tot_len 0 skips the MTU check (tc: GSO
 * packets are segmented on the way out).
 * Returns: NG_FWD (macs and ifindex set), NG_NEIGH (ifindex set, next hop
 * unresolved) or NG_DROP. */
static __always_inline int lb4_route(void *ctx, const struct pkt *p, struct nat *n, u16 tot_len)
{
	struct bpf_fib_lookup fib = {};
	fib.family = AF_INET;
	fib.l4_protocol = p->proto;
	fib.sport = n->sport;
	fib.dport = n->dport;
	fib.tot_len = tot_len;
	fib.ifindex = p->ifindex;
	fib.ipv4_src = n->saddr;
	fib.ipv4_dst = n->daddr;
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

static __always_inline void nat_from_ct(struct nat *n, const struct ct_val *v)
{
	n->saddr = v->saddr;
	n->daddr = v->daddr;
	n->sport = v->sport;
	n->dport = v->dport;
}

/* A new flow to a listener: Maglev picks the backend, a NAT port is
 * claimed, both conntrack entries are written.
 * Returns: the action; v is filled. */
static __always_inline int lb4_new_flow(struct pkt *p, struct svc_val *svc, u64 now,
					struct verdict *v)
{
	v->slot = svc->id < NG_MAX_SVC ? svc->id : NG_STATS_GLOBAL;
	/* Gateway API: traffic to an invalid backendRef (or to a route with
	 * none) "MUST be actively rejected": a TCP connection attempt gets a
	 * RST, a UDP datagram is dropped, in proportion to weight. */
	if (svc->flags & NG_SVC_REJECT) {
		v->reason = tcp_is_syn(p) ? NG_DROP_REJECTED : NG_DROP_NO_BACKEND;
		return tcp_is_syn(p) ? NG_RESET : NG_DROP;
	}
	struct backend_val *b = lb4_pick_backend(svc, flow_hash(p, 0));
	if (!b) {
		v->reason = tcp_is_syn(p) ? NG_DROP_REJECTED : NG_DROP_NO_BACKEND;
		return tcp_is_syn(p) ? NG_RESET : NG_DROP;
	}
	if (b->flags & NG_BACKEND_INVALID) {
		v->reason = tcp_is_syn(p) ? NG_DROP_REJECTED : NG_DROP_INVALID;
		return tcp_is_syn(p) ? NG_RESET : NG_DROP;
	}
	struct backend_val be = *b;
	__be16 port = ct_claim_port(p, &be, v->slot, now);
	if (!port) {
		v->reason = NG_DROP_NO_PORT;
		return NG_DROP;
	}
	struct ct_key fk = {.saddr = p->saddr, .daddr = p->daddr,
			    .sport = p->sport, .dport = p->dport, .proto = p->proto};
	struct ct_val fv = {.last_seen = now, .saddr = be.snat_addr, .daddr = be.addr,
			    .sport = port, .dport = be.port, .svc = v->slot, .flags = 0};
	if (p->proto == IPPROTO_TCP && (p->tcp_flags & (NG_TCP_FIN | NG_TCP_RST)))
		fv.flags |= NG_CT_CLOSING;
	if (ng_ct.update(&fk, &fv) != 0) {
		v->reason = NG_DROP_CT;
		return NG_DROP;
	}
	stats_new_flow(v->slot);
	nat_from_ct(&v->nat, &fv);
	return NG_FWD;
}

/* Decides what becomes of a parsed packet.
 * Returns: nothing; v->action says. */
static __always_inline void lb4_decide(void *ctx, void *data, void *data_end, struct pkt *p,
				       u16 route_len, struct verdict *v)
{
	u64 now = bpf_ktime_get_ns();
	v->action = NG_PASS;
	v->reply = 0;
	v->reason = 0;
	v->slot = NG_STATS_GLOBAL;

	struct ct_val *ct = ct_lookup(p, now);
	if (ct) {
		v->slot = ct->svc < NG_MAX_SVC ? ct->svc : NG_STATS_GLOBAL;
		v->reply = !!(ct->flags & NG_CT_REPLY);
		nat_from_ct(&v->nat, ct);
	} else {
		struct svc_val *svc = lb4_lookup_service(ctx, p);
		if (!svc)
			return; /* not ours */
		if (!ip_csum_ok(data, data_end)) {
			v->slot = svc->id < NG_MAX_SVC ? svc->id : NG_STATS_GLOBAL;
			v->reason = NG_DROP_MALFORMED;
			v->action = NG_DROP;
			return;
		}
		v->action = lb4_new_flow(p, svc, now, v);
		if (v->action != NG_FWD)
			return;
	}
	if (!ip_csum_ok(data, data_end)) {
		v->reason = NG_DROP_MALFORMED;
		v->action = NG_DROP;
		return;
	}
	if (p->ttl <= 1) {
		v->action = NG_PASS; /* the stack sends ICMP time exceeded */
		return;
	}
	v->action = lb4_route(ctx, p, &v->nat, route_len);
	if (v->action == NG_DROP)
		v->reason = NG_DROP_FIB;
}

#endif
