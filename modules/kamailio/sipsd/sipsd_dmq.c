/**
 * sipsd - cluster replication of the dialog keys, pinholes and recordings over Kamailio's
 * DMQ (see sipsd_dmq.h)
 *
 * Sending: dmq's send_message/bcast_message hand the KDMQ request to tm (t_request) in the
 * calling process; over UDP that is one sendto() per node and tm's timers do the rest, so a
 * SIP worker never waits for another node. Receiving: dmq_handle_message() in the routing
 * script queues the KDMQ request for a DMQ worker process, which calls sipsd_dmq_handle().
 *
 * Nothing here looks inside a message: bodies are the library's sealed base64 text.
 *
 * SPDX-License-Identifier: MIT OR Apache-2.0
 */

#include <string.h>
#include <time.h>

#include "core/dprint.h"
#include "core/mem/mem.h"
#include "core/parser/msg_parser.h"
#include "core/parser/parse_content.h"
#include "core/parser/parse_from.h"
#include "modules/dmq/bind_dmq.h"

#include "sipsd_dmq.h"

int sipsd_dmq_enable = 0;
int sipsd_dmq_init_sync = 1;

static sd_ctx *_sipsd_dmq_ctx = NULL;
static dmq_api_t _sipsd_dmqb;
static dmq_peer_t *_sipsd_dmq_peer = NULL;
static str _sipsd_dmq_ct = STR_NULL;

static str _sipsd_dmq_200 = str_init("OK");
static str _sipsd_dmq_400 = str_init("Bad replication message");
static str _sipsd_dmq_403 = str_init("Refused");
static str _sipsd_dmq_500 = str_init("Server Internal Error");

static int sipsd_dmq_handle(
		struct sip_msg *msg, peer_reponse_t *resp, dmq_node_t *node);
static int sipsd_dmq_request_sync(void);
static int sipsd_dmq_resp_f(
		struct sip_msg *msg, int code, dmq_node_t *node, void *param);

static dmq_resp_cback_t _sipsd_dmq_resp_cb = {&sipsd_dmq_resp_f, 0};

/* Refusals come from the network: at most SIPSD_DMQ_LOG_BURST lines per second per process
 * (the statistics cluster_bad_seal and cluster_replays count them all). */
#define SIPSD_DMQ_LOG_BURST 10

static int sipsd_dmq_log_ok(void)
{
	static time_t window = 0;
	static unsigned int logged = 0;
	time_t now = time(NULL);

	if(now != window) {
		window = now;
		logged = 0;
	}
	return logged++ < SIPSD_DMQ_LOG_BURST;
}

int sipsd_dmq_init(sd_ctx *ctx)
{
	dmq_peer_t peer;

	if(!sipsd_dmq_enable) {
		if(sd_cluster_enabled(ctx)) {
			/* keys would be noted for replication and never sent */
			LM_ERR("cluster_key is set but enable_dmq is 0: nothing would carry the "
				   "replication (set enable_dmq, or drop cluster_key)\n");
			return -1;
		}
		return 0;
	}
	if(!sd_cluster_enabled(ctx)) {
		LM_ERR("enable_dmq needs a cluster_key\n");
		return -1;
	}
	if(dmq_load_api(&_sipsd_dmqb) != 0) {
		LM_ERR("enable_dmq needs the dmq module, loaded before sipsd\n");
		return -1;
	}
	_sipsd_dmq_ctx = ctx;
	_sipsd_dmq_ct.s = (char *)sd_cluster_content_type();
	_sipsd_dmq_ct.len = strlen(_sipsd_dmq_ct.s);

	memset(&peer, 0, sizeof(peer));
	peer.callback = sipsd_dmq_handle;
	peer.init_callback = sipsd_dmq_init_sync ? sipsd_dmq_request_sync : NULL;
	peer.peer_id.s = "sipsd";
	peer.peer_id.len = 5;
	peer.description.s = "sipsd dialog keys";
	peer.description.len = 17;
	_sipsd_dmq_peer = _sipsd_dmqb.register_dmq_peer(&peer);
	if(_sipsd_dmq_peer == NULL) {
		LM_ERR("cannot register the sipsd DMQ peer\n");
		return -1;
	}
	LM_INFO("cluster replication over DMQ (peer sipsd, sync at start: %s)\n",
			sipsd_dmq_init_sync ? "yes" : "no");
	return 0;
}

/* one message to one node, or to every active node when node is NULL */
static void sipsd_dmq_send(uint8_t *buf, size_t len, dmq_node_t *node)
{
	str body;

	body.s = (char *)buf;
	body.len = (int)len;
	if(node != NULL)
		_sipsd_dmqb.send_message(_sipsd_dmq_peer, &body, node,
				&_sipsd_dmq_resp_cb, 1, &_sipsd_dmq_ct);
	else
		_sipsd_dmqb.bcast_message(_sipsd_dmq_peer, &body, NULL,
				&_sipsd_dmq_resp_cb, 1, &_sipsd_dmq_ct);
}

void sipsd_dmq_replicate(void)
{
	uint8_t buf[SD_CLUSTER_MSG_MAX];
	size_t len = 0;
	sd_result r;

	if(_sipsd_dmq_peer == NULL)
		return;
	for(;;) {
		r = sd_cluster_take(_sipsd_dmq_ctx, buf, sizeof(buf), &len);
		if(r != SD_OK) {
			LM_ERR("cannot seal a replication message: %s (%u): %s\n",
					sd_strerror(r), (unsigned)r, sd_last_error());
			return;
		}
		if(len == 0)
			return;
		sipsd_dmq_send(buf, len, NULL);
	}
}

/* dmq init callback: the node started, or rejoined after losing every peer */
static int sipsd_dmq_request_sync(void)
{
	uint8_t buf[SD_CLUSTER_MSG_MAX];
	size_t len = 0;
	sd_result r;

	r = sd_cluster_sync_request(_sipsd_dmq_ctx, buf, sizeof(buf), &len);
	if(r != SD_OK) {
		LM_ERR("cannot seal the sync request: %s (%u)\n", sd_strerror(r),
				(unsigned)r);
		return -1;
	}
	LM_INFO("cluster: asking the other nodes for their dialog keys\n");
	sipsd_dmq_send(buf, len, NULL);
	return 0;
}

/* a peer asked for every live key: send them to that node only */
static void sipsd_dmq_send_sync(dmq_node_t *node, const char *peer)
{
	uint8_t buf[SD_CLUSTER_MSG_MAX];
	size_t len = 0, cursor = 0;
	uint32_t more = 1;
	unsigned int parts = 0;
	sd_result r;

	while(more) {
		r = sd_cluster_sync_next(
				_sipsd_dmq_ctx, &cursor, &more, buf, sizeof(buf), &len);
		if(r != SD_OK) {
			LM_ERR("cannot seal a sync part for %s: %s (%u)\n", peer,
					sd_strerror(r), (unsigned)r);
			return;
		}
		sipsd_dmq_send(buf, len, node);
		parts++;
	}
	LM_INFO("cluster: sync sent to %s (%u messages)\n", peer, parts);
}

static const char *sipsd_dmq_kind(sd_cluster_kind k)
{
	switch(k) {
		case SD_CLUSTER_UPDATE:
			return "update";
		case SD_CLUSTER_SYNC_REQUEST:
			return "sync request";
		case SD_CLUSTER_SYNC_DATA:
			return "sync data";
		case SD_CLUSTER_SYNC_DONE:
			return "sync done";
	}
	return "?";
}

/* DMQ peer callback, in a DMQ worker process */
static int sipsd_dmq_handle(
		struct sip_msg *msg, peer_reponse_t *resp, dmq_node_t *node)
{
	sd_cluster_rx rx;
	str body = STR_NULL, from = STR_NULL;
	sd_result r;

	if(msg->content_length != NULL)
		body.len = get_content_length(msg);
	body.s = get_body(msg);
	if(body.s == NULL || body.len <= 0) {
		resp->resp_code = 400;
		resp->reason = _sipsd_dmq_400;
		return 0;
	}
	if(node != NULL)
		from = node->orig_uri;
	else if(parse_from_header(msg) == 0)
		from = get_from(msg)->uri;

	r = sd_cluster_receive(_sipsd_dmq_ctx,
			(sd_str){(const uint8_t *)body.s, (size_t)body.len},
			(sd_str){(const uint8_t *)from.s, (size_t)(from.s ? from.len : 0)},
			&rx);
	switch(r) {
		case SD_OK:
			break;
		case SD_ERR_CLUSTER_SEAL:
		case SD_ERR_CLUSTER_REPLAY:
		case SD_ERR_CLUSTER_MESSAGE:
			if(sipsd_dmq_log_ok())
				LM_WARN("cluster: message from %.*s refused: %s (%u): %s\n",
						from.len, from.s ? from.s : "", sd_strerror(r),
						(unsigned)r, sd_last_error());
			resp->resp_code = (r == SD_ERR_CLUSTER_MESSAGE) ? 400 : 403;
			resp->reason = (r == SD_ERR_CLUSTER_MESSAGE) ? _sipsd_dmq_400
														 : _sipsd_dmq_403;
			return 0;
		default:
			LM_ERR("cluster: message from %.*s: %s (%u): %s\n", from.len,
					from.s ? from.s : "", sd_strerror(r), (unsigned)r,
					sd_last_error());
			resp->resp_code = 500;
			resp->reason = _sipsd_dmq_500;
			return 0;
	}

	/* one INFO line per sync and per key not applied; updates are the steady state */
	switch(rx.kind) {
		case SD_CLUSTER_SYNC_REQUEST:
			LM_INFO("cluster: sync request from %s\n", rx.node);
			break;
		case SD_CLUSTER_SYNC_DONE:
			LM_INFO("cluster: sync done from %s: %u key(s) stored\n", rx.node,
					rx.sync_stored);
			break;
		default:
			if(rx.stale > 0)
				LM_INFO("cluster: %s from %s: %u key(s) not applied (an older "
						"generation, or another key of the same one)\n",
						sipsd_dmq_kind(rx.kind), rx.node, rx.stale);
			if(rx.media_stale > 0)
				LM_INFO("cluster: %s from %s: %u pinhole state(s) not applied (not "
						"newer, or no such dialog here)\n",
						sipsd_dmq_kind(rx.kind), rx.node, rx.media_stale);
			LM_DBG("cluster: %s from %s: pinhole states %u stored, %u closed\n",
					sipsd_dmq_kind(rx.kind), rx.node, rx.media_stored,
					rx.media_closed);
			LM_DBG("cluster: %s from %s: %u key(s) stored, %u refreshed, %u stale, "
				   "%u expired, %u dialog(s) ended\n",
					sipsd_dmq_kind(rx.kind), rx.node, rx.stored, rx.refreshed,
					rx.stale, rx.expired, rx.ended);
	}

	resp->resp_code = 200;
	resp->reason = _sipsd_dmq_200;
	if(rx.kind == SD_CLUSTER_SYNC_REQUEST) {
		if(node != NULL)
			sipsd_dmq_send_sync(node, rx.node);
		else
			LM_WARN("cluster: sync request from %s, not a known DMQ node: "
					"not answered\n",
					rx.node);
	}
	return 0;
}

/* the answer of a node to one of our messages (tm callback) */
static int sipsd_dmq_resp_f(
		struct sip_msg *msg, int code, dmq_node_t *node, void *param)
{
	if(code >= 300 && sipsd_dmq_log_ok())
		LM_WARN("cluster: node %.*s answered %d\n",
				node ? node->orig_uri.len : 0, node ? node->orig_uri.s : "",
				code);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* RPC sipsd.cluster                                                      */

const char *sipsd_rpc_cluster_doc[2] = {
		"This node and the cluster peers it heard from: replicated keys, last sync",
		0};

void sipsd_rpc_cluster(rpc_t *rpc, void *c)
{
	sd_cluster_self_info self;
	sd_cluster_peer_info peer;
	unsigned long now_ms = (unsigned long)time(NULL) * 1000UL;
	sd_result r;
	void *h;
	size_t i;

	if(_sipsd_dmq_ctx == NULL) {
		rpc->fault(c, 500, "cluster replication over DMQ is not enabled");
		return;
	}
	r = sd_cluster_info(_sipsd_dmq_ctx, &self);
	if(r != SD_OK) {
		rpc->fault(c, 500, "%s", sd_strerror(r));
		return;
	}
	if(rpc->add(c, "{", &h) < 0
			|| rpc->struct_add(h, "sjjjd", "node", self.node, "started",
					   (unsigned long)(self.started_ms / 1000), "sync_requested",
					   (unsigned long)(self.sync_requested_ms / 1000),
					   "sync_served", (unsigned long)(self.sync_served_ms / 1000),
					   "peers", (int)self.peers)
					   < 0) {
		rpc->fault(c, 500, "cannot fill the reply");
		return;
	}
	for(i = 0; i < self.peers; i++) {
		if(sd_cluster_peer(_sipsd_dmq_ctx, i, &peer) != SD_OK)
			break; /* the list changed meanwhile */
		if(rpc->add(c, "{", &h) < 0
				|| rpc->struct_add(h, "ssjjjjjj", "peer", peer.node, "addr",
						   peer.addr, "last_seen",
						   (unsigned long)(peer.last_seen_ms / 1000), "age_ms",
						   (unsigned long)(now_ms > peer.last_seen_ms
												   ? now_ms - peer.last_seen_ms
												   : 0),
						   "messages", (unsigned long)peer.messages, "keys",
						   (unsigned long)peer.keys, "ends", (unsigned long)peer.ends,
						   "last_sync", (unsigned long)(peer.last_sync_ms / 1000))
						   < 0) {
			rpc->fault(c, 500, "cannot fill the reply");
			return;
		}
	}
}
