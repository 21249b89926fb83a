/*
 * http: the server. libmicrohttpd with an internal thread pool, a static route table
 * {method, pattern, handler, role}, and one handler file per domain. Handlers are glue:
 * they parse the request, call one domain function and render the result; domain code
 * never sees libmicrohttpd.
 */
#ifndef LH_HTTP_H
#define LH_HTTP_H

#include "core/core.h"

/* Opens every module from cfg (storage, catalog, query engine, ingest), listens on
 * cfg->listen_host:listen_port and serves until SIGINT or SIGTERM; then stops accepting,
 * lets in-flight requests finish, closes the modules and returns 0. Startup failures are
 * logged and return 1. */
int lh_serve(lh_config *cfg);

#endif
