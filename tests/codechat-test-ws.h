/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include <json-glib/json-glib.h>
#include <libsoup/soup.h>

G_BEGIN_DECLS

/* how long a test waits for a frame that must come */
#define CODECHAT_TEST_TIMEOUT_MS 5000

/*
 * CodechatTestWs: a synchronous WebSocket client for tests, over the real
 * libsoup client.  Every call pumps the thread-default main context until
 * its condition holds or its deadline passes; text frames are queued as
 * they arrive and handed out in order by the recv functions.
 */
typedef struct _CodechatTestWs CodechatTestWs;

CodechatTestWs *
codechat_test_ws_try_connect(const gchar *uri,
			     const gchar *origin,
			     const gchar *const *protocols,
			     guint *http_status,
			     GError **error);
CodechatTestWs *
codechat_test_ws_connect(const gchar *uri, const gchar *origin, const gchar *const *protocols);
CodechatTestWs *
codechat_test_ws_connect_simple(const gchar *uri);
void
codechat_test_ws_free(CodechatTestWs *ws);

SoupWebsocketConnection *
codechat_test_ws_get_connection(CodechatTestWs *ws);
const gchar *
codechat_test_ws_get_protocol(CodechatTestWs *ws);
gboolean
codechat_test_ws_is_open(CodechatTestWs *ws);

void
codechat_test_ws_send_text(CodechatTestWs *ws, const gchar *text);
void
codechat_test_ws_sendf(CodechatTestWs *ws, const gchar *format, ...) G_GNUC_PRINTF(2, 3);
void
codechat_test_ws_send_binary(CodechatTestWs *ws, gconstpointer data, gsize len);
void
codechat_test_ws_send_ping(CodechatTestWs *ws, const gchar *ref);

gchar *
codechat_test_ws_recv_raw(CodechatTestWs *ws, guint timeout_ms);
JsonObject *
codechat_test_ws_recv(CodechatTestWs *ws, guint timeout_ms);
JsonObject *
codechat_test_ws_expect(CodechatTestWs *ws, const gchar *type);
void
codechat_test_ws_join(CodechatTestWs *ws, const gchar *room);
gchar *
codechat_test_padded_ping(gsize size);
JsonObject *
codechat_test_ws_expect_error(CodechatTestWs *ws, const gchar *code, const gchar *ref);
void
codechat_test_ws_expect_pong(CodechatTestWs *ws);
guint
codechat_test_ws_pending(CodechatTestWs *ws);

void
codechat_test_ws_close(CodechatTestWs *ws, gushort code);
gint
codechat_test_ws_wait_close(CodechatTestWs *ws, guint timeout_ms);
gboolean
codechat_test_ws_had_error(CodechatTestWs *ws);

JsonObject *
codechat_test_ws_hello(CodechatTestWs *ws, const gchar *nick);
CodechatTestWs *
codechat_test_ws_new_client(const gchar *uri, const gchar *nick, JsonObject **welcome);

/* pumps the thread-default main context until *flag is TRUE */
gboolean
codechat_test_pump_flag(const gboolean *flag, guint timeout_ms);

/* plain HTTP */
GBytes *
codechat_test_http_get(const gchar *url, guint *status, gchar **content_type);

/*
 * CodechatTestRaw: a minimal RFC 6455 client over a plain socket, for
 * what libsoup refuses to send (invalid UTF-8, huge or fragmented frames)
 * and to watch pings.  Blocking, with deadlines.
 */
typedef struct _CodechatTestRaw CodechatTestRaw;

#define CODECHAT_TEST_WS_OP_CONT   0x0
#define CODECHAT_TEST_WS_OP_TEXT   0x1
#define CODECHAT_TEST_WS_OP_BINARY 0x2
#define CODECHAT_TEST_WS_OP_CLOSE  0x8
#define CODECHAT_TEST_WS_OP_PING   0x9
#define CODECHAT_TEST_WS_OP_PONG   0xA

CodechatTestRaw *
codechat_test_raw_connect(const gchar *uri);
/* with @early written right behind the request, in the same write */
CodechatTestRaw *
codechat_test_raw_connect_early(const gchar *uri, gconstpointer early, gsize early_len);
/* from local_address (NULL: any) with SO_RCVBUF rcvbuf (0: the default) */
CodechatTestRaw *
codechat_test_raw_connect_full(const gchar *uri, const gchar *local_address, gint rcvbuf);
/* a plain TCP connection to the host and port of a ws:// URI */
GSocketConnection *
codechat_test_tcp_connect(const gchar *uri, const gchar *local_address, gint rcvbuf);
void
codechat_test_raw_free(CodechatTestRaw *raw);
void
codechat_test_raw_set_auto_pong(CodechatTestRaw *raw, gboolean auto_pong);
guint
codechat_test_raw_get_pings(CodechatTestRaw *raw);
GSocket *
codechat_test_raw_get_socket(CodechatTestRaw *raw);
/* appends a frame; @b0 is FIN, RSV1-3 and the opcode */
void
codechat_test_raw_build_frame(GByteArray *out,
			      guint8 b0,
			      gboolean masked,
			      gconstpointer payload,
			      gsize len);
gboolean
codechat_test_raw_send_bytes(CodechatTestRaw *raw, gconstpointer data, gsize len);
gboolean
codechat_test_raw_send_frame(CodechatTestRaw *raw,
			     gboolean fin,
			     guint8 opcode,
			     gconstpointer payload,
			     gsize len);
gboolean
codechat_test_raw_send_text(CodechatTestRaw *raw, const gchar *text);
gboolean
codechat_test_raw_recv_frame(CodechatTestRaw *raw,
			     guint timeout_ms,
			     guint8 *opcode,
			     gboolean *fin,
			     GBytes **payload);
typedef struct {
	guint8 rsv; /* RSV1-3, in the low bits */
	gboolean masked;
	gsize header_len; /* 2, 4 or 10 bytes (plus 4 when masked) */
	gsize payload_len;
} CodechatTestRawFrameInfo;

gboolean
codechat_test_raw_recv_frame_full(CodechatTestRaw *raw,
				  guint timeout_ms,
				  guint8 *opcode,
				  gboolean *fin,
				  GBytes **payload,
				  CodechatTestRawFrameInfo *info);
JsonObject *
codechat_test_raw_recv(CodechatTestRaw *raw, guint timeout_ms);
JsonObject *
codechat_test_raw_expect(CodechatTestRaw *raw, const gchar *type);
gint
codechat_test_raw_wait_close(CodechatTestRaw *raw, guint timeout_ms);
gboolean
codechat_test_raw_wait_eof(CodechatTestRaw *raw, guint timeout_ms, gboolean *reset);
JsonObject *
codechat_test_raw_hello(CodechatTestRaw *raw, const gchar *nick);

/* a diagnostic line in the test log */
void
codechat_test_note(const gchar *format, ...) G_GNUC_PRINTF(1, 2);

/* members of reply objects */
const gchar *
codechat_test_json_string(JsonObject *obj, const gchar *member);
gint64
codechat_test_json_int(JsonObject *obj, const gchar *member);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(CodechatTestWs, codechat_test_ws_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CodechatTestRaw, codechat_test_raw_free)

G_END_DECLS
