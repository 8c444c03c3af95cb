/**
 * sipsd - recording of dialogs (modparams record, record_recorder, record_kek):
 * sd_record_start(), sd_record_stop(), RPC sipsd.recordings. The key messages to the
 * recorder are sent by libsipsd from sd_pinhole_open() and the pinhole close; sipsd_rec.c
 * only adapts the library's sd_record_* functions.
 *
 * SPDX-License-Identifier: MIT OR Apache-2.0
 */

#ifndef SIPSD_REC_H
#define SIPSD_REC_H

#include "core/parser/msg_parser.h"
#include "core/rpc.h"

int ki_sd_record_start(sip_msg_t *msg);
int ki_sd_record_stop(sip_msg_t *msg);
int w_sd_record_start(sip_msg_t *msg, char *p1, char *p2);
int w_sd_record_stop(sip_msg_t *msg, char *p1, char *p2);

extern const char *sipsd_rpc_recordings_doc[2];
void sipsd_rpc_recordings(rpc_t *rpc, void *ctx);

#endif /* SIPSD_REC_H */
