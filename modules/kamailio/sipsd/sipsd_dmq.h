/**
 * sipsd - cluster replication of the dialog keys over Kamailio's DMQ
 *
 * The library seals, opens and applies the replication messages (sd_cluster_* in sipsd.h);
 * sipsd_dmq.c only carries them between the nodes, as htable's ht_dmq.c does for its
 * tables: a DMQ peer "sipsd", a broadcast after every key change, a sync request when the
 * node starts or rejoins, the answer to a peer's sync request.
 *
 * SPDX-License-Identifier: MIT OR Apache-2.0
 */

#ifndef SIPSD_DMQ_H
#define SIPSD_DMQ_H

#include "core/rpc.h"

#include "sipsd.h"

/* modparam enable_dmq: replicate over DMQ (needs cluster_key and the dmq module) */
extern int sipsd_dmq_enable;
/* modparam dmq_init_sync: ask the other nodes for their keys at start (default 1) */
extern int sipsd_dmq_init_sync;

/* mod_init, after the context exists: bind the DMQ API and register the peer;
 * 0 when replication is off or ready, -1 on error */
int sipsd_dmq_init(sd_ctx *ctx);

/* after any library call that may have changed a dialog key, in the same process:
 * broadcasts what the library has to send (nothing when replication is off) */
void sipsd_dmq_replicate(void);

/* RPC sipsd.cluster */
void sipsd_rpc_cluster(rpc_t *rpc, void *c);
extern const char *sipsd_rpc_cluster_doc[2];

#endif /* SIPSD_DMQ_H */
