/**
 * sipsd - the $sd(name) pseudo-variable and KSR.sipsd.sd_get(name)
 *
 * Names, read from the first decrypted part of the current message (sd_decrypt,
 * sd_open) or, after sd_seal, from the sealed body:
 *
 *   NAME                        a field of the part (sd_field_name: body, media_addr,
 *                               media_count, ...), of the sealed body (sd_seal_field_name:
 *                               sealing, signer, ...) or of the last call (code, error,
 *                               generation, pinholes: what sd_pinhole_open confirmed)
 *   media[I]/NAME               field NAME (sd_media_field_name) of media stream I
 *   media[I]/crypto[J]/NAME     field NAME (sd_crypto_field_name) of its a=crypto J
 *
 * I and J are decimal, from 0. A name holding pseudo-variables, e.g.
 * $sd(media[$var(i)]/addr), is printed and read at each access. The field names come
 * from the library's tables, so a field the library adds needs no change here. This
 * file never logs a value: SDES keys are read by the script, never written to the log
 * by the module.
 *
 * SPDX-License-Identifier: MIT OR Apache-2.0
 */

#include <string.h>

#include "core/dprint.h"
#include "core/mem/mem.h"
#include "core/pvar.h"
#include "core/kemi.h"

#include "sipsd.h"
#include "sipsd_mod.h"
#include "sipsd_pv.h"

/* what a name reads */
enum sipsd_pv_kind
{
	SIPSD_PV_CALL = 0, /* of the last call: code, error, generation */
	SIPSD_PV_PART,     /* sd_field of the part, or sd_seal_field of the sealed body */
	SIPSD_PV_MEDIA,    /* sd_media_field of a stream */
	SIPSD_PV_CRYPTO,   /* sd_crypto_field of an a=crypto of a stream */
	SIPSD_PV_DYNAMIC   /* a name with pseudo-variables, parsed at each read */
};

/* the values of the last call, not of the decrypted part */
enum sipsd_pv_call
{
	SIPSD_PV_CODE = 0,
	SIPSD_PV_ERROR,
	SIPSD_PV_GENERATION,
	SIPSD_PV_PINHOLES
};

static const str _sipsd_pv_call_names[] = {
	str_init("code"), str_init("error"), str_init("generation"),
		str_init("pinholes")};

/* a parsed name */
typedef struct sipsd_pv_name {
	int kind;
	uint32_t field; /* enum sipsd_pv_call, sd_field, sd_media_field or sd_crypto_field */
	int has_part;   /* SIPSD_PV_PART: field is an sd_field */
	int has_sealed; /* SIPSD_PV_PART: sealed is an sd_seal_field */
	uint32_t sealed;
	unsigned int media;
	unsigned int crypto;
	pv_elem_t *format; /* SIPSD_PV_DYNAMIC */
} sipsd_pv_name_t;

#define SIPSD_VAL_NULL 0
#define SIPSD_VAL_STR 1
#define SIPSD_VAL_INT 2

/* the field of a library name table called `name`; -1 if none */
static int sipsd_field_of(const str *name, uint32_t count,
		const char *(*name_of)(uint32_t), uint32_t *field)
{
	uint32_t f;
	const char *n;

	for(f = 0; f < count; f++) {
		n = name_of(f);
		if(n != NULL && strlen(n) == (size_t)name->len
				&& strncmp(n, name->s, name->len) == 0) {
			*field = f;
			return 0;
		}
	}
	return -1;
}

/* `prefix[N]/` at the start of *s: N into *index, *s advanced past it; -1 if not */
static int sipsd_index(str *s, const char *prefix, unsigned int *index)
{
	int plen = strlen(prefix), i;
	unsigned int n = 0;

	if(s->len < plen + 3 || strncmp(s->s, prefix, plen) != 0 || s->s[plen] != '[')
		return -1;
	for(i = plen + 1; i < s->len && s->s[i] >= '0' && s->s[i] <= '9'; i++) {
		if(i - plen > 9) /* at most 9 digits */
			return -1;
		n = n * 10 + (unsigned int)(s->s[i] - '0');
	}
	if(i == plen + 1 || i + 1 >= s->len || s->s[i] != ']' || s->s[i + 1] != '/')
		return -1;
	*index = n;
	s->s += i + 2;
	s->len -= i + 2;
	return 0;
}

/* parses a name without pseudo-variables; 0, or -1 if it names nothing */
static int sipsd_pv_name_parse(const str *in, sipsd_pv_name_t *n)
{
	str rest = *in;
	unsigned int i;

	memset(n, 0, sizeof(*n));
	if(in->s == NULL || in->len <= 0)
		return -1;
	if(sipsd_index(&rest, "media", &n->media) == 0) {
		if(sipsd_index(&rest, "crypto", &n->crypto) == 0) {
			n->kind = SIPSD_PV_CRYPTO;
			return sipsd_field_of(&rest, sd_crypto_field_count(),
					sd_crypto_field_name, &n->field);
		}
		n->kind = SIPSD_PV_MEDIA;
		return sipsd_field_of(
				&rest, sd_media_field_count(), sd_media_field_name, &n->field);
	}
	for(i = 0; i < sizeof(_sipsd_pv_call_names) / sizeof(_sipsd_pv_call_names[0]);
			i++) {
		if(_sipsd_pv_call_names[i].len == in->len
				&& strncmp(_sipsd_pv_call_names[i].s, in->s, in->len) == 0) {
			n->kind = SIPSD_PV_CALL;
			n->field = i;
			return 0;
		}
	}
	/* a name can be both, e.g. content_type: the part's after sd_decrypt or sd_open,
	 * the sealed body's after sd_seal */
	n->kind = SIPSD_PV_PART;
	n->has_part = sipsd_field_of(in, sd_field_count(), sd_field_name, &n->field) == 0;
	n->has_sealed = sipsd_field_of(in, sd_seal_field_count(), sd_seal_field_name,
							&n->sealed) == 0;
	return (n->has_part || n->has_sealed) ? 0 : -1;
}

/* value of name n for msg: SIPSD_VAL_NULL, _STR (in *s) or _INT (in *num) */
static int sipsd_value(sip_msg_t *msg, const sipsd_pv_name_t *n, str *s, long *num)
{
	sipsd_last_t *l;
	sd_result r;
	sd_str v = {NULL, 0};

	l = (msg != NULL) ? sipsd_last_get(msg) : NULL;
	if(l == NULL)
		return SIPSD_VAL_NULL;
	switch(n->kind) {
		case SIPSD_PV_CALL:
			switch(n->field) {
				case SIPSD_PV_CODE:
					*num = (long)l->code;
					return SIPSD_VAL_INT;
				case SIPSD_PV_ERROR:
					s->s = (char *)sd_strerror(l->code);
					s->len = (s->s != NULL) ? strlen(s->s) : 0;
					return (s->len > 0) ? SIPSD_VAL_STR : SIPSD_VAL_NULL;
				case SIPSD_PV_GENERATION:
					if(!l->has_generation)
						return SIPSD_VAL_NULL;
					*num = (long)l->generation;
					return SIPSD_VAL_INT;
				case SIPSD_PV_PINHOLES:
					if(!l->has_pinholes)
						return SIPSD_VAL_NULL;
					*num = (long)l->pinholes;
					return SIPSD_VAL_INT;
			}
			return SIPSD_VAL_NULL;
		case SIPSD_PV_PART:
			if(l->plain != NULL || l->sealed == NULL)
				r = n->has_part ? sd_plain_get(l->plain, 0, n->field, &v)
								: SD_ERR_INVALID_ARGUMENT;
			else
				r = n->has_sealed ? sd_sealed_get(l->sealed, n->sealed, &v)
								  : SD_ERR_INVALID_ARGUMENT;
			break;
		case SIPSD_PV_MEDIA:
			r = sd_plain_media_get(l->plain, 0, n->media, n->field, &v);
			break;
		case SIPSD_PV_CRYPTO:
			r = sd_plain_crypto_get(
					l->plain, 0, n->media, n->crypto, n->field, &v);
			break;
		default:
			return SIPSD_VAL_NULL;
	}
	/* no sd_plain (nothing decrypted) gives SD_ERR_NULL_PARAMETER: $null too */
	if(r != SD_OK || v.len == 0 || v.ptr == NULL)
		return SIPSD_VAL_NULL;
	sipsd_str_from_sd(&v, s);
	return SIPSD_VAL_STR;
}

/* the name to read for param: its parsed name, or a dynamic one printed for msg now */
static int sipsd_pv_name_of(
		sip_msg_t *msg, pv_param_t *param, sipsd_pv_name_t *tmp, sipsd_pv_name_t **n)
{
	str printed;

	*n = (sipsd_pv_name_t *)param->pvn.u.dname;
	if(*n == NULL)
		return -1;
	if((*n)->kind != SIPSD_PV_DYNAMIC)
		return 0;
	if(pv_printf_s(msg, (*n)->format, &printed) != 0)
		return -1;
	if(sipsd_pv_name_parse(&printed, tmp) < 0) {
		LM_ERR("$sd(%.*s): no such name\n", printed.len, printed.s);
		return -1;
	}
	*n = tmp;
	return 0;
}

int pv_get_sd(sip_msg_t *msg, pv_param_t *param, pv_value_t *res)
{
	sipsd_pv_name_t tmp, *n;
	str s = STR_NULL;
	long num = 0;

	if(param == NULL || sipsd_pv_name_of(msg, param, &tmp, &n) < 0)
		return pv_get_null(msg, param, res);
	switch(sipsd_value(msg, n, &s, &num)) {
		case SIPSD_VAL_STR:
			return pv_get_strval(msg, param, res, &s);
		case SIPSD_VAL_INT:
			return pv_get_sintval(msg, param, res, num);
	}
	return pv_get_null(msg, param, res);
}

static void sipsd_pv_name_free(void *p)
{
	pv_name_t *pn = (pv_name_t *)p;
	sipsd_pv_name_t *n;

	if(pn == NULL || pn->u.dname == NULL)
		return;
	n = (sipsd_pv_name_t *)pn->u.dname;
	if(n->format != NULL)
		pv_elem_free_all(n->format);
	pkg_free(n);
	pn->u.dname = NULL;
}

int pv_parse_sd_name(pv_spec_t *sp, str *in)
{
	sipsd_pv_name_t *n;

	if(sp == NULL || in == NULL || in->s == NULL || in->len <= 0)
		return -1;
	n = (sipsd_pv_name_t *)pkg_malloc(sizeof(*n));
	if(n == NULL) {
		PKG_MEM_ERROR;
		return -1;
	}
	if(memchr(in->s, '$', in->len) != NULL) {
		memset(n, 0, sizeof(*n));
		n->kind = SIPSD_PV_DYNAMIC;
		if(pv_parse_format(in, &n->format) < 0 || n->format == NULL) {
			LM_ERR("$sd(%.*s): bad pseudo-variable in the name\n", in->len, in->s);
			pkg_free(n);
			return -1;
		}
	} else if(sipsd_pv_name_parse(in, n) < 0) {
		LM_ERR("unknown $sd name: %.*s\n", in->len, in->s);
		pkg_free(n);
		return -1;
	}
	sp->pvp.pvn.type = PV_NAME_OTHER;
	sp->pvp.pvn.u.dname = (void *)n;
	sp->pvp.pvn.nfree = sipsd_pv_name_free;
	return 0;
}

static sr_kemi_xval_t _sr_kemi_sipsd_xval = {0};

sr_kemi_xval_t *ki_sd_get(sip_msg_t *msg, str *name)
{
	sipsd_pv_name_t n;
	str s = STR_NULL;
	long num = 0;

	memset(&_sr_kemi_sipsd_xval, 0, sizeof(sr_kemi_xval_t));
	if(name == NULL || sipsd_pv_name_parse(name, &n) < 0) {
		LM_ERR("unknown sd_get name: %.*s\n", name ? name->len : 0,
				(name && name->s) ? name->s : "");
		sr_kemi_xval_null(&_sr_kemi_sipsd_xval, SR_KEMI_XVAL_NULL_NONE);
		return &_sr_kemi_sipsd_xval;
	}
	switch(sipsd_value(msg, &n, &s, &num)) {
		case SIPSD_VAL_STR:
			_sr_kemi_sipsd_xval.vtype = SR_KEMIP_STR;
			_sr_kemi_sipsd_xval.v.s = s;
			break;
		case SIPSD_VAL_INT:
			_sr_kemi_sipsd_xval.vtype = SR_KEMIP_INT;
			_sr_kemi_sipsd_xval.v.n = (int)num;
			break;
		default:
			sr_kemi_xval_null(&_sr_kemi_sipsd_xval, SR_KEMI_XVAL_NULL_NONE);
	}
	return &_sr_kemi_sipsd_xval;
}
