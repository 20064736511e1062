/* maps.h: every map, pinned under NG_PIN_DIR so that a new agent reopens
 * them (an agent restart keeps flows). Names fit the kernel's 15 chars. */
#ifndef NG_MAPS_H
#define NG_MAPS_H

/* svc_key -> svc_val. Written by the agent (a service goes live when its
 * entry is written, after its table); read by lb4_lookup_service. */
BPF_TABLE_PINNED("hash", struct svc_key, struct svc_val, ng_svc, NG_MAX_SVC,
		 NG_PIN_DIR "/ng_svc");

/* table * NG_MAX_BACKENDS + i -> backend_val. Written by the agent into a
 * table no service points at yet; read by lb4_pick_backend. */
BPF_TABLE_PINNED("array", u32, struct backend_val, ng_backends,
		 NG_TABLES * NG_MAX_BACKENDS, NG_PIN_DIR "/ng_backends");

/* table * NG_MAGLEV_M + slot -> backend index i (host order). Written by the
 * agent from bpf/maglev.py; read by lb4_pick_backend. */
BPF_TABLE_PINNED("array", u32, u32, ng_maglev, NG_TABLES * NG_MAGLEV_M,
		 NG_PIN_DIR "/ng_maglev");

/* ct_key -> ct_val, both directions of every flow. Written by the programs
 * (new flows, last_seen, FIN/RST); read by the programs and by the agent
 * for occupancy. LRU: the oldest flows go first when full. */
BPF_TABLE_PINNED("lru_hash", struct ct_key, struct ct_val, ng_ct, NG_CT_SIZE,
		 NG_PIN_DIR "/ng_ct");

/* counter slot -> stats_val per CPU. Written by the programs; read (summed)
 * and zeroed on slot reuse by the agent. */
BPF_TABLE_PINNED("percpu_array", u32, struct stats_val, ng_stats, NG_MAX_SVC + 1,
		 NG_PIN_DIR "/ng_stats");

/* 0 -> params_val. Written by the agent at start; read by cleanup only. */
BPF_TABLE_PINNED("array", u32, struct params_val, ng_params, 1,
		 NG_PIN_DIR "/ng_params");

#endif
