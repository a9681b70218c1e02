/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/*
 * CodechatCountingStream: a GIOStream over another one whose output
 * counts the bytes the kernel actually took.  libsoup queues outgoing
 * WebSocket frames without a bound; comparing what the hub handed to the
 * connection with what was written tells how much waits in that queue.
 */
#define CODECHAT_TYPE_COUNTING_STREAM (codechat_counting_stream_get_type())
G_DECLARE_FINAL_TYPE(CodechatCountingStream,
		     codechat_counting_stream,
		     CODECHAT,
		     COUNTING_STREAM,
		     GIOStream)

CodechatCountingStream *
codechat_counting_stream_new(GIOStream *base);
guint64
codechat_counting_stream_get_written(CodechatCountingStream *self);
void
codechat_counting_stream_close_after_frame(CodechatCountingStream *self, GBytes *frame);

G_END_DECLS
