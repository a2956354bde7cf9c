/* Placeholder until the worker lands: `airlock worker` reports it is not built. */
#include <stdio.h>

int worker_main(int argc, char **argv);

int
worker_main(int argc, char **argv)
{
	fprintf(stderr, "airlock worker: not available in this build\n");
	return 2;
}
