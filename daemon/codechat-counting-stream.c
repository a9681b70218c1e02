/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechatd"

#include "config.h"

#include "codechat-counting-stream.h"

/* the output half: a pollable filter that adds up what the base wrote */
#define COUNTING_TYPE_OUTPUT (counting_output_get_type())
G_DECLARE_FINAL_TYPE(CountingOutput, counting_output, COUNTING, OUTPUT, GFilterOutputStream)

/*
 * The output also follows the frames that go through it (a server's
 * frames are unmasked: a header of 2 to 10 bytes, then the payload), so
 * that a close frame can be put between two of them: see
 * codechat_counting_stream_close_after_frame().
 */
struct _CountingOutput {
	GFilterOutputStream parent_instance;
	guint64 written;
	guint8 header[14];    /* the header so far of the frame being written */
	guint header_len;     /* bytes of it in header[] */
	guint64 payload_left; /* bytes of the current payload not yet written */
	GBytes *close_frame;  /* (owned) (nullable) to write at the next boundary */
	gsize close_sent;     /* bytes of close_frame written */
};

static void
counting_output_pollable_iface_init(GPollableOutputStreamInterface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE(CountingOutput,
			      counting_output,
			      G_TYPE_FILTER_OUTPUT_STREAM,
			      G_IMPLEMENT_INTERFACE(G_TYPE_POLLABLE_OUTPUT_STREAM,
						    counting_output_pollable_iface_init))

static GOutputStream *
counting_output_base(gpointer self)
{
	return g_filter_output_stream_get_base_stream(G_FILTER_OUTPUT_STREAM(self));
}

static guint
header_size(const guint8 *header)
{
	guint len7 = header[1] & 0x7f;
	return 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((header[1] & 0x80) ? 4 : 0);
}

/* follows the frames in what was written */
static void
counting_output_feed(CountingOutput *self, const guint8 *data, gsize n)
{
	self->written += n;
	while (n > 0) {
		if (self->payload_left > 0) {
			guint64 k = MIN((guint64)n, self->payload_left);
			self->payload_left -= k;
			data += k;
			n -= k;
			continue;
		}
		self->header[self->header_len++] = *data++;
		n--;
		if (self->header_len >= 2 && self->header_len == header_size(self->header)) {
			guint len7 = self->header[1] & 0x7f;
			guint64 len = len7;

			if (len7 == 126) {
				len = ((guint64)self->header[2] << 8) | self->header[3];
			} else if (len7 == 127) {
				len = 0;
				for (guint i = 0; i < 8; i++)
					len = (len << 8) | self->header[2 + i];
			}
			self->payload_left = len;
			self->header_len = 0;
		}
	}
}

/* how much of count may be written before the next frame boundary */
static gsize
counting_output_to_boundary(CountingOutput *self, gsize count)
{
	if (self->payload_left > 0)
		return (gsize)MIN((guint64)count, self->payload_left);
	if (self->header_len >= 2)
		return MIN(count, header_size(self->header) - self->header_len);
	return MIN(count, 2 - self->header_len);
}

static gboolean
counting_output_at_boundary(CountingOutput *self)
{
	return self->payload_left == 0 && self->header_len == 0;
}

/* with a close frame pending: writes it at the boundary, then fails every
 * further write so that libsoup tears the connection down; returns -1
 * with error set, or 0 when the caller may go on (up to *count bytes) */
static gssize
counting_output_close_step(CountingOutput *self, gsize *count, gboolean blocking, GError **error)
{
	GOutputStream *base = g_filter_output_stream_get_base_stream(G_FILTER_OUTPUT_STREAM(self));
	gsize len;
	const guint8 *data;

	if (!counting_output_at_boundary(self)) {
		*count = counting_output_to_boundary(self, *count);
		return 0;
	}
	data = g_bytes_get_data(self->close_frame, &len);
	while (self->close_sent < len) {
		gssize n;

		if (blocking)
			n = g_output_stream_write(base,
						  data + self->close_sent,
						  len - self->close_sent,
						  NULL,
						  error);
		else
			n = g_pollable_output_stream_write_nonblocking(
			    G_POLLABLE_OUTPUT_STREAM(base),
			    data + self->close_sent,
			    len - self->close_sent,
			    NULL,
			    error);
		if (n < 0)
			return -1;
		self->close_sent += (gsize)n;
		self->written += (guint64)n;
	}
	g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_CLOSED, "closed after a close frame");
	return -1;
}

static gssize
counting_output_write(GOutputStream *stream,
		      const void *buffer,
		      gsize count,
		      GCancellable *cancellable,
		      GError **error)
{
	CountingOutput *self = COUNTING_OUTPUT(stream);
	gssize n;

	if (self->close_frame != NULL && counting_output_close_step(self, &count, TRUE, error) < 0)
		return -1;
	n = g_output_stream_write(counting_output_base(self), buffer, count, cancellable, error);
	if (n > 0)
		counting_output_feed(self, buffer, (gsize)n);
	return n;
}

static gboolean
counting_output_flush(GOutputStream *stream, GCancellable *cancellable, GError **error)
{
	return g_output_stream_flush(counting_output_base(stream), cancellable, error);
}

static gboolean
counting_output_can_poll(GPollableOutputStream *stream)
{
	GOutputStream *base = counting_output_base(stream);
	return G_IS_POLLABLE_OUTPUT_STREAM(base) &&
	       g_pollable_output_stream_can_poll(G_POLLABLE_OUTPUT_STREAM(base));
}

static gboolean
counting_output_is_writable(GPollableOutputStream *stream)
{
	return g_pollable_output_stream_is_writable(
	    G_POLLABLE_OUTPUT_STREAM(counting_output_base(stream)));
}

static GSource *
counting_output_create_source(GPollableOutputStream *stream, GCancellable *cancellable)
{
	GSource *base_source = g_pollable_output_stream_create_source(
	    G_POLLABLE_OUTPUT_STREAM(counting_output_base(stream)),
	    cancellable);
	GSource *source = g_pollable_source_new_full(stream, base_source, cancellable);

	g_source_unref(base_source);
	return source;
}

static gssize
counting_output_write_nonblocking(GPollableOutputStream *stream,
				  const void *buffer,
				  gsize count,
				  GError **error)
{
	CountingOutput *self = COUNTING_OUTPUT(stream);
	gssize n;

	if (self->close_frame != NULL && counting_output_close_step(self, &count, FALSE, error) < 0)
		return -1;
	n = g_pollable_output_stream_write_nonblocking(
	    G_POLLABLE_OUTPUT_STREAM(counting_output_base(stream)),
	    buffer,
	    count,
	    NULL,
	    error);
	if (n > 0)
		counting_output_feed(self, buffer, (gsize)n);
	return n;
}

static void
counting_output_pollable_iface_init(GPollableOutputStreamInterface *iface)
{
	iface->can_poll = counting_output_can_poll;
	iface->is_writable = counting_output_is_writable;
	iface->create_source = counting_output_create_source;
	iface->write_nonblocking = counting_output_write_nonblocking;
}

static void
counting_output_finalize(GObject *object)
{
	g_clear_pointer(&COUNTING_OUTPUT(object)->close_frame, g_bytes_unref);
	G_OBJECT_CLASS(counting_output_parent_class)->finalize(object);
}

static void
counting_output_class_init(CountingOutputClass *klass)
{
	GOutputStreamClass *stream_class = G_OUTPUT_STREAM_CLASS(klass);

	G_OBJECT_CLASS(klass)->finalize = counting_output_finalize;
	stream_class->write_fn = counting_output_write;
	stream_class->flush = counting_output_flush;
}

static void
counting_output_init(CountingOutput *self)
{
}

struct _CodechatCountingStream {
	GIOStream parent_instance;
	GIOStream *base;	/* (owned) */
	CountingOutput *output; /* (owned) over the base's output, leaves it open */
};

G_DEFINE_FINAL_TYPE(CodechatCountingStream, codechat_counting_stream, G_TYPE_IO_STREAM)

static GInputStream *
codechat_counting_stream_get_input_stream(GIOStream *stream)
{
	return g_io_stream_get_input_stream(CODECHAT_COUNTING_STREAM(stream)->base);
}

static GOutputStream *
codechat_counting_stream_get_output_stream(GIOStream *stream)
{
	return G_OUTPUT_STREAM(CODECHAT_COUNTING_STREAM(stream)->output);
}

static gboolean
codechat_counting_stream_close(GIOStream *stream, GCancellable *cancellable, GError **error)
{
	return g_io_stream_close(CODECHAT_COUNTING_STREAM(stream)->base, cancellable, error);
}

static void
close_base_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(GTask) task = user_data;
	g_autoptr(GError) error = NULL;

	if (g_io_stream_close_finish(G_IO_STREAM(source), result, &error))
		g_task_return_boolean(task, TRUE);
	else
		g_task_return_error(task, g_steal_pointer(&error));
}

/* the base closes on the main context, like libsoup's own streams, not
 * in a thread as GIOStream's default would */
static void
codechat_counting_stream_close_async(GIOStream *stream,
				     int io_priority,
				     GCancellable *cancellable,
				     GAsyncReadyCallback callback,
				     gpointer user_data)
{
	CodechatCountingStream *self = CODECHAT_COUNTING_STREAM(stream);
	GTask *task = g_task_new(stream, cancellable, callback, user_data);

	g_task_set_source_tag(task, codechat_counting_stream_close_async);
	g_io_stream_close_async(self->base, io_priority, cancellable, close_base_cb, task);
}

static gboolean
codechat_counting_stream_close_finish(GIOStream *stream, GAsyncResult *result, GError **error)
{
	return g_task_propagate_boolean(G_TASK(result), error);
}

static void
codechat_counting_stream_finalize(GObject *object)
{
	CodechatCountingStream *self = CODECHAT_COUNTING_STREAM(object);

	g_clear_object(&self->output);
	g_clear_object(&self->base);
	G_OBJECT_CLASS(codechat_counting_stream_parent_class)->finalize(object);
}

static void
codechat_counting_stream_class_init(CodechatCountingStreamClass *klass)
{
	GObjectClass *object_class = G_OBJECT_CLASS(klass);
	GIOStreamClass *stream_class = G_IO_STREAM_CLASS(klass);

	object_class->finalize = codechat_counting_stream_finalize;
	stream_class->get_input_stream = codechat_counting_stream_get_input_stream;
	stream_class->get_output_stream = codechat_counting_stream_get_output_stream;
	stream_class->close_fn = codechat_counting_stream_close;
	stream_class->close_async = codechat_counting_stream_close_async;
	stream_class->close_finish = codechat_counting_stream_close_finish;
}

static void
codechat_counting_stream_init(CodechatCountingStream *self)
{
}

CodechatCountingStream *
codechat_counting_stream_new(GIOStream *base)
{
	CodechatCountingStream *self;

	g_return_val_if_fail(G_IS_IO_STREAM(base), NULL);
	self = g_object_new(CODECHAT_TYPE_COUNTING_STREAM, NULL);
	self->base = g_object_ref(base);
	self->output = g_object_new(COUNTING_TYPE_OUTPUT,
				    "base-stream",
				    g_io_stream_get_output_stream(base),
				    "close-base-stream",
				    FALSE,
				    NULL);
	return self;
}

guint64
codechat_counting_stream_get_written(CodechatCountingStream *self)
{
	g_return_val_if_fail(CODECHAT_IS_COUNTING_STREAM(self), 0);
	return self->output->written;
}

/**
 * codechat_counting_stream_close_after_frame:
 * @frame: a whole close frame
 *
 * Writes @frame as soon as the frame being written is complete, and then
 * fails every write, so that the connection over the stream, which still
 * has frames queued, is torn down.  What libsoup queued after the frame
 * in progress is never written.
 */
void
codechat_counting_stream_close_after_frame(CodechatCountingStream *self, GBytes *frame)
{
	g_return_if_fail(CODECHAT_IS_COUNTING_STREAM(self));
	if (self->output->close_frame != NULL)
		return;
	self->output->close_frame = g_bytes_ref(frame);
}
