/* MCP Streamable HTTP client (revision 2025-11-25) for the agent loop: initialize and
 * notifications/initialized, MCP-Session-Id and MCP-Protocol-Version, JSON or SSE
 * replies, tools/list with cursors, tools/call, cancellation, bounded sizes and
 * deadlines. Runs on the server's event loop through lib/httpc, or through the tunnel
 * edge for tunnel hostnames. See docs/server/mcp.md. */
#ifndef AL_SERVER_MCP_CLIENT_H
#define AL_SERVER_MCP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct server;
struct loop;
struct httpc;
struct mcp_client;

#define MCP_PROTOCOL_VERSION "2025-11-25"
#define MCP_MAX_RESPONSE (8u << 20) /* one JSON-RPC reply (or SSE event) */
#define MCP_MAX_TOOLS 1000          /* tools/list across all pages */
#define MCP_MAX_PAGES 100

enum mcp_fail {
	MCP_OK = 0,
	MCP_FAIL_CONNECTION, /* connect/TLS/reset, timeout, 5xx or other status, bad reply */
	MCP_FAIL_AUTH,       /* 401 or 403 */
	MCP_FAIL_RPC,        /* the server answered the request with a JSON-RPC error */
};

struct mcp_result {
	enum mcp_fail fail;
	int status;           /* last HTTP status seen, 0 when none */
	const char *message;  /* what went wrong, for events; never holds a credential */
	const json_t *result; /* JSON-RPC result on success (borrowed for the callback);
	                       * for tools/list the merged {"tools":[...]} of all pages */
};

/* Called once per started operation, never from inside mcp_client_* calls and never
 * after mcp_client_cancel or mcp_client_free. */
typedef void mcp_done_fn(void *arg, const struct mcp_result *r);

struct mcp_client_config {
	struct server *srv; /* routes tunnel hostnames through the edge; NULL: direct only */
	struct loop *loop;
	struct httpc *httpc;
	const char *url;
	unsigned timeout_ms;         /* initialize, tools/list pages: each exchange; 0 = 30 s */
	unsigned call_timeout_ms;    /* tools/call; 0 = 120 s */
	unsigned connect_timeout_ms; /* 0 = 10 s */
};

struct mcp_client *mcp_client_new(const struct mcp_client_config *cfg);
/* Cancels the operation in flight (no callback) and ends the MCP session with a
 * best-effort DELETE. Accepts NULL. */
void mcp_client_free(struct mcp_client *c);
/* Token for "Authorization: Bearer"; NULL removes it. Copied; wiped when replaced. */
void mcp_client_set_bearer(struct mcp_client *c, const char *token);
/* The agent identity token for the next operation (docs/server/agent-identity.md): sent as
 * "Authorization: Bearer" when no vault credential holds that header, and always as
 * "X-Agent-Identity". NULL removes it. Copied. */
void mcp_client_set_identity(struct mcp_client *c, const char *token);

/* One operation at a time: AL_E_CONFLICT while one runs, else 0 and done runs later.
 * Both initialize first when there is no MCP session yet, and re-initialize once when
 * the server answers 404 to a request carrying a session id. */
int mcp_client_list_tools(struct mcp_client *c, mcp_done_fn *done, void *arg);
int mcp_client_call_tool(struct mcp_client *c, const char *name, const json_t *arguments,
                         mcp_done_fn *done, void *arg);
/* Stops the operation in flight without a callback; when its request already went
 * out, tells the server with notifications/cancelled (best effort). */
void mcp_client_cancel(struct mcp_client *c, const char *reason);
bool mcp_client_busy(const struct mcp_client *c);

/* Splits an http(s) URL into host (no port, lower-case) and origin-form path+query.
 * 0 or AL_E_INVAL. host needs 256 bytes. *path is heap ("/" when empty). */
int mcp_url_split(const char *url, char *host, size_t hostlen, char **path, bool *https);

#endif
