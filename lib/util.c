/* Clocks, timestamps, ids and tokens; see util.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "buf.h"
#include "err.h"
#include "sha256.h"
#include "util.h"
#include "xalloc.h"

uint64_t
now_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int64_t
now_real_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void
time_fmt_rfc3339(int64_t real_us, char out[32])
{
	int64_t sec = real_us / 1000000;
	long usec = (long)(real_us % 1000000);
	if (usec < 0) {
		usec += 1000000;
		sec -= 1;
	}
	/* years 1000..9999 by arithmetic (every audit record and event formats a time; gmtime_r,
	 * strftime and snprintf cost ~2,000 instructions), the rest as strftime writes them */
	if (sec >= -30610224000LL && sec < 253402300800LL) {
		/* days to civil date (H. Hinnant, "chrono-compatible low-level date algorithms") */
		int64_t z = (sec >= 0 ? sec : sec - 86399) / 86400, secs = sec - z * 86400;
		z += 719468;
		int64_t era = (z >= 0 ? z : z - 146096) / 146097;
		unsigned doe = (unsigned)(z - era * 146097);
		unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
		unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
		unsigned mp = (5 * doy + 2) / 153, d = doy - (153 * mp + 2) / 5 + 1;
		unsigned m = mp < 10 ? mp + 3 : mp - 9;
		unsigned y = (unsigned)((int64_t)yoe + era * 400 + (m <= 2));
		unsigned hh = (unsigned)(secs / 3600), mm = (unsigned)(secs / 60 % 60),
		         ss = (unsigned)(secs % 60);
		unsigned f[] = {y / 1000, y / 100 % 10, y / 10 % 10, y % 10,  10,
		                m / 10,   m % 10,       10,          d / 10,  d % 10,
		                11,       hh / 10,      hh % 10,     12,      mm / 10,
		                mm % 10,  12,           ss / 10,     ss % 10, 13};
		static const char sep[] = "-T:.";
		for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
			out[i] = f[i] < 10 ? (char)('0' + f[i]) : sep[f[i] - 10];
		for (int i = 25; i >= 20; i--, usec /= 10)
			out[i] = (char)('0' + usec % 10);
		out[26] = 'Z';
		out[27] = '\0';
		return;
	}
	time_t t = (time_t)sec;
	struct tm tm;
	gmtime_r(&t, &tm);
	size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, 32 - n, ".%06ldZ", usec);
}

static int
digits(const char **s, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if ((*s)[i] < '0' || (*s)[i] > '9')
			return -1;
		v = v * 10 + ((*s)[i] - '0');
	}
	*s += n;
	*out = v;
	return 0;
}

int
time_parse_rfc3339(const char *s, int64_t *real_us)
{
	int Y, M, D, h, m, sec, oh = 0, om = 0;
	long frac = 0;
	struct tm tm;

	if (digits(&s, 4, &Y) || *s++ != '-' || digits(&s, 2, &M) || *s++ != '-' ||
	    digits(&s, 2, &D) || (*s != 'T' && *s != 't' && *s != ' '))
		return AL_E_INVAL;
	s++;
	if (digits(&s, 2, &h) || *s++ != ':' || digits(&s, 2, &m) || *s++ != ':' ||
	    digits(&s, 2, &sec))
		return AL_E_INVAL;
	if (*s == '.') {
		s++;
		int nd = 0;
		while (*s >= '0' && *s <= '9') {
			if (nd < 6) {
				frac = frac * 10 + (*s - '0');
				nd++;
			}
			s++;
		}
		if (nd == 0)
			return AL_E_INVAL;
		while (nd++ < 6)
			frac *= 10;
	}
	int sign = 0;
	if (*s == 'Z' || *s == 'z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		sign = *s == '+' ? 1 : -1;
		s++;
		if (digits(&s, 2, &oh) || *s++ != ':' || digits(&s, 2, &om))
			return AL_E_INVAL;
	} else {
		return AL_E_INVAL;
	}
	if (*s != '\0' || M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60 ||
	    oh > 23 || om > 59)
		return AL_E_INVAL;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = Y - 1900;
	tm.tm_mon = M - 1;
	tm.tm_mday = D;
	tm.tm_hour = h;
	tm.tm_min = m;
	tm.tm_sec = sec;
	time_t t = timegm(&tm);
	t -= sign * (oh * 3600 + om * 60);
	*real_us = (int64_t)t * 1000000 + frac;
	return 0;
}

void
random_bytes(void *p, size_t n)
{
	unsigned char *q = p;
	while (n > 0) {
		ssize_t r = getrandom(q, n, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			abort(); /* no entropy means no safe ids or tokens */
		}
		q += r;
		n -= (size_t)r;
	}
}

static const char b58[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

char *
id_new(const char *prefix)
{
	unsigned char rnd[24];
	char tail[25];
	random_bytes(rnd, sizeof(rnd));
	/* 24 chars of base58 from independent bytes: ~140 bits; the slight modulo bias
	 * does not matter for identifiers (secrets use token_new). */
	for (size_t i = 0; i < 24; i++)
		tail[i] = b58[rnd[i] % 58];
	tail[24] = '\0';
	return xasprintf("%s%s", prefix, tail);
}

int
id_valid(const char *s, const char *prefix)
{
	size_t pl = strlen(prefix);
	if (s == NULL || strncmp(s, prefix, pl) != 0)
		return AL_E_INVAL;
	size_t n = 0;
	for (const char *p = s + pl; *p; p++, n++) {
		char c = *p;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
			return AL_E_INVAL;
	}
	return (n >= 1 && n <= 64) ? 0 : AL_E_INVAL;
}

char *
base64url_encode(const void *data, size_t len)
{
	static const char tbl[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	const unsigned char *d = data;
	char *out = xmalloc(len / 3 * 4 + 5);
	size_t o = 0, i = 0;
	for (; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 | d[i + 2];
		out[o++] = tbl[v >> 18 & 63];
		out[o++] = tbl[v >> 12 & 63];
		out[o++] = tbl[v >> 6 & 63];
		out[o++] = tbl[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)d[i] << 16;
		out[o++] = tbl[v >> 18 & 63];
		out[o++] = tbl[v >> 12 & 63];
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8;
		out[o++] = tbl[v >> 18 & 63];
		out[o++] = tbl[v >> 12 & 63];
		out[o++] = tbl[v >> 6 & 63];
	}
	out[o] = '\0';
	return out;
}

static int
b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

int
base64_decode_any(const char *s, size_t len, unsigned char **out, size_t *out_len)
{
	while (len > 0 && s[len - 1] == '=')
		len--;
	if (len % 4 == 1)
		return AL_E_INVAL;
	unsigned char *o = xmalloc(len / 4 * 3 + 3);
	size_t n = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < len; i++) {
		int v = b64val((unsigned char)s[i]);
		if (v < 0) {
			free(o);
			return AL_E_INVAL;
		}
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			o[n++] = (unsigned char)(acc >> bits);
		}
	}
	*out = o;
	*out_len = n;
	return 0;
}

char *
token_new(const char *prefix)
{
	unsigned char rnd[32];
	random_bytes(rnd, sizeof(rnd));
	char *t = base64url_encode(rnd, sizeof(rnd));
	char *s = xasprintf("%s%s", prefix, t);
	explicit_wipe(rnd, sizeof(rnd));
	secret_free(t);
	return s;
}

void
sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	static const char hex[] = "0123456789abcdef";
	sha256(data, len, md); /* not OpenSSL's: see sha256.h */
	for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
}

int
base64url_decode_strict(const char *s, size_t len, unsigned char **out, size_t *out_len)
{
	/* a length of 1 mod 4 cannot come from any byte string */
	if (len % 4 == 1)
		return AL_E_INVAL;
	unsigned char *o = xmalloc(len / 4 * 3 + 3);
	size_t n = 0;
	uint32_t acc = 0;
	unsigned bits = 0;
	for (size_t i = 0; i < len; i++) {
		int v = s[i] == '+' || s[i] == '/' ? -1 : b64val((unsigned char)s[i]);
		if (v < 0)
			goto bad;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			o[n++] = (unsigned char)(acc >> bits);
		}
	}
	/* leftover bits must be zero, or two texts would decode to the same bytes */
	if ((acc & ((1u << bits) - 1)) != 0)
		goto bad;
	o[n] = 0;
	*out = o;
	*out_len = n;
	return 0;
bad:
	free(o);
	return AL_E_INVAL;
}

char *
base64_encode_std(const void *data, size_t len)
{
	char *s = base64url_encode(data, len);
	size_t n = strlen(s);
	char *out = xmalloc(n + 3);
	for (size_t i = 0; i < n; i++)
		out[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
	while (n % 4)
		out[n++] = '=';
	out[n] = '\0';
	secret_free(s);
	return out;
}
