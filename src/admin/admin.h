/* Offline operator verbs that need no running server and no database: they read a file
 * and say what it means. `airlock policy …` and `airlock audit …`. */
#ifndef AL_ADMIN_H
#define AL_ADMIN_H

int policy_main(int argc, char **argv); /* policy_cli.c */
int audit_main(int argc, char **argv);  /* audit_cli.c */

#endif
