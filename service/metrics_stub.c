/*
 * metrics_stub.c - a fixed, valid exposition standing in for part A's renderer (metrics.h)
 * until it is merged; the merge drops this file. It reads nothing of the broker.
 */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "metrics.h"

int mb__metrics_render(const mb_broker_t *b, int openmetrics, char **text, size_t *len) {
  static const char body[] = "# HELP membroker_up Whether the broker is up (stub renderer).\n"
                             "# TYPE membroker_up gauge\n"
                             "membroker_up 1\n";
  static const char eof[] = "# EOF\n";
  size_t n = sizeof body - 1 + (openmetrics ? sizeof eof - 1 : 0);
  char *t;
  (void)b;
  if ((t = malloc(n + 1)) == NULL)
    return mb__errorf(MB_ENOMEM, 0, "render the metrics");
  memcpy(t, body, sizeof body - 1);
  if (openmetrics)
    memcpy(t + sizeof body - 1, eof, sizeof eof - 1);
  t[n] = '\0';
  *text = t;
  *len = n;
  return 0;
}
