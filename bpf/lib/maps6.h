/* maps6.h: the IPv6 maps; same roles, writers and readers as in maps.h. */
#ifndef NG_MAPS6_H
#define NG_MAPS6_H

/* svc6_key -> svc_val (written by the agent, read by lb6_lookup_service). */
BPF_TABLE_PINNED("hash", struct svc6_key, struct svc_val, ng_svc6, NG_MAX_SVC,
		 NG_PIN_DIR "/ng_svc6");

/* table * NG_MAX_BACKENDS + i -> backend6_val (agent; lb6_pick_backend).
 * The slot in ng_maglev is shared with IPv4: a table is one family's. */
BPF_TABLE_PINNED("array", u32, struct backend6_val, ng_backends6,
		 NG_TABLES * NG_MAX_BACKENDS, NG_PIN_DIR "/ng_backends6");

/* ct6_key -> ct6_val, both directions (programs; agent for occupancy). */
BPF_TABLE_PINNED("lru_hash", struct ct6_key, struct ct6_val, ng_ct6, NG_CT_SIZE,
		 NG_PIN_DIR "/ng_ct6");

#endif
