/* maglev.h: the service lookup and the backend choice. The tables are
 * computed in Python (bpf/maglev.py); here we only index them. */
#ifndef NG_MAGLEV_H
#define NG_MAGLEV_H

/* Returns: the listener for (daddr, dport, proto), or one bound to every
 * local address (svc_key.addr 0) when daddr is local; NULL if none. */
static __always_inline struct svc_val *lb4_lookup_service(void *ctx, const struct pkt *p)
{
	struct svc_key key = {.addr = p->daddr, .port = p->dport, .proto = p->proto};
	struct svc_val *svc = ng_svc.lookup(&key);
	if (svc)
		return svc;
	key.addr = 0;
	svc = ng_svc.lookup(&key);
	if (!svc)
		return NULL;
	/* Wildcard: only for packets addressed to this node, never for traffic
	 * the node forwards. The kernel's own answer: a local route. Multicast
	 * and broadcast destinations are not listeners' business. */
	u32 d = ntohl(p->daddr);
	if ((d >> 28) == 0xe || d == 0xffffffff)
		return NULL;
	struct bpf_fib_lookup fib = {};
	fib.family = AF_INET;
	fib.ifindex = p->ifindex;
	fib.ipv4_dst = p->daddr;
	if (bpf_fib_lookup(ctx, &fib, sizeof(fib), 0) != BPF_FIB_LKUP_RET_NOT_FWDED)
		return NULL;
	return svc;
}

/* Returns: the backend Maglev gives this flow in the service's live table,
 * or NULL if the table is empty. */
static __always_inline struct backend_val *lb4_pick_backend(const struct svc_val *svc, u32 hash)
{
	u32 table = svc->table;
	if (table >= NG_TABLES)
		return NULL;
	u32 slot = table * NG_MAGLEV_M + hash % NG_MAGLEV_M;
	u32 *idx = ng_maglev.lookup(&slot);
	if (!idx || *idx >= NG_MAX_BACKENDS)
		return NULL;
	u32 bi = table * NG_MAX_BACKENDS + *idx;
	return ng_backends.lookup(&bi);
}

#endif
