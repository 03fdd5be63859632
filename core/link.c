/*
 * link.c - the client's back-off before it tries its server again (see
 * link.h).
 */
#include "pds.h"

uint64_t pds_link_retry_ms(uint32_t n_retries,
                           uint64_t min_ms,
                           uint64_t max_ms,
                           uint32_t random)
{
    uint64_t delay;
    uint64_t jitter;
    uint32_t i;

    if (min_ms == 0)
        min_ms = 1;
    if (max_ms < min_ms)
        max_ms = min_ms;
    delay = min_ms;
    for (i = 0; i < n_retries && delay < max_ms; i++)
        delay *= 2;
    if (delay > max_ms)
        delay = max_ms;
    /* +-25%: a spread of half the delay, centred on it. */
    jitter = delay / 2;
    if (jitter > 0)
        delay = delay - jitter / 2 + (uint64_t)random % (jitter + 1);
    return delay;
}
