/* Small shared helpers: clocks, RFC 3339 timestamps, random ids and tokens. */
#ifndef AL_UTIL_H
#define AL_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

uint64_t now_mono_ms(void); /* CLOCK_MONOTONIC in ms: timers, deadlines */
int64_t now_real_us(void);  /* CLOCK_REALTIME in µs: stored timestamps */
/* RFC 3339 UTC with microseconds: "2026-11-27T05:53:28.123456Z". out >= 32 bytes. */
void time_fmt_rfc3339(int64_t real_us, char out[32]);
/* Parses RFC 3339 (Z or ±hh:mm offset, optional fraction). Returns 0 or AL_E_INVAL. */
int time_parse_rfc3339(const char *s, int64_t *real_us);

/* Fills p with n bytes from getrandom(2); aborts if the kernel cannot provide them. */
void random_bytes(void *p, size_t n);
/* New id: prefix + 24 base58 characters of fresh randomness ("agent_011C..."). */
char *id_new(const char *prefix);
/* Checks that s is prefix followed by 1..64 characters of [A-Za-z0-9]. */
int id_valid(const char *s, const char *prefix);
/* New secret token: prefix + 43 base64url characters (256 random bits). */
char *token_new(const char *prefix);
/* Lower-case hex SHA-256 of data (for hashed key storage). out >= 65 bytes. */
void sha256_hex(const void *data, size_t len, char out[65]);

/* base64url (RFC 4648 §5) without padding; decode accepts padding and the standard alphabet. */
char *base64url_encode(const void *data, size_t len);
/* Standard base64 (RFC 4648 §4) with padding, e.g. for HTTP Basic credentials. */
char *base64_encode_std(const void *data, size_t len);
int base64_decode_any(const char *s, size_t len, unsigned char **out, size_t *out_len);
/* Strict base64url for signed data (RFC 7515 §2): URL alphabet, no padding, zero trailing
 * bits, so one text decodes per byte string. *out is malloc'ed with one extra NUL byte.
 * 0 or AL_E_INVAL. */
int base64url_decode_strict(const char *s, size_t len, unsigned char **out, size_t *out_len);

#endif
