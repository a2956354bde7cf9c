/* Opens N idle SSE streams to one session of a running airlock server and holds them,
 * then prints how many are open. The bench script reads the server's RSS meanwhile.
 * usage: sse_idle HOST PORT SESSION_ID API_KEY N HOLD_SECONDS */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int
main(int argc, char **argv)
{
	if (argc != 7) {
		fprintf(stderr, "usage: sse_idle HOST PORT SESSION_ID API_KEY N HOLD_SECONDS\n");
		return 2;
	}
	const char *host = argv[1], *sid = argv[3], *key = argv[4];
	int port = (int)strtol(argv[2], NULL, 10), n = (int)strtol(argv[5], NULL, 10);
	int hold = (int)strtol(argv[6], NULL, 10);
	struct rlimit rl = {.rlim_cur = (rlim_t)n + 64, .rlim_max = (rlim_t)n + 64};
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
		perror("setrlimit");
		return 1;
	}
	char req[1024];
	int rl_len = snprintf(req, sizeof(req),
	                      "GET /v1/sessions/%s/events/stream HTTP/1.1\r\nHost: %s\r\n"
	                      "x-api-key: %s\r\naccept: text/event-stream\r\n\r\n",
	                      sid, host, key);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	inet_pton(AF_INET, host, &a.sin_addr);
	int *fds = calloc((size_t)n, sizeof(int));
	int open_ok = 0;
	for (int i = 0; i < n; i++) {
		fds[i] = socket(AF_INET, SOCK_STREAM, 0);
		if (fds[i] < 0 || connect(fds[i], (struct sockaddr *)&a, sizeof(a)) != 0 ||
		    write(fds[i], req, (size_t)rl_len) != rl_len) {
			fprintf(stderr, "connection %d failed: %s\n", i, strerror(errno));
			break;
		}
		/* read the response head so we know the server accepted the stream */
		char buf[1024];
		ssize_t r = read(fds[i], buf, sizeof(buf) - 1);
		if (r <= 0)
			break;
		buf[r] = '\0';
		if (strstr(buf, " 200 ") == NULL) {
			fprintf(stderr, "stream %d refused: %.80s\n", i, buf);
			break;
		}
		open_ok++;
	}
	printf("open_streams=%d\n", open_ok);
	fflush(stdout);
	sleep((unsigned)hold);
	for (int i = 0; i < open_ok; i++)
		close(fds[i]);
	free(fds);
	return open_ok == n ? 0 : 1;
}
