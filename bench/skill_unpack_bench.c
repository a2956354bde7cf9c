/* Issue 15's skill target for `airlock worker`: unpacking a skill bundle in-process
 * (skill_unpack) against `tar -xf` of the same archive, median of N runs each, in this
 * run. The download is the server's part and measured by bench/files_bench.mjs.
 *   skill_unpack_bench ARCHIVE.tar [N]   (bench/run.sh makes a 5 MiB one) */
#include <fcntl.h>
#include <stdint.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "skill_unpack.h"

extern char **environ;

static double
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: skill_unpack_bench ARCHIVE.tar [N]\n");
		return 2;
	}
	uint64_t nn = 11;
	if (argc > 2 && (parse_uint_cstr(argv[2], 1000, &nn) != 0 || nn == 0))
		nn = 11;
	int n = (int)nn;
	int fd = open(argv[1], O_RDONLY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0)
		return 1;
	char *tar = malloc((size_t)st.st_size);
	if (read(fd, tar, (size_t)st.st_size) != st.st_size)
		return 1;
	close(fd);
	char root[] = "/tmp/skill-unpack-bench-XXXXXX";
	if (mkdtemp(root) == NULL)
		return 1;
	double *ours = calloc((size_t)n, sizeof(double)),
	       *theirs = calloc((size_t)n, sizeof(double));
	for (int i = 0; i < n; i++) {
		char dest[128];
		snprintf(dest, sizeof(dest), "%s/ours%d", root, i);
		const char *why = NULL;
		double t0 = now_ms();
		if (skill_unpack(tar, (size_t)st.st_size, dest, &why) != 0) {
			fprintf(stderr, "skill_unpack: %s\n", why ? why : "?");
			return 1;
		}
		ours[i] = now_ms() - t0;
		snprintf(dest, sizeof(dest), "%s/tar%d", root, i);
		mkdir(dest, 0755);
		char *args[] = {"tar", "-xf", argv[1], "-C", dest, NULL};
		pid_t pid;
		int status;
		t0 = now_ms();
		if (posix_spawnp(&pid, "tar", NULL, NULL, args, environ) != 0)
			return 1;
		waitpid(pid, &status, 0);
		theirs[i] = now_ms() - t0;
	}
	qsort(ours, (size_t)n, sizeof(double), cmp);
	qsort(theirs, (size_t)n, sizeof(double), cmp);
	double a = ours[n / 2], b = theirs[n / 2];
	printf("skill unpack: %.1f MiB, median of %d: skill_unpack %.2f ms, tar -xf %.2f ms: "
	       "%.2fx (target <= 1.5x: %s)\n",
	       (double)st.st_size / (1 << 20), n, a, b, a / b, a / b <= 1.5 ? "met" : "missed");
	skill_remove_tree(root);
	return 0;
}
