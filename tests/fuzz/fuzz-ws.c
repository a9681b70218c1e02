/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat-fuzz"

#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "codechat-ws.h"

/*
 * libFuzzer target: the daemon's RFC 6455 frame parser (codechat-ws.c).
 * Arbitrary bytes come from the peer end of a socketpair into a
 * CodechatWsConn made with codechat_ws_conn_new_raw(), as after the
 * upgrade; the main context runs until they are consumed.  The callbacks
 * answer as the hub does: a reply frame, or a close, a close for a slow
 * reader, a ping, a burst of replies, chosen by a message's first byte.
 *
 * The input's first byte: bits 0-6 say how many of the bytes are already
 * there when the connection is made (the bytes a client sent right behind
 * its upgrade request, read from the GIOStream), bit 7 whether the peer
 * then ends its side (the connection must close at EOF) or the group is
 * freed with the connection still open.
 *
 * Each input runs twice: written at once, and cut into pieces of 1 to 17
 * bytes, each read before the next is written.  How TCP cuts the bytes
 * must not matter: both runs must see the same messages, pongs, closing
 * and close code.
 */

#define MAX_MESSAGE 1024
/* main context iterations a connection gets to settle */
#define MAX_ITERATIONS 1000

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
	gboolean closing;
	gboolean closed;
	GString *log; /* (unowned) what the callbacks saw */
} State;

static guint32
hash_bytes(const gchar *data, gsize len)
{
	guint32 h = 2166136261u;

	for (gsize i = 0; i < len; i++)
		h = (h ^ (guint8)data[i]) * 16777619u;
	return h;
}

static void
message_cb(CodechatWsConn *conn, gboolean text, const gchar *data, gsize len, gpointer user_data)
{
	State *state = user_data;
	g_autoptr(CodechatWsFrame) frame = NULL;
	guint64 queued = 0;

	/* what the parser promises the hub */
	g_assert_false(state->closed);
	g_assert_cmpint(codechat_ws_conn_get_state(conn), ==, CODECHAT_WS_OPEN);
	g_assert_cmpuint(len, <=, MAX_MESSAGE);
	if (text)
		g_assert_true(g_utf8_validate_len(data, len, NULL));
	g_string_append_printf(state->log,
			       "message %s %" G_GSIZE_FORMAT " %08x\n",
			       text ? "text" : "binary",
			       len,
			       hash_bytes(data, len));

	switch (len > 0 ? data[0] : '\0') {
	case 'c':
		codechat_ws_conn_close(conn, 1000, "bye");
		break;
	case 'n':
		codechat_ws_conn_close_now(conn, 1013, "reading too slowly");
		break;
	case 'p':
		codechat_ws_conn_ping(conn);
		break;
	case 'b':
		/* enough to grow the queue */
		for (guint i = 0; i < 40; i++)
			codechat_ws_conn_send_text(conn, "{\"type\":\"pong\"}");
		break;
	default:
		/* one frame as the hub fans it out: shared, 7-, 16- or 64-bit */
		frame = codechat_ws_frame_new_text(data, len);
		codechat_ws_conn_send(conn, frame);
		break;
	}
	g_assert_true(codechat_ws_conn_get_queued(conn, &queued));
}

static void
pong_cb(CodechatWsConn *conn, gpointer user_data)
{
	State *state = user_data;

	g_assert_false(state->closed);
	/* pongs that come after a close frame are read only if the
	 * connection is still there when they come: that depends on timing */
	if (codechat_ws_conn_get_state(conn) == CODECHAT_WS_OPEN)
		g_string_append(state->log, "pong\n");
}

static void
closing_cb(CodechatWsConn *conn, gpointer user_data)
{
	State *state = user_data;

	g_assert_false(state->closing);
	g_assert_cmpint(codechat_ws_conn_get_state(conn), !=, CODECHAT_WS_OPEN);
	state->closing = TRUE;
	g_string_append(state->log, "closing\n");
	/* the hub may still try to send: it must be dropped */
	codechat_ws_conn_send_text(conn, "{\"type\":\"late\"}");
}

static void
closed_cb(CodechatWsConn *conn, gpointer user_data)
{
	State *state = user_data;

	g_assert_false(state->closed);
	g_assert_cmpint(codechat_ws_conn_get_state(conn), ==, CODECHAT_WS_CLOSED);
	state->closed = TRUE;
	g_string_append_printf(state->log, "closed %u\n", codechat_ws_conn_get_close_code(conn));
	codechat_ws_conn_send_text(conn, "{\"type\":\"late\"}");
	codechat_ws_conn_ping(conn);
}

static const CodechatWsCallbacks callbacks = {
    .message = message_cb,
    .pong = pong_cb,
    .closing = closing_cb,
    .closed = closed_cb,
};

/* writes what the socket takes */
static gsize
peer_write(gint fd, const uint8_t *data, gsize len)
{
	gssize n = send(fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);

	return n > 0 ? (gsize)n : 0;
}

/* reads and drops what the connection wrote */
static void
peer_drain(gint fd)
{
	guint8 buf[16384];

	while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0)
		;
}

/* the next piece of a chunked write, 1 to 17 bytes */
static gsize
next_piece(guint32 *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return 1 + (*seed >> 16) % 17;
}

static void
run(const uint8_t *data, gsize size, gsize early, gboolean eof, gboolean chunked, GString *log)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GSocket) socket = NULL;
	g_autoptr(GSocketConnection) stream = NULL;
	g_autoptr(CodechatWsConn) conn = NULL;
	CodechatWsGroup *group;
	State state = {0};
	guint32 seed = (guint32)size;
	gint fds[2];
	gsize done;

	state.log = log;
	group = codechat_ws_group_new(&error);
	g_assert_no_error(error);
	g_assert_true(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
	socket = g_socket_new_from_fd(fds[0], &error);
	g_assert_no_error(error);
	stream = g_socket_connection_factory_create_connection(socket);

	done = peer_write(fds[1], data, early);
	g_assert_cmpuint(done, ==, early);
	conn = codechat_ws_conn_new_raw(group, G_IO_STREAM(stream), socket, &error);
	g_assert_no_error(error);
	g_assert_nonnull(conn);
	codechat_ws_conn_start(conn, &callbacks, &state, MAX_MESSAGE, 0);

	for (gsize i = 0; i < size + MAX_ITERATIONS; i++) {
		gint pending = 0;

		if (done < size) {
			gsize piece = chunked ? next_piece(&seed) : size;
			piece = MIN(piece, size - done);
			done += peer_write(fds[1], data + done, piece);
		} else if (eof && done != G_MAXSIZE) {
			shutdown(fds[1], SHUT_WR);
			done = G_MAXSIZE;
		}
		peer_drain(fds[1]);
		while (g_main_context_iteration(NULL, FALSE))
			;
		if (state.closed)
			break;
		/* all written and read, and nothing more to do */
		if (!eof && done >= size && !g_main_context_pending(NULL) &&
		    ioctl(fds[0], FIONREAD, &pending) == 0 && pending == 0)
			break;
	}
	/* at EOF every connection ends, whatever came before */
	if (eof)
		g_assert_true(state.closed);
	g_string_append_printf(log,
			       "end %d %u\n",
			       codechat_ws_conn_get_state(conn),
			       codechat_ws_conn_get_close_code(conn));

	/* what is still open goes without a close handshake */
	codechat_ws_group_free(group);
	g_assert_cmpint(codechat_ws_conn_get_state(conn), ==, CODECHAT_WS_CLOSED);
	close(fds[1]);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_autoptr(GString) whole = g_string_new(NULL);
	g_autoptr(GString) pieces = g_string_new(NULL);
	gsize early;
	gboolean eof;

	if (size < 1)
		return 0;
	eof = (data[0] & 0x80) != 0;
	early = MIN((gsize)(data[0] & 0x7f), size - 1);
	run(data + 1, size - 1, early, eof, FALSE, whole);
	run(data + 1, size - 1, early, eof, TRUE, pieces);
	if (strcmp(whole->str, pieces->str) != 0) {
		g_printerr("written at once:\n%s\nin pieces:\n%s", whole->str, pieces->str);
		g_assert_not_reached();
	}
	return 0;
}
