/*
 * link.h - when a client tries its server again, I/O-free (part of
 * pds_core). Included by pds.h.
 *
 * A client whose link failed tries again after a capped exponential
 * back-off with jitter, so that the printers of a site do not all knock at
 * once when their server comes back. The host keeps the count of failed
 * tries (reset when a link is welcomed) and supplies the randomness.
 */
#ifndef PDS_LINK_H
#define PDS_LINK_H

#include <stdint.h>

/*
 * The delay before try number n_retries + 1 (n_retries failed ones
 * before it, 0 for the first retry): min_ms doubled per failed try, at
 * most max_ms, then moved by up to +-25% using random (any 32-bit value;
 * the same value gives the same delay). min_ms 0 is taken as 1; max_ms
 * below min_ms as min_ms. Never fails.
 */
uint64_t pds_link_retry_ms(uint32_t n_retries,
                           uint64_t min_ms,
                           uint64_t max_ms,
                           uint32_t random);

#endif /* PDS_LINK_H */
