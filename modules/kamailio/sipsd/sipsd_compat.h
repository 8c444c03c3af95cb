/**
 * sipsd - what differs between the Kamailio versions the module builds against
 *
 * The module is built against Kamailio 5.6 (Debian 12) and 6.0 (Debian 13). sipsd_mod.c is
 * written against 5.6's names; this header supplies, for newer cores, whatever 5.6 name they
 * dropped, so the module source stays one file for both. Included once, after the core
 * headers.
 *
 * SPDX-License-Identifier: MIT OR Apache-2.0
 */

#ifndef SIPSD_COMPAT_H
#define SIPSD_COMPAT_H

#include "core/sr_module.h"

/* Kamailio 6.0 removed the old modparam flag aliases of core/sr_module.h (STR_PARAM,
 * INT_PARAM, USE_FUNC_PARAM); PARAM_USE_FUNC, which 5.6 defines too, stays. */
#ifndef USE_FUNC_PARAM
#define USE_FUNC_PARAM PARAM_USE_FUNC
#endif

#endif /* SIPSD_COMPAT_H */
