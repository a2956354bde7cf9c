/* Aggregate reads for the operator (GET /metrics): how many sessions are in each
 * status and how much work waits per environment. Read-only, one statement each, so
 * a scrape costs two scans and takes no lock a writer waits on for long. */
#ifndef AL_SERVER_STATS_STORE_H
#define AL_SERVER_STATS_STORE_H

#include <stdint.h>

#include "db.h"

/* fn once per status present among sessions not archived. 0 or AL_E_IO. */
int stats_store_sessions_by_status(struct db *db,
                                   void (*fn)(void *arg, const char *status, int64_t n), void *arg);

/* fn once per environment with live work (ordered by id, at most max environments):
 * queued = waiting for a worker (never delivered), leased = delivered and not yet
 * stopped (delivered unacked, starting, active, stopping). *more is set when
 * environments were left out. 0 or AL_E_IO. */
int stats_store_work_by_environment(struct db *db, unsigned max,
                                    void (*fn)(void *arg, const char *environment_id,
                                               int64_t queued, int64_t leased),
                                    void *arg, bool *more);

#endif
