/*
 * sim.h - what the simulations share: their seeded pseudo-random numbers
 * (xorshift64), so that a run is a pure function of its seed.
 */
#ifndef PDS_SIM_H
#define PDS_SIM_H

#include <stdint.h>

/* The next number of the sequence in *state (never 0 unless seeded 0). */
static inline uint64_t sim_xorshift(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

#endif /* PDS_SIM_H */
