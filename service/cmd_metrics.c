/*
 * cmd_metrics.c - the handler of `metrics` (commands.def, admin 0): the Prometheus text
 * exposition of the broker (metrics.h) over the pipe. Reads the broker, never changes it.
 */
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "metrics.h"

/*
 * metrics [format: "prometheus" (default) | "openmetrics"]
 *   -> {"content_type": MB_METRICS_CT_TEXT or MB_METRICS_CT_OPENMETRICS, "text": "..."}
 */
int mb__cmd_metrics(mb_ctl_call_t *call) {
  const cJSON *f = cJSON_GetObjectItemCaseSensitive(call->args, "format");
  int om = 0, rc;
  char *text;
  size_t len;
  if (f != NULL && !cJSON_IsString(f))
    return mb__ctl_fail(call, MB_CTL_EBAD_ARGS,
                        "'format' must be \"prometheus\" or \"openmetrics\", got %s",
                        mb__ctl_jtype(f));
  if (f != NULL && strcmp(f->valuestring, "openmetrics") == 0)
    om = 1;
  else if (f != NULL && strcmp(f->valuestring, "prometheus") != 0)
    return mb__ctl_fail(call, MB_CTL_EBAD_ARGS,
                        "'format' must be \"prometheus\" or \"openmetrics\", got \"%.64s\"",
                        f->valuestring);
  if ((rc = mb__metrics_render(call->broker, om, &text, &len)) != 0)
    return mb__ctl_fail_rc(call, rc);
  (void)len;
  if ((call->result = cJSON_CreateObject()) == NULL ||
      !cJSON_AddStringToObject(call->result, "content_type",
                               om ? MB_METRICS_CT_OPENMETRICS : MB_METRICS_CT_TEXT) ||
      !cJSON_AddStringToObject(call->result, "text", text)) {
    free(text);
    return mb__ctl_oom(call, "metrics");
  }
  free(text);
  return 0;
}
