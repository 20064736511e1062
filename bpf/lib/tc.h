/* tc.h: carrying a verdict out at tc (clsact, direct action). The skb may
 * be GSO and CHECKSUM_PARTIAL (veth, local senders), so checksums go
 * through the kernel's csum helpers (by difference), which know; writes
 * through bpf_skb_store_bytes, one per contiguous run of bytes. */
#ifndef NG_TC_H
#define NG_TC_H

/* bpf_redirect_neigh with the kernel's four arguments (bcc 0.26 declares three). */
static long (*ng_redirect_neigh)(u32 ifindex, void *params, int plen, u64 flags) =
	(void *)BPF_FUNC_redirect_neigh;

/* Writes the next hop's MACs (one store).
 * Returns: 0, or a negative error of the helper. */
static __always_inline int tc_store_macs(struct __sk_buff *skb, const u8 *dmac, const u8 *smac)
{
	u8 macs[12];
	__builtin_memcpy(macs, dmac, 6);
	__builtin_memcpy(macs + 6, smac, 6);
	return bpf_skb_store_bytes(skb, 0, macs, 12, 0);
}

/* Returns: the tc action sending a rewritten packet on: straight out of
 * ifindex (NG_FWD: MACs written), or through the kernel's neighbour
 * resolution (NG_NEIGH). */
static __always_inline int tc_send(int action, u32 ifindex)
{
	if (action == NG_FWD)
		return bpf_redirect(ifindex, 0);
	return ng_redirect_neigh(ifindex, NULL, 0, 0);
}

#define NG_IP_TTL_OFF (NG_ETH_HLEN + offsetof(struct iphdr, ttl))
#define NG_IP_CSUM_OFF (NG_ETH_HLEN + offsetof(struct iphdr, check))

/* The bytes a rewrite changes past the MACs, contiguous when the IPv4
 * header has no options (parse_ipv4 passes those): TTL to the L4 ports. */
struct rewrite4 {
	u8 ttl;
	u8 proto;
	__sum16 check;
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
} __attribute__((packed));

/* Hands the kernel an L4 checksum difference: addresses are in the pseudo
 * header (so also adjusted under CHECKSUM_PARTIAL, where the field holds
 * only that sum), ports are not. The kernel's csum code knows every
 * ip_summed state; "by difference" is size 0 with from 0. */
static __always_inline int tc_l4_csum(struct __sk_buff *skb, u32 off, u32 addr_diff,
				      u32 port_diff, u64 flags)
{
	int err = bpf_l4_csum_replace(skb, off, 0, addr_diff, BPF_F_PSEUDO_HDR | flags);
	return err | bpf_l4_csum_replace(skb, off, 0, port_diff, flags);
}

/* Rewrites addresses, ports, TTL and, if with_mac, MACs: four helper calls
 * (two L4 checksum differences, one store for TTL..ports with the IPv4
 * checksum computed here, one for the MACs).
 * Returns: 0, or a negative error of a helper (or -1: header out of reach). */
static __always_inline int tc_rewrite(struct __sk_buff *skb, const struct pkt *p,
				      const struct nat *n, int with_mac)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + NG_ETH_HLEN;
	if ((void *)(ip + 1) > data_end)
		return -1;
	u32 l4c = NG_L4_OFF + (p->proto == IPPROTO_TCP ? offsetof(struct tcphdr, check)
						       : offsetof(struct udphdr, check));
	u64 m0 = p->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
	struct rewrite4 w = {.ttl = p->ttl - 1, .proto = p->proto, .saddr = n->saddr,
			     .daddr = n->daddr, .sport = n->sport, .dport = n->dport};
	u32 addrs = csum_diff4(p->saddr, n->saddr) + csum_diff4(p->daddr, n->daddr);
	u32 ports = csum_diff2(p->sport, n->sport) + csum_diff2(p->dport, n->dport);
	__be16 old_ttl = htons((u16)p->ttl << 8 | p->proto);
	__be16 new_ttl = htons((u16)w.ttl << 8 | p->proto);
	w.check = csum_apply(ip->check, addrs + csum_diff2(old_ttl, new_ttl));
	int err = tc_l4_csum(skb, l4c, addrs, ports, m0);
	err |= bpf_skb_store_bytes(skb, NG_IP_TTL_OFF, &w, sizeof(w), 0);
	if (with_mac)
		err |= tc_store_macs(skb, n->dmac, n->smac);
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

/* The bytes a rewrite changes past the MACs: hop limit to the L4 ports. */
struct rewrite6 {
	u8 hop;
	__be32 saddr[4];
	__be32 daddr[4];
	__be16 sport;
	__be16 dport;
} __attribute__((packed));

/* Returns: 0, or a negative error of a helper. */
static __always_inline int tc6_rewrite(struct __sk_buff *skb, const struct pkt6 *p,
				       const struct nat6 *n, int with_mac)
{
	u32 l4c = NG_L4_OFF6 + (p->proto == IPPROTO_TCP ? offsetof(struct tcphdr, check)
							: offsetof(struct udphdr, check));
	struct rewrite6 w = {.hop = p->hop - 1, .sport = n->sport, .dport = n->dport};
	u32 addrs = 0;
#pragma unroll
	for (int i = 0; i < 4; i++) {
		w.saddr[i] = n->saddr[i];
		w.daddr[i] = n->daddr[i];
		addrs += csum_diff4(p->saddr[i], n->saddr[i]) + csum_diff4(p->daddr[i], n->daddr[i]);
	}
	u32 ports = csum_diff2(p->sport, n->sport) + csum_diff2(p->dport, n->dport);
	int err = tc_l4_csum(skb, l4c, addrs, ports, 0);
	err |= bpf_skb_store_bytes(skb, NG_IP6_HOP_OFF, &w, sizeof(w), 0);
	if (with_mac)
		err |= tc_store_macs(skb, n->dmac, n->smac);
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
