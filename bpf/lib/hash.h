/* hash.h: Bob Jenkins' lookup3 final mix (flow_jhash3), as the kernel and
 * katran use it. The flow hash picks the Maglev slot and the first NAT port
 * to try; it is never seen by Python. */
#ifndef NG_HASH_H
#define NG_HASH_H

#define NG_ROL32(x, k) (((x) << (k)) | ((x) >> (32 - (k))))

/* Returns: a 32-bit hash of a, b, c. */
static __always_inline u32 flow_jhash3(u32 a, u32 b, u32 c, u32 initval)
{
	a += 0xdeadbeef + (3 << 2) + initval;
	b += 0xdeadbeef + (3 << 2) + initval;
	c += 0xdeadbeef + (3 << 2) + initval;
	c ^= b; c -= NG_ROL32(b, 14);
	a ^= c; a -= NG_ROL32(c, 11);
	b ^= a; b -= NG_ROL32(a, 25);
	c ^= b; c -= NG_ROL32(b, 16);
	a ^= c; a -= NG_ROL32(c, 4);
	b ^= a; b -= NG_ROL32(a, 14);
	c ^= b; c -= NG_ROL32(b, 24);
	return c;
}

/* Returns: the hash of a packet's 5-tuple. */
static __always_inline u32 flow_hash(const struct pkt *p, u32 seed)
{
	return flow_jhash3(p->saddr, p->daddr,
			    ((u32)p->sport << 16 | p->dport) ^ p->proto, seed);
}

#endif
