/* The cost of buf_init_secret (issue 14: wipe what held a secret) against a plain buf in
 * the same run, alternating: an answer built in 4 KiB appends and written out in 64 KiB
 * consumes, as lib/http.c's output buffer and httpc's body buffer do. Sizes: 4 KiB (an
 * egress_secrets answer, a session), 1 MiB and 16 MiB (files). Prints medians and the
 * ratio; no pass/fail (bench/run.sh). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double
one(size_t total, int secret)
{
	static char chunk[4096];
	struct buf b;
	double t0 = now_s();
	if (secret)
		buf_init_secret(&b, total + 1);
	else
		buf_init(&b, total + 1);
	for (size_t n = 0; n < total; n += sizeof(chunk))
		if (buf_add(&b, chunk, sizeof(chunk)) != 0)
			abort();
	while (b.len > 0)
		buf_consume(&b, b.len < 65536 ? b.len : 65536);
	buf_free(&b);
	return now_s() - t0;
}

int
main(int argc, char **argv)
{
	uint64_t v = 41;
	if (argc > 1 && (parse_uint_cstr(argv[1], 10000, &v) != 0 || v == 0)) {
		fprintf(stderr, "usage: buf_wipe_bench [rounds, 1..10000]\n");
		return 2;
	}
	int rounds = (int)v;
	static const size_t sizes[] = {4096, 1u << 20, 16u << 20};
	double *p = calloc((size_t)rounds, sizeof(double)),
	       *s = calloc((size_t)rounds, sizeof(double));
	if (p == NULL || s == NULL)
		return 1;
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		int reps = sizes[k] < 65536 ? 1000 : 1;
		for (int r = 0; r < rounds; r++) {
			double tp = 0, ts = 0;
			for (int i = 0; i < reps; i++) {
				tp += one(sizes[k], 0);
				ts += one(sizes[k], 1);
			}
			p[r] = tp / reps;
			s[r] = ts / reps;
		}
		qsort(p, (size_t)rounds, sizeof(double), cmp);
		qsort(s, (size_t)rounds, sizeof(double), cmp);
		printf("buf %8zu bytes: plain p50 %.1f us, secret p50 %.1f us (%.2fx)\n", sizes[k],
		       p[rounds / 2] * 1e6, s[rounds / 2] * 1e6, s[rounds / 2] / p[rounds / 2]);
	}
	free(p);
	free(s);
	return 0;
}
