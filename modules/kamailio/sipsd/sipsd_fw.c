/**
 * sipsd - firewall pinholes for the media of the disclosed SDP.
 *
 * With modparam pinhole_agent the library asks the firewall agent (sipsd-fw, PCP with
 * sipsd's MAC) for pinholes of exactly the negotiated media: sd_pinhole_open() after
 * sd_decrypt() on an offer or answer, sd_pinhole_close() at dialog end (also done by the
 * dialog callbacks when the dialog module is loaded). Each exchange waits at most
 * pinhole_timeout; pinhole_on_failure=reject answers a request 503 when the agent did
 * not confirm. One timer process renews the lifetimes (sd_pinhole_refresh). All logic is
 * in libsipsd; this file only adapts Kamailio's API.
 *
 * SPDX-License-Identifier: MIT OR Apache-2.0
 */

#include <string.h>
#include <strings.h>

#include "core/dprint.h"
#include "core/rpc.h"
#include "core/timer_proc.h"
#include "core/sr_module.h"
#include "core/route.h"
#include "core/parser/msg_parser.h"
#include "modules/tm/tm_load.h"

#include "sipsd.h"
#include "sipsd_mod.h"
#include "sipsd_fw.h"
#include "sipsd_dmq.h"

str sipsd_pinhole_on_failure = str_init("forward");
static int _sipsd_fw_reject = 0;
static int _sipsd_fw_timer = 0;
/* tm, for the final status of a failed INVITE in failure_route (a stop reason) */
static struct tm_binds _sipsd_fw_tmb;
static int _sipsd_fw_tm_loaded = 0;

int sipsd_fw_init(void)
{
	if(sipsd_pinhole_on_failure.len == 6
			&& strncasecmp(sipsd_pinhole_on_failure.s, "reject", 6) == 0) {
		if(!sipsd_sl_loaded) {
			LM_ERR("pinhole_on_failure=reject needs the sl module loaded before "
				   "sipsd\n");
			return -1;
		}
		_sipsd_fw_reject = 1;
	} else if(!(sipsd_pinhole_on_failure.len == 7
					  && strncasecmp(sipsd_pinhole_on_failure.s, "forward", 7)
								 == 0)) {
		LM_ERR("pinhole_on_failure: '%.*s' is not forward or reject\n",
				sipsd_pinhole_on_failure.len, sipsd_pinhole_on_failure.s);
		return -1;
	}
	if(!sd_pinhole_enabled(_sipsd_ctx))
		return 0;
	if(register_basic_timers(1) < 0) {
		LM_ERR("cannot reserve the pinhole refresh timer\n");
		return -1;
	}
	_sipsd_fw_timer = 1;
	if(find_export("load_tm", NO_SCRIPT, 0) != NULL
			&& load_tm_api(&_sipsd_fw_tmb) == 0)
		_sipsd_fw_tm_loaded = 1;
	LM_INFO("firewall pinholes on (failure policy: %.*s)\n",
			sipsd_pinhole_on_failure.len, sipsd_pinhole_on_failure.s);
	return 0;
}

static void sipsd_fw_refresh(unsigned int ticks, void *param)
{
	sd_result r = sd_pinhole_refresh(_sipsd_ctx);
	/* renewed (or taken over) pinholes, to the other nodes of a cluster */
	sipsd_dmq_replicate();
	if(r != SD_OK)
		LM_WARN("pinhole refresh: %s (%u)\n", sd_strerror(r), (unsigned)r);
}

int sipsd_fw_child_init(int rank)
{
	if(rank != PROC_MAIN || !_sipsd_fw_timer)
		return 0;
	if(fork_basic_timer(PROC_TIMER, "SIPSD PINHOLE REFRESH", 1,
			   sipsd_fw_refresh, NULL, 1)
			< 0) {
		LM_ERR("cannot start the pinhole refresh timer\n");
		return -1;
	}
	return 0;
}

void sipsd_fw_dialog_end(
		str *call_id, str *caller_tag, str *method, unsigned int status)
{
	sd_result r;

	if(_sipsd_ctx == NULL || !sd_pinhole_enabled(_sipsd_ctx))
		return;
	r = sd_pinhole_close_dialog(_sipsd_ctx, sipsd_sdstr(call_id),
			sipsd_sdstr(caller_tag), sipsd_sdstr(method), status);
	sipsd_dmq_replicate();
	if(r != SD_OK)
		LM_WARN("pinhole close at dialog end (call %.*s): %s (%u)\n",
				call_id->len, call_id->s, sd_strerror(r), (unsigned)r);
}

/* the agent did not confirm: pinhole_on_failure=reject answers a request 503 */
static void sipsd_fw_fail(sip_msg_t *msg)
{
	str reason = str_init("Firewall Not Ready");

	if(!_sipsd_fw_reject || msg->first_line.type != SIP_REQUEST)
		return;
	if(msg->REQ_METHOD & (METHOD_ACK | METHOD_CANCEL))
		return;
	if(sipsd_slb.freply(msg, 503, &reason) < 0)
		LM_ERR("cannot send 503 reply\n");
}

int ki_sd_pinhole_open(sip_msg_t *msg)
{
	sipsd_msg_t sm;
	sipsd_last_t *l;
	sd_result r;
	uint32_t n = 0;

	l = sipsd_last_get(msg);
	if(sipsd_msg_build(msg, &sm, SIPSD_MSG_BODY) < 0)
		return SIPSD_RC_ERROR;
	/* only what sd_decrypt() disclosed for this message: a refused key has no plain */
	r = sd_pinhole_open(_sipsd_ctx, &sm.m, (l != NULL) ? l->plain : NULL, &n);
	sipsd_dmq_replicate(); /* the dialog's pinholes, to the other nodes */
	l = sipsd_last_for(msg);
	l->pinhole_code = r;
	l->pinholes = n;
	l->has_pinholes = 1;
	if(r == SD_OK) {
		LM_DBG("pinholes: %u confirmed (call %.*s)\n", (unsigned)n,
				sm.call_id.len, sm.call_id.s);
	} else if(r != SD_NOT_FOR_ME) {
		sipsd_log_failure("pinhole open", &sm.call_id, r);
		sipsd_fw_fail(msg);
	}
	sipsd_msg_free(&sm);
	return sipsd_rc(r);
}

int w_sd_pinhole_open(sip_msg_t *msg, char *p1, char *p2)
{
	return ki_sd_pinhole_open(msg);
}

/* In failure_route the message is the request: the status of the final reply tm picked
 * (0 elsewhere, or when there is none), so that the library names the failure */
static unsigned int sipsd_fw_failure_status(sip_msg_t *msg)
{
	struct cell *t;
	int b;

	if(!_sipsd_fw_tm_loaded || msg->first_line.type != SIP_REQUEST
			|| !is_route_type(FAILURE_ROUTE | BRANCH_FAILURE_ROUTE))
		return 0;
	t = _sipsd_fw_tmb.t_gett();
	if(t == NULL || t == T_UNDEFINED)
		return 0;
	b = _sipsd_fw_tmb.t_get_picked_branch();
	if(b < 0 || b >= (int)t->nr_of_outgoings || t->uac[b].last_received < 300)
		return 0;
	return (unsigned int)t->uac[b].last_received;
}

int ki_sd_pinhole_close(sip_msg_t *msg)
{
	sipsd_msg_t sm;
	sd_result r;
	uint32_t n = 0;

	if(sipsd_msg_build(msg, &sm, SIPSD_MSG_IDS) < 0)
		return SIPSD_RC_ERROR;
	if(sm.m.status == 0)
		sm.m.status = sipsd_fw_failure_status(msg);
	r = sd_pinhole_close(_sipsd_ctx, &sm.m, &n);
	sipsd_dmq_replicate();
	if(r != SD_OK)
		sipsd_log_failure("pinhole close", &sm.call_id, r);
	else
		LM_DBG("pinholes: %u deleted (call %.*s)\n", (unsigned)n,
				sm.call_id.len, sm.call_id.s);
	sipsd_msg_free(&sm);
	return sipsd_rc(r);
}

int w_sd_pinhole_close(sip_msg_t *msg, char *p1, char *p2)
{
	return ki_sd_pinhole_close(msg);
}

const char *sipsd_rpc_pinholes_doc[2] = {
		"The firewall pinholes per dialog: call_id, tag, stage, flows, expires, "
		"age",
		0};

static sd_result sipsd_fw_rpc_get(
		const void *snap, size_t i, uint32_t field, sd_str *out)
{
	return sd_pinholes_get(snap, i, field, out);
}

void sipsd_rpc_pinholes(rpc_t *rpc, void *ctx)
{
	sd_pinholes *p = NULL;
	sd_result r;

	if(_sipsd_ctx == NULL) {
		rpc->fault(ctx, 500, "sipsd not initialized");
		return;
	}
	r = sd_pinholes_snapshot(_sipsd_ctx, &p);
	sipsd_rpc_rows(rpc, ctx, r, p, sd_pinholes_count(p),
			sd_pinhole_field_count(), sd_pinhole_field_name, sipsd_fw_rpc_get);
	sd_pinholes_free(p);
}
