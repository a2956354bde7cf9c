/* libFuzzer target: the worker monitor's request parser (monitor_request_parse), the first
 * code of the privileged monitor that reads what the network-facing worker sends. Byte 0:
 * how many fds the message arrived with (mod 9; the codec never delivers more than 8);
 * the rest: the message body. A request that parses must hold every invariant the
 * handlers rely on, and nothing may read past the message. */
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "monitor.h"
#include "sandbox_int.h"

static void
check_str(const struct sandbox_msg *m, const char *s)
{
	/* Borrowed from the message: inside it, NUL-terminated there. */
	if (s == NULL || s < m->b.data || s >= m->b.data + m->b.len ||
	    memchr(s, '\0', (size_t)(m->b.data + m->b.len - s)) == NULL)
		__builtin_trap();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int devnull = -1;
	struct sandbox_msg m;
	struct monitor_request rq;
	size_t i, nfds, bits = 0;

	if (size < 1 || size - 1 > SANDBOX_MSG_MAX)
		return 0;
	if (devnull < 0 && (devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	sandbox_msg_init(&m);
	if (size > 1 && buf_add(&m.b, data + 1, size - 1) != 0)
		goto out;
	nfds = data[0] % (SANDBOX_MSG_MAX_FDS + 1);
	for (i = 0; i < nfds; i++)
		m.fds[i] = devnull;
	m.nfds = nfds;
	if (monitor_request_parse(&m, &rq) != 0)
		goto out;
	switch (rq.type) {
	case 101: /* CREATE */
		check_str(&m, rq.session_id);
		check_str(&m, rq.workspace);
		if (nfds != 0)
			__builtin_trap();
		break;
	case 103: /* SPAWN */
		if (rq.fdmask >= (1u << SANDBOX_MAX_CHILD_FDS) || rq.argv == NULL ||
		    rq.argv[0] == NULL || rq.env == NULL)
			__builtin_trap();
		check_str(&m, rq.path);
		check_str(&m, rq.cwd);
		if (rq.path[0] != '\0' && !sandbox_path_valid(rq.path))
			__builtin_trap();
		for (i = 0; rq.argv[i] != NULL; i++)
			check_str(&m, rq.argv[i]);
		for (i = 0; rq.env[i] != NULL; i++)
			check_str(&m, rq.env[i]);
		for (i = 0; i < SANDBOX_MAX_CHILD_FDS; i++) {
			bool set = rq.fdmask & (1u << i);
			if (set != (rq.fds[i] >= 0))
				__builtin_trap();
			bits += set;
		}
		if (bits != nfds)
			__builtin_trap();
		break;
	case 105: /* KILL */
		if (rq.sig < 0 || rq.sig >= NSIG || nfds != 0)
			__builtin_trap();
		break;
	case 106: /* DESTROY */
	case 109: /* EGRESS: the sandbox id only, like DESTROY */
		if (nfds != 0)
			__builtin_trap();
		break;
	case 108: /* REMOVE */
		check_str(&m, rq.session_id);
		if (nfds != 0)
			__builtin_trap();
		break;
	default:
		__builtin_trap(); /* only the table's types parse */
	}
	if (!sandbox_msg_done(&m))
		__builtin_trap(); /* trailing bytes are malformed */
out:
	m.nfds = 0; /* the fds are ours, not the message's, to close */
	sandbox_msg_reset(&m);
	buf_free(&m.b);
	return 0;
}
