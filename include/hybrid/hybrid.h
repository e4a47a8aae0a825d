/* SPDX-License-Identifier: MIT */
/* hybrid/hybrid.h - every public header of libhybrid. */
#ifndef HYBRID_HYBRID_H
#define HYBRID_HYBRID_H

#include <hybrid/common.h>
#include <hybrid/furi.h>
#include <hybrid/obj.h>
#include <hybrid/store.h>
#include <hybrid/mmadt.h>
#include <hybrid/bus.h>
#include <hybrid/bus-store.h>
#include <hybrid/endpoint.h>
#include <hybrid/broker.h>
#include <hybrid/log.h>
#include <hybrid/token.h>

#endif
