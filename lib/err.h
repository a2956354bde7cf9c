/* Project-wide error codes. Fallible functions return 0, -errno, or one of these
 * (all negative and far from the errno range), and al_strerror() names either kind. */
#ifndef AL_ERR_H
#define AL_ERR_H

enum al_err {
	AL_OK = 0,
	AL_E_INTERNAL = -10000, /* a bug or an impossible state */
	AL_E_INVAL,             /* malformed or out-of-range input */
	AL_E_TOOBIG,            /* input exceeds a hard bound */
	AL_E_PROTO,             /* peer broke the wire protocol */
	AL_E_AUTH,              /* missing or wrong credential */
	AL_E_PERM,              /* credential valid but not for this */
	AL_E_NOTFOUND,          /* no such object */
	AL_E_CONFLICT,          /* state does not allow the operation */
	AL_E_PRECOND,           /* a precondition (version, heartbeat) failed */
	AL_E_IO,                /* storage or device error */
	AL_E_TIMEOUT,           /* deadline passed */
	AL_E_AGAIN,             /* transient; retry later */
	AL_E_UNSUPPORTED,       /* feature missing on this host or build */
	AL_E_CLOSED,            /* peer or object went away */
	AL_E__END
};

const char *al_strerror(int err);

#endif
