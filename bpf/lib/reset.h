/* reset.h: a TCP RST answering a SYN, built in place over the SYN's first
 * 54 bytes (the caller trims the rest). RFC 9293 3.10.7.1: "If the incoming
 * segment has no ACK field, the reset has sequence number zero and the ACK
 * field is set to the sum of the sequence number and segment length of the
 * incoming segment." */
#ifndef NG_RESET_H
#define NG_RESET_H

#define NG_RST_LEN (NG_L4_OFF + 20)

/* Returns: 0, or -1 if the packet is shorter than NG_RST_LEN. */
static __always_inline int rst_build(void *data, void *data_end, const struct pkt *p)
{
	struct ethhdr *eth = data;
	struct iphdr *ip = data + NG_ETH_HLEN;
	struct tcphdr *tcp = data + NG_L4_OFF;
	if ((void *)(tcp + 1) > data_end)
		return -1;
	u8 mac[6];
	__builtin_memcpy(mac, eth->h_source, 6);
	__builtin_memcpy(eth->h_source, eth->h_dest, 6);
	__builtin_memcpy(eth->h_dest, mac, 6);

	ip->version = 4;
	ip->ihl = 5;
	ip->tos = 0;
	ip->tot_len = htons(40);
	ip->id = 0;
	ip->frag_off = htons(0x4000); /* DF */
	ip->ttl = 64;
	ip->protocol = IPPROTO_TCP;
	ip->check = 0;
	ip->saddr = p->daddr;
	ip->daddr = p->saddr;
	ip->check = ~csum_fold32(csum_ip_words((const u16 *)ip));

	u32 seg_len = (u32)p->l4_len - p->l4_hlen + 1; /* payload + SYN */
	tcp->source = p->dport;
	tcp->dest = p->sport;
	tcp->seq = 0;
	tcp->ack_seq = htonl(p->seq + seg_len);
	((u8 *)tcp)[12] = 5 << 4;
	((u8 *)tcp)[13] = NG_TCP_RST | NG_TCP_ACK;
	tcp->window = 0;
	tcp->check = 0;
	tcp->urg_ptr = 0;

	u32 sum = (p->daddr >> 16) + (p->daddr & 0xffff) + (p->saddr >> 16) + (p->saddr & 0xffff);
	sum += htons(IPPROTO_TCP) + htons(20);
	sum += csum_ip_words((const u16 *)tcp); /* 20 bytes: 10 words, like an IP header */
	tcp->check = ~csum_fold32(sum);
	return 0;
}


#define NG_RST6_LEN (NG_ETH_HLEN + 40 + 20)

/* The IPv6 RST: the same reply, with the IPv6 pseudo-header (RFC 8200 8.1).
 * Returns: 0, or -1 if the packet is shorter than NG_RST6_LEN. */
static __always_inline int rst6_build(void *data, void *data_end, const struct pkt6 *p)
{
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6 = data + NG_ETH_HLEN;
	struct tcphdr *tcp = data + NG_ETH_HLEN + 40;
	if ((void *)(tcp + 1) > data_end)
		return -1;
	u8 mac[6];
	__builtin_memcpy(mac, eth->h_source, 6);
	__builtin_memcpy(eth->h_source, eth->h_dest, 6);
	__builtin_memcpy(eth->h_dest, mac, 6);

	*(__be32 *)ip6 = htonl(6 << 28); /* version 6, traffic class 0, flow label 0 */
	ip6->payload_len = htons(20);
	ip6->nexthdr = IPPROTO_TCP;
	ip6->hop_limit = 64;
	a6_copy(ip6->saddr.s6_addr32, p->daddr);
	a6_copy(ip6->daddr.s6_addr32, p->saddr);

	u32 seg_len = (u32)p->l4_len - p->l4_hlen + 1;
	tcp->source = p->dport;
	tcp->dest = p->sport;
	tcp->seq = 0;
	tcp->ack_seq = htonl(p->seq + seg_len);
	((u8 *)tcp)[12] = 5 << 4;
	((u8 *)tcp)[13] = NG_TCP_RST | NG_TCP_ACK;
	tcp->window = 0;
	tcp->check = 0;
	tcp->urg_ptr = 0;

	u32 sum = htons(IPPROTO_TCP) + htons(20);
#pragma unroll
	for (int i = 0; i < 4; i++) {
		sum += (p->daddr[i] >> 16) + (p->daddr[i] & 0xffff);
		sum += (p->saddr[i] >> 16) + (p->saddr[i] & 0xffff);
	}
	sum += csum_ip_words((const u16 *)tcp);
	tcp->check = ~csum_fold32(sum);
	return 0;
}

#endif
