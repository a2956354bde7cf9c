/* The service manager's readiness protocol (sd_notify(3)) without libsystemd: one
 * datagram of "KEY=VALUE" lines to the AF_UNIX socket named by $NOTIFY_SOCKET, when
 * there is one. systemd's Type=notify waits for READY=1 before it counts a unit as
 * started, and shows STATUS=; STOPPING=1 says a stop (a drain) has begun. */
#ifndef AL_NOTIFY_H
#define AL_NOTIFY_H

/* Sends state ("READY=1\nSTATUS=listening"). 0 when sent or when $NOTIFY_SOCKET is
 * unset or empty (nobody listens: not an error); AL_E_INVAL for a socket name that is
 * neither a path nor an abstract "@name" or does not fit; -errno when sending fails. */
int notify_send(const char *state);

#endif
