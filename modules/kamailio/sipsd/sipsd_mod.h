/**
 * sipsd - what the module's files share: the library context, the result of the last
 * library call for one message (which $sd(...) reads), gathering a SIP message into an
 * sd_msg, and the helpers that change the forwarded message. Defined in sipsd_mod.c.
 *
 * SPDX-License-Identifier: MIT OR Apache-2.0
 */

#ifndef SIPSD_MOD_H
#define SIPSD_MOD_H

#include "core/str.h"
#include "core/rpc.h"
#include "core/parser/msg_parser.h"
#include "modules/textops/api.h"
#include "modules/sl/sl.h"

#include "sipsd.h"

/* script return codes; 0 would stop the routing script, so it is never used */
#define SIPSD_RC_YES 1
#define SIPSD_RC_NOT_FOR_ME -1
#define SIPSD_RC_NOT_ENCRYPTED -2
#define SIPSD_RC_ERROR -3

#define SIPSD_HDR_CTE "Content-Transfer-Encoding"
#define SIPSD_HDR_CTE_LEN (sizeof(SIPSD_HDR_CTE) - 1)
#define SIPSD_HDR_DISCLOSE "Disclose-To"
#define SIPSD_HDR_DISCLOSE_LEN (sizeof(SIPSD_HDR_DISCLOSE) - 1)

/* Result of the last library call for one message, per process. Keyed by
 * message id + pid (msg_ctx_id_t) so nothing is ever shown for another one. */
typedef struct sipsd_last {
	msg_ctx_id_t mid;
	int valid;
	sd_result code;
	sd_plain *plain;   /* owned; freed when another message is handled */
	sd_sealed *sealed; /* owned (sd_seal); freed likewise */
	int has_generation;
	unsigned int generation;
	int body_replaced;
	int has_pinholes;     /* sd_pinhole_open ran for this message */
	sd_result pinhole_code;
	unsigned int pinholes; /* pinholes the agent confirmed for it */
} sipsd_last_t;

/* sd_msg with the storage it borrows from besides the SIP buffer */
typedef struct sipsd_msg {
	sd_msg m;
	str call_id;
	char *disclose_buf; /* pkg memory: all Disclose-To values joined */
} sipsd_msg_t;

extern sd_ctx *_sipsd_ctx;
extern textops_api_t _sipsd_textops;
extern int _sipsd_textops_loaded;
extern sl_api_t sipsd_slb;
extern int sipsd_sl_loaded;
extern int sipsd_reject_on_error;
extern int sipsd_log_plaintext;

/* a Kamailio str as a library string (borrowed for the call) */
static inline sd_str sipsd_sdstr(const str *s)
{
	sd_str r;
	r.ptr = (s != NULL && s->len > 0) ? (const uint8_t *)s->s : NULL;
	r.len = (s != NULL && s->len > 0) ? (size_t)s->len : 0;
	return r;
}

/* a view of a library string as a Kamailio str (not copied, not NUL-terminated) */
static inline void sipsd_str_from_sd(const sd_str *in, str *out)
{
	out->s = (char *)in->ptr;
	out->len = (in->ptr != NULL) ? (int)in->len : 0;
}

/* script return code of a library result */
int sipsd_rc(sd_result r);
/* the state of this message, or NULL if the last call was for another one */
sipsd_last_t *sipsd_last_get(sip_msg_t *msg);
/* the state of this message, starting a fresh one when msg is a new message */
sipsd_last_t *sipsd_last_for(sip_msg_t *msg);
/* gather the fields of msg the library needs; 0 on success, -1 on error */
/* what sipsd_msg_build reads: the dialog's identity (Call-ID, tags, URIs, method, status),
 * or that and the body with its headers */
#define SIPSD_MSG_IDS 0
#define SIPSD_MSG_BODY 1
int sipsd_msg_build(sip_msg_t *msg, sipsd_msg_t *sm, int what);
void sipsd_msg_free(sipsd_msg_t *sm);
/* one header by name (HDR_OTHER_T) from start on, or NULL */
hdr_field_t *sipsd_find_hdr(
		sip_msg_t *msg, hdr_field_t *start, const char *name, int len);
/* remove every header named name (HDR_OTHER_T) from the forwarded message */
int sipsd_del_hdr(sip_msg_t *msg, const char *name, int len);
/* a failure, logged at most SIPSD_LOG_BURST times per second and process */
void sipsd_log_failure(const char *what, str *call_id, sd_result r);

/* field of row i of a library snapshot (sd_pinholes_get, sd_recordings_get) */
typedef sd_result (*sipsd_rpc_get_f)(
		const void *snap, size_t i, uint32_t field, sd_str *out);
/* the RPC reply for a snapshot of rows rows: r, the snapshot call's result, as a fault,
 * else a struct per row with a member per field the row has, named by field_name */
void sipsd_rpc_rows(rpc_t *rpc, void *ctx, sd_result r, const void *snap,
		size_t rows, uint32_t fields, const char *(*field_name)(uint32_t),
		sipsd_rpc_get_f get);

#endif /* SIPSD_MOD_H */
