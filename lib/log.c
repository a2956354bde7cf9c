/* Line-oriented logging to stderr; one write(2) per event so lines from several
 * processes sharing stderr never interleave mid-line. */
#include <stdarg.h>
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
			json_object_set_new(o, k, v ? json_string(v) : json_null());
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
