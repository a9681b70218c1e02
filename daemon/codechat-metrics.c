/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechatd"

#include "config.h"

#include "codechat-metrics.h"

/*
 * GET /metrics in the Prometheus text exposition format, version 0.0.4.
 * The texts of HELP lines are for the scraper's users and stay English,
 * like the metric names.  A render walks the counters and the rooms once:
 * its cost grows with the rooms, not with the sessions.
 */

static const gdouble commit_bounds[CODECHAT_METRICS_N_COMMIT_BUCKETS] =
    {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1};
/* as printed in the le label, so that they do not depend on %g */
static const gchar *const commit_labels[CODECHAT_METRICS_N_COMMIT_BUCKETS] = {"0.0001",
									      "0.00025",
									      "0.0005",
									      "0.001",
									      "0.0025",
									      "0.005",
									      "0.01",
									      "0.025",
									      "0.05",
									      "0.1",
									      "0.25",
									      "0.5",
									      "1"};

CodechatMetrics *
codechat_metrics_new(void)
{
	return g_rc_box_new0(CodechatMetrics);
}

CodechatMetrics *
codechat_metrics_ref(CodechatMetrics *self)
{
	g_return_val_if_fail(self != NULL, NULL);
	return g_rc_box_acquire(self);
}

void
codechat_metrics_unref(CodechatMetrics *self)
{
	g_return_if_fail(self != NULL);
	g_rc_box_release(self);
}

/* an error frame went to a client: counted under its wire code */
void
codechat_metrics_count_error(CodechatMetrics *self, const GError *error)
{
	gint code = CODECHAT_ERROR_INTERNAL;

	/* the same mapping as codechat_error_frame() */
	if (error->domain == CODECHAT_ERROR && error->code >= 0 &&
	    error->code < CODECHAT_METRICS_N_ERRORS)
		code = error->code;
	self->errors[code]++;
}

/* one group-commit transaction of the store, BEGIN to COMMIT done */
void
codechat_metrics_observe_commit(CodechatMetrics *self, gdouble seconds)
{
	guint i;

	if (seconds < 0)
		seconds = 0;
	for (i = 0; i < CODECHAT_METRICS_N_COMMIT_BUCKETS; i++) {
		if (seconds <= commit_bounds[i]) {
			self->commit_buckets[i]++;
			break;
		}
	}
	/* past the last bound: only in +Inf, which is the count */
	self->commit_count++;
	self->commit_sum += seconds;
}

/* a label value: backslash, double quote and newline are escaped */
static void
append_label_value(GString *out, const gchar *value)
{
	for (const gchar *p = value; *p != '\0'; p++) {
		switch (*p) {
		case '\\':
			g_string_append(out, "\\\\");
			break;
		case '"':
			g_string_append(out, "\\\"");
			break;
		case '\n':
			g_string_append(out, "\\n");
			break;
		default:
			g_string_append_c(out, *p);
		}
	}
}

static void
append_header(GString *out, const gchar *name, const gchar *type, const gchar *help)
{
	g_string_append_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
append_u64(GString *out, const gchar *name, guint64 value)
{
	g_string_append_printf(out, "%s %" G_GUINT64_FORMAT "\n", name, value);
}

static void
append_double(GString *out, gdouble value)
{
	gchar buf[G_ASCII_DTOSTR_BUF_SIZE];

	/* the shortest text that reads back the same, whatever the locale */
	g_string_append(out, g_ascii_dtostr(buf, sizeof buf, value));
}

static void
append_counter(GString *out, const gchar *name, const gchar *help, guint64 value)
{
	append_header(out, name, "counter", help);
	append_u64(out, name, value);
}

static void
append_gauge(GString *out, const gchar *name, const gchar *help, guint64 value)
{
	append_header(out, name, "gauge", help);
	append_u64(out, name, value);
}

/**
 * codechat_metrics_render:
 * @gauges: what the hub says now
 *
 * Returns: (transfer full): the text of GET /metrics
 */
GString *
codechat_metrics_render(const CodechatMetrics *self, const CodechatMetricsGauges *gauges)
{
	/* about 4 KiB of fixed text plus a line per room */
	GString *out = g_string_sized_new(4096 + 64 * (gsize)gauges->n_by_room);
	guint64 cumulative = 0;

	g_return_val_if_fail(self != NULL, out);

	append_header(out, "codechat_build_info", "gauge", "The version of codechatd, always 1.");
	g_string_append(out, "codechat_build_info{version=\"");
	append_label_value(out, gauges->version != NULL ? gauges->version : "");
	g_string_append(out, "\"} 1\n");
	append_gauge(out, "codechat_connections", "Open WebSocket sessions.", gauges->connections);
	append_gauge(out,
		     "codechat_rooms",
		     "Rooms with members or with stored messages.",
		     gauges->rooms);
	append_header(out, "codechat_sessions", "gauge", "Sessions joined to a room, by room.");
	for (guint i = 0; i < gauges->n_by_room; i++) {
		g_string_append(out, "codechat_sessions{room=\"");
		append_label_value(out, gauges->by_room[i].name);
		g_string_append_printf(out, "\"} %u\n", gauges->by_room[i].sessions);
	}
	append_header(out, "codechat_uptime_seconds", "gauge", "Seconds since codechatd started.");
	{
		gchar buf[G_ASCII_DTOSTR_BUF_SIZE];
		/* milliseconds are plenty */
		g_string_append_printf(
		    out,
		    "codechat_uptime_seconds %s\n",
		    g_ascii_formatd(buf, sizeof buf, "%.3f", gauges->uptime_seconds));
	}

	append_counter(out,
		       "codechat_connections_accepted_total",
		       "WebSocket sessions accepted.",
		       self->connections_accepted);
	append_header(out,
		      "codechat_connections_refused_total",
		      "counter",
		      "WebSocket sessions refused after the upgrade, by reason.");
	g_string_append_printf(out,
			       "codechat_connections_refused_total{reason=\"max-connections\"} "
			       "%" G_GUINT64_FORMAT "\n"
			       "codechat_connections_refused_total{reason=\"per-address\"} "
			       "%" G_GUINT64_FORMAT "\n",
			       self->refused_max_connections,
			       self->refused_per_address);
	append_counter(out,
		       "codechat_frames_received_total",
		       "WebSocket frames received, control frames included.",
		       self->frames_in);
	append_counter(out,
		       "codechat_frames_sent_total",
		       "WebSocket frames queued for sending, control frames included.",
		       self->frames_out);
	append_counter(out,
		       "codechat_bytes_received_total",
		       "Bytes of the WebSocket frames received, headers included.",
		       self->bytes_in);
	append_counter(out,
		       "codechat_bytes_sent_total",
		       "Bytes of the WebSocket frames queued for sending, headers included.",
		       self->bytes_out);
	append_counter(out,
		       "codechat_messages_stored_total",
		       "Messages (says and D-Bus posts) the history store acknowledged.",
		       self->messages_stored);
	append_counter(out,
		       "codechat_slow_readers_closed_total",
		       "Sessions closed for reading too slowly.",
		       self->slow_readers_closed);
	append_counter(out,
		       "codechat_rate_limited_total",
		       "Says and D-Bus posts refused by the rate limit.",
		       self->rate_limited);
	append_header(out,
		      "codechat_errors_total",
		      "counter",
		      "Protocol errors sent to clients, by error code.");
	for (gint i = 0; i < CODECHAT_METRICS_N_ERRORS; i++)
		g_string_append_printf(out,
				       "codechat_errors_total{code=\"%s\"} %" G_GUINT64_FORMAT "\n",
				       codechat_error_to_code(i),
				       self->errors[i]);

	append_header(out,
		      "codechat_store_commit_seconds",
		      "histogram",
		      "Duration of the history store's group-commit transactions, BEGIN to "
		      "COMMIT done.");
	for (guint i = 0; i < CODECHAT_METRICS_N_COMMIT_BUCKETS; i++) {
		cumulative += self->commit_buckets[i];
		g_string_append_printf(out,
				       "codechat_store_commit_seconds_bucket{le=\"%s\"} "
				       "%" G_GUINT64_FORMAT "\n",
				       commit_labels[i],
				       cumulative);
	}
	g_string_append_printf(
	    out,
	    "codechat_store_commit_seconds_bucket{le=\"+Inf\"} %" G_GUINT64_FORMAT "\n",
	    self->commit_count);
	g_string_append(out, "codechat_store_commit_seconds_sum ");
	append_double(out, self->commit_sum);
	g_string_append_c(out, '\n');
	append_u64(out, "codechat_store_commit_seconds_count", self->commit_count);
	return out;
}
