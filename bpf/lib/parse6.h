/* parse6.h: Ethernet -> IPv6 -> TCP/UDP into struct pkt6 (the caller has
 * checked the ethertype). Extension headers (fragments included) and
 * ICMPv6 are not ours: they pass. Malformed headers are dropped. */
#ifndef NG_PARSE6_H
#define NG_PARSE6_H

#define NG_IP6_HLEN 40
#define NG_L4_OFF6 (NG_ETH_HLEN + NG_IP6_HLEN)

static __always_inline void a6_copy(__be32 *d, const __be32 *s)
{
#pragma unroll
	for (int i = 0; i < 4; i++)
		d[i] = s[i];
}

/* Returns: whether two IPv6 addresses are equal. */
static __always_inline int a6_eq(const __be32 *a, const __be32 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3];
}

/* Returns: NG_FWD (parsed), NG_PASS or NG_DROP. */
static __always_inline int parse_ipv6(void *data, void *data_end, u32 len, struct pkt6 *p)
{
	struct ipv6hdr *ip6 = data + NG_ETH_HLEN;
	if ((void *)(ip6 + 1) > data_end)
		return NG_DROP;
	if (ip6->version != 6)
		return NG_DROP;
	u16 plen = ntohs(ip6->payload_len);
	if (NG_ETH_HLEN + NG_IP6_HLEN + (u32)plen > len)
		return NG_DROP;
	if (ip6->nexthdr != IPPROTO_TCP && ip6->nexthdr != IPPROTO_UDP)
		return NG_PASS;
	a6_copy(p->saddr, ip6->saddr.s6_addr32);
	a6_copy(p->daddr, ip6->daddr.s6_addr32);
	p->proto = ip6->nexthdr;
	p->hop = ip6->hop_limit;
	p->l4_len = plen;
	p->len = len;
	p->tcp_flags = 0;
	p->seq = 0;
	if (p->proto == IPPROTO_TCP) {
		struct tcphdr *tcp = (void *)(ip6 + 1);
		if ((void *)(tcp + 1) > data_end || plen < sizeof(*tcp))
			return NG_DROP;
		if (tcp->doff < 5 || (u32)tcp->doff * 4 > plen)
			return NG_DROP;
		p->sport = tcp->source;
		p->dport = tcp->dest;
		p->tcp_flags = ((u8 *)tcp)[13];
		p->seq = ntohl(tcp->seq);
		p->l4_hlen = tcp->doff * 4;
	} else {
		struct udphdr *udp = (void *)(ip6 + 1);
		if ((void *)(udp + 1) > data_end || plen < sizeof(*udp))
			return NG_DROP;
		u16 ulen = ntohs(udp->len);
		if (ulen < sizeof(*udp) || ulen > plen)
			return NG_DROP;
		p->l4_hlen = sizeof(*udp);
		p->sport = udp->source;
		p->dport = udp->dest;
	}
	return NG_FWD;
}

/* Returns: whether the packet opens a TCP connection (SYN without ACK). */
static __always_inline int tcp6_is_syn(const struct pkt6 *p)
{
	return p->proto == IPPROTO_TCP &&
	       (p->tcp_flags & (NG_TCP_SYN | NG_TCP_ACK | NG_TCP_RST)) == NG_TCP_SYN;
}

static __always_inline u32 flow6_hash(const struct pkt6 *p, u32 seed)
{
	u32 a = p->saddr[0] ^ p->saddr[1] ^ p->saddr[2] ^ p->saddr[3];
	u32 b = p->daddr[0] ^ p->daddr[1] ^ p->daddr[2] ^ p->daddr[3];
	return flow_jhash3(flow_jhash3(p->saddr[0], p->saddr[1], p->saddr[2], p->saddr[3] ^ seed),
			   b, ((u32)p->sport << 16 | p->dport) ^ p->proto, a ^ seed);
}

#endif
