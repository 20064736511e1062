/* tc.h: carrying a verdict out at tc (clsact, direct action). The skb may
 * be GSO and CHECKSUM_PARTIAL (veth, local senders), so checksums go
 * through the kernel's csum helpers, which know; writes through
 * bpf_skb_store_bytes. */
#ifndef NG_TC_H
#define NG_TC_H

/* bpf_redirect_neigh with the kernel's four arguments (bcc 0.26 declares three). */
static long (*ng_redirect_neigh)(u32 ifindex, void *params, int plen, u64 flags) =
	(void *)BPF_FUNC_redirect_neigh;

#define NG_IP_CSUM_OFF (NG_ETH_HLEN + offsetof(struct iphdr, check))
#define NG_IP_TTL_OFF (NG_ETH_HLEN + offsetof(struct iphdr, ttl))
#define NG_IP_SADDR_OFF (NG_ETH_HLEN + offsetof(struct iphdr, saddr))

/* Rewrites addresses, ports, TTL and, if with_mac, MACs.
 * Returns: 0, or a negative error of a helper. */
static __always_inline int tc_rewrite(struct __sk_buff *skb, const struct pkt *p,
				      const struct nat *n, int with_mac)
{
	u32 l4c = NG_L4_OFF + (p->proto == IPPROTO_TCP ? offsetof(struct tcphdr, check)
						       : offsetof(struct udphdr, check));
	u64 m0 = p->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
	int err = 0;
	err |= bpf_l4_csum_replace(skb, l4c, p->saddr, n->saddr, BPF_F_PSEUDO_HDR | m0 | 4);
	err |= bpf_l4_csum_replace(skb, l4c, p->daddr, n->daddr, BPF_F_PSEUDO_HDR | m0 | 4);
	err |= bpf_l4_csum_replace(skb, l4c, p->sport, n->sport, m0 | 2);
	err |= bpf_l4_csum_replace(skb, l4c, p->dport, n->dport, m0 | 2);
	err |= bpf_l3_csum_replace(skb, NG_IP_CSUM_OFF, p->saddr, n->saddr, 4);
	err |= bpf_l3_csum_replace(skb, NG_IP_CSUM_OFF, p->daddr, n->daddr, 4);
	__be16 old_ttl = htons((u16)p->ttl << 8 | p->proto);
	__be16 new_ttl = htons((u16)(p->ttl - 1) << 8 | p->proto);
	err |= bpf_l3_csum_replace(skb, NG_IP_CSUM_OFF, old_ttl, new_ttl, 2);
	u8 ttl = p->ttl - 1;
	err |= bpf_skb_store_bytes(skb, NG_IP_TTL_OFF, &ttl, 1, 0);
	__be32 addrs[2] = {n->saddr, n->daddr};
	err |= bpf_skb_store_bytes(skb, NG_IP_SADDR_OFF, addrs, 8, 0);
	__be16 ports[2] = {n->sport, n->dport};
	err |= bpf_skb_store_bytes(skb, NG_L4_OFF, ports, 4, 0);
	if (with_mac) {
		u8 macs[12];
		__builtin_memcpy(macs, n->dmac, 6);
		__builtin_memcpy(macs + 6, n->smac, 6);
		err |= bpf_skb_store_bytes(skb, 0, macs, 12, 0);
	}
	return err;
}

/* Returns: the tc action sending a RST back out of the ingress device. */
static __always_inline int tc_reset(struct __sk_buff *skb, const struct pkt *p)
{
	if (bpf_skb_change_tail(skb, NG_RST_LEN, 0))
		return TC_ACT_SHOT;
	if (bpf_skb_pull_data(skb, NG_RST_LEN))
		return TC_ACT_SHOT;
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	if (rst_build(data, data_end, p))
		return TC_ACT_SHOT;
	return bpf_redirect(skb->ifindex, 0);
}


#define NG_IP6_HOP_OFF (NG_ETH_HLEN + offsetof(struct ipv6hdr, hop_limit))
#define NG_IP6_SADDR_OFF (NG_ETH_HLEN + offsetof(struct ipv6hdr, saddr))

/* Returns: 0, or a negative error of a helper. */
static __always_inline int tc6_rewrite(struct __sk_buff *skb, const struct pkt6 *p,
				       const struct nat6 *n, int with_mac)
{
	u32 l4c = NG_L4_OFF6 + (p->proto == IPPROTO_TCP ? offsetof(struct tcphdr, check)
							: offsetof(struct udphdr, check));
	int err = 0;
#pragma unroll
	for (int i = 0; i < 4; i++) {
		err |= bpf_l4_csum_replace(skb, l4c, p->saddr[i], n->saddr[i], BPF_F_PSEUDO_HDR | 4);
		err |= bpf_l4_csum_replace(skb, l4c, p->daddr[i], n->daddr[i], BPF_F_PSEUDO_HDR | 4);
	}
	err |= bpf_l4_csum_replace(skb, l4c, p->sport, n->sport, 2);
	err |= bpf_l4_csum_replace(skb, l4c, p->dport, n->dport, 2);
	u8 hop = p->hop - 1;
	err |= bpf_skb_store_bytes(skb, NG_IP6_HOP_OFF, &hop, 1, 0);
	err |= bpf_skb_store_bytes(skb, NG_IP6_SADDR_OFF, n->saddr, 16, 0);
	err |= bpf_skb_store_bytes(skb, NG_IP6_SADDR_OFF + 16, n->daddr, 16, 0);
	__be16 ports[2] = {n->sport, n->dport};
	err |= bpf_skb_store_bytes(skb, NG_L4_OFF6, ports, 4, 0);
	if (with_mac) {
		u8 macs[12];
		__builtin_memcpy(macs, n->dmac, 6);
		__builtin_memcpy(macs + 6, n->smac, 6);
		err |= bpf_skb_store_bytes(skb, 0, macs, 12, 0);
	}
	return err;
}

static __always_inline int tc6_reset(struct __sk_buff *skb, const struct pkt6 *p)
{
	if (bpf_skb_change_tail(skb, NG_RST6_LEN, 0))
		return TC_ACT_SHOT;
	if (bpf_skb_pull_data(skb, NG_RST6_LEN))
		return TC_ACT_SHOT;
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	if (rst6_build(data, data_end, p))
		return TC_ACT_SHOT;
	return bpf_redirect(skb->ifindex, 0);
}

#endif
