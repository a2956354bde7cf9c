/* libpq, loaded on first use (pq_dl.c says why): db_pg.c calls libpq's functions by their
 * own names and gets these trampolines. */
#ifndef AL_SERVER_PQ_DL_H
#define AL_SERVER_PQ_DL_H

/* Loads libpq.so.5 once: 0, or AL_E_IO with pq_dl_error() saying what is missing. */
int pq_dl_load(void);
/* "" once loaded, else why not (an apt-get hint included). */
const char *pq_dl_error(void);

#endif
