/* Every module's route table, in match order. A module adds its table here and its
 * sources to meson.build; nothing else needs to know it exists. */
#ifndef AL_SERVER_ROUTES_H
#define AL_SERVER_ROUTES_H

#include "api.h"

extern const struct api_route keys_routes[];
extern const struct api_route events_routes[];
extern const struct api_route work_routes[];
extern const struct api_route agents_routes[];
extern const struct api_route environments_routes[];
extern const struct api_route sessions_routes[];
extern const struct api_route tunnel_routes[];
extern const struct api_route vaults_routes[];
extern const struct api_route wellknown_routes[];
extern const struct api_route audit_routes[];
extern const struct api_route memory_stores_routes[];
extern const struct api_route metrics_routes[];
extern const struct api_route files_routes[];
extern const struct api_route session_resources_routes[];
extern const struct api_route skills_routes[];

#define ROUTE_TABLES                                                                               \
	keys_routes, events_routes, work_routes, agents_routes, environments_routes,               \
	    sessions_routes, tunnel_routes, vaults_routes, wellknown_routes, audit_routes,         \
	    memory_stores_routes, metrics_routes, files_routes, session_resources_routes,          \
	    skills_routes

#define CREDS_API PRINCIPAL_API_KEY
#define CREDS_ANY (PRINCIPAL_API_KEY | PRINCIPAL_ENV_KEY | PRINCIPAL_SESSION_TOKEN)

#endif
