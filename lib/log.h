/* One event per line to stderr, as text or JSON. Never log secrets: callers pass
 * identifiers, not credentials. */
#ifndef AL_LOG_H
#define AL_LOG_H

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR };
enum log_format { LOG_FMT_TEXT, LOG_FMT_JSON };

void log_setup(enum log_format fmt, enum log_level min, const char *component);
int log_parse_format(const char *s, enum log_format *out); /* "text" | "json" */
int log_parse_level(const char *s, enum log_level *out);   /* debug|info|warn|error */

/* Message plus optional key=value pairs, given as alternating const char * key, value,
 * ended by NULL: log_info("work acked", "work_id", id, NULL). */
void log_msg(enum log_level lvl, const char *msg, ...) __attribute__((sentinel));

#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__, (char *)NULL)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__, (char *)NULL)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__, (char *)NULL)
#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__, (char *)NULL)

#endif
