/* icmp.h: ICMP errors about a flow nodegate translates (IPv4 and IPv6), the way a NAT
 * must treat them (RFC 5508): destination unreachable (fragmentation needed
 * among them, which path MTU discovery depends on) and time exceeded, sent by
 * either side of a flow or by a router on the way, go on to the other party
 * with the outer header and the quoted packet turned back into what that party
 * sent. Without this a UDP client never hears "port unreachable" from a
 * backend, and a TCP connection through a smaller MTU on the backend side
 * stalls. An error about no flow of ours, or too short to name one, passes
 * untouched; an error never creates a flow. */
#ifndef NG_ICMP_H
#define NG_ICMP_H

#define NG_ICMP_DEST_UNREACH 3
#define NG_ICMP_TIME_EXCEEDED 11

/* An ICMP error after an IPv4 header without options: its 8-byte header, then
 * the quoted IPv4 header (without options) and the first 8 bytes of its TCP or
 * UDP header, all the translation reads or writes. */
#define NG_INNER_IP_OFF (NG_L4_OFF + 8)
#define NG_INNER_L4_OFF (NG_INNER_IP_OFF + NG_IP_HLEN)
#define NG_ICMP_MIN_FRAME (NG_INNER_L4_OFF + 8)

struct icmp_err {
	struct iphdr *ip;
	struct icmphdr *icmp;
	struct iphdr *in;
	__be16 *in_l4; /* sport, dport, and for UDP length, checksum */
};

/* Returns: whether the frame is an ICMP error whose quoted packet can be
 * translated; e is filled with pointers into the frame. */
static __always_inline int icmp4_parse(void *data, void *data_end, struct icmp_err *e)
{
	struct ethhdr *eth = data;
	e->ip = data + NG_ETH_HLEN;
	e->icmp = data + NG_L4_OFF;
	e->in = data + NG_INNER_IP_OFF;
	e->in_l4 = data + NG_INNER_L4_OFF;
	if (data + NG_ICMP_MIN_FRAME > data_end)
		return 0;
	if (eth->h_proto != htons(ETH_P_IP) || e->ip->protocol != IPPROTO_ICMP)
		return 0;
	if (e->ip->version != 4 || e->ip->ihl != 5 || (e->ip->frag_off & htons(0x3fff)))
		return 0;
	if (ntohs(e->ip->tot_len) < NG_ICMP_MIN_FRAME - NG_ETH_HLEN)
		return 0;
	if (e->icmp->type != NG_ICMP_DEST_UNREACH && e->icmp->type != NG_ICMP_TIME_EXCEEDED)
		return 0;
	if (e->in->version != 4 || e->in->ihl != 5)
		return 0;
	return e->in->protocol == IPPROTO_TCP || e->in->protocol == IPPROTO_UDP;
}

/* Decides what becomes of an ICMP error: the flow is looked up as a packet
 * coming back from the quoted packet's destination would be, and that entry's
 * rewrite says who the error is for (its destination) and what the quoted
 * packet looked like when that party sent it (the rewrite turned around).
 * Returns: nothing; v->action says (NG_PASS when it is not ours). */
static __always_inline void icmp4_decide(void *ctx, void *data, void *data_end, u32 ifindex,
					 struct verdict *v)
{
	struct icmp_err e;
	v->action = NG_PASS;
	v->reply = 0;
	v->reason = 0;
	v->slot = NG_STATS_GLOBAL;
	if (!icmp4_parse(data, data_end, &e))
		return;
	struct ct_key k = {.saddr = e.in->daddr, .daddr = e.in->saddr, .sport = e.in_l4[1],
			   .dport = e.in_l4[0], .proto = e.in->protocol};
	struct ct_val *ct = ng_ct.lookup(&k);
	if (!ct || ct_expired(ct, bpf_ktime_get_ns(), k.proto))
		return;
	v->slot = ct->svc < NG_MAX_SVC ? ct->svc : NG_STATS_GLOBAL;
	v->reply = !!(ct->flags & NG_CT_REPLY);
	if (!ip_csum_ok(data, data_end)) {
		v->reason = NG_DROP_MALFORMED;
		v->action = NG_DROP;
		return;
	}
	if (e.ip->ttl <= 1)
		return; /* the stack answers with its own time exceeded */
	nat_from_ct(&v->nat, ct);
	struct pkt p = {.proto = IPPROTO_ICMP, .ifindex = ifindex};
	v->action = lb4_route(ctx, &p, &v->nat, 0);
	if (v->action == NG_DROP)
		v->reason = NG_DROP_FIB;
}

/* Rewrites an ICMP error for v->nat (from icmp4_decide): the outer header
 * from n->saddr to n->daddr, the quoted packet back to n->daddr:n->dport ->
 * n->saddr:n->sport, with the quoted IPv4 checksum, the quoted UDP checksum
 * (when set: the TCP one lies past the 8 bytes an error must quote) and the
 * ICMP checksum over all of it updated; MACs when with_mac. Direct writes:
 * XDP, or tc after the headers are pulled linear.
 * Returns: 0, or -1 if the headers moved out of reach. */
static __always_inline int icmp4_rewrite(void *data, void *data_end, const struct nat *n,
					 int with_mac)
{
	struct icmp_err e;
	if (!icmp4_parse(data, data_end, &e))
		return -1;
	struct ethhdr *eth = data;
	__be32 isrc = n->daddr, idst = n->saddr;
	__be16 isport = n->dport, idport = n->sport;
	u32 addrs = csum_diff4(e.in->saddr, isrc) + csum_diff4(e.in->daddr, idst);
	u32 ports = csum_diff2(e.in_l4[0], isport) + csum_diff2(e.in_l4[1], idport);
	__sum16 icheck = csum_apply(e.in->check, addrs);
	u32 icmp = addrs + ports + csum_diff2(e.in->check, icheck);
	if (e.in->protocol == IPPROTO_UDP && e.in_l4[3] != 0) {
		__sum16 ucheck = csum_apply(e.in_l4[3], addrs + ports);
		if (ucheck == 0)
			ucheck = 0xffff;
		icmp += csum_diff2(e.in_l4[3], ucheck);
		e.in_l4[3] = ucheck;
	}
	e.in->check = icheck;
	e.in->saddr = isrc;
	e.in->daddr = idst;
	e.in_l4[0] = isport;
	e.in_l4[1] = idport;
	e.icmp->checksum = csum_apply(e.icmp->checksum, icmp);

	__be16 old_ttl = *(__be16 *)&e.ip->ttl; /* ttl and protocol: one word */
	e.ip->ttl--;
	u32 outer = csum_diff4(e.ip->saddr, n->saddr) + csum_diff4(e.ip->daddr, n->daddr) +
		    csum_diff2(old_ttl, *(__be16 *)&e.ip->ttl);
	e.ip->check = csum_apply(e.ip->check, outer);
	e.ip->saddr = n->saddr;
	e.ip->daddr = n->daddr;
	if (with_mac)
		eth_set_macs(eth, n->dmac, n->smac);
	return 0;
}

/* IPv6 (RFC 4443): destination unreachable, packet too big (path MTU
 * discovery: no router fragments IPv6), time exceeded. The ICMPv6 checksum
 * covers a pseudo-header with the outer addresses. */
#define NG_ICMP6_DEST_UNREACH 1
#define NG_ICMP6_PKT_TOOBIG 2
#define NG_ICMP6_TIME_EXCEED 3

#define NG_INNER_IP6_OFF (NG_L4_OFF6 + 8)
#define NG_INNER_L4_OFF6 (NG_INNER_IP6_OFF + NG_IP6_HLEN)
#define NG_ICMP6_MIN_FRAME (NG_INNER_L4_OFF6 + 8)

struct icmp6_err {
	struct ipv6hdr *ip;
	struct icmp6hdr *icmp;
	struct ipv6hdr *in;
	__be16 *in_l4;
};

/* Returns: whether the frame is an ICMPv6 error whose quoted packet (without
 * extension headers) can be translated; e is filled. */
static __always_inline int icmp6_parse(void *data, void *data_end, struct icmp6_err *e)
{
	struct ethhdr *eth = data;
	e->ip = data + NG_ETH_HLEN;
	e->icmp = data + NG_L4_OFF6;
	e->in = data + NG_INNER_IP6_OFF;
	e->in_l4 = data + NG_INNER_L4_OFF6;
	if (data + NG_ICMP6_MIN_FRAME > data_end)
		return 0;
	if (eth->h_proto != htons(ETH_P_IPV6) || e->ip->version != 6)
		return 0;
	if (e->ip->nexthdr != IPPROTO_ICMPV6)
		return 0;
	if (ntohs(e->ip->payload_len) < NG_ICMP6_MIN_FRAME - NG_L4_OFF6)
		return 0;
	u8 type = e->icmp->icmp6_type;
	if (type != NG_ICMP6_DEST_UNREACH && type != NG_ICMP6_PKT_TOOBIG &&
	    type != NG_ICMP6_TIME_EXCEED)
		return 0;
	if (e->in->version != 6)
		return 0;
	return e->in->nexthdr == IPPROTO_TCP || e->in->nexthdr == IPPROTO_UDP;
}

/* As icmp4_decide, for IPv6. */
static __always_inline void icmp6_decide(void *ctx, void *data, void *data_end, u32 ifindex,
					 struct verdict6 *v)
{
	struct icmp6_err e;
	v->action = NG_PASS;
	v->reply = 0;
	v->reason = 0;
	v->slot = NG_STATS_GLOBAL;
	if (!icmp6_parse(data, data_end, &e))
		return;
	struct ct6_key k = {.sport = e.in_l4[1], .dport = e.in_l4[0], .proto = e.in->nexthdr};
	a6_copy(k.saddr, e.in->daddr.s6_addr32);
	a6_copy(k.daddr, e.in->saddr.s6_addr32);
	struct ct6_val *ct = ng_ct6.lookup(&k);
	if (!ct || ct6_expired(ct, bpf_ktime_get_ns(), k.proto))
		return;
	v->slot = ct->svc < NG_MAX_SVC ? ct->svc : NG_STATS_GLOBAL;
	v->reply = !!(ct->flags & NG_CT_REPLY);
	if (e.ip->hop_limit <= 1)
		return; /* the stack answers with its own time exceeded */
	nat6_from_ct(&v->nat, ct);
	struct pkt6 p = {.proto = IPPROTO_ICMPV6, .ifindex = ifindex};
	v->action = lb6_route(ctx, &p, &v->nat, 0);
	if (v->action == NG_DROP)
		v->reason = NG_DROP_FIB;
}

/* As icmp4_rewrite, for IPv6: no IP header checksums, but the ICMPv6 one also
 * covers the outer addresses (its pseudo-header).
 * Returns: 0, or -1 if the headers moved out of reach. */
static __always_inline int icmp6_rewrite(void *data, void *data_end, const struct nat6 *n,
					 int with_mac)
{
	struct icmp6_err e;
	if (!icmp6_parse(data, data_end, &e))
		return -1;
	struct ethhdr *eth = data;
	u32 inner = 0, outer = 0;
#pragma unroll
	for (int i = 0; i < 4; i++) {
		inner += csum_diff4(e.in->saddr.s6_addr32[i], n->daddr[i]);
		inner += csum_diff4(e.in->daddr.s6_addr32[i], n->saddr[i]);
		outer += csum_diff4(e.ip->saddr.s6_addr32[i], n->saddr[i]);
		outer += csum_diff4(e.ip->daddr.s6_addr32[i], n->daddr[i]);
	}
	u32 ports = csum_diff2(e.in_l4[0], n->dport) + csum_diff2(e.in_l4[1], n->sport);
	u32 icmp = inner + ports + outer;
	if (e.in->nexthdr == IPPROTO_UDP && e.in_l4[3] != 0) {
		__sum16 ucheck = csum_apply(e.in_l4[3], inner + ports);
		if (ucheck == 0)
			ucheck = 0xffff;
		icmp += csum_diff2(e.in_l4[3], ucheck);
		e.in_l4[3] = ucheck;
	}
	a6_copy(e.in->saddr.s6_addr32, n->daddr);
	a6_copy(e.in->daddr.s6_addr32, n->saddr);
	e.in_l4[0] = n->dport;
	e.in_l4[1] = n->sport;
	e.icmp->icmp6_cksum = csum_apply(e.icmp->icmp6_cksum, icmp);
	a6_copy(e.ip->saddr.s6_addr32, n->saddr);
	a6_copy(e.ip->daddr.s6_addr32, n->daddr);
	e.ip->hop_limit--;
	if (with_mac)
		eth_set_macs(eth, n->dmac, n->smac);
	return 0;
}

#endif
