/* Line-oriented logging to stderr; one write(2) per event so lines from several
 * processes sharing stderr never interleave mid-line. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "buf.h"
#include "log.h"

static enum log_format log_fmt = LOG_FMT_TEXT;
static enum log_level log_min = LOG_LVL_INFO;
static const char *log_component = "airlock";

static const char *const level_names[] = {"debug", "info", "warn", "error"};

/* JSON logs type values by key, so a log pipeline can sum `bytes` or filter `status >= 500`
 * without casting. Call sites keep passing strings (one varargs convention, text and JSON
 * alike); a value under one of these keys that does not parse as its type stays a string,
 * so nothing is ever lost or invented. Keep each key one type across the tree. */
static const char *const number_keys[] = {
    "backoff_ms", "bytes",        "connections", "exit_status", "failed_polls", "files",
    "index",      "keys",         "last_seq",    "ms",          "outage_s",     "pid",
    "port",       "records_lost", "retry_ms",    "routes",      "rules",        "status",
    "streams",    "turn",         "turns",       NULL};
static const char *const bool_keys[] = {"force", "overage", "requeued", "spare", NULL};

static bool
key_in(const char *const *set, const char *k)
{
	for (size_t i = 0; set[i]; i++)
		if (strcmp(set[i], k) == 0)
			return true;
	return false;
}

/* A JSON number as written by our call sites: -?digits(.digits)?, no leading zeros, at
 * most 15 significant digits (exact in a double, so a reader loses nothing). */
static bool
is_plain_number(const char *v)
{
	const char *p = v;
	size_t digits = 0;
	if (*p == '-')
		p++;
	if (*p < '0' || *p > '9' || (p[0] == '0' && p[1] >= '0' && p[1] <= '9'))
		return false;
	for (; *p >= '0' && *p <= '9'; p++)
		digits++;
	if (*p == '.') {
		if (*++p < '0' || *p > '9')
			return false;
		for (; *p >= '0' && *p <= '9'; p++)
			digits++;
	}
	return *p == '\0' && digits <= 15;
}

/* The JSON value for key k: typed where the key says so and the text agrees. */
static json_t *
json_log_value(const char *k, const char *v)
{
	if (v == NULL)
		return json_null();
	if (key_in(number_keys, k) && is_plain_number(v))
		return strchr(v, '.') ? json_real(strtod(v, NULL))
		                      : json_integer(strtoll(v, NULL, 10));
	if (key_in(bool_keys, k) && (strcmp(v, "true") == 0 || strcmp(v, "false") == 0))
		return json_boolean(v[0] == 't');
	return json_string(v);
}

void
log_setup(enum log_format fmt, enum log_level min, const char *component)
{
	log_fmt = fmt;
	log_min = min;
	if (component)
		log_component = component;
}

int
log_parse_format(const char *s, enum log_format *out)
{
	if (strcmp(s, "text") == 0)
		*out = LOG_FMT_TEXT;
	else if (strcmp(s, "json") == 0)
		*out = LOG_FMT_JSON;
	else
		return -1;
	return 0;
}

int
log_parse_level(const char *s, enum log_level *out)
{
	for (int i = 0; i < 4; i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

/* Text values are quoted when they contain spaces, quotes or control bytes, so one
 * event stays one line whatever a peer put in it. */
static void
add_text_value(struct buf *b, const char *v)
{
	bool plain = *v != '\0';
	for (const char *p = v; *p; p++)
		if (*p <= ' ' || *p == '"' || *p == '=' || (unsigned char)*p >= 0x7f)
			plain = false;
	if (plain) {
		buf_add_str(b, v);
		return;
	}
	buf_add(b, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
		if (*p == '"' || *p == '\\')
			buf_addf(b, "\\%c", *p);
		else if (*p < ' ' || *p == 0x7f)
			buf_addf(b, "\\x%02x", *p);
		else
			buf_add(b, p, 1);
	}
	buf_add(b, "\"", 1);
}

void
log_msg(enum log_level lvl, const char *msg, ...)
{
	char ts[40];
	struct timespec now;
	struct tm tm;
	struct buf b;
	va_list ap;

	if (lvl < log_min)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + n, sizeof(ts) - n, ".%03ldZ", now.tv_nsec / 1000000);

	buf_init(&b, 64 * 1024);
	va_start(ap, msg);
	if (log_fmt == LOG_FMT_JSON) {
		json_t *o = json_object();
		json_object_set_new(o, "time", json_string(ts));
		json_object_set_new(o, "level", json_string(level_names[lvl]));
		json_object_set_new(o, "component", json_string(log_component));
		json_object_set_new(o, "msg", json_string(msg));
		const char *k;
		while ((k = va_arg(ap, const char *)) != NULL) {
			const char *v = va_arg(ap, const char *);
			json_object_set_new(o, k, json_log_value(k, v));
		}
		char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
		if (s) {
			buf_add_str(&b, s);
			free(s);
		}
		json_decref(o);
	} else {
		buf_addf(&b, "%s %-5s %s: ", ts, level_names[lvl], log_component);
		add_text_value(&b, msg);
		const char *k;
		while ((k = va_arg(ap, const char *)) != NULL) {
			const char *v = va_arg(ap, const char *);
			buf_addf(&b, " %s=", k);
			add_text_value(&b, v ? v : "");
		}
	}
	va_end(ap);
	buf_add(&b, "\n", 1);
	ssize_t w = write(STDERR_FILENO, b.data, b.len);
	(void)w;
	buf_free(&b);
}
