/**
 * sipsd - what the module's files share (defined in sipsd_mod.c)
 *
 * The result of the last library call for one message, kept per process, and the
 * conversion between Kamailio's str and the library's sd_str.
 *
 * SPDX-License-Identifier: MIT OR Apache-2.0
 */

#ifndef SIPSD_MOD_H
#define SIPSD_MOD_H

#include "core/str.h"
#include "core/parser/msg_parser.h"

#include "sipsd.h"

/* Result of the last library call for one message, per process. Keyed by
 * message id + pid (msg_ctx_id_t) so nothing is ever shown for another one. */
typedef struct sipsd_last {
	msg_ctx_id_t mid;
	int valid;
	sd_result code;
	sd_plain *plain;       /* owned; freed when another message is handled */
	int has_generation;
	unsigned int generation;
	int body_replaced;
} sipsd_last_t;

/* the state of this message, or NULL if the last call was for another one */
sipsd_last_t *sipsd_last_get(sip_msg_t *msg);

/* a view of a library string as a Kamailio str (not copied, not NUL-terminated) */
static inline void sipsd_str_from_sd(const sd_str *in, str *out)
{
	out->s = (char *)in->ptr;
	out->len = (in->ptr != NULL) ? (int)in->len : 0;
}

#endif /* SIPSD_MOD_H */
