/* parse.h: Ethernet -> IPv4 -> TCP/UDP into struct pkt.
 *
 * What is not ours passes untouched: non-IP (IPv6 is parse6.h),
 * IPv4 with options, fragments, protocols other than TCP and UDP.
 * What is malformed is dropped: the kernel's ip_rcv/tcp_v4_rcv/udp_rcv would
 * drop it too, so nothing is lost, and we never rewrite or forward it. */
#ifndef NG_PARSE_H
#define NG_PARSE_H

/* Returns: NG_FWD (parsed, look further), NG_PASS or NG_DROP. */
static __always_inline int parse_ipv4(void *data, void *data_end, u32 len, struct pkt *p)
{
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return NG_PASS;
	if (eth->h_proto != htons(ETH_P_IP))
		return NG_PASS;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return NG_DROP;
	if (ip->version != 4 || ip->ihl < 5)
		return NG_DROP;
	u16 tot_len = ntohs(ip->tot_len);
	if (tot_len < NG_IP_HLEN || NG_ETH_HLEN + (u32)tot_len > len)
		return NG_DROP;
	if (ip->ihl != 5)
		return NG_PASS; /* IP options: the stack's business */
	if (ip->frag_off & htons(0x3fff))
		return NG_PASS; /* a fragment (MF set or offset != 0) */
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
		return NG_PASS;

	p->saddr = ip->saddr;
	p->daddr = ip->daddr;
	p->proto = ip->protocol;
	p->ttl = ip->ttl;
	p->tot_len = tot_len;
	p->l4_len = tot_len - NG_IP_HLEN;
	p->len = len;
	p->tcp_flags = 0;
	p->seq = 0;

	if (ip->protocol == IPPROTO_TCP) {
		struct tcphdr *tcp = (void *)(ip + 1);
		if ((void *)(tcp + 1) > data_end || p->l4_len < sizeof(*tcp))
			return NG_DROP;
		if (tcp->doff < 5 || (u32)tcp->doff * 4 > p->l4_len)
			return NG_DROP;
		p->sport = tcp->source;
		p->dport = tcp->dest;
		p->tcp_flags = ((u8 *)tcp)[13];
		p->seq = ntohl(tcp->seq);
		p->l4_hlen = tcp->doff * 4;
	} else {
		struct udphdr *udp = (void *)(ip + 1);
		if ((void *)(udp + 1) > data_end || p->l4_len < sizeof(*udp))
			return NG_DROP;
		u16 ulen = ntohs(udp->len);
		if (ulen < sizeof(*udp) || ulen > p->l4_len)
			return NG_DROP;
		p->l4_hlen = sizeof(*udp);
		p->sport = udp->source;
		p->dport = udp->dest;
	}
	return NG_FWD;
}

#define NG_TCP_FIN 0x01
#define NG_TCP_SYN 0x02
#define NG_TCP_RST 0x04
#define NG_TCP_ACK 0x10

/* Returns: whether the packet opens a TCP connection (SYN without ACK). */
static __always_inline int tcp_is_syn(const struct pkt *p)
{
	return p->proto == IPPROTO_TCP &&
	       (p->tcp_flags & (NG_TCP_SYN | NG_TCP_ACK | NG_TCP_RST)) == NG_TCP_SYN;
}

#endif
