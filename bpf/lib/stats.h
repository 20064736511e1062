/* stats.h: per-listener per-CPU counters in ng_stats (no atomics needed:
 * each CPU writes its own copy; the agent sums them). */
#ifndef NG_STATS_H
#define NG_STATS_H

static __always_inline void stats_packet(u32 slot, int reply, u32 bytes)
{
	struct stats_val *s = ng_stats.lookup(&slot);
	if (!s)
		return;
	if (reply) {
		s->reply_packets++;
		s->reply_bytes += bytes;
	} else {
		s->packets++;
		s->bytes += bytes;
	}
}

/* A GSO packet counts as the segments it stands for (bytes are already whole). */
static __always_inline void stats_packet_segs(u32 slot, int reply, u32 extra)
{
	struct stats_val *s = ng_stats.lookup(&slot);
	if (!s)
		return;
	if (reply)
		s->reply_packets += extra;
	else
		s->packets += extra;
}

static __always_inline void stats_new_flow(u32 slot)
{
	struct stats_val *s = ng_stats.lookup(&slot);
	if (s)
		s->new_flows++;
}

static __always_inline void stats_drop(u32 slot, u32 reason)
{
	struct stats_val *s = ng_stats.lookup(&slot);
	if (s && reason < NG_DROP_REASONS)
		s->drops[reason]++;
}

#endif
