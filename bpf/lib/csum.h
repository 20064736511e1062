/* csum.h: Internet checksums (RFC 1071) and their incremental update
 * (RFC 1624: HC' = ~(~HC + ~m + m')), for code that writes packets directly
 * (XDP, the RST built in place, the IPv4 header at tc). tc rewrites give
 * the L4 difference to the kernel's bpf_l4_csum_replace, which also
 * handles CHECKSUM_PARTIAL and CHECKSUM_COMPLETE skbs. */
#ifndef NG_CSUM_H
#define NG_CSUM_H

static __always_inline u16 csum_fold32(u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (u16)sum;
}

/* Returns: the checksum field after replacing 32-bit `from` by `to`. */
static __always_inline __sum16 csum_update4(__sum16 check, __be32 from, __be32 to)
{
	u32 sum = (u16)~check;
	sum += (u16)~from + (u16)~(from >> 16);
	sum += (u16)to + (u16)(to >> 16);
	return ~csum_fold32(sum);
}

/* Returns: the checksum field after replacing 16-bit `from` by `to`. */
static __always_inline __sum16 csum_update2(__sum16 check, __be16 from, __be16 to)
{
	u32 sum = (u16)~check;
	sum += (u16)~from;
	sum += (u16)to;
	return ~csum_fold32(sum);
}

/* Returns: the unfolded one's-complement difference of replacing 32-bit
 * `from` by `to` (RFC 1624's ~m + m'); sums of a few of these fit in u32. */
static __always_inline u32 csum_diff4(__be32 from, __be32 to)
{
	return (u32)(u16)~from + (u16)~(from >> 16) + (u16)to + (u16)(to >> 16);
}

static __always_inline u32 csum_diff2(__be16 from, __be16 to)
{
	return (u32)(u16)~from + (u16)to;
}

/* Returns: the checksum field after applying an unfolded difference. */
static __always_inline __sum16 csum_apply(__sum16 check, u32 diff)
{
	u32 sum = (u16)~check;
	sum += (diff & 0xffff) + (diff >> 16);
	return ~csum_fold32(sum);
}

/* Returns: the one's-complement sum of the 20-byte IPv4 header, unfolded. */
static __always_inline u32 csum_ip_words(const u16 *w)
{
	u32 sum = 0;
#pragma unroll
	for (int i = 0; i < 10; i++)
		sum += w[i];
	return sum;
}

#endif
