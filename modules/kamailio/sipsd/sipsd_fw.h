/**
 * sipsd - firewall pinholes for the media of the disclosed SDP (modparam pinhole_agent):
 * sd_pinhole_open(), sd_pinhole_close(), the refresh timer process, the close at dialog
 * end, RPC sipsd.pinholes. The logic is in libsipsd (sd_pinhole_*); sipsd_fw.c adapts it.
 *
 * SPDX-License-Identifier: MIT OR Apache-2.0
 */

#ifndef SIPSD_FW_H
#define SIPSD_FW_H

#include "core/parser/msg_parser.h"
#include "core/rpc.h"
#include "core/str.h"

/* modparam pinhole_on_failure: forward (default) or reject */
extern str sipsd_pinhole_on_failure;

int ki_sd_pinhole_open(sip_msg_t *msg);
int ki_sd_pinhole_close(sip_msg_t *msg);
int w_sd_pinhole_open(sip_msg_t *msg, char *p1, char *p2);
int w_sd_pinhole_close(sip_msg_t *msg, char *p1, char *p2);

/* mod_init: check pinhole_on_failure, reserve the refresh timer; 0 or -1 */
int sipsd_fw_init(void);
/* child_init of the main process: fork the refresh timer; 0 or -1 */
int sipsd_fw_child_init(int rank);
/* the dialog (Call-ID, caller's tag) ended by method and status (the BYE, the failed
 * INVITE and its final status; empty method: the dialog's timeout): delete its pinholes,
 * stop its recording */
void sipsd_fw_dialog_end(
		str *call_id, str *caller_tag, str *method, unsigned int status);

extern const char *sipsd_rpc_pinholes_doc[2];
void sipsd_rpc_pinholes(rpc_t *rpc, void *ctx);

#endif /* SIPSD_FW_H */
