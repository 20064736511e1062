/* xdp.h: carrying a verdict out at XDP. Packets are whole frames in
 * linear memory; checksums are updated by hand (RFC 1624). */
#ifndef NG_XDP_H
#define NG_XDP_H

/* Writes the next hop's MACs in place (direct writes: XDP, or tc with the
 * header pulled linear). */
static __always_inline void eth_set_macs(struct ethhdr *eth, const u8 *dmac, const u8 *smac)
{
	__builtin_memcpy(eth->h_dest, dmac, 6);
	__builtin_memcpy(eth->h_source, smac, 6);
}

/* Rewrites addresses, ports, TTL and MACs to v->nat.
 * Returns: 0, or -1 if the headers moved out of reach. */
static __always_inline int xdp_rewrite(struct xdp_md *ctx, const struct pkt *p, const struct nat *n)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + NG_ETH_HLEN;
	if ((void *)(ip + 1) > data_end)
		return -1;
	__sum16 *l4check;
	__be16 *ports = data + NG_L4_OFF;
	if (p->proto == IPPROTO_TCP) {
		struct tcphdr *tcp = data + NG_L4_OFF;
		if ((void *)(tcp + 1) > data_end)
			return -1;
		l4check = &tcp->check;
	} else {
		struct udphdr *udp = data + NG_L4_OFF;
		if ((void *)(udp + 1) > data_end)
			return -1;
		l4check = &udp->check;
	}
	if ((void *)(ports + 2) > data_end)
		return -1;

	eth_set_macs(eth, n->dmac, n->smac);

	__sum16 c = ip->check;
	c = csum_update4(c, ip->saddr, n->saddr);
	c = csum_update4(c, ip->daddr, n->daddr);
	__be16 old_ttl = *(__be16 *)&ip->ttl; /* ttl and protocol: one word */
	ip->ttl--;
	c = csum_update2(c, old_ttl, *(__be16 *)&ip->ttl);
	ip->check = c;

	/* UDP checksum 0 means none (RFC 768): leave it; never write 0. */
	if (p->proto == IPPROTO_TCP || *l4check != 0) {
		__sum16 l = *l4check;
		l = csum_update4(l, ip->saddr, n->saddr);
		l = csum_update4(l, ip->daddr, n->daddr);
		l = csum_update2(l, ports[0], n->sport);
		l = csum_update2(l, ports[1], n->dport);
		if (p->proto == IPPROTO_UDP && l == 0)
			l = 0xffff;
		*l4check = l;
	}
	ip->saddr = n->saddr;
	ip->daddr = n->daddr;
	ports[0] = n->sport;
	ports[1] = n->dport;
	return 0;
}

/* Returns: the XDP action sending a RST back out of the ingress device. */
static __always_inline int xdp_reset(struct xdp_md *ctx, const struct pkt *p)
{
	int excess = (int)(ctx->data_end - ctx->data) - NG_RST_LEN;
	if (excess > 0 && bpf_xdp_adjust_tail(ctx, -excess))
		return XDP_DROP;
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	if (rst_build(data, data_end, p))
		return XDP_DROP;
	return XDP_TX;
}


/* IPv6: no header checksum; the L4 one covers the addresses (pseudo-header).
 * Returns: 0, or -1 if the headers moved out of reach. */
static __always_inline int xdp6_rewrite(struct xdp_md *ctx, const struct pkt6 *p,
					const struct nat6 *n)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6 = data + NG_ETH_HLEN;
	__be16 *ports = data + NG_L4_OFF6;
	__sum16 *l4check;
	if (p->proto == IPPROTO_TCP) {
		struct tcphdr *tcp = data + NG_L4_OFF6;
		if ((void *)(tcp + 1) > data_end)
			return -1;
		l4check = &tcp->check;
	} else {
		struct udphdr *udp = data + NG_L4_OFF6;
		if ((void *)(udp + 1) > data_end)
			return -1;
		l4check = &udp->check;
	}
	if ((void *)(ports + 2) > data_end || (void *)(ip6 + 1) > data_end)
		return -1;
	eth_set_macs(eth, n->dmac, n->smac);
	__sum16 l = *l4check;
#pragma unroll
	for (int i = 0; i < 4; i++) {
		l = csum_update4(l, ip6->saddr.s6_addr32[i], n->saddr[i]);
		l = csum_update4(l, ip6->daddr.s6_addr32[i], n->daddr[i]);
	}
	l = csum_update2(l, ports[0], n->sport);
	l = csum_update2(l, ports[1], n->dport);
	if (p->proto == IPPROTO_UDP && l == 0)
		l = 0xffff;
	*l4check = l;
	a6_copy(ip6->saddr.s6_addr32, n->saddr);
	a6_copy(ip6->daddr.s6_addr32, n->daddr);
	ports[0] = n->sport;
	ports[1] = n->dport;
	ip6->hop_limit--;
	return 0;
}

static __always_inline int xdp6_reset(struct xdp_md *ctx, const struct pkt6 *p)
{
	int excess = (int)(ctx->data_end - ctx->data) - NG_RST6_LEN;
	if (excess > 0 && bpf_xdp_adjust_tail(ctx, -excess))
		return XDP_DROP;
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	if (rst6_build(data, data_end, p))
		return XDP_DROP;
	return XDP_TX;
}

#endif
