/* nodegate.c: the L4 datapath's entries. Thin by design: parsing, the
 * decision and the rewrites live in lib/ (one header per role); these only
 * wire them to their hook. bpf/compile.py inlines the lib/ headers (bcc
 * rewrites map calls in the main file only) with #line markers, so errors
 * point here and into lib/.
 *
 *   ng_xdp   XDP (native or generic) on every served interface
 *   ng_tc    tc clsact ingress, direct action: the whole datapath, and in
 *            XDP mode the finisher for what XDP passes (unresolved next hop)
 * IPv4 goes through lb4_decide, IPv6 through lb6_decide (lib/lb6.h); ICMP
 * errors about a flow through icmp4_decide and icmp6_decide (lib/icmp.h).
 *
 *   ng_pass  XDP_PASS only: for veth peers that must take XDP_REDIRECTed
 *            frames (the lab and the bench; never attached by the agent) */
#include <uapi/linux/bpf.h>
#include <uapi/linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/icmp.h>
#include <linux/icmpv6.h>
#include <linux/socket.h>

#include "lib/consts.h"
#include "lib/structs.h"
#include "lib/structs6.h"
#include "lib/maps.h"
#include "lib/maps6.h"
#include "lib/parse.h"
#include "lib/csum.h"
#include "lib/hash.h"
#include "lib/parse6.h"
#include "lib/stats.h"
#include "lib/maglev.h"
#include "lib/conntrack.h"
#include "lib/lb4.h"
#include "lib/lb6.h"
#include "lib/reset.h"
#include "lib/xdp.h"
#include "lib/tc.h"
#include "lib/icmp.h"

static __always_inline int ng_xdp6_icmp(struct xdp_md *ctx, void *data, void *data_end)
{
	struct verdict6 v = {};
	icmp6_decide(ctx, data, data_end, ctx->ingress_ifindex, &v);
	switch (v.action) {
	case NG_FWD:
		if (icmp6_rewrite((void *)(long)ctx->data, (void *)(long)ctx->data_end, &v.nat, 1))
			return XDP_DROP;
		stats_packet(v.slot, v.reply, (u32)(data_end - data));
		return bpf_redirect(v.nat.ifindex, 0);
	case NG_DROP:
		stats_drop(v.slot, v.reason);
		return XDP_DROP;
	default: /* NG_PASS; NG_NEIGH: tc resolves the next hop */
		return XDP_PASS;
	}
}

/* An ICMPv6 error quotes 40 more bytes than ng_tc pulls: pulled here, for
 * ICMPv6 errors only. */
static __always_inline int ng_tc6_icmp(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ipv6hdr *ip6 = data + NG_ETH_HLEN;
	struct icmp6hdr *ic = data + NG_L4_OFF6;
	if ((void *)(ic + 1) > data_end || ip6->nexthdr != IPPROTO_ICMPV6 || ic->icmp6_type > 3 ||
	    skb->len < NG_ICMP6_MIN_FRAME)
		return TC_ACT_OK; /* not an error we translate (neighbour discovery, echo, ...) */
	if (data + NG_ICMP6_MIN_FRAME > data_end) {
		if (bpf_skb_pull_data(skb, NG_ICMP6_MIN_FRAME))
			return TC_ACT_OK;
		data = (void *)(long)skb->data;
		data_end = (void *)(long)skb->data_end;
	}
	struct verdict6 v = {};
	icmp6_decide(skb, data, data_end, skb->ifindex, &v);
	switch (v.action) {
	case NG_FWD:
	case NG_NEIGH:
		if (icmp6_rewrite((void *)(long)skb->data, (void *)(long)skb->data_end, &v.nat,
				  v.action == NG_FWD))
			return TC_ACT_SHOT;
		stats_packet(v.slot, v.reply, skb->len);
		return tc_send(v.action, v.nat.ifindex);
	case NG_DROP:
		stats_drop(v.slot, v.reason);
		return TC_ACT_SHOT;
	default:
		return TC_ACT_OK;
	}
}

static __always_inline int ng_xdp6(struct xdp_md *ctx, void *data, void *data_end)
{
	struct pkt6 p = {};
	p.ifindex = ctx->ingress_ifindex;
	int rc = parse_ipv6(data, data_end, (u32)(data_end - data), &p);
	if (rc == NG_PASS)
		return ng_xdp6_icmp(ctx, data, data_end);
	if (rc == NG_DROP) {
		stats_drop(NG_STATS_GLOBAL, NG_DROP_MALFORMED);
		return XDP_DROP;
	}
	if (p.len > NG_XDP_MAX_FRAME)
		return XDP_PASS;
	struct verdict6 v = {};
	lb6_decide(ctx, &p, p.l4_len + NG_IP6_HLEN, &v);
	switch (v.action) {
	case NG_FWD:
		if (xdp6_rewrite(ctx, &p, &v.nat))
			return XDP_DROP;
		stats_packet(v.slot, v.reply, p.len);
		return bpf_redirect(v.nat.ifindex, 0);
	case NG_DROP:
		stats_drop(v.slot, v.reason);
		return XDP_DROP;
	case NG_RESET:
		stats_drop(v.slot, v.reason);
		return xdp6_reset(ctx, &p);
	default:
		return XDP_PASS;
	}
}

static __always_inline int ng_tc6(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct pkt6 p = {};
	p.ifindex = skb->ifindex;
	int rc = parse_ipv6(data, data_end, skb->len, &p);
	if (rc == NG_PASS)
		return ng_tc6_icmp(skb);
	if (rc == NG_DROP) {
		stats_drop(NG_STATS_GLOBAL, NG_DROP_MALFORMED);
		return TC_ACT_SHOT;
	}
	struct verdict6 v = {};
	lb6_decide(skb, &p, 0, &v);
	u32 segs = skb->gso_segs > 1 ? skb->gso_segs : 1;
	switch (v.action) {
	case NG_FWD:
	case NG_NEIGH:
		if (tc6_rewrite(skb, &p, &v.nat, v.action == NG_FWD))
			return TC_ACT_SHOT;
		stats_packet(v.slot, v.reply, p.len);
		if (segs > 1)
			stats_packet_segs(v.slot, v.reply, segs - 1);
		return tc_send(v.action, v.nat.ifindex);
	case NG_DROP:
		stats_drop(v.slot, v.reason);
		return TC_ACT_SHOT;
	case NG_RESET:
		stats_drop(v.slot, v.reason);
		return tc6_reset(skb, &p);
	default:
		return TC_ACT_OK;
	}
}

static __always_inline int ng_xdp_icmp(struct xdp_md *ctx, void *data, void *data_end)
{
	struct verdict v = {};
	icmp4_decide(ctx, data, data_end, ctx->ingress_ifindex, &v);
	switch (v.action) {
	case NG_FWD:
		if (icmp4_rewrite((void *)(long)ctx->data, (void *)(long)ctx->data_end, &v.nat, 1))
			return XDP_DROP;
		stats_packet(v.slot, v.reply, (u32)(data_end - data));
		return bpf_redirect(v.nat.ifindex, 0);
	case NG_DROP:
		stats_drop(v.slot, v.reason);
		return XDP_DROP;
	default: /* NG_PASS; NG_NEIGH: tc resolves the next hop */
		return XDP_PASS;
	}
}

static __always_inline int ng_tc_icmp(struct __sk_buff *skb, void *data, void *data_end)
{
	struct verdict v = {};
	icmp4_decide(skb, data, data_end, skb->ifindex, &v);
	switch (v.action) {
	case NG_FWD:
	case NG_NEIGH:
		if (icmp4_rewrite((void *)(long)skb->data, (void *)(long)skb->data_end, &v.nat,
				  v.action == NG_FWD))
			return TC_ACT_SHOT;
		stats_packet(v.slot, v.reply, skb->len);
		return tc_send(v.action, v.nat.ifindex);
	case NG_DROP:
		stats_drop(v.slot, v.reason);
		return TC_ACT_SHOT;
	default:
		return TC_ACT_OK;
	}
}

int ng_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) <= data_end && eth->h_proto == htons(ETH_P_IPV6))
		return ng_xdp6(ctx, data, data_end);
	struct pkt p = {};
	p.ifindex = ctx->ingress_ifindex;
	int rc = parse_ipv4(data, data_end, (u32)(data_end - data), &p);
	if (rc == NG_PASS)
		return ng_xdp_icmp(ctx, data, data_end);
	if (rc == NG_DROP) {
		stats_drop(NG_STATS_GLOBAL, NG_DROP_MALFORMED);
		return XDP_DROP;
	}
	if (p.len > NG_XDP_MAX_FRAME)
		return XDP_PASS; /* a GRO packet under generic XDP: tc takes it */
	struct verdict v = {};
	lb4_decide(ctx, data, data_end, &p, p.tot_len, &v);
	switch (v.action) {
	case NG_FWD:
		if (xdp_rewrite(ctx, &p, &v.nat))
			return XDP_DROP;
		stats_packet(v.slot, v.reply, p.len);
		return bpf_redirect(v.nat.ifindex, 0);
	case NG_DROP:
		stats_drop(v.slot, v.reason);
		return XDP_DROP;
	case NG_RESET:
		stats_drop(v.slot, v.reason);
		return xdp_reset(ctx, &p);
	default: /* NG_PASS; NG_NEIGH: tc resolves the next hop */
		return XDP_PASS;
	}
}

int ng_tc(struct __sk_buff *skb)
{
	/* Headers up to an IPv6 TCP header linear; most packets already are,
	 * and the pull is a helper call (and may copy a cloned head). */
	u32 want = skb->len < NG_L4_OFF6 + 20 ? skb->len : NG_L4_OFF6 + 20;
	if ((long)skb->data + want > (long)skb->data_end)
		bpf_skb_pull_data(skb, want);
	if (skb->protocol == htons(ETH_P_IPV6))
		return ng_tc6(skb);
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct pkt p = {};
	p.ifindex = skb->ifindex;
	int rc = parse_ipv4(data, data_end, skb->len, &p);
	if (rc == NG_PASS)
		return ng_tc_icmp(skb, data, data_end);
	if (rc == NG_DROP) {
		stats_drop(NG_STATS_GLOBAL, NG_DROP_MALFORMED);
		return TC_ACT_SHOT;
	}
	struct verdict v = {};
	lb4_decide(skb, data, data_end, &p, 0, &v);
	u32 segs = skb->gso_segs > 1 ? skb->gso_segs : 1;
	switch (v.action) {
	case NG_FWD:
	case NG_NEIGH:
		if (tc_rewrite(skb, &p, &v.nat, v.action == NG_FWD))
			return TC_ACT_SHOT;
		stats_packet(v.slot, v.reply, p.len);
		if (segs > 1)
			stats_packet_segs(v.slot, v.reply, segs - 1);
		return tc_send(v.action, v.nat.ifindex);
	case NG_DROP:
		stats_drop(v.slot, v.reason);
		return TC_ACT_SHOT;
	case NG_RESET:
		stats_drop(v.slot, v.reason);
		return tc_reset(skb, &p);
	default:
		return TC_ACT_OK;
	}
}

int ng_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}
