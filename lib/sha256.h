/* SHA-256 (FIPS 180-4) without OpenSSL: hashing a name in the worker's privileged
 * monitor must not initialize libcrypto (its config and providers cost ~3 MiB of
 * resident memory in a process that otherwise never needs it). */
#ifndef AL_SHA256_H
#define AL_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_LEN 32

void sha256(const void *data, size_t len, uint8_t out[SHA256_LEN]);

#endif
