/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechatd"

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "codechat-ws.h"

#define WS_READ_SIZE  (64 * 1024)
#define WS_MAX_EVENTS 256
#define WS_MAX_IOV    64
/*
 * Output is written once nothing at the default priority is ready (all
 * input read, every store result delivered), so that under load each
 * sendmsg() carries many frames: the kernel's cost per write, not per
 * byte, is what limits fan-out on loopback.  Under a flood of input it is
 * written at the latest this long after it was queued.
 */
#define WS_MAX_FLUSH_DELAY_US 2000
/* a peer that does not answer our close frame */
#define WS_CLOSE_TIMEOUT_S 5
/* a slow reader that does not even read its close frame */
#define WS_SLOW_CLOSE_TIMEOUT_S 10

enum {
	OP_CONTINUATION = 0x0,
	OP_TEXT = 0x1,
	OP_BINARY = 0x2,
	OP_CLOSE = 0x8,
	OP_PING = 0x9,
	OP_PONG = 0xa,
};

struct _CodechatWsFrame {
	gint ref_count; /* main thread only */
	gsize size;	/* header and payload */
	gsize header;	/* bytes of header before the payload */
	guint8 data[];	/* the wire bytes, then a NUL after the payload */
};

struct _CodechatWsGroup {
	gint ref_count; /* the owner's and one per connection */
	gint epfd;
	GSource *source;       /* (owned) epoll, at the default priority */
	GSource *flush_source; /* (owned) output, just below it */
	gint64 dirty_since;    /* monotonic time the first dirty connection came */
	gpointer tag;	       /* the epoll fd in the source */
	GPtrArray *dirty;      /* (owned) connections with output to write, a ref each */
	GPtrArray *dead;       /* (owned) closed connections, a ref each, dropped after dispatch */
	GHashTable *live;      /* (owned) raw connections with an open fd, a ref each */
	guint8 *buf;	       /* (owned) read buffer shared by all */
	gboolean dispatching;  /* dead connections are released after dispatch */
	CodechatWsCounters counters;
};

typedef struct {
	GSource parent;
	CodechatWsGroup *group;
} GroupSource;

struct _CodechatWsConn {
	gint ref_count;
	CodechatWsGroup *group; /* (owned) */
	CodechatWsState state;
	const CodechatWsCallbacks *cb;
	gpointer user_data;
	gsize max_message;
	gushort close_code;	/* the peer's */
	guint close_timeout_id; /* GSource id, 0 if none */

	/* raw */
	gint fd;    /* -1 once closed, or for soup */
		    /* a duplicate of libsoup's socket: its GIOStream and GSocket
		     * objects, a kilobyte or so, are freed at once */
	guint8 *in; /* (owned) (nullable) a partial frame kept between reads */
	gsize in_len;
	GByteArray *msg; /* (owned) (nullable) fragments of a message */
	guint8 msg_op;
	gboolean in_msg;     /* a fragmented message is open, kept in msg or dropped */
	guint64 skip;	     /* payload bytes still to drop (a frame over the limit) */
	gboolean discard;    /* a broken peer: read and drop everything */
	gboolean sent_close; /* our close frame is queued */
	gboolean finish_when_flushed;
	gboolean shut_wr; /* our side of TCP is shut down */
	gboolean dirty;
	gboolean want_out; /* EPOLLOUT registered */
	CodechatWsFrame **q;
	guint q_head, q_len, q_cap;
	gsize q_offset; /* bytes of the head frame already written */
	guint64 queued; /* bytes not yet written */

	/* soup */
	SoupWebsocketConnection *soup;	  /* (owned) (nullable) */
	CodechatCountingStream *counting; /* (owned) (nullable) */
	guint64 handed;			  /* bytes of frames given to libsoup */
};

/* frames */

static CodechatWsFrame *
frame_new(guint8 opcode, const void *payload, gsize len)
{
	gsize header = len < 126 ? 2 : len < 65536 ? 4 : 10;
	CodechatWsFrame *frame = g_malloc(sizeof *frame + header + len + 1);

	frame->ref_count = 1;
	frame->header = header;
	frame->size = header + len;
	frame->data[0] = 0x80 | opcode;
	if (len < 126) {
		frame->data[1] = (guint8)len;
	} else if (len < 65536) {
		frame->data[1] = 126;
		frame->data[2] = (guint8)(len >> 8);
		frame->data[3] = (guint8)len;
	} else {
		frame->data[1] = 127;
		for (gint i = 0; i < 8; i++)
			frame->data[2 + i] = (guint8)((guint64)len >> (56 - 8 * i));
	}
	if (len > 0)
		memcpy(frame->data + header, payload, len);
	frame->data[header + len] = '\0';
	return frame;
}

CodechatWsFrame *
codechat_ws_frame_new_text(const gchar *payload, gsize len)
{
	return frame_new(OP_TEXT, payload, len);
}

CodechatWsFrame *
codechat_ws_frame_ref(CodechatWsFrame *frame)
{
	frame->ref_count++;
	return frame;
}

void
codechat_ws_frame_unref(CodechatWsFrame *frame)
{
	if (--frame->ref_count == 0)
		g_free(frame);
}

gsize
codechat_ws_frame_get_size(CodechatWsFrame *frame)
{
	return frame->size;
}

static CodechatWsFrame *
close_frame_new(gushort code, const gchar *reason)
{
	guint8 payload[125];
	gsize len = 0;

	if (code != 0 && code != 1005) {
		gsize reason_len = reason != NULL ? strlen(reason) : 0;
		/* a control frame carries at most 125 bytes */
		reason_len = MIN(reason_len, sizeof payload - 2);
		/* cut at a character boundary */
		while (reason_len > 0 && !g_utf8_validate_len(reason, reason_len, NULL))
			reason_len--;
		payload[0] = (guint8)(code >> 8);
		payload[1] = (guint8)code;
		if (reason_len > 0)
			memcpy(payload + 2, reason, reason_len);
		len = 2 + reason_len;
	}
	return frame_new(OP_CLOSE, payload, len);
}

/* connections */

static void
group_unref(CodechatWsGroup *group)
{
	if (--group->ref_count > 0)
		return;
	g_ptr_array_unref(group->dirty);
	g_ptr_array_unref(group->dead);
	g_hash_table_unref(group->live);
	g_free(group->buf);
	g_free(group);
}

static void
conn_free(CodechatWsConn *conn)
{
	g_clear_handle_id(&conn->close_timeout_id, g_source_remove);
	for (guint i = 0; i < conn->q_len; i++)
		codechat_ws_frame_unref(conn->q[(conn->q_head + i) % conn->q_cap]);
	g_free(conn->q);
	g_free(conn->in);
	if (conn->msg != NULL)
		g_byte_array_unref(conn->msg);
	if (conn->fd >= 0)
		close(conn->fd);
	if (conn->soup != NULL)
		g_signal_handlers_disconnect_by_data(conn->soup, conn);
	g_clear_object(&conn->soup);
	g_clear_object(&conn->counting);
	group_unref(conn->group);
	g_free(conn);
}

CodechatWsConn *
codechat_ws_conn_ref(CodechatWsConn *conn)
{
	conn->ref_count++;
	return conn;
}

void
codechat_ws_conn_unref(CodechatWsConn *conn)
{
	if (--conn->ref_count == 0)
		conn_free(conn);
}

CodechatWsState
codechat_ws_conn_get_state(CodechatWsConn *conn)
{
	return conn->state;
}

gboolean
codechat_ws_conn_is_soup(CodechatWsConn *conn)
{
	return conn->soup != NULL;
}

gushort
codechat_ws_conn_get_close_code(CodechatWsConn *conn)
{
	if (conn->soup != NULL)
		return soup_websocket_connection_get_close_code(conn->soup);
	return conn->close_code;
}

void
codechat_ws_conn_disconnect(CodechatWsConn *conn)
{
	conn->cb = NULL;
	conn->user_data = NULL;
}

static void
emit_closing(CodechatWsConn *conn)
{
	if (conn->cb != NULL && conn->cb->closing != NULL)
		conn->cb->closing(conn, conn->user_data);
}

static void
emit_closed(CodechatWsConn *conn)
{
	if (conn->cb != NULL && conn->cb->closed != NULL)
		conn->cb->closed(conn, conn->user_data);
}

/* the end of a raw connection: the socket is closed and the group lets go */
static void
raw_finish(CodechatWsConn *conn)
{
	CodechatWsGroup *group = conn->group;

	if (conn->fd < 0)
		return;
	epoll_ctl(group->epfd, EPOLL_CTL_DEL, conn->fd, NULL);
	close(conn->fd);
	conn->fd = -1;
	g_clear_handle_id(&conn->close_timeout_id, g_source_remove);
	for (guint i = 0; i < conn->q_len; i++)
		codechat_ws_frame_unref(conn->q[(conn->q_head + i) % conn->q_cap]);
	g_clear_pointer(&conn->q, g_free);
	conn->q_head = conn->q_len = conn->q_cap = 0;
	conn->q_offset = 0;
	conn->queued = 0;
	g_clear_pointer(&conn->in, g_free);
	conn->in_len = 0;
	if (conn->msg != NULL)
		g_clear_pointer(&conn->msg, g_byte_array_unref);
	if (conn->close_code == 0)
		conn->close_code = 1006;
	conn->state = CODECHAT_WS_CLOSED;
	codechat_ws_conn_ref(conn);
	emit_closed(conn);
	/* during a dispatch the group's reference goes only at its end: an
	 * epoll event later in the same batch may still point here */
	if (g_hash_table_steal(group->live, conn)) {
		if (group->dispatching)
			g_ptr_array_add(group->dead, conn);
		else
			codechat_ws_conn_unref(conn);
	}
	codechat_ws_conn_unref(conn);
}

static void
raw_set_want_out(CodechatWsConn *conn, gboolean want)
{
	struct epoll_event ev = {0};

	if (conn->want_out == want || conn->fd < 0)
		return;
	conn->want_out = want;
	ev.events = EPOLLIN | (want ? EPOLLOUT : 0);
	ev.data.ptr = conn;
	epoll_ctl(conn->group->epfd, EPOLL_CTL_MOD, conn->fd, &ev);
}

static void
raw_mark_dirty(CodechatWsConn *conn)
{
	if (conn->dirty || conn->want_out)
		return;
	if (conn->group->dirty->len == 0)
		conn->group->dirty_since = g_get_monotonic_time();
	conn->dirty = TRUE;
	g_ptr_array_add(conn->group->dirty, codechat_ws_conn_ref(conn));
}

static void
raw_push(CodechatWsConn *conn, CodechatWsFrame *frame)
{
	if (conn->q_len == conn->q_cap) {
		guint cap = MAX(conn->q_cap * 2, 4);
		CodechatWsFrame **q = g_new(CodechatWsFrame *, cap);
		for (guint i = 0; i < conn->q_len; i++)
			q[i] = conn->q[(conn->q_head + i) % conn->q_cap];
		g_free(conn->q);
		conn->q = q;
		conn->q_head = 0;
		conn->q_cap = cap;
	}
	conn->q[(conn->q_head + conn->q_len) % conn->q_cap] = codechat_ws_frame_ref(frame);
	conn->q_len++;
	conn->queued += frame->size;
	conn->group->counters.frames_out++;
	conn->group->counters.bytes_out += frame->size;
	raw_mark_dirty(conn);
}

/* writes what the socket takes; FALSE if the connection ended */
static gboolean
raw_flush(CodechatWsConn *conn)
{
	while (conn->q_len > 0 && conn->fd >= 0) {
		struct iovec iov[WS_MAX_IOV];
		struct msghdr mh = {0};
		guint n = MIN(conn->q_len, WS_MAX_IOV);
		gssize sent;

		for (guint i = 0; i < n; i++) {
			CodechatWsFrame *frame = conn->q[(conn->q_head + i) % conn->q_cap];
			gsize off = i == 0 ? conn->q_offset : 0;
			iov[i].iov_base = frame->data + off;
			iov[i].iov_len = frame->size - off;
		}
		mh.msg_iov = iov;
		mh.msg_iovlen = n;
		sent = sendmsg(conn->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (sent < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				raw_set_want_out(conn, TRUE);
				return TRUE;
			}
			/* reset or broken pipe: the peer is gone */
			g_debug("WebSocket write failed: %s", g_strerror(errno));
			raw_finish(conn);
			return FALSE;
		}
		conn->queued -= (guint64)sent;
		while (sent > 0) {
			CodechatWsFrame *frame = conn->q[conn->q_head];
			gsize left = frame->size - conn->q_offset;
			if ((gsize)sent < left) {
				conn->q_offset += (gsize)sent;
				sent = 0;
			} else {
				sent -= (gssize)left;
				conn->q_offset = 0;
				codechat_ws_frame_unref(frame);
				conn->q_head = (conn->q_head + 1) % conn->q_cap;
				conn->q_len--;
			}
		}
	}
	if (conn->fd < 0)
		return FALSE;
	/* an idle connection keeps no big queue */
	if (conn->q_cap > 16) {
		g_clear_pointer(&conn->q, g_free);
		conn->q_cap = 0;
	}
	conn->q_head = 0;
	raw_set_want_out(conn, FALSE);
	if (conn->finish_when_flushed) {
		raw_finish(conn);
		return FALSE;
	}
	/* a broken peer's close reply cannot be found in what it sends: our
	 * FIN after the close frame lets it end at once, and its EOF ends
	 * the connection here without a reset */
	if (conn->discard && conn->sent_close && !conn->shut_wr) {
		conn->shut_wr = TRUE;
		shutdown(conn->fd, SHUT_WR);
	}
	return TRUE;
}

static gboolean
close_timeout_cb(gpointer user_data)
{
	CodechatWsConn *conn = user_data;

	conn->close_timeout_id = 0;
	codechat_ws_conn_ref(conn);
	if (conn->soup != NULL) {
		/* the peer never answered: libsoup's own close fails to write on
		 * the half-closed socket and tears the connection down */
		GIOStream *io = soup_websocket_connection_get_io_stream(conn->soup);
		GSocket *socket = io != NULL ? g_object_get_data(G_OBJECT(io), "GSocket") : NULL;
		if (socket != NULL)
			g_socket_shutdown(socket, TRUE, TRUE, NULL);
		if (soup_websocket_connection_get_state(conn->soup) == SOUP_WEBSOCKET_STATE_OPEN)
			soup_websocket_connection_close(conn->soup,
							SOUP_WEBSOCKET_CLOSE_NORMAL,
							NULL);
	} else {
		raw_finish(conn);
	}
	codechat_ws_conn_unref(conn);
	return G_SOURCE_REMOVE;
}

static void
raw_begin_close(CodechatWsConn *conn, gushort code, const gchar *reason, guint timeout_s)
{
	g_autoptr(CodechatWsFrame) frame = NULL;
	gboolean was_open = conn->state == CODECHAT_WS_OPEN;

	if (conn->fd < 0 || conn->sent_close)
		return;
	conn->sent_close = TRUE;
	conn->state = CODECHAT_WS_CLOSING;
	frame = close_frame_new(code, reason);
	raw_push(conn, frame);
	if (conn->close_timeout_id == 0)
		conn->close_timeout_id = g_timeout_add_seconds(timeout_s, close_timeout_cb, conn);
	if (was_open)
		emit_closing(conn);
}

/* a peer that broke the protocol: close, and drop whatever else it sends */
static void
raw_fail(CodechatWsConn *conn, gushort code, const gchar *reason)
{
	g_debug("closing a WebSocket with %u: %s", code, reason);
	conn->discard = TRUE;
	raw_begin_close(conn, code, reason, WS_CLOSE_TIMEOUT_S);
}

static void
raw_deliver(CodechatWsConn *conn, guint8 op, const guint8 *data, gsize len)
{
	if (op == OP_TEXT && !g_utf8_validate_len((const gchar *)data, len, NULL)) {
		/* the framing is intact: the peer's close is still read */
		raw_begin_close(conn, 1007, "invalid UTF-8", WS_CLOSE_TIMEOUT_S);
		return;
	}
	if (conn->cb != NULL && conn->cb->message != NULL)
		conn->cb->message(conn, op == OP_TEXT, (const gchar *)data, len, conn->user_data);
}

static void
raw_handle_close(CodechatWsConn *conn, const guint8 *payload, gsize len)
{
	gushort code = 1005;

	if (len == 1) {
		raw_fail(conn, 1002, "bad close frame");
		return;
	}
	if (len >= 2)
		code = (gushort)((payload[0] << 8) | payload[1]);
	conn->close_code = code;
	/* a peer sends nothing after its close frame (RFC 6455 5.5.1):
	 * whatever still comes is read and dropped, and a second close
	 * frame does not replace the code */
	conn->discard = TRUE;
	if (conn->sent_close) {
		/* the answer to ours: done */
		conn->finish_when_flushed = TRUE;
		if (conn->q_len == 0)
			raw_finish(conn);
		return;
	}
	/* echo the code, then close the TCP connection */
	conn->finish_when_flushed = TRUE;
	raw_begin_close(conn, code == 1005 ? 0 : code, NULL, WS_CLOSE_TIMEOUT_S);
}

/* one complete frame; @payload is unmasked and writable */
static void
raw_handle_frame(CodechatWsConn *conn, guint8 b0, guint8 *payload, gsize len)
{
	guint8 op = b0 & 0x0f;
	gboolean fin = (b0 & 0x80) != 0;

	conn->group->counters.frames_in++;
	switch (op) {
	case OP_CLOSE:
		raw_handle_close(conn, payload, len);
		return;
	case OP_PING:
		if (conn->state == CODECHAT_WS_OPEN) {
			g_autoptr(CodechatWsFrame) pong = frame_new(OP_PONG, payload, len);
			raw_push(conn, pong);
		}
		return;
	case OP_PONG:
		if (conn->cb != NULL && conn->cb->pong != NULL)
			conn->cb->pong(conn, conn->user_data);
		return;
	default:
		break;
	}
	/* data: nothing more is taken once closing (raw_parse() skips it) */
	if (conn->state != CODECHAT_WS_OPEN)
		return;
	if (op == OP_CONTINUATION) {
		g_byte_array_append(conn->msg, payload, (guint)len);
		if (fin) {
			g_autoptr(GByteArray) msg = g_steal_pointer(&conn->msg);
			raw_deliver(conn, conn->msg_op, msg->data, msg->len);
		}
		return;
	}
	if (!fin) {
		conn->msg = g_byte_array_sized_new((guint)MIN(len * 2, conn->max_message));
		conn->msg_op = op;
		g_byte_array_append(conn->msg, payload, (guint)len);
		return;
	}
	raw_deliver(conn, op, payload, len);
}

/*
 * Parses the frames in @buf; returns the bytes used, the rest being a
 * partial frame.
 */
static gsize
raw_parse(CodechatWsConn *conn, guint8 *buf, gsize avail)
{
	gsize used = 0;

	while (used < avail && conn->fd >= 0) {
		guint8 *p = buf + used;
		gsize left = avail - used;
		guint8 b0, b1, op;
		guint64 len;
		gsize header = 2;
		const guint8 *mask;

		if (conn->discard)
			return avail;
		if (conn->skip > 0) {
			gsize n = (gsize)MIN(conn->skip, (guint64)left);
			conn->skip -= n;
			used += n;
			continue;
		}
		if (left < 2)
			break;
		b0 = p[0];
		b1 = p[1];
		op = b0 & 0x0f;
		len = b1 & 0x7f;
		if (len == 126)
			header = 4;
		else if (len == 127)
			header = 10;
		if ((b1 & 0x80) == 0) {
			raw_fail(conn, 1002, "client frames must be masked");
			return avail;
		}
		header += 4;
		if (left < header)
			break;
		if (len == 126) {
			len = ((guint64)p[2] << 8) | p[3];
		} else if (len == 127) {
			len = 0;
			for (gint i = 0; i < 8; i++)
				len = (len << 8) | p[2 + i];
			if (len >> 63) {
				raw_fail(conn, 1002, "bad frame length");
				return avail;
			}
		}
		if ((b0 & 0x70) != 0) {
			raw_fail(conn, 1002, "no extension was negotiated");
			return avail;
		}
		if (op >= 0x8) {
			if (op > OP_PONG || len > 125 || (b0 & 0x80) == 0) {
				raw_fail(conn, 1002, "bad control frame");
				return avail;
			}
		} else if (op > OP_BINARY || (op == OP_CONTINUATION && !conn->in_msg) ||
			   (op != OP_CONTINUATION && conn->in_msg)) {
			raw_fail(conn, 1002, "bad fragmentation");
			return avail;
		}
		if (op < 0x8 && conn->state == CODECHAT_WS_OPEN &&
		    len + (conn->msg != NULL ? conn->msg->len : 0) > conn->max_message) {
			/* the frame's payload is dropped as it comes, so that the
			 * peer still reads the 1009 and sees no reset */
			g_clear_pointer(&conn->msg, g_byte_array_unref);
			raw_begin_close(conn, 1009, "message too big", WS_CLOSE_TIMEOUT_S);
			/* the peer still sends the rest of its message, then
			 * its answer to our close frame */
			conn->in_msg = (b0 & 0x80) == 0;
			conn->skip = len;
			used += header;
			continue;
		}
		if (op < 0x8 && conn->state != CODECHAT_WS_OPEN) {
			/* closing: data is dropped as it comes */
			g_clear_pointer(&conn->msg, g_byte_array_unref);
			conn->in_msg = (b0 & 0x80) == 0;
			conn->skip = len;
			used += header;
			continue;
		}
		if ((guint64)left < header + len)
			break;
		mask = p + header - 4;
		for (gsize i = 0; i < len; i++)
			p[header + i] ^= mask[i & 3];
		used += header + (gsize)len;
		conn->group->counters.bytes_in += header + len;
		/* only for a whole frame: a partial one is parsed again */
		if (op < 0x8)
			conn->in_msg = (b0 & 0x80) == 0;
		raw_handle_frame(conn, b0, p + header, (gsize)len);
	}
	return used;
}

static void
raw_read(CodechatWsConn *conn)
{
	CodechatWsGroup *group = conn->group;
	gssize n;
	guint8 *data;
	gsize avail, used;

	n = recv(conn->fd, group->buf, WS_READ_SIZE, MSG_DONTWAIT);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		g_debug("WebSocket read failed: %s", g_strerror(errno));
		if (conn->state == CODECHAT_WS_OPEN) {
			conn->state = CODECHAT_WS_CLOSING;
			emit_closing(conn);
		}
		raw_finish(conn);
		return;
	}
	if (n == 0) {
		/* EOF: the peer closed without (or after) its close frame */
		if (conn->state == CODECHAT_WS_OPEN) {
			conn->state = CODECHAT_WS_CLOSING;
			emit_closing(conn);
		}
		/* it may have ended only its side and still read: what is
		 * queued (the answer to its close frame, the replies before
		 * it) goes out first, as far as the socket takes it */
		if (conn->fd >= 0 && conn->q_len > 0 && !raw_flush(conn))
			return;
		raw_finish(conn);
		return;
	}
	if (conn->in != NULL) {
		conn->in = g_realloc(conn->in, conn->in_len + (gsize)n);
		memcpy(conn->in + conn->in_len, group->buf, (gsize)n);
		conn->in_len += (gsize)n;
		data = conn->in;
		avail = conn->in_len;
	} else {
		data = group->buf;
		avail = (gsize)n;
	}
	used = raw_parse(conn, data, avail);
	if (conn->fd < 0)
		return;
	if (used == avail) {
		g_clear_pointer(&conn->in, g_free);
		conn->in_len = 0;
	} else if (data == conn->in) {
		memmove(conn->in, conn->in + used, avail - used);
		conn->in_len = avail - used;
	} else {
		conn->in = g_memdup2(data + used, avail - used);
		conn->in_len = avail - used;
	}
}

/* the group: one epoll set in the main context */

static gboolean
group_source_prepare(GSource *source, gint *timeout)
{
	GroupSource *gs = (GroupSource *)source;
	CodechatWsGroup *group = gs->group;
	gint64 left;

	/* output waits for nothing at the default priority to be ready, but
	 * not longer than WS_MAX_FLUSH_DELAY_US: this source, at the
	 * default priority itself, writes it then even without input */
	*timeout = -1;
	if (group->dirty->len == 0)
		return FALSE;
	left = group->dirty_since + WS_MAX_FLUSH_DELAY_US - g_get_monotonic_time();
	if (left <= 0)
		return TRUE;
	*timeout = (gint)((left + 999) / 1000);
	return FALSE;
}

static gboolean
group_source_check(GSource *source)
{
	GroupSource *gs = (GroupSource *)source;
	CodechatWsGroup *group = gs->group;

	return (g_source_query_unix_fd(source, group->tag) & G_IO_IN) != 0 ||
	       (group->dirty->len > 0 &&
		g_get_monotonic_time() - group->dirty_since >= WS_MAX_FLUSH_DELAY_US);
}

static gboolean
flush_source_prepare(GSource *source, gint *timeout)
{
	GroupSource *gs = (GroupSource *)source;

	*timeout = -1;
	return gs->group->dirty->len > 0;
}

static gboolean
flush_source_check(GSource *source)
{
	GroupSource *gs = (GroupSource *)source;

	return gs->group->dirty->len > 0;
}

static void
group_flush(CodechatWsGroup *group)
{
	/* a flush can close a connection, whose callbacks can queue more */
	while (group->dirty->len > 0) {
		g_autoptr(GPtrArray) dirty = group->dirty;

		group->dirty = g_ptr_array_new_full(dirty->len, NULL);
		for (guint i = 0; i < dirty->len; i++) {
			CodechatWsConn *conn = g_ptr_array_index(dirty, i);
			conn->dirty = FALSE;
			if (conn->fd >= 0 && !conn->want_out)
				raw_flush(conn);
			codechat_ws_conn_unref(conn);
		}
	}
}

static void
group_release_dead(CodechatWsGroup *group)
{
	while (group->dead->len > 0) {
		CodechatWsConn *conn = g_ptr_array_steal_index_fast(group->dead, 0);
		codechat_ws_conn_unref(conn);
	}
}

static gboolean
group_source_dispatch(GSource *source, GSourceFunc callback, gpointer user_data)
{
	GroupSource *gs = (GroupSource *)source;
	CodechatWsGroup *group = gs->group;

	group->dispatching = TRUE;
	if (g_source_query_unix_fd(source, group->tag) & G_IO_IN) {
		struct epoll_event events[WS_MAX_EVENTS];
		gint n = epoll_wait(group->epfd, events, WS_MAX_EVENTS, 0);

		for (gint i = 0; i < n; i++) {
			CodechatWsConn *conn = events[i].data.ptr;

			if (conn->fd < 0)
				continue;
			codechat_ws_conn_ref(conn);
			if (events[i].events & EPOLLOUT)
				raw_flush(conn);
			if (conn->fd >= 0 && (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
				raw_read(conn);
			codechat_ws_conn_unref(conn);
		}
	}
	if (group->dirty->len > 0 &&
	    g_get_monotonic_time() - group->dirty_since >= WS_MAX_FLUSH_DELAY_US)
		group_flush(group);
	group->dispatching = FALSE;
	group_release_dead(group);
	return G_SOURCE_CONTINUE;
}

static gboolean
flush_source_dispatch(GSource *source, GSourceFunc callback, gpointer user_data)
{
	GroupSource *gs = (GroupSource *)source;
	CodechatWsGroup *group = gs->group;

	group->dispatching = TRUE;
	group_flush(group);
	group->dispatching = FALSE;
	group_release_dead(group);
	return G_SOURCE_CONTINUE;
}

static GSourceFuncs group_source_funcs = {
    group_source_prepare,
    group_source_check,
    group_source_dispatch,
    NULL,
    NULL,
    NULL,
};

static GSourceFuncs flush_source_funcs = {
    flush_source_prepare,
    flush_source_check,
    flush_source_dispatch,
    NULL,
    NULL,
    NULL,
};

CodechatWsGroup *
codechat_ws_group_new(GError **error)
{
	CodechatWsGroup *group;
	GroupSource *gs;
	gint epfd = epoll_create1(EPOLL_CLOEXEC);

	if (epfd < 0) {
		gint saved = errno;
		g_set_error(error,
			    G_IO_ERROR,
			    g_io_error_from_errno(saved),
			    "epoll_create1: %s",
			    g_strerror(saved));
		return NULL;
	}
	group = g_new0(CodechatWsGroup, 1);
	group->ref_count = 1;
	group->epfd = epfd;
	group->dirty = g_ptr_array_new();
	group->dead = g_ptr_array_new();
	group->live = g_hash_table_new(NULL, NULL);
	group->buf = g_malloc(WS_READ_SIZE);
	group->source = g_source_new(&group_source_funcs, sizeof(GroupSource));
	gs = (GroupSource *)group->source;
	gs->group = group;
	g_source_set_static_name(group->source, "codechat WebSockets");
	group->tag = g_source_add_unix_fd(group->source, epfd, G_IO_IN);
	g_source_attach(group->source, g_main_context_get_thread_default());
	group->flush_source = g_source_new(&flush_source_funcs, sizeof(GroupSource));
	((GroupSource *)group->flush_source)->group = group;
	g_source_set_static_name(group->flush_source, "codechat WebSocket output");
	g_source_set_priority(group->flush_source, G_PRIORITY_DEFAULT + 1);
	g_source_attach(group->flush_source, g_main_context_get_thread_default());
	return group;
}

void
codechat_ws_group_free(CodechatWsGroup *group)
{
	g_autoptr(GPtrArray) live = g_ptr_array_new();
	GHashTableIter iter;
	CodechatWsConn *conn;

	g_source_destroy(group->source);
	g_source_unref(group->source);
	g_source_destroy(group->flush_source);
	g_source_unref(group->flush_source);
	while (group->dirty->len > 0) {
		conn = g_ptr_array_steal_index_fast(group->dirty, 0);
		conn->dirty = FALSE;
		codechat_ws_conn_unref(conn);
	}
	/* what is still open goes without a close handshake */
	g_hash_table_iter_init(&iter, group->live);
	while (g_hash_table_iter_next(&iter, (gpointer *)&conn, NULL))
		g_ptr_array_add(live, conn);
	for (guint i = 0; i < live->len; i++) {
		conn = g_ptr_array_index(live, i);
		codechat_ws_conn_disconnect(conn);
		raw_finish(conn);
	}
	group_release_dead(group);
	close(group->epfd);
	group->epfd = -1;
	/* connections still held elsewhere are closed and keep it alive */
	group_unref(group);
}

CodechatWsCounters *
codechat_ws_group_get_counters(CodechatWsGroup *group)
{
	return &group->counters;
}

CodechatWsConn *
codechat_ws_conn_new_raw(CodechatWsGroup *group, GIOStream *stream, GSocket *socket, GError **error)
{
	CodechatWsConn *conn;
	GInputStream *input = g_io_stream_get_input_stream(stream);
	gint one = 1;

	conn = g_new0(CodechatWsConn, 1);
	conn->ref_count = 1;
	conn->group = group;
	group->ref_count++;
	conn->state = CODECHAT_WS_OPEN;
	conn->fd = -1;
	conn->max_message = 256 * 1024;

	/* what the client sent right behind its request may already sit in
	 * libsoup's buffer */
	if (G_IS_POLLABLE_INPUT_STREAM(input)) {
		for (;;) {
			g_autoptr(GError) error_local = NULL;
			gssize n =
			    g_pollable_input_stream_read_nonblocking(G_POLLABLE_INPUT_STREAM(input),
								     group->buf,
								     WS_READ_SIZE,
								     NULL,
								     &error_local);
			if (n <= 0)
				break;
			conn->in = g_realloc(conn->in, conn->in_len + (gsize)n);
			memcpy(conn->in + conn->in_len, group->buf, (gsize)n);
			conn->in_len += (gsize)n;
		}
	}
	/* the duplicate shares the socket's O_NONBLOCK; libsoup's objects
	 * close only their own descriptor */
	conn->fd = fcntl(g_socket_get_fd(socket), F_DUPFD_CLOEXEC, 3);
	g_io_stream_close(stream, NULL, NULL);
	if (conn->fd < 0) {
		gint saved = errno;
		g_set_error(error,
			    G_IO_ERROR,
			    g_io_error_from_errno(saved),
			    "dup: %s",
			    g_strerror(saved));
		codechat_ws_conn_unref(conn);
		return NULL;
	}
	/* our own writes are whole queues: no need to wait for ACKs */
	setsockopt(conn->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	{
		struct epoll_event ev = {0};
		ev.events = EPOLLIN;
		ev.data.ptr = conn;
		if (epoll_ctl(group->epfd, EPOLL_CTL_ADD, conn->fd, &ev) < 0) {
			gint saved = errno;
			g_set_error(error,
				    G_IO_ERROR,
				    g_io_error_from_errno(saved),
				    "epoll_ctl: %s",
				    g_strerror(saved));
			codechat_ws_conn_unref(conn);
			return NULL;
		}
	}
	g_hash_table_add(group->live, codechat_ws_conn_ref(conn));
	return conn;
}

/* soup: TLS or permessage-deflate */

static void
soup_message_cb(SoupWebsocketConnection *soup, gint type, GBytes *message, gpointer user_data)
{
	CodechatWsConn *conn = user_data;
	gsize len = 0;
	const gchar *data = g_bytes_get_data(message, &len);

	conn->group->counters.frames_in++;
	conn->group->counters.bytes_in += len;
	if (conn->cb != NULL && conn->cb->message != NULL)
		conn->cb->message(conn,
				  type == SOUP_WEBSOCKET_DATA_TEXT,
				  data != NULL ? data : "",
				  len,
				  conn->user_data);
}

static void
soup_closing_cb(SoupWebsocketConnection *soup, gpointer user_data)
{
	CodechatWsConn *conn = user_data;

	if (conn->state == CODECHAT_WS_OPEN) {
		conn->state = CODECHAT_WS_CLOSING;
		emit_closing(conn);
	}
}

static void
soup_closed_cb(SoupWebsocketConnection *soup, gpointer user_data)
{
	CodechatWsConn *conn = user_data;

	g_clear_handle_id(&conn->close_timeout_id, g_source_remove);
	if (conn->state == CODECHAT_WS_CLOSED)
		return;
	if (conn->state == CODECHAT_WS_OPEN) {
		conn->state = CODECHAT_WS_CLOSING;
		emit_closing(conn);
	}
	conn->state = CODECHAT_WS_CLOSED;
	codechat_ws_conn_ref(conn);
	emit_closed(conn);
	codechat_ws_conn_unref(conn);
}

static void
soup_error_cb(SoupWebsocketConnection *soup, GError *error, gpointer user_data)
{
	CodechatWsConn *conn = user_data;

	g_debug("WebSocket: %s", error->message);
	/* for a frame over its limit libsoup drops the connection without a
	 * close frame; send 1009 while the stream is still open, as the
	 * protocol promises (libsoup writes it at once) */
	if (g_error_matches(error, SOUP_WEBSOCKET_ERROR, SOUP_WEBSOCKET_CLOSE_TOO_BIG))
		codechat_ws_conn_close(conn, SOUP_WEBSOCKET_CLOSE_TOO_BIG, "message too big");
}

static void
soup_pong_cb(SoupWebsocketConnection *soup, GBytes *message, gpointer user_data)
{
	CodechatWsConn *conn = user_data;

	if (conn->cb != NULL && conn->cb->pong != NULL)
		conn->cb->pong(conn, conn->user_data);
}

CodechatWsConn *
codechat_ws_conn_new_soup(CodechatWsGroup *group,
			  SoupWebsocketConnection *soup,
			  CodechatCountingStream *counting)
{
	CodechatWsConn *conn = g_new0(CodechatWsConn, 1);

	conn->ref_count = 1;
	conn->group = group;
	group->ref_count++;
	conn->fd = -1;
	conn->state = CODECHAT_WS_OPEN;
	conn->soup = g_object_ref(soup);
	conn->counting = counting != NULL ? g_object_ref(counting) : NULL;
	conn->max_message = 256 * 1024;
	return conn;
}

void
codechat_ws_conn_start(CodechatWsConn *conn,
		       const CodechatWsCallbacks *callbacks,
		       gpointer user_data,
		       gsize max_message,
		       guint keepalive)
{
	conn->cb = callbacks;
	conn->user_data = user_data;
	conn->max_message = max_message;
	if (conn->soup != NULL) {
		/* one frame over the limit: see soup_error_cb(); a message of
		 * many fragments is bounded by the hub */
		soup_websocket_connection_set_max_incoming_payload_size(conn->soup, max_message);
		soup_websocket_connection_set_keepalive_interval(conn->soup, keepalive);
		g_signal_connect(conn->soup, "message", G_CALLBACK(soup_message_cb), conn);
		g_signal_connect(conn->soup, "closing", G_CALLBACK(soup_closing_cb), conn);
		g_signal_connect(conn->soup, "closed", G_CALLBACK(soup_closed_cb), conn);
		g_signal_connect(conn->soup, "error", G_CALLBACK(soup_error_cb), conn);
		g_signal_connect(conn->soup, "pong", G_CALLBACK(soup_pong_cb), conn);
		return;
	}
	/* bytes that came with the handshake */
	if (conn->in != NULL && conn->fd >= 0) {
		g_autofree guint8 *in = g_steal_pointer(&conn->in);
		gsize len = conn->in_len;
		gsize used;

		conn->in_len = 0;
		codechat_ws_conn_ref(conn);
		used = raw_parse(conn, in, len);
		if (conn->fd >= 0 && used < len) {
			conn->in = g_memdup2(in + used, len - used);
			conn->in_len = len - used;
		}
		codechat_ws_conn_unref(conn);
	}
}

void
codechat_ws_conn_send(CodechatWsConn *conn, CodechatWsFrame *frame)
{
	if (conn->state != CODECHAT_WS_OPEN)
		return;
	if (conn->soup != NULL) {
		/* sending on a connection that is not open is a critical */
		if (soup_websocket_connection_get_state(conn->soup) != SOUP_WEBSOCKET_STATE_OPEN)
			return;
		conn->handed += frame->size;
		conn->group->counters.frames_out++;
		conn->group->counters.bytes_out += frame->size;
		soup_websocket_connection_send_text(conn->soup,
						    (const gchar *)frame->data + frame->header);
		return;
	}
	raw_push(conn, frame);
}

void
codechat_ws_conn_send_text(CodechatWsConn *conn, const gchar *text)
{
	g_autoptr(CodechatWsFrame) frame = NULL;

	if (conn->state != CODECHAT_WS_OPEN)
		return;
	frame = codechat_ws_frame_new_text(text, strlen(text));
	codechat_ws_conn_send(conn, frame);
}

void
codechat_ws_conn_flush(CodechatWsConn *conn)
{
	if (conn->soup == NULL && conn->fd >= 0 && !conn->want_out && conn->q_len > 0) {
		codechat_ws_conn_ref(conn);
		raw_flush(conn);
		codechat_ws_conn_unref(conn);
	}
}

gboolean
codechat_ws_conn_get_queued(CodechatWsConn *conn, guint64 *queued)
{
	if (conn->soup != NULL) {
		guint64 written;

		/* with permessage-deflate what is written is compressed and
		 * cannot be set against what was handed */
		if (conn->counting == NULL)
			return FALSE;
		written = codechat_counting_stream_get_written(conn->counting);
		/* pings and pongs are written but not counted as handed */
		*queued = conn->handed > written ? conn->handed - written : 0;
		return TRUE;
	}
	*queued = conn->queued;
	return TRUE;
}

/*
 * libsoup 3.2 refuses to send close codes between 1012 and 2999 (it sends
 * 1002 instead), but the protocol closes with 1013 "try again later".  So
 * write that close frame ourselves, straight after what libsoup already
 * wrote, and half-close the socket so that libsoup cannot put anything
 * after it; it notices the peer's answer or EOF and tears down as usual.
 * Only for connections with nothing else queued (a refusal right after the
 * upgrade); over TLS the frame cannot go to the socket directly, and the
 * peer gets 1001 instead.
 */
static void
soup_close_raw(CodechatWsConn *conn, gushort code, const gchar *reason)
{
	GIOStream *io = soup_websocket_connection_get_io_stream(conn->soup);
	GSocket *socket = io != NULL ? g_object_get_data(G_OBJECT(io), "GSocket") : NULL;
	g_autoptr(CodechatWsFrame) frame = NULL;

	if (socket == NULL || g_object_get_data(G_OBJECT(io), "codechat-tls") != NULL) {
		soup_websocket_connection_close(conn->soup,
						SOUP_WEBSOCKET_CLOSE_GOING_AWAY,
						reason);
		return;
	}
	frame = close_frame_new(code, reason);
	g_socket_send(socket, (const gchar *)frame->data, frame->size, NULL, NULL);
	g_socket_shutdown(socket, FALSE, TRUE, NULL);
	if (conn->close_timeout_id == 0)
		conn->close_timeout_id =
		    g_timeout_add_seconds(WS_CLOSE_TIMEOUT_S, close_timeout_cb, conn);
}

void
codechat_ws_conn_close(CodechatWsConn *conn, gushort code, const gchar *reason)
{
	if (conn->soup != NULL) {
		if (soup_websocket_connection_get_state(conn->soup) != SOUP_WEBSOCKET_STATE_OPEN)
			return;
		if (code >= 1012 && code < 3000)
			soup_close_raw(conn, code, reason);
		else
			soup_websocket_connection_close(conn->soup, code, reason);
		return;
	}
	raw_begin_close(conn, code, reason, WS_CLOSE_TIMEOUT_S);
}

void
codechat_ws_conn_close_now(CodechatWsConn *conn, gushort code, const gchar *reason)
{
	if (conn->soup != NULL) {
		g_autoptr(CodechatWsFrame) frame = NULL;
		g_autoptr(GBytes) bytes = NULL;

		if (soup_websocket_connection_get_state(conn->soup) != SOUP_WEBSOCKET_STATE_OPEN)
			return;
		if (conn->counting == NULL) {
			codechat_ws_conn_close(conn, code, reason);
			return;
		}
		/* libsoup is in the middle of a frame and still has the rest
		 * queued: the counting stream writes the close frame right
		 * after the frame in progress and refuses everything else, so
		 * that libsoup tears the connection down and frees its queue */
		frame = close_frame_new(code, reason);
		bytes = g_bytes_new(frame->data, frame->size);
		codechat_counting_stream_close_after_frame(conn->counting, bytes);
		if (conn->state == CODECHAT_WS_OPEN) {
			conn->state = CODECHAT_WS_CLOSING;
			emit_closing(conn);
		}
		if (conn->close_timeout_id == 0)
			conn->close_timeout_id =
			    g_timeout_add_seconds(WS_SLOW_CLOSE_TIMEOUT_S, close_timeout_cb, conn);
		return;
	}
	if (conn->fd < 0 || conn->sent_close)
		return;
	/* keep only the frame being written, whose rest the peer awaits */
	while (conn->q_len > (conn->q_offset > 0 ? 1u : 0u)) {
		guint last = (conn->q_head + conn->q_len - 1) % conn->q_cap;
		conn->queued -= conn->q[last]->size;
		codechat_ws_frame_unref(conn->q[last]);
		conn->q_len--;
	}
	raw_begin_close(conn, code, reason, WS_SLOW_CLOSE_TIMEOUT_S);
}

void
codechat_ws_conn_ping(CodechatWsConn *conn)
{
	static CodechatWsFrame *ping = NULL;

	/* libsoup sends its own */
	if (conn->soup != NULL || conn->state != CODECHAT_WS_OPEN)
		return;
	if (ping == NULL) {
		ping = frame_new(OP_PING, NULL, 0);
		/* shared for good */
		ping->ref_count = G_MAXINT / 2;
	}
	raw_push(conn, ping);
}
