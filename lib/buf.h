/* Owning byte buffers with a hard maximum fixed at init (OpenSSH sshbuf, curl dynbuf),
 * non-owning string slices, and the one bounded integer parser. */
#ifndef AL_BUF_H
#define AL_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf {
	char *data;  /* always NUL-terminated when non-NULL, so text users can print it */
	size_t len;  /* bytes in use */
	size_t cap;  /* bytes allocated, excluding the terminator */
	size_t max;  /* hard limit on len; appends past it fail with AL_E_TOOBIG */
	bool secret; /* buf_init_secret: no byte it held is freed or left behind unwiped */
};

struct str {
	const char *p;
	size_t len;
};

#define STR_LIT(s) ((struct str){(s), sizeof(s) - 1})

void buf_init(struct buf *b, size_t max);
/* Same, for a buffer that will hold a secret value (an injected credential): growing
 * moves it to a new block and wipes the old one (realloc would free it as it is),
 * buf_reset and buf_consume wipe the bytes they drop, buf_free wipes it all. */
void buf_init_secret(struct buf *b, size_t max);
void buf_reset(struct buf *b); /* len = 0, keeps memory */
void buf_free(struct buf *b);  /* releases memory (wiped first if secret); reuse after init */
/* Same, zeroing every allocated byte first: for buffers that held request bodies or
 * other input that may carry credentials. */
void buf_wipe_free(struct buf *b);
/* Appends; on AL_E_TOOBIG nothing is appended. */
int buf_add(struct buf *b, const void *p, size_t n);
int buf_add_str(struct buf *b, const char *s);
int buf_addf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vaddf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Drops the first n bytes (consumed output). */
void buf_consume(struct buf *b, size_t n);
/* Hands the heap string to the caller (never NULL) and resets b. */
char *buf_steal(struct buf *b);
/* Makes room for n more bytes and returns the write position; commit with buf_commit. */
int buf_reserve(struct buf *b, size_t n, char **wp);
void buf_commit(struct buf *b, size_t n);

struct str str_from(const char *s);
bool str_eq(struct str a, const char *b);
bool str_has_prefix(struct str a, const char *prefix);
char *str_dup(struct str s); /* heap copy, NUL-terminated */

/* Parses a decimal unsigned integer that must span the whole input and be <= max.
 * No sign, no whitespace, no leading '+'. Returns 0 or AL_E_INVAL. */
int parse_uint(const char *s, size_t len, uint64_t max, uint64_t *out);
/* Same for a NUL-terminated string. */
int parse_uint_cstr(const char *s, uint64_t max, uint64_t *out);
/* The one duration syntax of every flag, YAML key and variable (docs/cli.md): a bare
 * integer is seconds ("90"); otherwise Go-style units, compounded ("500ms", "30s", "5m",
 * "1h", "1m30s"). In milliseconds, <= max_ms. Returns 0 or AL_E_INVAL. */
int parse_duration_ms(const char *s, uint64_t max_ms, uint64_t *out);

#endif
