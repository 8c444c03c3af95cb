/**
 * sipsd - SIP selective disclosure for Kamailio
 *
 * A trusted proxy reads the S/MIME (CMS) encrypted body of a SIP message when
 * the caller made it one of the recipients, and forwards the message unchanged;
 * with modparam role=edge the module also seals and opens those bodies for user
 * agents that do not speak S/MIME (sipsd_edge.c).
 *
 * This module is a thin adapter: it gathers the SIP fields the library needs
 * (Call-ID, tags, method, status, Content-Type, Content-Transfer-Encoding,
 * Disclose-To, body) into an sd_msg and maps the library's results to script
 * return codes, pseudo-variables, RPC and statistics. All parsing of CMS and
 * S/MIME, key handling and the per-dialog key cache live in libsipsd (Rust).
 *
 * Files: sipsd_mod.c (this one: export tables, modparams, proxy functions, RPC,
 * statistics), sipsd_pv.c ($sd(...) and KSR.sipsd.sd_get()), sipsd_edge.c
 * (sd_seal, sd_open), sipsd_dmq.c (clustering over DMQ), sipsd_fw.c (firewall
 * pinholes: sd_pinhole_open, sd_pinhole_close), sipsd_mod.h (what they
 * share), sipsd_compat.h (Kamailio version differences).
 *
 * SPDX-License-Identifier: MIT OR Apache-2.0
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/sr_module.h"
#include "core/dprint.h"
#include "core/mod_fix.h"
#include "core/data_lump.h"
#include "core/ut.h"
#include "core/trim.h"
#include "core/pvar.h"
#include "core/kemi.h"
#include "core/rpc.h"
#include "core/rpc_lookup.h"
#include "core/counters.h"
#include "core/globals.h"
#include "core/parser/msg_parser.h"
#include "core/parser/parse_from.h"
#include "core/parser/parse_to.h"
#include "core/parser/parse_cseq.h"
#include "core/parser/parse_content.h"
#include "modules/dialog/dlg_load.h"
#include "modules/dialog/dlg_hash.h"
#include "modules/textops/api.h"
#include "modules/sl/sl.h"

#include "sipsd.h"
#include "sipsd_compat.h"
#include "sipsd_mod.h"
#include "sipsd_pv.h"
#include "sipsd_dmq.h"
#include "sipsd_edge.h"
#include "sipsd_fw.h"
#include "sipsd_rec.h"

MODULE_VERSION

static int mod_init(void);
static void mod_destroy(void);

static int w_sd_should_decrypt(sip_msg_t *msg, char *p1, char *p2);
static int w_sd_decrypt(sip_msg_t *msg, char *p1, char *p2);
static int w_sd_replace_body(sip_msg_t *msg, char *p1, char *p2);
static int w_sd_rotate(sip_msg_t *msg, char *p1, char *p2);
static int w_sd_dialog_end(sip_msg_t *msg, char *p1, char *p2);

static int sipsd_param_rsa_key(modparam_t type, void *val);
static int sipsd_param_psk(modparam_t type, void *val);
static int sipsd_param_identity(modparam_t type, void *val);
static int sipsd_param_mode(modparam_t type, void *val);
static int sipsd_param_cache_capacity(modparam_t type, void *val);
static int sipsd_param_cache_ttl(modparam_t type, void *val);
static int sipsd_param_rotate_max_age(modparam_t type, void *val);
static int sipsd_param_rotate_max_uses(modparam_t type, void *val);
static int sipsd_param_max_body_size(modparam_t type, void *val);
static int sipsd_param_max_parts(modparam_t type, void *val);
static int sipsd_param_max_depth(modparam_t type, void *val);
static int sipsd_param_max_recipients(modparam_t type, void *val);
static int sipsd_param_strict_key_permissions(modparam_t type, void *val);
static int sipsd_param_max_rsa_ops(modparam_t type, void *val);
static int sipsd_param_allow_cbc_in_dialog(modparam_t type, void *val);
static int sipsd_param_plaintext_next_hop(modparam_t type, void *val);
static int sipsd_param_cluster_key(modparam_t type, void *val);
static int sipsd_param_cluster_node(modparam_t type, void *val);
static int sipsd_param_cluster_max_skew(modparam_t type, void *val);
static int sipsd_param_cluster_refresh(modparam_t type, void *val);
static int sipsd_param_trusted_signer(modparam_t type, void *val);
static int sipsd_param_signature_policy(modparam_t type, void *val);
static int sipsd_param_role(modparam_t type, void *val);
static int sipsd_param_local_key(modparam_t type, void *val);
static int sipsd_param_sign_key(modparam_t type, void *val);
static int sipsd_param_proxy_cert(modparam_t type, void *val);
static int sipsd_param_proxy_psk(modparam_t type, void *val);
static int sipsd_param_callee_cert_dir(modparam_t type, void *val);
static int sipsd_param_disclose_to(modparam_t type, void *val);
static int sipsd_param_rotate_after(modparam_t type, void *val);
static int sipsd_param_unsealable(modparam_t type, void *val);
static int sipsd_param_sealed_base64(modparam_t type, void *val);
static int sipsd_param_pinhole_agent(modparam_t type, void *val);
static int sipsd_param_pinhole_key(modparam_t type, void *val);
static int sipsd_param_pinhole_timeout(modparam_t type, void *val);
static int sipsd_param_pinhole_retransmit(modparam_t type, void *val);
static int sipsd_param_pinhole_lifetime(modparam_t type, void *val);
static int sipsd_param_pinhole_on_offer(modparam_t type, void *val);
static int sipsd_param_pinhole_max_duration(modparam_t type, void *val);
static int sipsd_param_pinhole_capacity(modparam_t type, void *val);
static int sipsd_param_record(modparam_t type, void *val);
static int sipsd_param_record_recorder(modparam_t type, void *val);
static int sipsd_param_record_kek(modparam_t type, void *val);
static int child_init(int rank);


static void sipsd_rpc_stats(rpc_t *rpc, void *ctx);
static void sipsd_rpc_reload(rpc_t *rpc, void *ctx);

static int sipsd_register_stats(void);

/* module-only parameter: never log plaintext unless set */
int sipsd_log_plaintext = 0;

/* module-only parameter: what sd_decrypt() does when a body meant for this proxy
 * cannot be opened: "forward" (return -3, the script decides) or "reject" (also
 * answer the request 493 Undecipherable, RFC 3261 section 23.2) */
static str sipsd_on_error = str_init("forward");
int sipsd_reject_on_error = 0;
/* the sl API: loaded when present (on_error=reject needs it, the edge answers with it) */
sl_api_t sipsd_slb;
int sipsd_sl_loaded = 0;

#define SD_ROUTES (REQUEST_ROUTE | ONREPLY_ROUTE | FAILURE_ROUTE | BRANCH_ROUTE)

/* clang-format off */
static cmd_export_t cmds[] = {
	{"sd_should_decrypt", (cmd_function)w_sd_should_decrypt, 0,
		0, 0, SD_ROUTES},
	{"sd_decrypt", (cmd_function)w_sd_decrypt, 0,
		0, 0, SD_ROUTES},
	{"sd_replace_body", (cmd_function)w_sd_replace_body, 0,
		0, 0, SD_ROUTES},
	{"sd_rotate", (cmd_function)w_sd_rotate, 0,
		0, 0, SD_ROUTES},
	{"sd_dialog_end", (cmd_function)w_sd_dialog_end, 0,
		0, 0, SD_ROUTES},
	{"sd_seal", (cmd_function)w_sd_seal, 0,
		0, 0, SD_ROUTES},
	{"sd_pinhole_open", (cmd_function)w_sd_pinhole_open, 0,
		0, 0, REQUEST_ROUTE | ONREPLY_ROUTE | FAILURE_ROUTE},
	{"sd_pinhole_close", (cmd_function)w_sd_pinhole_close, 0,
		0, 0, ANY_ROUTE},
	{"sd_record_start", (cmd_function)w_sd_record_start, 0,
		0, 0, REQUEST_ROUTE | ONREPLY_ROUTE | FAILURE_ROUTE},
	{"sd_record_stop", (cmd_function)w_sd_record_stop, 0,
		0, 0, ANY_ROUTE},
	{"sd_open", (cmd_function)w_sd_open, 0,
		0, 0, SD_ROUTES},
	{0, 0, 0, 0, 0, 0}
};

static param_export_t params[] = {
	{"rsa_key",        PARAM_STRING | USE_FUNC_PARAM, (void *)sipsd_param_rsa_key},
	{"psk",            PARAM_STRING | USE_FUNC_PARAM, (void *)sipsd_param_psk},
	{"identity",       PARAM_STRING | USE_FUNC_PARAM, (void *)sipsd_param_identity},
	{"mode",           PARAM_STRING | USE_FUNC_PARAM, (void *)sipsd_param_mode},
	{"cache_capacity", PARAM_INT | USE_FUNC_PARAM, (void *)sipsd_param_cache_capacity},
	{"cache_ttl",      PARAM_INT | USE_FUNC_PARAM, (void *)sipsd_param_cache_ttl},
	{"rotate_max_age", PARAM_INT | USE_FUNC_PARAM, (void *)sipsd_param_rotate_max_age},
	{"rotate_max_uses", PARAM_INT | USE_FUNC_PARAM, (void *)sipsd_param_rotate_max_uses},
	{"max_body_size",  PARAM_INT | USE_FUNC_PARAM, (void *)sipsd_param_max_body_size},
	{"max_parts",      PARAM_INT | USE_FUNC_PARAM, (void *)sipsd_param_max_parts},
	{"max_depth",      PARAM_INT | USE_FUNC_PARAM, (void *)sipsd_param_max_depth},
	{"max_recipients", PARAM_INT | USE_FUNC_PARAM, (void *)sipsd_param_max_recipients},
	{"on_error",       PARAM_STR, &sipsd_on_error},
	{"strict_key_permissions", PARAM_INT | USE_FUNC_PARAM,
		(void *)sipsd_param_strict_key_permissions},
	{"max_rsa_ops",    PARAM_INT | USE_FUNC_PARAM, (void *)sipsd_param_max_rsa_ops},
	{"allow_cbc_in_dialog", PARAM_INT | USE_FUNC_PARAM,
		(void *)sipsd_param_allow_cbc_in_dialog},
	{"plaintext_next_hop", PARAM_STRING | USE_FUNC_PARAM,
		(void *)sipsd_param_plaintext_next_hop},
	{"log_plaintext",  PARAM_INT, &sipsd_log_plaintext},
	{"cluster_key",    PARAM_STRING | USE_FUNC_PARAM, (void *)sipsd_param_cluster_key},
	{"cluster_node",   PARAM_STRING | USE_FUNC_PARAM, (void *)sipsd_param_cluster_node},
	{"cluster_max_skew", PARAM_INT | USE_FUNC_PARAM,
		(void *)sipsd_param_cluster_max_skew},
	{"cluster_refresh", PARAM_INT | USE_FUNC_PARAM,
		(void *)sipsd_param_cluster_refresh},
	{"enable_dmq",     PARAM_INT, &sipsd_dmq_enable},
	{"dmq_init_sync",  PARAM_INT, &sipsd_dmq_init_sync},
	{"trusted_signer", PARAM_STRING | USE_FUNC_PARAM, (void *)sipsd_param_trusted_signer},
	{"signature_policy", PARAM_STRING | USE_FUNC_PARAM,
		(void *)sipsd_param_signature_policy},
	{"role",           PARAM_STRING | USE_FUNC_PARAM, (void *)sipsd_param_role},
	{"local_key",      PARAM_STRING | USE_FUNC_PARAM, (void *)sipsd_param_local_key},
	{"sign_key",       PARAM_STRING | USE_FUNC_PARAM, (void *)sipsd_param_sign_key},
	{"proxy_cert",     PARAM_STRING | USE_FUNC_PARAM, (void *)sipsd_param_proxy_cert},
	{"proxy_psk",      PARAM_STRING | USE_FUNC_PARAM, (void *)sipsd_param_proxy_psk},
	{"callee_cert_dir", PARAM_STRING | USE_FUNC_PARAM,
		(void *)sipsd_param_callee_cert_dir},
	{"disclose_to",    PARAM_STRING | USE_FUNC_PARAM, (void *)sipsd_param_disclose_to},
	{"rotate_after",   PARAM_INT | USE_FUNC_PARAM, (void *)sipsd_param_rotate_after},
	{"unsealable",     PARAM_STRING | USE_FUNC_PARAM, (void *)sipsd_param_unsealable},
	{"sealed_base64",  PARAM_INT | USE_FUNC_PARAM, (void *)sipsd_param_sealed_base64},
	{"pinhole_agent",  PARAM_STRING | USE_FUNC_PARAM, (void *)sipsd_param_pinhole_agent},
	{"pinhole_key",    PARAM_STRING | USE_FUNC_PARAM, (void *)sipsd_param_pinhole_key},
	{"pinhole_timeout", PARAM_INT | USE_FUNC_PARAM, (void *)sipsd_param_pinhole_timeout},
	{"pinhole_retransmit", PARAM_INT | USE_FUNC_PARAM,
		(void *)sipsd_param_pinhole_retransmit},
	{"pinhole_lifetime", PARAM_INT | USE_FUNC_PARAM, (void *)sipsd_param_pinhole_lifetime},
	{"pinhole_on_offer", PARAM_INT | USE_FUNC_PARAM, (void *)sipsd_param_pinhole_on_offer},
	{"pinhole_max_duration", PARAM_INT | USE_FUNC_PARAM,
		(void *)sipsd_param_pinhole_max_duration},
	{"pinhole_capacity", PARAM_INT | USE_FUNC_PARAM, (void *)sipsd_param_pinhole_capacity},
	{"pinhole_on_failure", PARAM_STR, &sipsd_pinhole_on_failure},
	{"record", PARAM_INT | USE_FUNC_PARAM, (void *)sipsd_param_record},
	{"record_recorder", PARAM_STRING | USE_FUNC_PARAM, (void *)sipsd_param_record_recorder},
	{"record_kek", PARAM_STRING | USE_FUNC_PARAM, (void *)sipsd_param_record_kek},
	{0, 0, 0}
};

static const char *sipsd_rpc_stats_doc[2] = {
	"Counters and cache state of the sipsd library", 0
};
static const char *sipsd_rpc_reload_doc[2] = {
	"Re-read the key files now (all processes follow)", 0
};

static rpc_export_t sipsd_rpc_cmds[] = {
	{"sipsd.stats",  sipsd_rpc_stats,  sipsd_rpc_stats_doc,  0},
	{"sipsd.reload", sipsd_rpc_reload, sipsd_rpc_reload_doc, 0},
	{"sipsd.cluster", sipsd_rpc_cluster, sipsd_rpc_cluster_doc, RET_ARRAY},
	{"sipsd.pinholes", sipsd_rpc_pinholes, sipsd_rpc_pinholes_doc, RET_ARRAY},
	{"sipsd.recordings", sipsd_rpc_recordings, sipsd_rpc_recordings_doc, RET_ARRAY},
	{0, 0, 0, 0}
};

static pv_export_t mod_pvs[] = {
	{{"sd", (sizeof("sd") - 1)}, PVT_OTHER, pv_get_sd, 0,
		pv_parse_sd_name, 0, 0, 0},
	{{0, 0}, 0, 0, 0, 0, 0, 0, 0}
};

struct module_exports exports = {
	"sipsd",         /* module name */
	DEFAULT_DLFLAGS, /* dlopen flags */
	cmds,            /* exported functions */
	params,          /* exported parameters */
	sipsd_rpc_cmds,  /* exported RPC methods */
	mod_pvs,         /* exported pseudo-variables */
	0,               /* response handling function */
	mod_init,        /* module initialization function */
	child_init,      /* per-child init function: the pinhole refresh timer */
	mod_destroy      /* module destroy function */
};
/* clang-format on */

/* ---------------------------------------------------------------------- */
/* state                                                                  */

/* library context: created in mod_init (before fork), shared by all workers */
sd_ctx *_sipsd_ctx = NULL;
/* configuration being built from modparams; freed once the context exists */
static sd_config *_sipsd_cfg = NULL;
/* first configuration error, reported again by mod_init */
static int _sipsd_cfg_failed = 0;

/* optional APIs of other modules */
static struct dlg_binds _sipsd_dlgb;
static int _sipsd_dlg_loaded = 0;
textops_api_t _sipsd_textops;
int _sipsd_textops_loaded = 0;

/* the result of the last call for a message, in this process (sipsd_mod.h) */
static sipsd_last_t _sipsd_last = {0};

/* ---------------------------------------------------------------------- */
/* helpers                                                                */

int sipsd_rc(sd_result r)
{
	switch(r) {
		case SD_OK:
			return SIPSD_RC_YES;
		case SD_NOT_FOR_ME:
			return SIPSD_RC_NOT_FOR_ME;
		case SD_NOT_ENCRYPTED:
			return SIPSD_RC_NOT_ENCRYPTED;
		default:
			return SIPSD_RC_ERROR;
	}
}

/* the state of this message, or NULL if the last call was for another one */
sipsd_last_t *sipsd_last_get(sip_msg_t *msg)
{
	if(_sipsd_last.valid && msg_ctx_id_match(msg, &_sipsd_last.mid) == 1)
		return &_sipsd_last;
	return NULL;
}

/* the state of this message, starting a fresh one when msg is a new message */
sipsd_last_t *sipsd_last_for(sip_msg_t *msg)
{
	sipsd_last_t *l = sipsd_last_get(msg);
	if(l != NULL)
		return l;
	sd_plain_free(_sipsd_last.plain);
	sd_sealed_free(_sipsd_last.sealed);
	memset(&_sipsd_last, 0, sizeof(_sipsd_last));
	msg_ctx_id_set(msg, &_sipsd_last.mid);
	_sipsd_last.valid = 1;
	return &_sipsd_last;
}

/* one header by name (HDR_OTHER_T), or NULL */
hdr_field_t *sipsd_find_hdr(sip_msg_t *msg, hdr_field_t *start,
		const char *name, int len)
{
	hdr_field_t *hf;
	for(hf = start; hf != NULL; hf = hf->next) {
		if(hf->type == HDR_OTHER_T && hf->name.len == len
				&& strncasecmp(hf->name.s, name, len) == 0)
			return hf;
	}
	return NULL;
}

void sipsd_msg_free(sipsd_msg_t *sm)
{
	if(sm->disclose_buf != NULL) {
		pkg_free(sm->disclose_buf);
		sm->disclose_buf = NULL;
	}
}

/* gather the fields of msg the library needs (what: SIPSD_MSG_IDS or SIPSD_MSG_BODY);
 * 0 on success, -1 on error. Nothing is allocated from Kamailio's memory for the fields it
 * has not parsed yet: the From value goes to the library as it is (sd_msg.from). */
int sipsd_msg_build(sip_msg_t *msg, sipsd_msg_t *sm, int what)
{
	str s;
	hdr_field_t *hf;
	struct to_body *tb;
	int total, n;
	char *body;
	hdr_flags_t need;

	memset(sm, 0, sizeof(*sm));
	/* the body's headers (Content-Transfer-Encoding, Disclose-To) can be anywhere */
	need = (what == SIPSD_MSG_BODY)
				   ? HDR_EOH_F
				   : (HDR_CALLID_F | HDR_FROM_F | HDR_TO_F | HDR_CSEQ_F);
	if(parse_headers(msg, need, 0) < 0) {
		LM_ERR("cannot parse the SIP headers\n");
		return -1;
	}
	if(msg->callid == NULL || msg->callid->body.len <= 0) {
		LM_ERR("message without Call-ID\n");
		return -1;
	}
	sm->call_id = msg->callid->body;
	trim(&sm->call_id);
	sm->m.call_id = sipsd_sdstr(&sm->call_id);

	if(msg->from == NULL) {
		LM_ERR("message without From header (call %.*s)\n", sm->call_id.len,
				sm->call_id.s);
		return -1;
	}
	/* the library reads the tag and URI itself: parse_from_header() would allocate */
	s = msg->from->body;
	trim(&s);
	sm->m.from = sipsd_sdstr(&s);

	if(msg->to == NULL) {
		LM_ERR("message without To header (call %.*s)\n", sm->call_id.len,
				sm->call_id.s);
		return -1;
	}
	tb = get_to(msg);
	if(tb != NULL) {
		sm->m.to_tag = sipsd_sdstr(&tb->tag_value);
		sm->m.to_uri = sipsd_sdstr(&tb->uri);
	}

	if(msg->first_line.type == SIP_REQUEST) {
		sm->m.method = sipsd_sdstr(&msg->first_line.u.request.method);
		sm->m.status = 0;
	} else {
		if(msg->cseq == NULL || msg->cseq->parsed == NULL) {
			LM_ERR("reply without CSeq (call %.*s)\n", sm->call_id.len,
					sm->call_id.s);
			return -1;
		}
		sm->m.method = sipsd_sdstr(&get_cseq(msg)->method);
		sm->m.status = msg->first_line.u.reply.statuscode;
	}

	if(what != SIPSD_MSG_BODY)
		return 0;

	if(msg->content_type != NULL) {
		s = msg->content_type->body;
		trim(&s);
		sm->m.content_type = sipsd_sdstr(&s);
	}

	hf = sipsd_find_hdr(msg, msg->headers, SIPSD_HDR_CTE, SIPSD_HDR_CTE_LEN);
	if(hf != NULL) {
		s = hf->body;
		trim(&s);
		sm->m.transfer_encoding = sipsd_sdstr(&s);
	}

	/* all Disclose-To values joined with ", " */
	total = 0;
	n = 0;
	for(hf = sipsd_find_hdr(msg, msg->headers, SIPSD_HDR_DISCLOSE,
				SIPSD_HDR_DISCLOSE_LEN);
			hf != NULL; hf = sipsd_find_hdr(msg, hf->next, SIPSD_HDR_DISCLOSE,
								SIPSD_HDR_DISCLOSE_LEN)) {
		total += hf->body.len + 2;
		n++;
	}
	if(n > 0) {
		sm->disclose_buf = (char *)pkg_malloc(total + 1);
		if(sm->disclose_buf == NULL) {
			PKG_MEM_ERROR;
			return -1;
		}
		total = 0;
		for(hf = sipsd_find_hdr(msg, msg->headers, SIPSD_HDR_DISCLOSE,
					SIPSD_HDR_DISCLOSE_LEN);
				hf != NULL; hf = sipsd_find_hdr(msg, hf->next,
									SIPSD_HDR_DISCLOSE, SIPSD_HDR_DISCLOSE_LEN)) {
			s = hf->body;
			trim(&s);
			if(s.len <= 0)
				continue;
			if(total > 0) {
				memcpy(sm->disclose_buf + total, ", ", 2);
				total += 2;
			}
			memcpy(sm->disclose_buf + total, s.s, s.len);
			total += s.len;
		}
		sm->disclose_buf[total] = '\0';
		s.s = sm->disclose_buf;
		s.len = total;
		sm->m.disclose_to = sipsd_sdstr(&s);
	}

	/* the body, binary; bounded by Content-Length when present */
	body = get_body(msg);
	if(body != NULL && body < msg->buf + msg->len) {
		s.s = body;
		s.len = (int)(msg->buf + msg->len - body);
		if(msg->content_length != NULL) {
			long cl = get_content_length(msg);
			if(cl >= 0 && cl < s.len)
				s.len = (int)cl;
		}
		sm->m.body = sipsd_sdstr(&s);
	}
	return 0;
}

/* ---------------------------------------------------------------------- */
/* modparams: each one goes to sd_config_set under its own name            */

static int sipsd_config_set(const char *name, const char *value)
{
	sd_result r;

	if(_sipsd_cfg == NULL) {
		_sipsd_cfg = sd_config_new();
		if(_sipsd_cfg == NULL) {
			LM_ERR("cannot allocate the sipsd configuration\n");
			return -1;
		}
	}
	if(value == NULL) {
		LM_ERR("modparam %s: missing value\n", name);
		_sipsd_cfg_failed = 1;
		return -1;
	}
	r = sd_config_set(_sipsd_cfg, name, value);
	if(r != SD_OK) {
		/* values are key file paths and options, never key material */
		LM_ERR("modparam %s=\"%s\" rejected: %s (%u): %s\n", name, value,
				sd_strerror(r), (unsigned)r, sd_last_error());
		_sipsd_cfg_failed = 1;
		return -1;
	}
	LM_DBG("modparam %s set\n", name);
	return 0;
}

static int sipsd_config_set_int(const char *name, void *val)
{
	char buf[INT2STR_MAX_LEN + 1];
	snprintf(buf, sizeof(buf), "%d", (int)(long)val);
	return sipsd_config_set(name, buf);
}

#define SIPSD_STR_PARAM(NAME)                                    \
	static int sipsd_param_##NAME(modparam_t type, void *val)    \
	{                                                            \
		return sipsd_config_set(#NAME, (const char *)val);       \
	}
#define SIPSD_INT_PARAM(NAME)                                    \
	static int sipsd_param_##NAME(modparam_t type, void *val)    \
	{                                                            \
		return sipsd_config_set_int(#NAME, val);                 \
	}

SIPSD_STR_PARAM(rsa_key)
SIPSD_STR_PARAM(psk)
SIPSD_STR_PARAM(identity)
SIPSD_STR_PARAM(mode)
SIPSD_INT_PARAM(cache_capacity)
SIPSD_INT_PARAM(cache_ttl)
SIPSD_INT_PARAM(rotate_max_age)
SIPSD_INT_PARAM(rotate_max_uses)
SIPSD_INT_PARAM(max_body_size)
SIPSD_INT_PARAM(max_parts)
SIPSD_INT_PARAM(max_depth)
SIPSD_INT_PARAM(max_recipients)
SIPSD_INT_PARAM(strict_key_permissions)
SIPSD_INT_PARAM(max_rsa_ops)
SIPSD_INT_PARAM(allow_cbc_in_dialog)
SIPSD_STR_PARAM(plaintext_next_hop)
SIPSD_STR_PARAM(cluster_key)
SIPSD_STR_PARAM(cluster_node)
SIPSD_INT_PARAM(cluster_max_skew)
SIPSD_INT_PARAM(cluster_refresh)
SIPSD_STR_PARAM(trusted_signer)
SIPSD_STR_PARAM(signature_policy)
SIPSD_STR_PARAM(role)
SIPSD_STR_PARAM(local_key)
SIPSD_STR_PARAM(sign_key)
SIPSD_STR_PARAM(proxy_cert)
SIPSD_STR_PARAM(proxy_psk)
SIPSD_STR_PARAM(callee_cert_dir)
SIPSD_STR_PARAM(disclose_to)
SIPSD_INT_PARAM(rotate_after)
SIPSD_STR_PARAM(unsealable)
SIPSD_INT_PARAM(sealed_base64)
SIPSD_STR_PARAM(pinhole_agent)
SIPSD_STR_PARAM(pinhole_key)
SIPSD_INT_PARAM(pinhole_timeout)
SIPSD_INT_PARAM(pinhole_retransmit)
SIPSD_INT_PARAM(pinhole_lifetime)
SIPSD_INT_PARAM(pinhole_on_offer)
SIPSD_INT_PARAM(pinhole_max_duration)
SIPSD_INT_PARAM(pinhole_capacity)
SIPSD_INT_PARAM(record)
SIPSD_STR_PARAM(record_recorder)
SIPSD_STR_PARAM(record_kek)

/* ---------------------------------------------------------------------- */
/* dialog module: end the cached key when the dialog ends                  */

static void sipsd_dlg_end_cb(
		struct dlg_cell *dlg, int type, struct dlg_cb_params *params)
{
	sd_result r;
	str method = STR_NULL;
	unsigned int status = 0;

	if(_sipsd_ctx == NULL || dlg == NULL)
		return;
	/* a BYE ends the key only once the other side accepted it (2xx): a forged BYE
	 * that the user agent refuses leaves the call and its key */
	if(type == DLGCB_TERMINATED_CONFIRMED
			&& (params == NULL || params->rpl == NULL || params->rpl == FAKED_REPLY
					|| params->rpl->first_line.u.reply.statuscode < 200
					|| params->rpl->first_line.u.reply.statuscode >= 300))
		return;
	/* what ended it, for a recording's stop reason: the BYE, the failed INVITE with
	 * its final status, or (empty method) the dialog's own timeout */
	if(params != NULL && params->rpl != NULL && params->rpl != FAKED_REPLY)
		status = params->rpl->first_line.u.reply.statuscode;
	if(type == DLGCB_TERMINATED_CONFIRMED) {
		method.s = "BYE";
		method.len = 3;
	} else if(type == DLGCB_FAILED) {
		method.s = "INVITE";
		method.len = 6;
	}
	sipsd_fw_dialog_end(
			&dlg->callid, &dlg->tag[DLG_CALLER_LEG], &method, status);
	r = sd_dialog_end(_sipsd_ctx, sipsd_sdstr(&dlg->callid),
			sipsd_sdstr(&dlg->tag[DLG_CALLER_LEG]));
	sipsd_dmq_replicate();
	if(r != SD_OK) {
		LM_ERR("dialog end failed (call %.*s): %s (%u)\n", dlg->callid.len,
				dlg->callid.s, sd_strerror(r), (unsigned)r);
		return;
	}
	LM_DBG("dialog ended by dialog event %d (call %.*s)\n", type,
			dlg->callid.len, dlg->callid.s);
}

static void sipsd_dlg_created_cb(
		struct dlg_cell *dlg, int type, struct dlg_cb_params *params)
{
	if(dlg == NULL)
		return;
	if(_sipsd_dlgb.register_dlgcb(dlg,
			   DLGCB_TERMINATED_CONFIRMED | DLGCB_FAILED | DLGCB_EXPIRED,
			   sipsd_dlg_end_cb, NULL, NULL)
			!= 0) {
		LM_ERR("cannot register dialog callbacks (call %.*s)\n",
				dlg->callid.len, dlg->callid.s);
	}
}

/* ---------------------------------------------------------------------- */
/* module life cycle                                                      */

static int mod_init(void)
{
	sd_result r;
	sd_str w;
	size_t i;
	bind_textops_f bind_textops_exports;

	if(_sipsd_cfg_failed) {
		LM_ERR("invalid sipsd modparam (see the error above)\n");
		return -1;
	}
	/* sl: on_error=reject needs it, the edge answers what it cannot seal with it */
	if(find_export("bind_sl", 0, 0) != NULL && sl_load_api(&sipsd_slb) == 0)
		sipsd_sl_loaded = 1;
	if(sipsd_on_error.len == 6 && strncasecmp(sipsd_on_error.s, "reject", 6) == 0) {
		if(!sipsd_sl_loaded) {
			LM_ERR("on_error=reject needs the sl module loaded before sipsd\n");
			return -1;
		}
		sipsd_reject_on_error = 1;
	} else if(!(sipsd_on_error.len == 7
					  && strncasecmp(sipsd_on_error.s, "forward", 7) == 0)) {
		LM_ERR("on_error: '%.*s' is not forward or reject\n", sipsd_on_error.len,
				sipsd_on_error.s);
		return -1;
	}
	if(_sipsd_cfg == NULL) {
		_sipsd_cfg = sd_config_new();
		if(_sipsd_cfg == NULL) {
			LM_ERR("cannot allocate the sipsd configuration\n");
			return -1;
		}
	}
	r = sd_ctx_new(_sipsd_cfg, &_sipsd_ctx);
	sd_config_free(_sipsd_cfg);
	_sipsd_cfg = NULL;
	if(r != SD_OK) {
		_sipsd_ctx = NULL;
		/* sd_last_error() names the option or file that failed */
		LM_ERR("sipsd configuration failed: %s (%u): %s\n", sd_strerror(r),
				(unsigned)r, sd_last_error());
		return -1;
	}
	for(i = 0; i < sd_ctx_warning_count(_sipsd_ctx); i++) {
		if(sd_ctx_warning(_sipsd_ctx, i, &w) == SD_OK)
			LM_WARN("%.*s\n", (int)w.len, (const char *)w.ptr);
	}

	/* pinhole_agent: firewall pinholes (sipsd_fw.c) */
	if(sipsd_fw_init() != 0)
		return -1;

	if(sipsd_register_stats() != 0) {
		LM_ERR("cannot register statistics\n");
		return -1;
	}

	/* enable_dmq: replicate the dialog keys to the other nodes (sipsd_dmq.c) */
	if(sipsd_dmq_init(_sipsd_ctx) != 0)
		return -1;

	/* dialog module loaded: end cached keys on dialog end, without script */
	if(find_export("load_dlg", 0, 0) != NULL && load_dlg_api(&_sipsd_dlgb) == 0) {
		if(_sipsd_dlgb.register_dlgcb(
				   NULL, DLGCB_CREATED, sipsd_dlg_created_cb, NULL, NULL)
				!= 0) {
			LM_ERR("cannot register the dialog create callback\n");
			return -1;
		}
		_sipsd_dlg_loaded = 1;
	}

	/* textops loaded: sd_replace_body() can set the body */
	bind_textops_exports = (bind_textops_f)find_export("bind_textops", 0, 0);
	if(bind_textops_exports != NULL && bind_textops_exports(&_sipsd_textops) == 0)
		_sipsd_textops_loaded = 1;

	LM_INFO("sipsd %s ready (dialog callbacks: %s, body replace: %s, "
			"log_plaintext: %d)\n",
			sd_version(), _sipsd_dlg_loaded ? "yes" : "no",
			_sipsd_textops_loaded ? "yes" : "no", sipsd_log_plaintext);
	return 0;
}

static int child_init(int rank)
{
	return sipsd_fw_child_init(rank);
}

static void mod_destroy(void)
{
	sd_config_free(_sipsd_cfg);
	_sipsd_cfg = NULL;
	if(_sipsd_last.plain != NULL) {
		sd_plain_free(_sipsd_last.plain);
		_sipsd_last.plain = NULL;
	}
	sd_sealed_free(_sipsd_last.sealed);
	_sipsd_last.sealed = NULL;
	/* the context owns the shared cache: only the main process frees it */
	if(_sipsd_ctx != NULL && _ksr_is_main) {
		sd_ctx_free(_sipsd_ctx);
		_sipsd_ctx = NULL;
	}
}

/* ---------------------------------------------------------------------- */
/* script functions: ki_* hold the logic, w_* only unpack parameters       */

static int ki_sd_should_decrypt(sip_msg_t *msg)
{
	sipsd_msg_t sm;
	sipsd_last_t *l;
	sd_result r;

	if(sipsd_msg_build(msg, &sm, SIPSD_MSG_BODY) < 0)
		return SIPSD_RC_ERROR;
	r = sd_should_decrypt(_sipsd_ctx, &sm.m);
	l = sipsd_last_for(msg);
	l->code = r;
	if(r != SD_OK && r != SD_NOT_FOR_ME && r != SD_NOT_ENCRYPTED)
		LM_ERR("sd_should_decrypt (call %.*s): %s (%u)\n", sm.call_id.len,
				sm.call_id.s, sd_strerror(r), (unsigned)r);
	else
		LM_DBG("sd_should_decrypt (call %.*s): %s\n", sm.call_id.len,
				sm.call_id.s, sd_strerror(r));
	sipsd_msg_free(&sm);
	return sipsd_rc(r);
}

static int w_sd_should_decrypt(sip_msg_t *msg, char *p1, char *p2)
{
	return ki_sd_should_decrypt(msg);
}

/* Bad bodies come from the network, so a flood of them must not flood the log: each
 * process logs at most SIPSD_LOG_BURST failures per second, then one line saying how many
 * it left out. The counters (RPC sipsd.stats, statistic sipsd:errors) count them all. */
#define SIPSD_LOG_BURST 10

void sipsd_log_failure(const char *what, str *call_id, sd_result r)
{
	static time_t window = 0;
	static unsigned int logged = 0, suppressed = 0;
	time_t now = time(NULL);

	if(now != window) {
		if(suppressed > 0)
			LM_WARN("%u more failures not logged in the last second (see "
					"sipsd.stats)\n",
					suppressed);
		window = now;
		logged = 0;
		suppressed = 0;
	}
	if(logged >= SIPSD_LOG_BURST) {
		suppressed++;
		return;
	}
	logged++;
	LM_WARN("%s failed (call %.*s): %s (%u)\n", what, call_id->len, call_id->s,
			sd_strerror(r), (unsigned)r);
}

/* on_error=reject: answer a request (not ACK or CANCEL) 493 Undecipherable */
static void sipsd_reject(sip_msg_t *msg)
{
	str reason = str_init("Undecipherable");

	if(!sipsd_reject_on_error || msg->first_line.type != SIP_REQUEST)
		return;
	if(msg->REQ_METHOD & (METHOD_ACK | METHOD_CANCEL))
		return;
	if(sipsd_slb.freply(msg, 493, &reason) < 0)
		LM_ERR("cannot send 493 reply\n");
}

static int ki_sd_decrypt(sip_msg_t *msg)
{
	sipsd_msg_t sm;
	sipsd_last_t *l;
	sd_plain *plain = NULL;
	sd_result r;
	sd_str v;

	if(sipsd_msg_build(msg, &sm, SIPSD_MSG_BODY) < 0) {
		l = sipsd_last_for(msg);
		l->code = SD_ERR_INVALID_ARGUMENT;
		return SIPSD_RC_ERROR;
	}
	r = sd_unwrap_body(_sipsd_ctx, &sm.m, &plain);
	sipsd_dmq_replicate();

	l = sipsd_last_for(msg);
	sd_plain_free(l->plain);
	l->plain = NULL;
	l->has_generation = 0;
	l->code = r;

	switch(r) {
		case SD_OK:
			l->plain = plain;
			l->generation = sd_plain_generation(plain);
			l->has_generation = 1;
			LM_DBG("decrypted %u part(s), generation %u (call %.*s)\n",
					(unsigned)sd_plain_count(plain), l->generation,
					sm.call_id.len, sm.call_id.s);
			if(sipsd_log_plaintext
					&& sd_plain_get(plain, 0, SD_FIELD_BODY, &v) == SD_OK) {
				LM_INFO("plaintext (call %.*s): [%.*s]\n", sm.call_id.len,
						sm.call_id.s, (int)v.len, v.ptr ? (char *)v.ptr : "");
			}
			break;
		case SD_NOT_FOR_ME:
		case SD_NOT_ENCRYPTED:
			sd_plain_free(plain);
			LM_DBG("not decrypted (call %.*s): %s\n", sm.call_id.len,
					sm.call_id.s, sd_strerror(r));
			break;
		default:
			sd_plain_free(plain);
			sipsd_log_failure("decrypt", &sm.call_id, r);
			sipsd_reject(msg);
			break;
	}
	sipsd_msg_free(&sm);
	return sipsd_rc(r);
}

static int w_sd_decrypt(sip_msg_t *msg, char *p1, char *p2)
{
	return ki_sd_decrypt(msg);
}

/* remove every header named name (if any) from the forwarded message */
int sipsd_del_hdr(sip_msg_t *msg, const char *name, int len)
{
	hdr_field_t *hf;
	for(hf = sipsd_find_hdr(msg, msg->headers, name, len); hf != NULL;
			hf = sipsd_find_hdr(msg, hf->next, name, len)) {
		if(del_lump(msg, hf->name.s - msg->buf, hf->len, 0) == NULL)
			return -1;
	}
	return 0;
}

static int ki_sd_replace_body(sip_msg_t *msg)
{
	sipsd_last_t *l;
	sd_str vb, vct;
	str nb, nct, hop, cid = STR_NULL;

	if(msg->callid != NULL)
		cid = msg->callid->body;
	l = sipsd_last_get(msg);
	if(l == NULL || l->plain == NULL) {
		LM_ERR("sd_replace_body: nothing decrypted for this message "
			   "(call sd_decrypt() first) (call %.*s)\n",
				cid.len, cid.s);
		return SIPSD_RC_NOT_FOR_ME;
	}
	if(l->body_replaced) {
		LM_DBG("body already replaced (call %.*s)\n", cid.len, cid.s);
		return SIPSD_RC_YES;
	}
	if(!_sipsd_textops_loaded) {
		LM_ERR("sd_replace_body needs the textops module (call %.*s)\n",
				cid.len, cid.s);
		return SIPSD_RC_ERROR;
	}
	/* plaintext goes only to a next hop the operator allows (plaintext_next_hop),
	 * never to whatever the Request-URI or a Route header of the message names */
	if(msg->first_line.type != SIP_REQUEST) {
		LM_WARN("sd_replace_body: replies are forwarded encrypted (call %.*s)\n",
				cid.len, cid.s);
		return SIPSD_RC_NOT_FOR_ME;
	}
	if(msg->dst_uri.len > 0)
		hop = msg->dst_uri;
	else if(msg->new_uri.len > 0)
		hop = msg->new_uri;
	else
		hop = msg->first_line.u.request.uri;
	if(sd_plaintext_next_hop_allowed(_sipsd_ctx, sipsd_sdstr(&hop)) != SD_OK) {
		LM_WARN("sd_replace_body: next hop %.*s may not receive plaintext, "
				"forwarding the body encrypted (call %.*s)\n",
				hop.len, hop.s, cid.len, cid.s);
		return SIPSD_RC_NOT_FOR_ME;
	}
	if(sd_plain_get(l->plain, 0, SD_FIELD_BODY, &vb) != SD_OK
			|| sd_plain_get(l->plain, 0, SD_FIELD_CONTENT_TYPE, &vct) != SD_OK
			|| vb.len == 0 || vct.len == 0) {
		LM_ERR("decrypted part has no body or content type (call %.*s)\n",
				cid.len, cid.s);
		return SIPSD_RC_ERROR;
	}
	sipsd_str_from_sd(&vb, &nb);
	sipsd_str_from_sd(&vct, &nct);
	/* the S/MIME wrapping headers no longer describe the body */
	if(sipsd_del_hdr(msg, SIPSD_HDR_CTE, SIPSD_HDR_CTE_LEN) < 0
			|| (msg->content_disposition != NULL
					&& del_lump(msg, msg->content_disposition->name.s - msg->buf,
							   msg->content_disposition->len, 0)
							   == NULL)) {
		LM_ERR("cannot remove the S/MIME headers (call %.*s)\n", cid.len,
				cid.s);
		return SIPSD_RC_ERROR;
	}
	if(_sipsd_textops.set_body(msg, &nb, &nct) < 0) {
		LM_ERR("cannot replace the body (call %.*s)\n", cid.len, cid.s);
		return SIPSD_RC_ERROR;
	}
	l->body_replaced = 1;
	LM_DBG("body replaced by the decrypted %.*s part (call %.*s)\n", nct.len,
			nct.s, cid.len, cid.s);
	return SIPSD_RC_YES;
}

static int w_sd_replace_body(sip_msg_t *msg, char *p1, char *p2)
{
	return ki_sd_replace_body(msg);
}

static int ki_sd_rotate(sip_msg_t *msg)
{
	sipsd_msg_t sm;
	sipsd_last_t *l;
	uint32_t gen = 0;
	sd_result r;

	if(sipsd_msg_build(msg, &sm, SIPSD_MSG_BODY) < 0)
		return SIPSD_RC_ERROR;
	r = sd_rotate(_sipsd_ctx, &sm.m, &gen);
	sipsd_dmq_replicate();
	l = sipsd_last_for(msg);
	l->code = r;
	if(r == SD_OK) {
		l->generation = gen;
		l->has_generation = 1;
		LM_INFO("dialog key rotated to generation %u (call %.*s)\n",
				(unsigned)gen, sm.call_id.len, sm.call_id.s);
	} else if(r == SD_NOT_FOR_ME || r == SD_NOT_ENCRYPTED) {
		LM_DBG("no rotation (call %.*s): %s\n", sm.call_id.len, sm.call_id.s,
				sd_strerror(r));
	} else {
		sipsd_log_failure("rotation", &sm.call_id, r);
	}
	sipsd_msg_free(&sm);
	return sipsd_rc(r);
}

static int w_sd_rotate(sip_msg_t *msg, char *p1, char *p2)
{
	return ki_sd_rotate(msg);
}

static int ki_sd_dialog_end(sip_msg_t *msg)
{
	sipsd_msg_t sm;
	sd_result r;

	if(sipsd_msg_build(msg, &sm, SIPSD_MSG_IDS) < 0)
		return SIPSD_RC_ERROR;
	/* the library finds the caller's tag in From or To (a BYE from the callee) */
	r = sd_dialog_end_msg(_sipsd_ctx, &sm.m);
	sipsd_dmq_replicate();
	if(r != SD_OK) {
		LM_ERR("dialog end failed (call %.*s): %s (%u)\n", sm.call_id.len,
				sm.call_id.s, sd_strerror(r), (unsigned)r);
		sipsd_msg_free(&sm);
		return SIPSD_RC_ERROR;
	}
	LM_DBG("dialog ended (call %.*s)\n", sm.call_id.len, sm.call_id.s);
	sipsd_msg_free(&sm);
	return SIPSD_RC_YES;
}

static int w_sd_dialog_end(sip_msg_t *msg, char *p1, char *p2)
{
	return ki_sd_dialog_end(msg);
}

/* ---------------------------------------------------------------------- */
/* statistics and RPC                                                     */

/* every library statistic is a Kamailio counter "sipsd:NAME"; the list comes from
 * the library (sd_stat_count/name/doc), so a new counter needs no change here */
static counter_val_t sipsd_stat_cbk(counter_handle_t h, void *param)
{
	uint64_t v = 0;

	if(_sipsd_ctx == NULL
			|| sd_stat_value(_sipsd_ctx, (size_t)(uintptr_t)param, &v) != SD_OK)
		return 0;
	return (counter_val_t)v;
}

static int sipsd_register_stats(void)
{
	counter_handle_t h;
	size_t i;

	for(i = 0; i < sd_stat_count(); i++) {
		if(counter_register(&h, exports.name, sd_stat_name(i), CNT_F_NO_RESET,
				   sipsd_stat_cbk, (void *)(uintptr_t)i, sd_stat_doc(i), 0)
				< 0) {
			LM_ERR("cannot register statistic %s\n", sd_stat_name(i));
			return -1;
		}
	}
	return 0;
}

static void sipsd_rpc_stats(rpc_t *rpc, void *ctx)
{
	uint64_t v;
	sd_result r;
	size_t i;
	void *th;

	if(_sipsd_ctx == NULL) {
		rpc->fault(ctx, 500, "sipsd not initialized");
		return;
	}
	if(rpc->add(ctx, "{", &th) < 0) {
		rpc->fault(ctx, 500, "cannot create the reply");
		return;
	}
	for(i = 0; i < sd_stat_count(); i++) {
		r = sd_stat_value(_sipsd_ctx, i, &v);
		if(r != SD_OK) {
			rpc->fault(ctx, 500, "%s", sd_strerror(r));
			return;
		}
		if(rpc->struct_add(th, "j", sd_stat_name(i), (unsigned long)v) < 0) {
			rpc->fault(ctx, 500, "cannot fill the reply");
			return;
		}
	}
}

void sipsd_rpc_rows(rpc_t *rpc, void *ctx, sd_result r, const void *snap,
		size_t rows, uint32_t fields, const char *(*field_name)(uint32_t),
		sipsd_rpc_get_f get)
{
	size_t i;
	uint32_t f;
	sd_str v;
	str sv;
	void *th;

	if(r != SD_OK) {
		rpc->fault(ctx, 500, "%s", sd_strerror(r));
		return;
	}
	for(i = 0; i < rows; i++) {
		if(rpc->add(ctx, "{", &th) < 0) {
			rpc->fault(ctx, 500, "cannot create the reply");
			return;
		}
		for(f = 0; f < fields; f++) {
			if(get(snap, i, f, &v) != SD_OK)
				continue;
			sipsd_str_from_sd(&v, &sv);
			if(rpc->struct_add(th, "S", field_name(f), &sv) < 0)
				break;
		}
	}
}

static void sipsd_rpc_reload(rpc_t *rpc, void *ctx)
{
	sd_result r;

	if(_sipsd_ctx == NULL) {
		rpc->fault(ctx, 500, "sipsd not initialized");
		return;
	}
	r = sd_reload(_sipsd_ctx);
	if(r != SD_OK) {
		LM_ERR("key reload failed: %s (%u)\n", sd_strerror(r), (unsigned)r);
		rpc->fault(ctx, 500, "reload failed: %s", sd_strerror(r));
		return;
	}
	LM_INFO("keys reloaded\n");
	rpc->rpl_printf(ctx, "Ok. Keys reloaded.");
}

/* ---------------------------------------------------------------------- */
/* KEMI                                                                   */

/* clang-format off */
static sr_kemi_t sr_kemi_sipsd_exports[] = {
	{ str_init("sipsd"), str_init("sd_should_decrypt"),
		SR_KEMIP_INT, ki_sd_should_decrypt,
		{ SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE,
			SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE }
	},
	{ str_init("sipsd"), str_init("sd_decrypt"),
		SR_KEMIP_INT, ki_sd_decrypt,
		{ SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE,
			SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE }
	},
	{ str_init("sipsd"), str_init("sd_replace_body"),
		SR_KEMIP_INT, ki_sd_replace_body,
		{ SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE,
			SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE }
	},
	{ str_init("sipsd"), str_init("sd_rotate"),
		SR_KEMIP_INT, ki_sd_rotate,
		{ SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE,
			SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE }
	},
	{ str_init("sipsd"), str_init("sd_dialog_end"),
		SR_KEMIP_INT, ki_sd_dialog_end,
		{ SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE,
			SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE }
	},
	{ str_init("sipsd"), str_init("sd_seal"),
		SR_KEMIP_INT, ki_sd_seal,
		{ SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE,
			SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE }
	},
	{ str_init("sipsd"), str_init("sd_open"),
		SR_KEMIP_INT, ki_sd_open,
		{ SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE,
			SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE }
	},
	{ str_init("sipsd"), str_init("sd_pinhole_open"),
		SR_KEMIP_INT, ki_sd_pinhole_open,
		{ SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE,
			SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE }
	},
	{ str_init("sipsd"), str_init("sd_pinhole_close"),
		SR_KEMIP_INT, ki_sd_pinhole_close,
		{ SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE,
			SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE }
	},
	{ str_init("sipsd"), str_init("sd_record_start"),
		SR_KEMIP_INT, ki_sd_record_start,
		{ SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE,
			SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE }
	},
	{ str_init("sipsd"), str_init("sd_record_stop"),
		SR_KEMIP_INT, ki_sd_record_stop,
		{ SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE,
			SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE }
	},
	{ str_init("sipsd"), str_init("sd_get"),
		SR_KEMIP_XVAL, ki_sd_get,
		{ SR_KEMIP_STR, SR_KEMIP_NONE, SR_KEMIP_NONE,
			SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE }
	},

	{ {0, 0}, {0, 0}, 0, NULL, { 0, 0, 0, 0, 0, 0 } }
};
/* clang-format on */

int mod_register(char *path, int *dlflags, void *p1, void *p2)
{
	sr_kemi_modules_add(sr_kemi_sipsd_exports);
	return 0;
}
