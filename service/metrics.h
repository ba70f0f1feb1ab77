/*
 * metrics.h - the Prometheus view of the broker: one renderer that turns the status report's
 * figures (generated from the statistics lists of common/stats.h) into the text exposition
 * format, for the `metrics` pipe command and the optional /metrics listener. It reads the
 * broker as the status report does and never changes it.
 */
#ifndef MB_METRICS_H
#define MB_METRICS_H

#include <stddef.h>

#include "broker.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The Prometheus text exposition of broker b: version 0.0.4 (openmetrics == 0) or OpenMetrics
 * 1.0.0 (openmetrics == 1, ends with "# EOF"). *text is malloc'd (the caller frees it), *len its
 * length. 0, or MB_ENOMEM. Loop thread only (reads b as the status report does). */
int mb__metrics_render(const mb_broker_t *b, int openmetrics, char **text, size_t *len);

/* The Content-Type of each format. */
#define MB_METRICS_CT_TEXT "text/plain; version=0.0.4; charset=utf-8"
#define MB_METRICS_CT_OPENMETRICS "application/openmetrics-text; version=1.0.0; charset=utf-8"

#ifdef __cplusplus
}
#endif

#endif /* MB_METRICS_H */
