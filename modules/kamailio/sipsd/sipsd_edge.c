/**
 * sipsd - the edge role: sd_seal() and sd_open() (docs/MODULE.md, section 4.6 and 4.7).
 *
 * An edge stands between user agents that do not speak S/MIME and the network: it seals
 * the body a local user agent sends (sd_seal, request_route for requests, onreply_route for
 * its replies) and opens the body one receives (sd_open). Both replace the body and fix the
 * headers that describe it: Content-Type (set_body), Content-Length (the core, when the
 * message is built), Content-Transfer-Encoding, Content-Disposition and Disclose-To.
 *
 * A body that cannot be sealed never leaves in clear unless the library says the operator
 * allows it (SD_SENT_CLEAR): on any sealing error the body is removed from the message and a
 * request is answered (606 for a callee without a certificate, 500 otherwise, each with a
 * Warning), so a script that relays anyway relays no plaintext.
 *
 * SPDX-License-Identifier: MIT OR Apache-2.0
 */

#include <stdio.h>
#include <string.h>

#include "core/sr_module.h"
#include "core/dprint.h"
#include "core/route.h"
#include "core/data_lump.h"
#include "core/data_lump_rpl.h"
#include "core/mem/mem.h"
#include "core/parser/parse_from.h"
#include "core/parser/parse_to.h"
#include "core/parser/parse_cseq.h"
#include "core/parser/parse_uri.h"

#include "sipsd.h"
#include "sipsd_compat.h"
#include "sipsd_mod.h"
#include "sipsd_edge.h"

/* longest user@host taken from a From or To URI */
#define SIPSD_AOR_MAX 256

/* user@host of a URI into buf (an empty string when the URI has no user or is too long) */
static void sipsd_aor(sip_uri_t *u, char *buf, str *out)
{
	out->s = buf;
	out->len = 0;
	if(u == NULL || u->user.len <= 0 || u->host.len <= 0
			|| u->user.len + 1 + u->host.len >= SIPSD_AOR_MAX)
		return;
	memcpy(buf, u->user.s, u->user.len);
	buf[u->user.len] = '@';
	memcpy(buf + u->user.len + 1, u->host.s, u->host.len);
	out->len = u->user.len + 1 + u->host.len;
}

/* "Name: value\r\n" added to the message; 0 on success */
static int sipsd_add_hdr(sip_msg_t *msg, const char *name, const sd_str *value)
{
	str hf;
	int n;

	hf.len = (int)strlen(name) + 2 + (int)value->len + 2;
	hf.s = (char *)pkg_malloc(hf.len + 1);
	if(hf.s == NULL) {
		PKG_MEM_ERROR;
		return -1;
	}
	n = snprintf(hf.s, hf.len + 1, "%s: %.*s\r\n", name, (int)value->len,
			(const char *)value->ptr);
	if(n != hf.len || _sipsd_textops.append_hf(msg, &hf) < 0) {
		pkg_free(hf.s);
		return -1;
	}
	pkg_free(hf.s); /* textops copied it into its lump */
	return 0;
}

/* the headers that describe a body which is about to be replaced */
static int sipsd_del_body_hdrs(sip_msg_t *msg)
{
	if(sipsd_del_hdr(msg, SIPSD_HDR_CTE, SIPSD_HDR_CTE_LEN) < 0
			|| sipsd_del_hdr(msg, SIPSD_HDR_DISCLOSE, SIPSD_HDR_DISCLOSE_LEN) < 0)
		return -1;
	if(msg->content_disposition != NULL
			&& del_lump(msg, msg->content_disposition->name.s - msg->buf,
					   msg->content_disposition->len, 0)
					   == NULL)
		return -1;
	return 0;
}

/* fail closed: the body goes, so that nothing unsealed can be relayed */
static void sipsd_drop_body(sip_msg_t *msg, const sipsd_msg_t *sm)
{
	if(sm->m.body.len == 0 || sm->m.body.ptr == NULL)
		return;
	if(del_lump(msg, (const char *)sm->m.body.ptr - msg->buf,
			   (int)sm->m.body.len, 0)
			== NULL)
		LM_ERR("cannot remove the body (call %.*s)\n", sm->call_id.len,
				sm->call_id.s);
}

/* answer a request (not ACK or CANCEL) statelessly with a Warning naming the reason */
static void sipsd_answer(sip_msg_t *msg, int code, char *reason, sd_result r)
{
	char buf[256];
	str rs;
	int n;

	if(msg->first_line.type != SIP_REQUEST
			|| (msg->REQ_METHOD & (METHOD_ACK | METHOD_CANCEL))
			|| !is_route_type(REQUEST_ROUTE))
		return;
	if(!sipsd_sl_loaded) {
		LM_ERR("cannot answer %d: the sl module is not loaded\n", code);
		return;
	}
	n = snprintf(buf, sizeof(buf), "Warning: 399 %.*s \"%s\"\r\n",
			msg->rcv.bind_address ? msg->rcv.bind_address->address_str.len : 5,
			msg->rcv.bind_address ? msg->rcv.bind_address->address_str.s : "sipsd",
			sd_strerror(r));
	if(n > 0 && n < (int)sizeof(buf)
			&& add_lump_rpl(msg, buf, n, LUMP_RPL_HDR) == NULL)
		LM_ERR("cannot add the Warning header\n");
	rs.s = reason;
	rs.len = strlen(reason);
	if(sipsd_slb.freply(msg, code, &rs) < 0)
		LM_ERR("cannot send %d reply\n", code);
}

/* the body and headers of the sealed message */
static int sipsd_apply_sealed(sip_msg_t *msg, sd_sealed *s)
{
	sd_str body, ct, v;
	str nb, nct;

	if(sd_sealed_get(s, SD_SEAL_BODY, &body) != SD_OK
			|| sd_sealed_get(s, SD_SEAL_CONTENT_TYPE, &ct) != SD_OK)
		return -1;
	if(sipsd_del_body_hdrs(msg) < 0)
		return -1;
	if(sd_sealed_get(s, SD_SEAL_TRANSFER_ENCODING, &v) == SD_OK
			&& sipsd_add_hdr(msg, SIPSD_HDR_CTE, &v) < 0)
		return -1;
	if(sd_sealed_get(s, SD_SEAL_DISPOSITION, &v) == SD_OK
			&& sipsd_add_hdr(msg, "Content-Disposition", &v) < 0)
		return -1;
	if(sd_sealed_get(s, SD_SEAL_DISCLOSE_TO, &v) == SD_OK
			&& sipsd_add_hdr(msg, SIPSD_HDR_DISCLOSE, &v) < 0)
		return -1;
	sipsd_str_from_sd(&body, &nb);
	sipsd_str_from_sd(&ct, &nct);
	return _sipsd_textops.set_body(msg, &nb, &nct) < 0 ? -1 : 0;
}

/* The start of sd_seal() and sd_open(): the message gathered into sm and its state, or NULL
 * with *rc the return code when there is nothing more to do (an error, or a body this
 * message already had replaced). */
static sipsd_last_t *sipsd_edge_begin(
		sip_msg_t *msg, sipsd_msg_t *sm, const char *what, int *rc)
{
	sipsd_last_t *l;

	*rc = SIPSD_RC_ERROR;
	if(!_sipsd_textops_loaded) {
		LM_ERR("%s needs the textops module\n", what);
		return NULL;
	}
	if(sipsd_msg_build(msg, sm, SIPSD_MSG_BODY) < 0) {
		l = sipsd_last_for(msg);
		l->code = SD_ERR_INVALID_MESSAGE;
		return NULL;
	}
	l = sipsd_last_for(msg);
	if(l->body_replaced) {
		LM_DBG("body already replaced (call %.*s)\n", sm->call_id.len,
				sm->call_id.s);
		sipsd_msg_free(sm);
		*rc = SIPSD_RC_YES;
		return NULL;
	}
	return l;
}

int ki_sd_seal(sip_msg_t *msg)
{
	sipsd_msg_t sm;
	sipsd_last_t *l;
	sd_parties parties;
	sd_sealed *sealed = NULL;
	sd_result r;
	sd_str v;
	sip_uri_t *from, *to;
	char local_buf[SIPSD_AOR_MAX], peer_buf[SIPSD_AOR_MAX];
	str local, peer, cseq = STR_NULL;
	int request, rc;

	l = sipsd_edge_begin(msg, &sm, "sd_seal", &rc);
	if(l == NULL)
		return rc;
	request = (msg->first_line.type == SIP_REQUEST);
	from = parse_from_uri(msg);
	to = parse_to_uri(msg);
	/* a request goes from its From to its To; a reply comes from its To */
	sipsd_aor(request ? from : to, local_buf, &local);
	sipsd_aor(request ? to : from, peer_buf, &peer);
	if(msg->cseq != NULL && msg->cseq->parsed != NULL)
		cseq = get_cseq(msg)->number;
	parties.local = sipsd_sdstr(&local);
	parties.peer = sipsd_sdstr(&peer);
	parties.cseq = sipsd_sdstr(&cseq);

	r = sd_seal(_sipsd_ctx, &sm.m, &parties, &sealed);
	sd_sealed_free(l->sealed);
	l->sealed = NULL;
	l->code = r;
	switch(r) {
		case SD_OK:
			if(sipsd_apply_sealed(msg, sealed) < 0) {
				LM_ERR("cannot replace the body by the sealed one (call %.*s)\n",
						sm.call_id.len, sm.call_id.s);
				sd_sealed_free(sealed);
				l->code = SD_ERR_INVALID_MESSAGE;
				sipsd_drop_body(msg, &sm);
				sipsd_answer(msg, 500, "Server Internal Error", l->code);
				sipsd_msg_free(&sm);
				return SIPSD_RC_ERROR;
			}
			l->sealed = sealed;
			l->generation = sd_sealed_generation(sealed);
			l->has_generation = 1;
			l->body_replaced = 1;
			if(sd_sealed_get(sealed, SD_SEAL_SEALING, &v) == SD_OK)
				LM_DBG("body sealed: %.*s, generation %u (call %.*s)\n",
						(int)v.len, (const char *)v.ptr, l->generation,
						sm.call_id.len, sm.call_id.s);
			break;
		case SD_NOTHING_TO_SEAL:
			LM_DBG("nothing to seal (call %.*s)\n", sm.call_id.len,
					sm.call_id.s);
			break;
		case SD_SENT_CLEAR:
			LM_WARN("body sent in clear: %s (call %.*s, to %.*s)\n",
					sd_strerror(r), sm.call_id.len, sm.call_id.s, peer.len,
					peer.s);
			break;
		default:
			sipsd_log_failure("seal", &sm.call_id, r);
			sipsd_drop_body(msg, &sm);
			if(r == SD_ERR_NO_PEER_CERT)
				sipsd_answer(msg, 606, "Not Acceptable", r);
			else
				sipsd_answer(msg, 500, "Server Internal Error", r);
			break;
	}
	sipsd_msg_free(&sm);
	switch(r) {
		case SD_OK:
			return SIPSD_RC_YES;
		case SD_SENT_CLEAR:
			return 2;
		case SD_NOTHING_TO_SEAL:
			return SIPSD_RC_NOT_ENCRYPTED;
		default:
			return SIPSD_RC_ERROR;
	}
}

int w_sd_seal(sip_msg_t *msg, char *p1, char *p2)
{
	return ki_sd_seal(msg);
}

int ki_sd_open(sip_msg_t *msg)
{
	sipsd_msg_t sm;
	sipsd_last_t *l;
	sd_plain *plain = NULL;
	sd_result r;
	sd_str vb, vct;
	str nb, nct;
	int rc;

	l = sipsd_edge_begin(msg, &sm, "sd_open", &rc);
	if(l == NULL)
		return rc;
	r = sd_open(_sipsd_ctx, &sm.m, &plain);
	sd_plain_free(l->plain);
	l->plain = NULL;
	l->has_generation = 0;
	l->code = r;
	switch(r) {
		case SD_OK:
			l->plain = plain;
			l->generation = sd_plain_generation(plain);
			l->has_generation = 1;
			if(sd_plain_get(plain, 0, SD_FIELD_BODY, &vb) != SD_OK
					|| sd_plain_get(plain, 0, SD_FIELD_CONTENT_TYPE, &vct) != SD_OK
					|| vb.len == 0 || vct.len == 0) {
				LM_ERR("opened part has no body or content type (call %.*s)\n",
						sm.call_id.len, sm.call_id.s);
				l->code = SD_ERR_BODY_MALFORMED;
				sipsd_msg_free(&sm);
				return SIPSD_RC_ERROR;
			}
			sipsd_str_from_sd(&vb, &nb);
			sipsd_str_from_sd(&vct, &nct);
			if(sipsd_del_body_hdrs(msg) < 0
					|| _sipsd_textops.set_body(msg, &nb, &nct) < 0) {
				LM_ERR("cannot replace the body by the opened one (call %.*s)\n",
						sm.call_id.len, sm.call_id.s);
				sipsd_msg_free(&sm);
				return SIPSD_RC_ERROR;
			}
			l->body_replaced = 1;
			LM_DBG("body opened: %.*s, generation %u (call %.*s)\n", nct.len,
					nct.s, l->generation, sm.call_id.len, sm.call_id.s);
			if(sipsd_log_plaintext)
				LM_INFO("plaintext (call %.*s): [%.*s]\n", sm.call_id.len,
						sm.call_id.s, nb.len, nb.s);
			break;
		case SD_NOT_FOR_ME:
		case SD_NOT_ENCRYPTED:
			sd_plain_free(plain);
			LM_DBG("not opened (call %.*s): %s\n", sm.call_id.len,
					sm.call_id.s, sd_strerror(r));
			break;
		default:
			sd_plain_free(plain);
			sipsd_log_failure("open", &sm.call_id, r);
			if(sipsd_reject_on_error) {
				if(r == SD_ERR_SIGNATURE_INVALID || r == SD_ERR_SIGNER_UNKNOWN
						|| r == SD_ERR_UNSIGNED)
					sipsd_answer(msg, 403, "Forbidden", r);
				else
					sipsd_answer(msg, 493, "Undecipherable", r);
			}
			break;
	}
	sipsd_msg_free(&sm);
	return sipsd_rc(r);
}

int w_sd_open(sip_msg_t *msg, char *p1, char *p2)
{
	return ki_sd_open(msg);
}
