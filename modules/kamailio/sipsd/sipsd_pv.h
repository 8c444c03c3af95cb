/**
 * sipsd - the $sd(name) pseudo-variable and its KEMI twin KSR.sipsd.sd_get(name)
 *
 * SPDX-License-Identifier: MIT OR Apache-2.0
 */

#ifndef SIPSD_PV_H
#define SIPSD_PV_H

#include "core/pvar.h"
#include "core/kemi.h"

/* fixup of $sd(name): the name is checked once here, or at each read when it holds
 * pseudo-variables ($sd(media[$var(i)]/addr)) */
int pv_parse_sd_name(pv_spec_t *sp, str *in);

/* the value of $sd(name) for msg ($null when absent) */
int pv_get_sd(sip_msg_t *msg, pv_param_t *param, pv_value_t *res);

/* KSR.sipsd.sd_get(name): the value $sd(name) has (names without pseudo-variables) */
sr_kemi_xval_t *ki_sd_get(sip_msg_t *msg, str *name);

#endif /* SIPSD_PV_H */
