/**
 * sipsd - recording of dialogs (see sipsd_rec.h). All logic is in libsipsd.
 *
 * SPDX-License-Identifier: MIT OR Apache-2.0
 */

#include "core/dprint.h"
#include "core/rpc.h"
#include "core/parser/msg_parser.h"

#include "sipsd.h"
#include "sipsd_mod.h"
#include "sipsd_rec.h"
#include "sipsd_dmq.h"

int ki_sd_record_start(sip_msg_t *msg)
{
	sipsd_msg_t sm;
	sd_result r;

	if(sipsd_msg_build(msg, &sm, SIPSD_MSG_BODY) < 0)
		return SIPSD_RC_ERROR;
	r = sd_record_start(_sipsd_ctx, &sm.m);
	if(r != SD_OK)
		sipsd_log_failure("record start", &sm.call_id, r);
	sipsd_msg_free(&sm);
	return sipsd_rc(r);
}

int w_sd_record_start(sip_msg_t *msg, char *p1, char *p2)
{
	return ki_sd_record_start(msg);
}

int ki_sd_record_stop(sip_msg_t *msg)
{
	sipsd_msg_t sm;
	sd_result r;

	if(sipsd_msg_build(msg, &sm, SIPSD_MSG_IDS) < 0)
		return SIPSD_RC_ERROR;
	r = sd_record_stop(_sipsd_ctx, &sm.m);
	sipsd_dmq_replicate(); /* the stopped recording, to the other nodes */
	if(r != SD_OK && r != SD_NOT_FOR_ME)
		sipsd_log_failure("record stop", &sm.call_id, r);
	sipsd_msg_free(&sm);
	return sipsd_rc(r);
}

int w_sd_record_stop(sip_msg_t *msg, char *p1, char *p2)
{
	return ki_sd_record_stop(msg);
}

const char *sipsd_rpc_recordings_doc[2] = {
		"The recorded dialogs, active and finished (no keys): call_id, tag, "
		"dialog, state, streams, started, stopped",
		0};

static sd_result sipsd_rec_rpc_get(
		const void *snap, size_t i, uint32_t field, sd_str *out)
{
	return sd_recordings_get(snap, i, field, out);
}

void sipsd_rpc_recordings(rpc_t *rpc, void *ctx)
{
	sd_recordings *p = NULL;
	sd_result r;

	if(_sipsd_ctx == NULL) {
		rpc->fault(ctx, 500, "sipsd not initialized");
		return;
	}
	r = sd_recordings_snapshot(_sipsd_ctx, &p);
	sipsd_rpc_rows(rpc, ctx, r, p, sd_recordings_count(p),
			sd_recording_field_count(), sd_recording_field_name, sipsd_rec_rpc_get);
	sd_recordings_free(p);
}
