/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include <glib.h>

#include "codechat-error.h"

G_BEGIN_DECLS

/* one counter per error code that goes on the wire (PROTOCOL.md, "Errors") */
#define CODECHAT_METRICS_N_ERRORS (CODECHAT_ERROR_INTERNAL + 1)
/* the finite upper bounds of codechat_store_commit_seconds; +Inf is the count */
#define CODECHAT_METRICS_N_COMMIT_BUCKETS 13

/*
 * The daemon's counters for GET /metrics.  Unlike the GObjects this struct
 * is public on purpose: the counters sit on hot paths, and an increment is
 * just `metrics->x++` on the main thread, with no call, lock, hash or
 * allocation.  Everything here is main-thread only; the store's writer
 * thread hands its commit times over with the finished batch.
 */
typedef struct {
	guint64 connections_accepted;
	guint64 refused_max_connections;
	guint64 refused_per_address;
	/* WebSocket frames and their payload bytes, counted by the transport */
	guint64 frames_in;
	guint64 frames_out;
	guint64 bytes_in;
	guint64 bytes_out;
	guint64 messages_stored; /* says and D-Bus posts the store acknowledged */
	guint64 slow_readers_closed;
	guint64 rate_limited;			   /* says and D-Bus posts refused */
	guint64 errors[CODECHAT_METRICS_N_ERRORS]; /* by CodechatError */
	guint64 commit_buckets[CODECHAT_METRICS_N_COMMIT_BUCKETS]; /* not cumulative */
	guint64 commit_count;
	gdouble commit_sum; /* seconds */
} CodechatMetrics;

/* what the hub knows at the time of a scrape */
typedef struct {
	const gchar *name; /* (unowned) */
	guint sessions;
} CodechatMetricsRoom;

typedef struct {
	guint connections;
	guint rooms;
	gdouble uptime_seconds;
	const gchar *version;		    /* (unowned) */
	const CodechatMetricsRoom *by_room; /* (unowned) (array length=n_by_room) */
	guint n_by_room;
} CodechatMetricsGauges;

CodechatMetrics *
codechat_metrics_new(void);
CodechatMetrics *
codechat_metrics_ref(CodechatMetrics *self);
void
codechat_metrics_unref(CodechatMetrics *self);
void
codechat_metrics_count_error(CodechatMetrics *self, const GError *error);
void
codechat_metrics_observe_commit(CodechatMetrics *self, gdouble seconds);
GString *
codechat_metrics_render(const CodechatMetrics *self, const CodechatMetricsGauges *gauges);

#define CODECHAT_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

G_DEFINE_AUTOPTR_CLEANUP_FUNC(CodechatMetrics, codechat_metrics_unref)

G_END_DECLS
