/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include <gio/gio.h>
#include <libsoup/soup.h>

#include "codechat-counting-stream.h"

G_BEGIN_DECLS

/*
 * The daemon's WebSocket connections after the handshake.  libsoup does
 * the HTTP upgrade; plain connections then run on codechat's own RFC 6455
 * framing over the socket, all of them in one epoll set that is a single
 * GSource of the main context (CodechatWsGroup).  A frame is serialized
 * once and the same bytes are queued to every recipient; each connection's
 * queue goes out with one sendmsg() per main loop iteration.  Connections
 * over TLS, or with permessage-deflate, stay on SoupWebsocketConnection
 * behind the same API.
 */

typedef struct _CodechatWsGroup CodechatWsGroup;
typedef struct _CodechatWsConn CodechatWsConn;
typedef struct _CodechatWsFrame CodechatWsFrame;

typedef enum {
	CODECHAT_WS_OPEN,
	CODECHAT_WS_CLOSING,
	CODECHAT_WS_CLOSED,
} CodechatWsState;

typedef struct {
	/* a whole message, text or binary; @data is not NUL-terminated */
	void (*message)(CodechatWsConn *conn,
			gboolean text,
			const gchar *data,
			gsize len,
			gpointer user_data);
	void (*pong)(CodechatWsConn *conn, gpointer user_data);
	/* either side began closing: nothing more is received */
	void (*closing)(CodechatWsConn *conn, gpointer user_data);
	/* the connection is gone */
	void (*closed)(CodechatWsConn *conn, gpointer user_data);
} CodechatWsCallbacks;

/* counted over every connection of a group, for /metrics */
typedef struct {
	guint64 frames_in;
	guint64 bytes_in;
	guint64 frames_out;
	guint64 bytes_out;
} CodechatWsCounters;

/* one text frame, shared by every connection it is queued on */
CodechatWsFrame *
codechat_ws_frame_new_text(const gchar *payload, gsize len);
CodechatWsFrame *
codechat_ws_frame_ref(CodechatWsFrame *frame);
void
codechat_ws_frame_unref(CodechatWsFrame *frame);
gsize
codechat_ws_frame_get_size(CodechatWsFrame *frame);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CodechatWsFrame, codechat_ws_frame_unref)

CodechatWsGroup *
codechat_ws_group_new(GError **error);
/* closes what is still open, without a close handshake */
void
codechat_ws_group_free(CodechatWsGroup *group);
CodechatWsCounters *
codechat_ws_group_get_counters(CodechatWsGroup *group);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CodechatWsGroup, codechat_ws_group_free)

/* a plain connection: @stream is what libsoup handed over after the 101
 * response, @socket its socket */
CodechatWsConn *
codechat_ws_conn_new_raw(CodechatWsGroup *group,
			 GIOStream *stream,
			 GSocket *socket,
			 GError **error);
/* TLS or permessage-deflate: libsoup's connection, @counting (nullable)
 * the stream under it when the queue can be measured */
CodechatWsConn *
codechat_ws_conn_new_soup(CodechatWsGroup *group,
			  SoupWebsocketConnection *soup,
			  CodechatCountingStream *counting);
CodechatWsConn *
codechat_ws_conn_ref(CodechatWsConn *conn);
void
codechat_ws_conn_unref(CodechatWsConn *conn);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CodechatWsConn, codechat_ws_conn_unref)

/* starts reading; set the callbacks first */
void
codechat_ws_conn_start(CodechatWsConn *conn,
		       const CodechatWsCallbacks *callbacks,
		       gpointer user_data,
		       gsize max_message,
		       guint keepalive);
/* no more callbacks */
void
codechat_ws_conn_disconnect(CodechatWsConn *conn);
CodechatWsState
codechat_ws_conn_get_state(CodechatWsConn *conn);
gboolean
codechat_ws_conn_is_soup(CodechatWsConn *conn);
void
codechat_ws_conn_send(CodechatWsConn *conn, CodechatWsFrame *frame);
void
codechat_ws_conn_send_text(CodechatWsConn *conn, const gchar *text);
/* writes now what the socket takes of the queue */
void
codechat_ws_conn_flush(CodechatWsConn *conn);
/* bytes queued and not yet written; FALSE when that cannot be known */
gboolean
codechat_ws_conn_get_queued(CodechatWsConn *conn, guint64 *queued);
/* sends a close frame after what is queued and waits for the peer's */
void
codechat_ws_conn_close(CodechatWsConn *conn, gushort code, const gchar *reason);
/* a reader too slow: drops what is queued and not begun, then closes */
void
codechat_ws_conn_close_now(CodechatWsConn *conn, gushort code, const gchar *reason);
void
codechat_ws_conn_ping(CodechatWsConn *conn);
/* the code of the peer's close frame, 1005 for none, 1006 if it had none */
gushort
codechat_ws_conn_get_close_code(CodechatWsConn *conn);

G_END_DECLS
