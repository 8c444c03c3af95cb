/**
 * sipsd - the edge role (modparam role=edge): sd_seal() seals the body a local user agent
 * sends, sd_open() opens the body it receives, each replacing the body and the headers that
 * describe it. The logic is in libsipsd (sd_seal, sd_open); sipsd_edge.c only adapts it.
 *
 * SPDX-License-Identifier: MIT OR Apache-2.0
 */

#ifndef SIPSD_EDGE_H
#define SIPSD_EDGE_H

#include "core/parser/msg_parser.h"

int ki_sd_seal(sip_msg_t *msg);
int ki_sd_open(sip_msg_t *msg);
int w_sd_seal(sip_msg_t *msg, char *p1, char *p2);
int w_sd_open(sip_msg_t *msg, char *p1, char *p2);

#endif /* SIPSD_EDGE_H */
