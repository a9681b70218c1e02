/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat-test"

#include "config.h"

#include <string.h>
#include <sys/socket.h>

#include "codechat-test-ws.h"

/* what libsoup's client accepts from the daemon in one frame: far more
 * than any reply of the protocol, so that a large history page is never
 * the client's problem */
#define TEST_MAX_INCOMING (64 * 1024 * 1024)

struct _CodechatTestWs {
	SoupSession *session;	       /* (owned) */
	SoupWebsocketConnection *conn; /* (owned) */
	GQueue frames;		       /* (element-type gchar*) (owned) text frames not yet read */
	guint n_binary;		       /* binary frames received (the daemon never sends any) */
	gboolean closed;
	gboolean error_seen;
	gulong message_id;
	gulong closed_id;
	gulong error_id;
};

/* pumping the main context with a deadline */

typedef gboolean (*CondFunc)(gpointer data);

static gboolean
deadline_cb(gpointer user_data)
{
	gboolean *expired = user_data;
	*expired = TRUE;
	return G_SOURCE_REMOVE;
}

static gboolean
pump_until(CondFunc cond, gpointer data, guint timeout_ms)
{
	g_autoptr(GSource) source = NULL;
	gboolean expired = FALSE;
	GMainContext *ctx = g_main_context_get_thread_default();

	if (cond(data))
		return TRUE;
	source = g_timeout_source_new(timeout_ms);
	g_source_set_callback(source, deadline_cb, &expired, NULL);
	g_source_attach(source, ctx);
	while (!cond(data) && !expired)
		g_main_context_iteration(ctx, TRUE);
	g_source_destroy(source);
	return cond(data);
}

static gboolean
flag_set(gpointer data)
{
	return *(const gboolean *)data;
}

gboolean
codechat_test_pump_flag(const gboolean *flag, guint timeout_ms)
{
	return pump_until(flag_set, (gpointer)flag, timeout_ms);
}

/* connecting */

typedef struct {
	gboolean done;
	SoupWebsocketConnection *conn; /* (owned) (nullable) */
	GError *error;		       /* (owned) (nullable) */
} ConnectData;

static gboolean
connect_done(gpointer data)
{
	return ((ConnectData *)data)->done;
}

static void
connect_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
	ConnectData *cd = user_data;
	cd->conn = soup_session_websocket_connect_finish(SOUP_SESSION(source), res, &cd->error);
	cd->done = TRUE;
}

static void
message_cb(SoupWebsocketConnection *conn, gint type, GBytes *message, gpointer user_data)
{
	CodechatTestWs *ws = user_data;
	gsize len = 0;
	const gchar *data = g_bytes_get_data(message, &len);

	if (type != SOUP_WEBSOCKET_DATA_TEXT) {
		ws->n_binary++;
		return;
	}
	g_debug("< %.*s", (gint)MIN(len, 300), data != NULL ? data : "");
	g_queue_push_tail(&ws->frames, g_strndup(data != NULL ? data : "", len));
}

static void
closed_cb(SoupWebsocketConnection *conn, gpointer user_data)
{
	CodechatTestWs *ws = user_data;
	g_debug("closed with %u", soup_websocket_connection_get_close_code(conn));
	ws->closed = TRUE;
}

static void
error_cb(SoupWebsocketConnection *conn, GError *error, gpointer user_data)
{
	CodechatTestWs *ws = user_data;
	g_debug("websocket error: %s", error->message);
	ws->error_seen = TRUE;
}

/**
 * codechat_test_ws_try_connect:
 * @origin: (nullable): the Origin header to send, or %NULL for none
 * @protocols: (nullable): subprotocols to offer, or %NULL for none
 * @http_status: (out) (optional): the status of the handshake response
 *
 * Returns: a connected client, or %NULL with @error set when the
 *   handshake was refused or failed
 */
CodechatTestWs *
codechat_test_ws_try_connect(const gchar *uri,
			     const gchar *origin,
			     const gchar *const *protocols,
			     guint *http_status,
			     GError **error)
{
	g_autoptr(SoupSession) session = soup_session_new_with_options("timeout", 10, NULL);
	g_autoptr(SoupMessage) msg = soup_message_new(SOUP_METHOD_GET, uri);
	ConnectData cd = {0};
	CodechatTestWs *ws;

	g_assert_nonnull(msg);
	/* the daemon's permessage-deflate is its own choice; the client
	 * offers what a default libsoup client offers */
	soup_session_websocket_connect_async(session,
					     msg,
					     origin,
					     (gchar **)protocols,
					     G_PRIORITY_DEFAULT,
					     NULL,
					     connect_cb,
					     &cd);
	if (!pump_until(connect_done, &cd, 10000)) {
		g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "handshake timed out");
		/* the callback still points at the stack: wait it out */
		soup_session_abort(session);
		pump_until(connect_done, &cd, 10000);
		g_clear_object(&cd.conn);
		g_clear_error(&cd.error);
		return NULL;
	}
	if (http_status != NULL)
		*http_status = soup_message_get_status(msg);
	if (cd.conn == NULL) {
		g_propagate_error(error, cd.error);
		return NULL;
	}

	ws = g_new0(CodechatTestWs, 1);
	g_queue_init(&ws->frames);
	ws->session = g_steal_pointer(&session);
	ws->conn = cd.conn; /* keep our own reference: libsoup keeps none */
	soup_websocket_connection_set_max_incoming_payload_size(ws->conn, TEST_MAX_INCOMING);
	ws->message_id = g_signal_connect(ws->conn, "message", G_CALLBACK(message_cb), ws);
	ws->closed_id = g_signal_connect(ws->conn, "closed", G_CALLBACK(closed_cb), ws);
	ws->error_id = g_signal_connect(ws->conn, "error", G_CALLBACK(error_cb), ws);
	return ws;
}

/**
 * codechat_test_ws_connect:
 *
 * As codechat_test_ws_try_connect(), and asserts that the handshake
 * succeeded (HTTP 101).
 */
CodechatTestWs *
codechat_test_ws_connect(const gchar *uri, const gchar *origin, const gchar *const *protocols)
{
	g_autoptr(GError) error = NULL;
	guint status = 0;
	CodechatTestWs *ws = codechat_test_ws_try_connect(uri, origin, protocols, &status, &error);

	g_assert_no_error(error);
	g_assert_nonnull(ws);
	g_assert_cmpuint(status, ==, SOUP_STATUS_SWITCHING_PROTOCOLS);
	return ws;
}

CodechatTestWs *
codechat_test_ws_connect_simple(const gchar *uri)
{
	return codechat_test_ws_connect(uri, NULL, NULL);
}

static gboolean
ws_closed(gpointer data)
{
	return ((CodechatTestWs *)data)->closed;
}

void
codechat_test_ws_free(CodechatTestWs *ws)
{
	if (ws == NULL)
		return;
	/* a polite close, so that the daemon is not left waiting on us;
	 * nothing is asserted here */
	if (soup_websocket_connection_get_state(ws->conn) == SOUP_WEBSOCKET_STATE_OPEN)
		soup_websocket_connection_close(ws->conn, SOUP_WEBSOCKET_CLOSE_NORMAL, NULL);
	pump_until(ws_closed, ws, 2000);
	g_signal_handler_disconnect(ws->conn, ws->message_id);
	g_signal_handler_disconnect(ws->conn, ws->closed_id);
	g_signal_handler_disconnect(ws->conn, ws->error_id);
	g_clear_object(&ws->conn);
	g_queue_clear_full(&ws->frames, g_free);
	soup_session_abort(ws->session);
	g_clear_object(&ws->session);
	g_free(ws);
}

SoupWebsocketConnection *
codechat_test_ws_get_connection(CodechatTestWs *ws)
{
	return ws->conn;
}

const gchar *
codechat_test_ws_get_protocol(CodechatTestWs *ws)
{
	return soup_websocket_connection_get_protocol(ws->conn);
}

gboolean
codechat_test_ws_is_open(CodechatTestWs *ws)
{
	return soup_websocket_connection_get_state(ws->conn) == SOUP_WEBSOCKET_STATE_OPEN;
}

/* sending */

static void
assert_open(CodechatTestWs *ws)
{
	/* sending on a connection that is not OPEN is a critical in libsoup;
	 * fail the test with a clear message instead */
	if (!codechat_test_ws_is_open(ws))
		codechat_test_note("connection is not open (state %d, close code %u)",
				   soup_websocket_connection_get_state(ws->conn),
				   soup_websocket_connection_get_close_code(ws->conn));
	g_assert_cmpint(soup_websocket_connection_get_state(ws->conn),
			==,
			SOUP_WEBSOCKET_STATE_OPEN);
}

void
codechat_test_ws_send_text(CodechatTestWs *ws, const gchar *text)
{
	assert_open(ws);
	g_debug("> %.300s", text);
	soup_websocket_connection_send_text(ws->conn, text);
}

void
codechat_test_ws_sendf(CodechatTestWs *ws, const gchar *format, ...)
{
	g_autofree gchar *text = NULL;
	va_list args;

	va_start(args, format);
	text = g_strdup_vprintf(format, args);
	va_end(args);
	codechat_test_ws_send_text(ws, text);
}

void
codechat_test_ws_send_binary(CodechatTestWs *ws, gconstpointer data, gsize len)
{
	assert_open(ws);
	soup_websocket_connection_send_binary(ws->conn, data, len);
}

void
codechat_test_ws_send_ping(CodechatTestWs *ws, const gchar *ref)
{
	if (ref != NULL)
		codechat_test_ws_sendf(ws, "{\"type\":\"ping\",\"ref\":\"%s\"}", ref);
	else
		codechat_test_ws_send_text(ws, "{\"type\":\"ping\"}");
}

/* receiving */

static gboolean
ws_has_frame_or_closed(gpointer data)
{
	CodechatTestWs *ws = data;
	return !g_queue_is_empty(&ws->frames) || ws->closed;
}

/**
 * codechat_test_ws_recv_raw:
 *
 * Returns: (transfer full) (nullable): the next text frame, or %NULL when
 *   none came within @timeout_ms or the connection closed
 */
gchar *
codechat_test_ws_recv_raw(CodechatTestWs *ws, guint timeout_ms)
{
	pump_until(ws_has_frame_or_closed, ws, timeout_ms);
	/* the protocol has text frames only */
	g_assert_cmpuint(ws->n_binary, ==, 0);
	return g_queue_pop_head(&ws->frames);
}

static JsonObject *
parse_object(const gchar *frame)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonNode) node = json_from_string(frame, &error);

	if (error != NULL)
		codechat_test_note("frame is not JSON: %.500s", frame);
	g_assert_no_error(error);
	g_assert_nonnull(node);
	if (!JSON_NODE_HOLDS_OBJECT(node))
		codechat_test_note("frame is not an object: %.500s", frame);
	g_assert_true(JSON_NODE_HOLDS_OBJECT(node));
	return json_node_dup_object(node);
}

/**
 * codechat_test_ws_recv:
 *
 * Returns: (transfer full) (nullable): the next JSON object, or %NULL on
 *   timeout or close; a frame that is not a JSON object fails the test
 */
JsonObject *
codechat_test_ws_recv(CodechatTestWs *ws, guint timeout_ms)
{
	g_autofree gchar *frame = codechat_test_ws_recv_raw(ws, timeout_ms);

	if (frame == NULL)
		return NULL;
	return parse_object(frame);
}

static void
assert_type(JsonObject *obj, const gchar *type)
{
	const gchar *got = codechat_test_json_string(obj, "type");

	if (g_strcmp0(got, type) != 0) {
		g_autoptr(JsonNode) node = json_node_init_object(json_node_alloc(), obj);
		g_autofree gchar *text = json_to_string(node, FALSE);
		codechat_test_note("expected a \"%s\", got %.1000s", type, text);
	}
	g_assert_cmpstr(got, ==, type);
}

/**
 * codechat_test_ws_expect:
 *
 * Takes the next object, which must arrive within
 * %CODECHAT_TEST_TIMEOUT_MS and be of @type; nothing is skipped.
 *
 * Returns: (transfer full): the object
 */
/**
 * codechat_test_padded_ping:
 *
 * Returns: (transfer full): a ping request padded with an ignored member
 *   to exactly @size bytes
 */
gchar *
codechat_test_padded_ping(gsize size)
{
	const gchar *head = "{\"type\":\"ping\",\"ref\":\"big\",\"pad\":\"";
	const gchar *tail = "\"}";
	gsize fixed = strlen(head) + strlen(tail);
	g_autofree gchar *pad = NULL;

	g_assert_cmpuint(size, >, fixed);
	pad = g_strnfill(size - fixed, 'p');
	return g_strconcat(head, pad, tail, NULL);
}

/**
 * codechat_test_ws_join:
 *
 * Joins @room and waits for its "joined".
 */
void
codechat_test_ws_join(CodechatTestWs *ws, const gchar *room)
{
	g_autoptr(JsonObject) joined = NULL;

	codechat_test_ws_sendf(ws, "{\"type\":\"join\",\"room\":\"%s\"}", room);
	joined = codechat_test_ws_expect(ws, "joined");
	g_assert_cmpstr(codechat_test_json_string(joined, "room"), ==, room);
}

JsonObject *
codechat_test_ws_expect(CodechatTestWs *ws, const gchar *type)
{
	JsonObject *obj = codechat_test_ws_recv(ws, CODECHAT_TEST_TIMEOUT_MS);

	if (obj == NULL)
		codechat_test_note("expected a \"%s\", got %s",
				   type,
				   ws->closed ? "the connection closed" : "nothing (timeout)");
	g_assert_nonnull(obj);
	assert_type(obj, type);
	return obj;
}

/**
 * codechat_test_ws_expect_error:
 * @ref: (nullable): the ref the error must carry, or %NULL for none
 *
 * Returns: (transfer full): the error object
 */
JsonObject *
codechat_test_ws_expect_error(CodechatTestWs *ws, const gchar *code, const gchar *ref)
{
	JsonObject *obj = codechat_test_ws_expect(ws, "error");

	g_assert_cmpstr(codechat_test_json_string(obj, "code"), ==, code);
	g_assert_nonnull(codechat_test_json_string(obj, "message"));
	g_assert_cmpstr(codechat_test_json_string(obj, "ref"), ==, ref);
	if (ref == NULL)
		g_assert_false(json_object_has_member(obj, "ref"));
	return obj;
}

void
codechat_test_ws_expect_pong(CodechatTestWs *ws)
{
	g_autoptr(JsonObject) obj = codechat_test_ws_expect(ws, "pong");
	(void)obj;
}

guint
codechat_test_ws_pending(CodechatTestWs *ws)
{
	return g_queue_get_length(&ws->frames);
}

/* closing */

void
codechat_test_ws_close(CodechatTestWs *ws, gushort code)
{
	assert_open(ws);
	soup_websocket_connection_close(ws->conn, code, NULL);
}

/**
 * codechat_test_ws_wait_close:
 *
 * Waits for the connection to close; frames that arrive before are kept.
 *
 * Returns: the close code the peer sent, 1005 for a close frame without
 *   one, 1006 when the connection ended without a close frame, or -1 when
 *   it was still not closed after @timeout_ms
 */
gint
codechat_test_ws_wait_close(CodechatTestWs *ws, guint timeout_ms)
{
	gushort code;

	if (!pump_until(ws_closed, ws, timeout_ms))
		return -1;
	code = soup_websocket_connection_get_close_code(ws->conn);
	return code == 0 ? SOUP_WEBSOCKET_CLOSE_ABNORMAL : code;
}

/**
 * codechat_test_ws_had_error:
 *
 * Returns: whether libsoup reported a protocol or I/O error on the
 *   connection (a clean close reports none)
 */
gboolean
codechat_test_ws_had_error(CodechatTestWs *ws)
{
	return ws->error_seen;
}

/* hello */

/**
 * codechat_test_ws_hello:
 *
 * Sends `hello` and expects `welcome` for @nick as the next frame.
 *
 * Returns: (transfer full): the welcome
 */
JsonObject *
codechat_test_ws_hello(CodechatTestWs *ws, const gchar *nick)
{
	JsonObject *welcome;

	codechat_test_ws_sendf(ws,
			       "{\"type\":\"hello\",\"nick\":\"%s\",\"client\":\"test-daemon/1\"}",
			       nick);
	welcome = codechat_test_ws_expect(ws, "welcome");
	g_assert_cmpstr(codechat_test_json_string(welcome, "nick"), ==, nick);
	return welcome;
}

/**
 * codechat_test_ws_new_client:
 * @welcome: (out) (optional) (transfer full): the welcome
 *
 * Connects without Origin or subprotocol and says hello as @nick.
 */
CodechatTestWs *
codechat_test_ws_new_client(const gchar *uri, const gchar *nick, JsonObject **welcome)
{
	CodechatTestWs *ws = codechat_test_ws_connect_simple(uri);
	JsonObject *obj = codechat_test_ws_hello(ws, nick);

	if (welcome != NULL)
		*welcome = obj;
	else
		json_object_unref(obj);
	return ws;
}

/* HTTP */

typedef struct {
	gboolean done;
	GBytes *body;
	GError *error;
} GetData;

static gboolean
get_done(gpointer data)
{
	return ((GetData *)data)->done;
}

static void
get_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
	GetData *gd = user_data;
	gd->body = soup_session_send_and_read_finish(SOUP_SESSION(source), res, &gd->error);
	gd->done = TRUE;
}

/**
 * codechat_test_http_get:
 * @status: (out): the HTTP status
 * @content_type: (out) (optional) (transfer full): the Content-Type
 *
 * Returns: (transfer full): the body; asserts that the request got a
 *   response at all
 */
GBytes *
codechat_test_http_get(const gchar *url, guint *status, gchar **content_type)
{
	g_autoptr(SoupSession) session = soup_session_new_with_options("timeout", 10, NULL);
	g_autoptr(SoupMessage) msg = soup_message_new(SOUP_METHOD_GET, url);
	GetData gd = {0};

	g_assert_nonnull(msg);
	soup_session_send_and_read_async(session, msg, G_PRIORITY_DEFAULT, NULL, get_cb, &gd);
	g_assert_true(pump_until(get_done, &gd, 10000));
	g_assert_no_error(gd.error);
	*status = soup_message_get_status(msg);
	if (content_type != NULL)
		*content_type = g_strdup(
		    soup_message_headers_get_content_type(soup_message_get_response_headers(msg),
							  NULL));
	return gd.body;
}

/* a raw RFC 6455 client */

struct _CodechatTestRaw {
	GSocketConnection *conn; /* (owned) */
	GSocket *socket;	 /* (unowned) of conn */
	GByteArray *in;		 /* (owned) received, not yet parsed */
	gboolean eof;
	gboolean reset; /* the end came as an error (a reset), not a FIN */
	gboolean auto_pong;
	gboolean close_sent;
	gint close_code; /* -1 until a close frame came */
	guint n_pings;
};

static void
raw_write_all(CodechatTestRaw *raw, const guint8 *data, gsize len, GError **error)
{
	gsize done = 0;

	while (done < len) {
		gssize n =
		    g_socket_send(raw->socket, (const gchar *)data + done, len - done, NULL, error);
		if (n < 0)
			return;
		done += (gsize)n;
	}
}

/* reads more into raw->in; FALSE at the deadline or at the end */
static gboolean
raw_fill(CodechatTestRaw *raw, gint64 deadline)
{
	g_autoptr(GError) error = NULL;
	guint8 buf[16384];
	gint64 remaining = deadline - g_get_monotonic_time();
	gssize n;

	if (raw->eof || remaining <= 0)
		return FALSE;
	if (!g_socket_condition_timed_wait(raw->socket, G_IO_IN, remaining, NULL, &error))
		return FALSE;
	n = g_socket_receive(raw->socket, (gchar *)buf, sizeof(buf), NULL, &error);
	if (n <= 0) {
		if (error != NULL) {
			g_debug("raw receive: %s", error->message);
			raw->reset = TRUE;
		}
		raw->eof = TRUE;
		return FALSE;
	}
	g_byte_array_append(raw->in, buf, (guint)n);
	return TRUE;
}

/**
 * codechat_test_raw_connect:
 *
 * Opens a TCP connection to the host and port of @uri and performs the
 * opening handshake (no Origin, no subprotocol, no extensions); asserts
 * that the server switched protocols.
 */
static CodechatTestRaw *
raw_connect(const gchar *uri,
	    const gchar *local_address,
	    gint rcvbuf,
	    gconstpointer early,
	    gsize early_len)
{
	/* the example key of RFC 6455 section 1.3 and its accept value */
	const gchar *key = "dGhlIHNhbXBsZSBub25jZQ==";
	const gchar *accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
	g_autoptr(GError) error = NULL;
	g_autoptr(GUri) guri = g_uri_parse(uri, G_URI_FLAGS_NONE, &error);
	g_autofree gchar *request = NULL;
	g_autofree gchar *head = NULL;
	CodechatTestRaw *raw = g_new0(CodechatTestRaw, 1);
	gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
	guint8 *end = NULL;

	g_assert_no_error(error);
	raw->in = g_byte_array_new();
	raw->auto_pong = TRUE;
	raw->close_code = -1;
	raw->conn = codechat_test_tcp_connect(uri, local_address, rcvbuf);
	raw->socket = g_socket_connection_get_socket(raw->conn);
	/* bounds every blocking send */
	g_socket_set_timeout(raw->socket, 10);

	request = g_strdup_printf("GET %s HTTP/1.1\r\n"
				  "Host: %s:%d\r\n"
				  "Upgrade: websocket\r\n"
				  "Connection: Upgrade\r\n"
				  "Sec-WebSocket-Key: %s\r\n"
				  "Sec-WebSocket-Version: 13\r\n"
				  "\r\n",
				  g_uri_get_path(guri),
				  g_uri_get_host(guri),
				  g_uri_get_port(guri),
				  key);
	/* what the client sends before it has seen the 101 goes in the same
	 * write as the request */
	if (early_len > 0) {
		gsize request_len = strlen(request);
		request = g_realloc(request, request_len + early_len);
		memcpy(request + request_len, early, early_len);
		raw_write_all(raw, (const guint8 *)request, request_len + early_len, &error);
	} else {
		raw_write_all(raw, (const guint8 *)request, strlen(request), &error);
	}
	g_assert_no_error(error);

	while (end == NULL) {
		for (guint i = 0; i + 3 < raw->in->len; i++) {
			if (memcmp(raw->in->data + i, "\r\n\r\n", 4) == 0) {
				end = raw->in->data + i + 4;
				break;
			}
		}
		if (end == NULL)
			g_assert_true(raw_fill(raw, deadline));
	}
	head = g_strndup((const gchar *)raw->in->data, (gsize)(end - raw->in->data));
	g_byte_array_remove_range(raw->in, 0, (guint)(end - raw->in->data));
	if (!g_str_has_prefix(head, "HTTP/1.1 101"))
		codechat_test_note("raw handshake refused: %s", head);
	g_assert_true(g_str_has_prefix(head, "HTTP/1.1 101"));
	g_assert_nonnull(strstr(head, accept));
	return raw;
}

CodechatTestRaw *
codechat_test_raw_connect_full(const gchar *uri, const gchar *local_address, gint rcvbuf)
{
	return raw_connect(uri, local_address, rcvbuf, NULL, 0);
}

/**
 * codechat_test_raw_connect_early:
 * @early: bytes (frames) the client writes right behind its request, in
 *   the same write, before it has read the 101 response
 *
 * Like codechat_test_raw_connect().
 */
CodechatTestRaw *
codechat_test_raw_connect_early(const gchar *uri, gconstpointer early, gsize early_len)
{
	return raw_connect(uri, NULL, 0, early, early_len);
}

CodechatTestRaw *
codechat_test_raw_connect(const gchar *uri)
{
	return codechat_test_raw_connect_full(uri, NULL, 0);
}

GSocketConnection *
codechat_test_tcp_connect(const gchar *uri, const gchar *local_address, gint rcvbuf)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GUri) guri = g_uri_parse(uri, G_URI_FLAGS_NONE, &error);
	g_autoptr(GInetAddress) inet = NULL;
	g_autoptr(GSocketAddress) remote = NULL;
	g_autoptr(GSocket) socket = NULL;

	g_assert_no_error(error);
	inet = g_inet_address_new_from_string(g_uri_get_host(guri));
	g_assert_nonnull(inet);
	remote = g_inet_socket_address_new(inet, (guint16)g_uri_get_port(guri));
	socket = g_socket_new(g_inet_address_get_family(inet),
			      G_SOCKET_TYPE_STREAM,
			      G_SOCKET_PROTOCOL_TCP,
			      &error);
	g_assert_no_error(error);
	/* before connect, so that the window is small from the start */
	if (rcvbuf > 0) {
		g_socket_set_option(socket, SOL_SOCKET, SO_RCVBUF, rcvbuf, &error);
		g_assert_no_error(error);
	}
	if (local_address != NULL) {
		g_autoptr(GInetAddress) local_inet = g_inet_address_new_from_string(local_address);
		g_autoptr(GSocketAddress) local = g_inet_socket_address_new(local_inet, 0);
		g_socket_bind(socket, local, FALSE, &error);
		g_assert_no_error(error);
	}
	g_socket_set_timeout(socket, 10);
	g_socket_connect(socket, remote, NULL, &error);
	g_assert_no_error(error);
	return g_socket_connection_factory_create_connection(socket);
}

void
codechat_test_raw_free(CodechatTestRaw *raw)
{
	if (raw == NULL)
		return;
	g_io_stream_close(G_IO_STREAM(raw->conn), NULL, NULL);
	g_clear_object(&raw->conn);
	g_byte_array_unref(raw->in);
	g_free(raw);
}

void
codechat_test_raw_set_auto_pong(CodechatTestRaw *raw, gboolean auto_pong)
{
	raw->auto_pong = auto_pong;
}

guint
codechat_test_raw_get_pings(CodechatTestRaw *raw)
{
	return raw->n_pings;
}

GSocket *
codechat_test_raw_get_socket(CodechatTestRaw *raw)
{
	return raw->socket;
}

/**
 * codechat_test_raw_build_frame:
 * @out: where the frame is appended
 * @b0: the first byte: FIN, RSV1-3 and the opcode
 * @masked: whether to mask the payload, as a client must
 *
 * Appends one frame as it goes on the wire, with the shortest length
 * encoding for @len, so that tests can also build frames a client must
 * not send and write several of them at once.
 */
void
codechat_test_raw_build_frame(GByteArray *out,
			      guint8 b0,
			      gboolean masked,
			      gconstpointer payload,
			      gsize len)
{
	const guint8 *data = payload;
	guint8 head[14];
	guint8 mask[4];
	gsize head_len = 0;
	guint32 r = g_random_int();
	guint at;

	head[head_len++] = b0;
	if (len < 126) {
		head[head_len++] = (guint8)((masked ? 0x80 : 0) | len);
	} else if (len <= G_MAXUINT16) {
		head[head_len++] = (masked ? 0x80 : 0) | 126;
		head[head_len++] = (guint8)(len >> 8);
		head[head_len++] = (guint8)len;
	} else {
		head[head_len++] = (masked ? 0x80 : 0) | 127;
		for (gint shift = 56; shift >= 0; shift -= 8)
			head[head_len++] = (guint8)((guint64)len >> shift);
	}
	memcpy(mask, &r, sizeof(mask));
	g_byte_array_append(out, head, (guint)head_len);
	if (masked)
		g_byte_array_append(out, mask, sizeof(mask));
	at = out->len;
	g_byte_array_set_size(out, (guint)(at + len));
	for (gsize i = 0; i < len; i++)
		out->data[at + i] = masked ? data[i] ^ mask[i & 3] : data[i];
}

/**
 * codechat_test_raw_send_bytes:
 *
 * Writes @data as it is.  Write errors are not fatal.
 *
 * Returns: whether all of it was written
 */
gboolean
codechat_test_raw_send_bytes(CodechatTestRaw *raw, gconstpointer data, gsize len)
{
	g_autoptr(GError) error = NULL;

	raw_write_all(raw, data, len, &error);
	if (error != NULL) {
		g_debug("raw send: %s", error->message);
		return FALSE;
	}
	return TRUE;
}

/**
 * codechat_test_raw_send_frame:
 *
 * Sends one masked frame, as a client must.  Write errors are not fatal
 * (the server may close while we still write a frame it refuses).  After
 * a close frame, a close from the server is not answered again.
 *
 * Returns: whether the whole frame was written
 */
gboolean
codechat_test_raw_send_frame(CodechatTestRaw *raw,
			     gboolean fin,
			     guint8 opcode,
			     gconstpointer payload,
			     gsize len)
{
	g_autoptr(GByteArray) frame = g_byte_array_sized_new((guint)len + 14);

	codechat_test_raw_build_frame(frame,
				      (guint8)((fin ? 0x80 : 0x00) | (opcode & 0x0f)),
				      TRUE,
				      payload,
				      len);
	if ((opcode & 0x0f) == CODECHAT_TEST_WS_OP_CLOSE)
		raw->close_sent = TRUE;
	return codechat_test_raw_send_bytes(raw, frame->data, frame->len);
}

gboolean
codechat_test_raw_send_text(CodechatTestRaw *raw, const gchar *text)
{
	return codechat_test_raw_send_frame(raw,
					    TRUE,
					    CODECHAT_TEST_WS_OP_TEXT,
					    text,
					    strlen(text));
}

/* answers a close frame and remembers its code */
static void
raw_got_close(CodechatTestRaw *raw, GBytes *payload)
{
	gsize len = 0;
	const guint8 *data = g_bytes_get_data(payload, &len);

	if (raw->close_code >= 0)
		return;
	raw->close_code = len < 2 ? SOUP_WEBSOCKET_CLOSE_NO_STATUS
				  : (((gint)data[0] << 8) | data[1]);
	g_debug("raw connection closed by the server with %d", raw->close_code);
	if (!raw->close_sent) {
		raw->close_sent = TRUE;
		codechat_test_raw_send_frame(raw,
					     TRUE,
					     CODECHAT_TEST_WS_OP_CLOSE,
					     data,
					     MIN(len, 2));
	}
}

/**
 * codechat_test_raw_recv_frame:
 * @payload: (out) (transfer full)
 *
 * Reads the next frame as it is on the wire (server frames are not
 * masked).  Answers pings when auto-pong is on, and counts them; either
 * way the ping is returned.
 *
 * Returns: %FALSE on timeout or at the end of the stream
 */
gboolean
codechat_test_raw_recv_frame(CodechatTestRaw *raw,
			     guint timeout_ms,
			     guint8 *opcode,
			     gboolean *fin,
			     GBytes **payload)
{
	return codechat_test_raw_recv_frame_full(raw, timeout_ms, opcode, fin, payload, NULL);
}

/**
 * codechat_test_raw_recv_frame_full:
 * @info: (out caller-allocates) (optional): how the frame looked on the wire
 *
 * Like codechat_test_raw_recv_frame().
 */
gboolean
codechat_test_raw_recv_frame_full(CodechatTestRaw *raw,
				  guint timeout_ms,
				  guint8 *opcode,
				  gboolean *fin,
				  GBytes **payload,
				  CodechatTestRawFrameInfo *info)
{
	gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

	for (;;) {
		const guint8 *d = raw->in->data;
		gsize avail = raw->in->len;
		gsize at = 2;
		guint64 len;
		gboolean masked;

		if (avail >= 2) {
			masked = (d[1] & 0x80) != 0;
			len = d[1] & 0x7f;
			if (len == 126 && avail >= 4) {
				len = ((guint64)d[2] << 8) | d[3];
				at = 4;
			} else if (len == 127 && avail >= 10) {
				len = 0;
				for (guint i = 0; i < 8; i++)
					len = (len << 8) | d[2 + i];
				at = 10;
			} else if (len >= 126) {
				at = G_MAXSIZE; /* need more of the header */
			}
			if (masked && at != G_MAXSIZE)
				at += 4;
			if (at != G_MAXSIZE && avail >= at + len) {
				g_autofree guint8 *data = g_memdup2(d + at, (gsize)len);
				for (gsize i = 0; masked && i < len; i++)
					data[i] ^= d[at - 4 + (i & 3)];
				*opcode = d[0] & 0x0f;
				*fin = (d[0] & 0x80) != 0;
				if (info != NULL) {
					info->rsv = (d[0] >> 4) & 0x07;
					info->masked = masked;
					info->header_len = at;
					info->payload_len = (gsize)len;
				}
				*payload = g_bytes_new_take(g_steal_pointer(&data), (gsize)len);
				g_byte_array_remove_range(raw->in, 0, (guint)(at + len));
				if (*opcode == CODECHAT_TEST_WS_OP_CLOSE)
					raw_got_close(raw, *payload);
				if (*opcode == CODECHAT_TEST_WS_OP_PING) {
					gsize plen = 0;
					gconstpointer pdata = g_bytes_get_data(*payload, &plen);
					raw->n_pings++;
					if (raw->auto_pong && !raw->close_sent)
						codechat_test_raw_send_frame(
						    raw,
						    TRUE,
						    CODECHAT_TEST_WS_OP_PONG,
						    pdata,
						    plen);
				}
				return TRUE;
			}
		}
		if (!raw_fill(raw, deadline))
			return FALSE;
	}
}

/**
 * codechat_test_raw_recv:
 *
 * Returns: (transfer full) (nullable): the next text message as a JSON
 *   object, skipping control frames; %NULL on timeout, end or close
 */
JsonObject *
codechat_test_raw_recv(CodechatTestRaw *raw, guint timeout_ms)
{
	gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
	g_autoptr(GByteArray) message = g_byte_array_new();

	for (;;) {
		g_autoptr(GBytes) payload = NULL;
		gint64 remaining = (deadline - g_get_monotonic_time()) / 1000;
		guint8 opcode = 0;
		gboolean fin = FALSE;
		gsize len = 0;
		const guint8 *data;

		if (remaining <= 0 ||
		    !codechat_test_raw_recv_frame(raw, (guint)remaining, &opcode, &fin, &payload))
			return NULL;
		if (opcode == CODECHAT_TEST_WS_OP_CLOSE)
			return NULL;
		if (opcode & 0x08)
			continue;
		g_assert_cmpuint(opcode, !=, CODECHAT_TEST_WS_OP_BINARY);
		data = g_bytes_get_data(payload, &len);
		g_byte_array_append(message, data, (guint)len);
		if (fin) {
			g_autofree gchar *text =
			    g_strndup((const gchar *)message->data, message->len);
			g_debug("raw < %.300s", text);
			return parse_object(text);
		}
	}
}

JsonObject *
codechat_test_raw_expect(CodechatTestRaw *raw, const gchar *type)
{
	JsonObject *obj = codechat_test_raw_recv(raw, CODECHAT_TEST_TIMEOUT_MS);

	if (obj == NULL)
		codechat_test_note("expected a \"%s\" on the raw connection, got none", type);
	g_assert_nonnull(obj);
	assert_type(obj, type);
	return obj;
}

/**
 * codechat_test_raw_wait_close:
 *
 * Reads until a close frame, skipping everything else, and answers it.
 *
 * Returns: the close code, 1005 for a close frame without one, 1006 when
 *   the stream ended without a close frame, -1 on timeout
 */
gint
codechat_test_raw_wait_close(CodechatTestRaw *raw, guint timeout_ms)
{
	gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

	while (raw->close_code < 0) {
		g_autoptr(GBytes) payload = NULL;
		gint64 remaining = (deadline - g_get_monotonic_time()) / 1000;
		guint8 opcode = 0;
		gboolean fin = FALSE;

		if (remaining <= 0)
			return -1;
		if (!codechat_test_raw_recv_frame(raw, (guint)remaining, &opcode, &fin, &payload))
			return raw->eof ? SOUP_WEBSOCKET_CLOSE_ABNORMAL : -1;
	}
	return raw->close_code;
}

/**
 * codechat_test_raw_wait_eof:
 * @reset: (out) (optional): whether the end was an error (a reset)
 *   rather than an orderly FIN
 *
 * Reads and drops whatever comes until the server ends the TCP
 * connection.
 *
 * Returns: %TRUE at the end of the stream, %FALSE at the deadline
 */
gboolean
codechat_test_raw_wait_eof(CodechatTestRaw *raw, guint timeout_ms, gboolean *reset)
{
	gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

	while (!raw->eof) {
		if (!raw_fill(raw, deadline) && !raw->eof)
			return FALSE;
		g_byte_array_set_size(raw->in, 0);
	}
	if (reset != NULL)
		*reset = raw->reset;
	return TRUE;
}

JsonObject *
codechat_test_raw_hello(CodechatTestRaw *raw, const gchar *nick)
{
	g_autofree gchar *hello = g_strdup_printf("{\"type\":\"hello\",\"nick\":\"%s\"}", nick);
	JsonObject *welcome;

	g_assert_true(codechat_test_raw_send_text(raw, hello));
	welcome = codechat_test_raw_expect(raw, "welcome");
	g_assert_cmpstr(codechat_test_json_string(welcome, "nick"), ==, nick);
	return welcome;
}

void
codechat_test_note(const gchar *format, ...)
{
	g_autofree gchar *text = NULL;
	va_list args;

	va_start(args, format);
	text = g_strdup_vprintf(format, args);
	va_end(args);
	g_test_message("%s", text);
}

/* JSON members */

/**
 * codechat_test_json_string:
 *
 * Returns: (nullable): the string member, or %NULL when it is absent;
 *   a member of another type fails the test
 */
const gchar *
codechat_test_json_string(JsonObject *obj, const gchar *member)
{
	JsonNode *node = json_object_get_member(obj, member);

	if (node == NULL)
		return NULL;
	g_assert_true(JSON_NODE_HOLDS_VALUE(node));
	g_assert_cmpint(json_node_get_value_type(node), ==, G_TYPE_STRING);
	return json_node_get_string(node);
}

/**
 * codechat_test_json_int:
 *
 * Returns: the integer member, which must be present and an integer
 */
gint64
codechat_test_json_int(JsonObject *obj, const gchar *member)
{
	JsonNode *node = json_object_get_member(obj, member);

	if (node == NULL)
		codechat_test_note("member \"%s\" is missing", member);
	g_assert_nonnull(node);
	g_assert_true(JSON_NODE_HOLDS_VALUE(node));
	g_assert_cmpint(json_node_get_value_type(node), ==, G_TYPE_INT64);
	return json_node_get_int(node);
}
