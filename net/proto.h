/*
 * proto.h - internal msgpack helpers shared by net/'s encoders and
 * decoders. Not part of the public API.
 */
#ifndef PDS_NET_PROTO_H
#define PDS_NET_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "../core/pds.h"

/* Version of the local API spoken by this build. */
#define PDS_LOCAL_PROTOCOL 1

/* Refuse (PDS_EPROTO) a message whose headers claim more than it holds. */
int pds__mp_check(const uint8_t *buf, size_t len);
int pds__mp_key_is(const msgpack_object *k, const char *name);
/* The value of key name in map, or NULL (also when map is not a map). */
const msgpack_object *pds__mp_get(const msgpack_object *map, const char *name);
/* Typed lookups: 0, or PDS_EPROTO when absent or of another type. */
int pds__mp_uint(const msgpack_object *map, const char *name, uint64_t *out);
int pds__mp_int(const msgpack_object *map, const char *name, int64_t *out);
int pds__mp_str(const msgpack_object *map,
                const char *name,
                const char **ptr,
                size_t *len);
int pds__mp_bin(const msgpack_object *map,
                const char *name,
                const uint8_t **ptr,
                size_t *len);
int pds__mp_scope(const msgpack_object *map, enum pds_scope *scope);
void pds__mp_pack_str(msgpack_packer *pk, const char *s, size_t len);
void pds__mp_pack_cstr(msgpack_packer *pk, const char *s);

#endif /* PDS_NET_PROTO_H */
