/*
 * metrics.h - the Prometheus exposition of a broker (part A of issue 13 owns the real
 * renderer; this branch carries a stub, service/metrics_stub.c, that the merge drops).
 */
#ifndef MB_METRICS_H
#define MB_METRICS_H

#include <stddef.h>

#include "broker.h"

#define MB_METRICS_CT_TEXT "text/plain; version=0.0.4; charset=utf-8"
#define MB_METRICS_CT_OPENMETRICS "application/openmetrics-text; version=1.0.0; charset=utf-8"

/* Render b's metrics (text exposition 0.0.4, or OpenMetrics 1.0.0 when `openmetrics`) into a
 * malloc'd *text of *len bytes (the caller frees it with free()). 0 or an MB_E* code. */
int mb__metrics_render(const mb_broker_t *b, int openmetrics, char **text, size_t *len);

#endif /* MB_METRICS_H */
