/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat-test"

#include "config.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "codechat-protocol.h"
#include "codechat-test-daemon.h"
#include "codechat-test-ws.h"

/*
 * The daemon's own RFC 6455 framing (daemon/codechat-ws.c), seen from a
 * raw socket against a real daemon: fragments with control frames in
 * between, frames that share a TCP segment or are cut into single bytes,
 * frames that come with the upgrade request, protocol errors, the close
 * handshake, the size limit, ping and pong, the keepalive and the three
 * length encodings in both directions.
 */

#define T CODECHAT_TEST_TIMEOUT_MS

#define OP_CONT	 CODECHAT_TEST_WS_OP_CONT
#define OP_TEXT	 CODECHAT_TEST_WS_OP_TEXT
#define OP_CLOSE CODECHAT_TEST_WS_OP_CLOSE
#define OP_PING	 CODECHAT_TEST_WS_OP_PING
#define OP_PONG	 CODECHAT_TEST_WS_OP_PONG
#define FIN	 0x80
#define RSV1	 0x40
#define RSV2	 0x20
#define RSV3	 0x10

#define CLOSE_NORMAL	     1000
#define CLOSE_PROTOCOL_ERROR 1002
#define CLOSE_NO_STATUS	     1005
#define CLOSE_TOO_BIG	     1009
/* the daemon's WS_CLOSE_TIMEOUT_S, and some slack */
#define CLOSE_TIMEOUT_MS (5000 + 3000)

/* a daemon left running by a failed assertion would outlive the test */
static pid_t daemon_pid;

static void
abort_handler(int sig)
{
	if (daemon_pid > 0)
		kill(daemon_pid, SIGKILL);
	signal(sig, SIG_DFL);
	raise(sig);
}

typedef struct {
	const gchar *const *args; /* for codechatd */
	gint bad;		  /* a BadFrame, for the protocol error cases */
	gsize size;		  /* bytes of text, for the early frames */
} Params;

typedef struct {
	CodechatTestDaemon *daemon; /* (owned) */
	GPtrArray *raws;	    /* (owned) (element-type CodechatTestRaw) */
	guint n_nicks;
} Fixture;

static void
fixture_setup(Fixture *fx, gconstpointer user_data)
{
	const Params *params = user_data;

	fx->daemon = codechat_test_daemon_start(params->args);
	daemon_pid = (pid_t)atoi(g_subprocess_get_identifier(fx->daemon->proc));
	fx->raws = g_ptr_array_new_with_free_func((GDestroyNotify)codechat_test_raw_free);
}

static void
fixture_teardown(Fixture *fx, gconstpointer user_data)
{
	g_ptr_array_set_size(fx->raws, 0);
	g_assert_cmpint(codechat_test_daemon_stop(fx->daemon), ==, 0);
	daemon_pid = 0;
	g_clear_pointer(&fx->daemon, codechat_test_daemon_free);
	g_clear_pointer(&fx->raws, g_ptr_array_unref);
}

static CodechatTestRaw *
fx_raw(Fixture *fx)
{
	CodechatTestRaw *raw = codechat_test_raw_connect(fx->daemon->uri);
	g_ptr_array_add(fx->raws, raw);
	return raw;
}

static CodechatTestRaw *
fx_raw_client(Fixture *fx, const gchar *nick)
{
	CodechatTestRaw *raw = fx_raw(fx);
	json_object_unref(codechat_test_raw_hello(raw, nick));
	return raw;
}

static JsonObject *
parse_payload(GBytes *payload)
{
	g_autoptr(JsonParser) parser = json_parser_new();
	g_autoptr(GError) error = NULL;
	gsize len = 0;
	const gchar *data = g_bytes_get_data(payload, &len);
	JsonNode *root;

	g_assert_true(json_parser_load_from_data(parser, data, (gssize)len, &error));
	g_assert_no_error(error);
	root = json_parser_get_root(parser);
	g_assert_true(JSON_NODE_HOLDS_OBJECT(root));
	return json_object_ref(json_node_get_object(root));
}

/* the next frame, which must come and be a well-formed server frame:
 * whole, unmasked, no RSV bit */
static GBytes *
expect_frame(CodechatTestRaw *raw, guint8 opcode, CodechatTestRawFrameInfo *info_out)
{
	CodechatTestRawFrameInfo info = {0};
	GBytes *payload = NULL;
	guint8 op = 0xff;
	gboolean fin = FALSE;

	g_assert_true(codechat_test_raw_recv_frame_full(raw, T, &op, &fin, &payload, &info));
	g_assert_cmpuint(op, ==, opcode);
	g_assert_true(fin);
	g_assert_false(info.masked);
	g_assert_cmpuint(info.rsv, ==, 0);
	if (info_out != NULL)
		*info_out = info;
	return payload;
}

/* the next frame must be a text frame with this type of message */
static JsonObject *
expect_message(CodechatTestRaw *raw, const gchar *type, CodechatTestRawFrameInfo *info)
{
	g_autoptr(GBytes) payload = expect_frame(raw, OP_TEXT, info);
	JsonObject *obj = parse_payload(payload);

	g_assert_cmpstr(codechat_test_json_string(obj, "type"), ==, type);
	return obj;
}

static void
assert_bytes(GBytes *bytes, gconstpointer data, gsize len)
{
	gsize got_len = 0;
	gconstpointer got = g_bytes_get_data(bytes, &got_len);

	g_assert_cmpmem(got, got_len, data, len);
}

/* the daemon still serves: @raw (already in room "r") says something and
 * gets it back, and a new connection says hello */
static void
assert_serving(Fixture *fx, CodechatTestRaw *raw)
{
	g_autofree gchar *nick = g_strdup_printf("later%u", ++fx->n_nicks);
	g_autoptr(JsonObject) ack = NULL;

	if (raw != NULL) {
		g_assert_true(codechat_test_raw_send_text(
		    raw,
		    "{\"type\":\"say\",\"room\":\"r\",\"text\":\"still here\",\"ref\":\"alive\"}"));
		ack = expect_message(raw, "message", NULL);
		g_assert_cmpstr(codechat_test_json_string(ack, "ref"), ==, "alive");
	}
	fx_raw_client(fx, nick);
}

static void
raw_join(CodechatTestRaw *raw, const gchar *room)
{
	g_autofree gchar *join = g_strdup_printf("{\"type\":\"join\",\"room\":\"%s\"}", room);
	g_autoptr(JsonObject) joined = NULL;

	g_assert_true(codechat_test_raw_send_text(raw, join));
	joined = expect_message(raw, "joined", NULL);
}

static void
append_text(GByteArray *out, const gchar *text)
{
	codechat_test_raw_build_frame(out, FIN | OP_TEXT, TRUE, text, strlen(text));
}

/* @raw has read the server's close frame and answered it: the daemon must
 * now end the TCP connection, with a FIN and soon */
static void
assert_tcp_closed(CodechatTestRaw *raw, guint timeout_ms)
{
	gint64 start = g_get_monotonic_time();
	gboolean reset = TRUE;

	if (!codechat_test_raw_wait_eof(raw, timeout_ms, &reset))
		codechat_test_note("the daemon did not end the TCP connection within %u ms",
				   timeout_ms);
	g_assert_true(codechat_test_raw_wait_eof(raw, 0, &reset));
	g_assert_false(reset);
	codechat_test_note("TCP connection ended after %" G_GINT64_FORMAT " ms",
			   (g_get_monotonic_time() - start) / 1000);
}

static const gchar *const args_default[] = {"--keepalive", "0", NULL};
static const Params params_default = {args_default, 0, 0};

/* fragments */

static void
test_fragments_ping_between(Fixture *fx, gconstpointer user_data)
{
	CodechatTestRaw *raw = fx_raw(fx);
	const gchar *parts[] = {"{\"type\":\"hel", "lo\",\"nick\":", "\"alice\"}"};
	const gchar *ping1 = "between the first two";
	g_autoptr(GBytes) pong1 = NULL;
	g_autoptr(GBytes) pong2 = NULL;
	g_autoptr(JsonObject) welcome = NULL;

	g_assert_true(
	    codechat_test_raw_send_frame(raw, FALSE, OP_TEXT, parts[0], strlen(parts[0])));
	g_assert_true(codechat_test_raw_send_frame(raw, TRUE, OP_PING, ping1, strlen(ping1)));
	g_assert_true(
	    codechat_test_raw_send_frame(raw, FALSE, OP_CONT, parts[1], strlen(parts[1])));
	/* an empty ping, and an empty fragment */
	g_assert_true(codechat_test_raw_send_frame(raw, TRUE, OP_PING, NULL, 0));
	g_assert_true(codechat_test_raw_send_frame(raw, FALSE, OP_CONT, NULL, 0));
	g_assert_true(codechat_test_raw_send_frame(raw, TRUE, OP_CONT, parts[2], strlen(parts[2])));

	/* each ping is answered as it comes, before the message is whole */
	pong1 = expect_frame(raw, OP_PONG, NULL);
	assert_bytes(pong1, ping1, strlen(ping1));
	pong2 = expect_frame(raw, OP_PONG, NULL);
	g_assert_cmpuint(g_bytes_get_size(pong2), ==, 0);
	welcome = expect_message(raw, "welcome", NULL);
	g_assert_cmpstr(codechat_test_json_string(welcome, "nick"), ==, "alice");
}

static void
test_fragments_utf8_split(Fixture *fx, gconstpointer user_data)
{
	/* "é" and "€" cut between fragments, one of them in one-byte pieces */
	CodechatTestRaw *raw = fx_raw_client(fx, "alice");
	const gchar *parts[] = {"{\"type\":\"say\",\"room\":\"r\",\"text\":\"caf\xc3",
				"\xa9 \xe2",
				"\x82",
				"\xac\",\"ref\":\"u\"}"};
	g_autoptr(JsonObject) msg = NULL;

	raw_join(raw, "r");
	for (guint i = 0; i < G_N_ELEMENTS(parts); i++)
		g_assert_true(codechat_test_raw_send_frame(raw,
							   i == G_N_ELEMENTS(parts) - 1,
							   i == 0 ? OP_TEXT : OP_CONT,
							   parts[i],
							   strlen(parts[i])));
	msg = expect_message(raw, "message", NULL);
	g_assert_cmpstr(codechat_test_json_string(msg, "text"), ==, "caf\xc3\xa9 \xe2\x82\xac");
	g_assert_cmpstr(codechat_test_json_string(msg, "ref"), ==, "u");
}

/* how frames meet TCP */

static void
test_batch_one_write(Fixture *fx, gconstpointer user_data)
{
	CodechatTestRaw *raw = fx_raw(fx);
	g_autoptr(GByteArray) out = g_byte_array_new();
	g_autoptr(JsonObject) welcome = NULL;
	g_autoptr(JsonObject) joined = NULL;

	append_text(out, "{\"type\":\"hello\",\"nick\":\"alice\"}");
	append_text(out, "{\"type\":\"join\",\"room\":\"r\"}");
	for (guint i = 1; i <= 5; i++) {
		g_autofree gchar *say = g_strdup_printf(
		    "{\"type\":\"say\",\"room\":\"r\",\"text\":\"number %u\",\"ref\":\"s%u\"}",
		    i,
		    i);
		append_text(out, say);
	}
	g_assert_true(codechat_test_raw_send_bytes(raw, out->data, out->len));

	welcome = expect_message(raw, "welcome", NULL);
	joined = expect_message(raw, "joined", NULL);
	for (guint i = 1; i <= 5; i++) {
		g_autoptr(JsonObject) msg = expect_message(raw, "message", NULL);
		g_autofree gchar *ref = g_strdup_printf("s%u", i);
		g_autofree gchar *text = g_strdup_printf("number %u", i);
		g_assert_cmpstr(codechat_test_json_string(msg, "ref"), ==, ref);
		g_assert_cmpstr(codechat_test_json_string(msg, "text"), ==, text);
		g_assert_cmpint(codechat_test_json_int(msg, "id"), ==, i);
	}
}

static void
test_batch_byte_at_a_time(Fixture *fx, gconstpointer user_data)
{
	CodechatTestRaw *raw = fx_raw(fx);
	g_autoptr(GByteArray) out = g_byte_array_new();
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonObject) welcome = NULL;
	g_autoptr(JsonObject) pong = NULL;
	g_autofree gchar *padded = codechat_test_padded_ping(300);

	/* every byte its own segment */
	g_socket_set_option(codechat_test_raw_get_socket(raw), IPPROTO_TCP, TCP_NODELAY, 1, &error);
	g_assert_no_error(error);
	append_text(out, "{\"type\":\"hello\",\"nick\":\"alice\"}");
	/* a 16-bit length, cut inside its header too */
	append_text(out, padded);
	/* a message in fragments, each of them cut */
	codechat_test_raw_build_frame(out, OP_TEXT, TRUE, "{\"type\":\"ping\",", 15);
	codechat_test_raw_build_frame(out, FIN | OP_CONT, TRUE, "\"ref\":\"frag\"}", 13);
	for (guint i = 0; i < out->len; i++) {
		g_assert_true(codechat_test_raw_send_bytes(raw, out->data + i, 1));
		g_usleep(i < 64 ? 2000 : 200);
	}
	welcome = expect_message(raw, "welcome", NULL);
	pong = expect_message(raw, "pong", NULL);
	g_assert_cmpstr(codechat_test_json_string(pong, "ref"), ==, "big");
	g_clear_pointer(&pong, json_object_unref);
	pong = expect_message(raw, "pong", NULL);
	g_assert_cmpstr(codechat_test_json_string(pong, "ref"), ==, "frag");
}

static void
test_early_frames(Fixture *fx, gconstpointer user_data)
{
	gsize text_len = ((const Params *)user_data)->size;
	g_autoptr(GByteArray) out = g_byte_array_new();
	g_autofree gchar *text = g_strnfill(text_len, 't');
	g_autofree gchar *say =
	    g_strdup_printf("{\"type\":\"say\",\"room\":\"r\",\"text\":\"%s\",\"ref\":\"early\"}",
			    text);
	const gchar *types[] = {"welcome", "joined", "message", "pong"};
	g_autoptr(GBytes) pong_frame = NULL;
	guint n_texts = 0;
	CodechatTestRaw *raw;

	append_text(out, "{\"type\":\"hello\",\"nick\":\"alice\"}");
	append_text(out, "{\"type\":\"join\",\"room\":\"r\"}");
	append_text(out, say);
	codechat_test_raw_build_frame(out, FIN | OP_PING, TRUE, "early", 5);
	append_text(out, "{\"type\":\"ping\",\"ref\":\"last\"}");
	raw = codechat_test_raw_connect_early(fx->daemon->uri, out->data, out->len);
	g_ptr_array_add(fx->raws, raw);

	/* the replies in order; the pong frame goes out as the ping is read,
	 * which may be before a reply that waited for the store */
	while (n_texts < G_N_ELEMENTS(types) || pong_frame == NULL) {
		guint8 op = 0;
		gboolean fin = FALSE;
		g_autoptr(GBytes) payload = NULL;
		g_autoptr(JsonObject) obj = NULL;

		g_assert_true(codechat_test_raw_recv_frame(raw, T, &op, &fin, &payload));
		g_assert_true(fin);
		if (op == OP_PONG) {
			g_assert_null(pong_frame);
			pong_frame = g_steal_pointer(&payload);
			continue;
		}
		g_assert_cmpuint(op, ==, OP_TEXT);
		g_assert_cmpuint(n_texts, <, G_N_ELEMENTS(types));
		obj = parse_payload(payload);
		g_assert_cmpstr(codechat_test_json_string(obj, "type"), ==, types[n_texts]);
		if (n_texts == 2) {
			g_assert_cmpstr(codechat_test_json_string(obj, "ref"), ==, "early");
			g_assert_cmpstr(codechat_test_json_string(obj, "text"), ==, text);
		} else if (n_texts == 3) {
			g_assert_cmpstr(codechat_test_json_string(obj, "ref"), ==, "last");
		}
		n_texts++;
	}
	assert_bytes(pong_frame, "early", 5);
}

static const Params params_early_small = {args_default, 0, 10};
/* more than libsoup reads in one go while it looks for the end of the
 * request: the rest is still in the socket */
static const Params params_early_big = {args_default, 0, 60000};

/* protocol errors: 1002, and the daemon serves on */

typedef enum {
	BAD_UNMASKED,
	BAD_RSV1,
	BAD_RSV2,
	BAD_RSV3,
	BAD_OPCODE_3,
	BAD_OPCODE_B,
	BAD_CONTROL_126,
	BAD_CONTROL_NO_FIN,
	BAD_CONT_WITHOUT_START,
	BAD_TEXT_IN_FRAGMENTED,
	BAD_CLOSE_1_BYTE,
	BAD_LENGTH_MSB,
	N_BAD,
} BadFrame;

static const Params params_bad[N_BAD] = {
    {args_default, BAD_UNMASKED, 0},
    {args_default, BAD_RSV1, 0},
    {args_default, BAD_RSV2, 0},
    {args_default, BAD_RSV3, 0},
    {args_default, BAD_OPCODE_3, 0},
    {args_default, BAD_OPCODE_B, 0},
    {args_default, BAD_CONTROL_126, 0},
    {args_default, BAD_CONTROL_NO_FIN, 0},
    {args_default, BAD_CONT_WITHOUT_START, 0},
    {args_default, BAD_TEXT_IN_FRAGMENTED, 0},
    {args_default, BAD_CLOSE_1_BYTE, 0},
    {args_default, BAD_LENGTH_MSB, 0},
};

static GByteArray *
bad_frames(BadFrame bad)
{
	GByteArray *out = g_byte_array_new();
	const gchar *ping = "{\"type\":\"ping\",\"ref\":\"bad\"}";
	gsize ping_len = strlen(ping);
	g_autofree gchar *big = g_strnfill(126, 'c');

	switch (bad) {
	case BAD_UNMASKED:
		codechat_test_raw_build_frame(out, FIN | OP_TEXT, FALSE, ping, ping_len);
		break;
	case BAD_RSV1:
		codechat_test_raw_build_frame(out, FIN | RSV1 | OP_TEXT, TRUE, ping, ping_len);
		break;
	case BAD_RSV2:
		codechat_test_raw_build_frame(out, FIN | RSV2 | OP_TEXT, TRUE, ping, ping_len);
		break;
	case BAD_RSV3:
		codechat_test_raw_build_frame(out, FIN | RSV3 | OP_TEXT, TRUE, ping, ping_len);
		break;
	case BAD_OPCODE_3:
		codechat_test_raw_build_frame(out, FIN | 0x3, TRUE, ping, ping_len);
		break;
	case BAD_OPCODE_B:
		codechat_test_raw_build_frame(out, FIN | 0xb, TRUE, "x", 1);
		break;
	case BAD_CONTROL_126:
		codechat_test_raw_build_frame(out, FIN | OP_PING, TRUE, big, 126);
		break;
	case BAD_CONTROL_NO_FIN:
		codechat_test_raw_build_frame(out, OP_PING, TRUE, "x", 1);
		break;
	case BAD_CONT_WITHOUT_START:
		codechat_test_raw_build_frame(out, FIN | OP_CONT, TRUE, ping, ping_len);
		break;
	case BAD_TEXT_IN_FRAGMENTED:
		codechat_test_raw_build_frame(out, OP_TEXT, TRUE, ping, 8);
		codechat_test_raw_build_frame(out, FIN | OP_TEXT, TRUE, ping, ping_len);
		break;
	case BAD_CLOSE_1_BYTE:
		codechat_test_raw_build_frame(out, FIN | OP_CLOSE, TRUE, "\x03", 1);
		break;
	case BAD_LENGTH_MSB: {
		/* a 64-bit length with its most significant bit set */
		const guint8 frame[] =
		    {FIN | OP_TEXT, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 2, 1, 2, 3, 4, 'h', 'i'};
		g_byte_array_append(out, frame, sizeof frame);
		break;
	}
	case N_BAD:
	default:
		g_assert_not_reached();
	}
	return out;
}

static void
test_protocol_error(Fixture *fx, gconstpointer user_data)
{
	BadFrame bad = ((const Params *)user_data)->bad;
	CodechatTestRaw *alice = fx_raw_client(fx, "alice");
	CodechatTestRaw *mallory = fx_raw_client(fx, "mallory");
	g_autoptr(GByteArray) out = bad_frames(bad);
	guint8 op = 0;
	gboolean fin = FALSE;

	raw_join(alice, "r");
	g_assert_true(codechat_test_raw_send_bytes(mallory, out->data, out->len));
	/* the close frame is the next frame: nothing of the bad frame was
	 * taken for a message */
	{
		g_autoptr(GBytes) payload = expect_frame(mallory, OP_CLOSE, NULL);
		gsize len = 0;
		const guint8 *data = g_bytes_get_data(payload, &len);
		g_assert_cmpuint(len, >=, 2);
		g_assert_cmpuint((data[0] << 8) | data[1], ==, CLOSE_PROTOCOL_ERROR);
		g_assert_true(g_utf8_validate((const gchar *)data + 2, (gssize)len - 2, NULL));
	}
	/* nothing after the close frame */
	{
		g_autoptr(GBytes) payload = NULL;
		g_assert_false(codechat_test_raw_recv_frame(mallory, 200, &op, &fin, &payload));
	}
	assert_serving(fx, alice);
}

static void
test_protocol_errors_all(Fixture *fx, gconstpointer user_data)
{
	/* all at once on one daemon, and each connection ends with a FIN
	 * right behind the close frame (what the client still sends is read
	 * and dropped until its EOF or the close timeout) */
	CodechatTestRaw *alice = fx_raw_client(fx, "alice");
	CodechatTestRaw *bad[N_BAD];

	raw_join(alice, "r");
	for (guint i = 0; i < N_BAD; i++) {
		g_autoptr(GByteArray) out = bad_frames(i);
		g_autofree gchar *nick = g_strdup_printf("bad%u", i);
		bad[i] = fx_raw_client(fx, nick);
		g_assert_true(codechat_test_raw_send_bytes(bad[i], out->data, out->len));
		/* and more garbage behind it */
		g_assert_true(codechat_test_raw_send_bytes(bad[i], "\x81\x85garbage", 9));
	}
	for (guint i = 0; i < N_BAD; i++)
		g_assert_cmpint(codechat_test_raw_wait_close(bad[i], T), ==, CLOSE_PROTOCOL_ERROR);
	assert_serving(fx, alice);
	for (guint i = 0; i < N_BAD; i++)
		assert_tcp_closed(bad[i], 1000);
	assert_serving(fx, alice);
}

/* the close handshake */

static void
test_close_echo(Fixture *fx, gconstpointer user_data)
{
	CodechatTestRaw *alice = fx_raw_client(fx, "alice");
	CodechatTestRaw *bob = fx_raw_client(fx, "bob");
	const guint8 close[] = {CLOSE_NORMAL >> 8, CLOSE_NORMAL & 0xff, 'b', 'y', 'e'};
	g_autoptr(GBytes) payload = NULL;
	g_autoptr(JsonObject) presence = NULL;
	gsize len = 0;
	const guint8 *data;

	raw_join(alice, "r");
	raw_join(bob, "r");
	presence = expect_message(alice, "presence", NULL);
	g_clear_pointer(&presence, json_object_unref);

	g_assert_true(codechat_test_raw_send_frame(bob, TRUE, OP_CLOSE, close, sizeof close));
	payload = expect_frame(bob, OP_CLOSE, NULL);
	data = g_bytes_get_data(payload, &len);
	g_assert_cmpuint(len, >=, 2);
	g_assert_cmpuint((data[0] << 8) | data[1], ==, CLOSE_NORMAL);
	assert_tcp_closed(bob, 1000);

	presence = expect_message(alice, "presence", NULL);
	g_assert_cmpstr(codechat_test_json_string(presence, "nick"), ==, "bob");
	g_assert_cmpstr(codechat_test_json_string(presence, "event"), ==, "quit");
	assert_serving(fx, alice);
}

static void
test_close_empty(Fixture *fx, gconstpointer user_data)
{
	CodechatTestRaw *alice = fx_raw_client(fx, "alice");
	g_autoptr(GBytes) payload = NULL;

	g_assert_true(codechat_test_raw_send_frame(alice, TRUE, OP_CLOSE, NULL, 0));
	payload = expect_frame(alice, OP_CLOSE, NULL);
	g_assert_cmpuint(g_bytes_get_size(payload), ==, 0);
	assert_tcp_closed(alice, 1000);
	assert_serving(fx, NULL);
}

static void
test_close_half_close(Fixture *fx, gconstpointer user_data)
{
	/* a client that ends its side of TCP right behind its close frame
	 * still gets the answer, and the requests before it their replies */
	CodechatTestRaw *alice = fx_raw_client(fx, "alice");
	const guint8 close[] = {CLOSE_NORMAL >> 8, CLOSE_NORMAL & 0xff};
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonObject) pong = NULL;
	g_autoptr(GBytes) payload = NULL;
	gsize len = 0;
	const guint8 *data;

	g_assert_true(codechat_test_raw_send_text(alice, "{\"type\":\"ping\",\"ref\":\"last\"}"));
	g_assert_true(codechat_test_raw_send_frame(alice, TRUE, OP_CLOSE, close, sizeof close));
	g_socket_shutdown(codechat_test_raw_get_socket(alice), FALSE, TRUE, &error);
	g_assert_no_error(error);

	pong = expect_message(alice, "pong", NULL);
	g_assert_cmpstr(codechat_test_json_string(pong, "ref"), ==, "last");
	payload = expect_frame(alice, OP_CLOSE, NULL);
	data = g_bytes_get_data(payload, &len);
	g_assert_cmpuint(len, >=, 2);
	g_assert_cmpuint((data[0] << 8) | data[1], ==, CLOSE_NORMAL);
	assert_tcp_closed(alice, 1000);
	assert_serving(fx, NULL);
}

/* the size limit */

static void
test_too_big_fragments(Fixture *fx, gconstpointer user_data)
{
	/* 20 fragments of 16 KiB: the 17th crosses the limit; the client
	 * sends the rest of its message as clients do, then reads the 1009 */
	CodechatTestRaw *alice = fx_raw_client(fx, "alice");
	CodechatTestRaw *bob = fx_raw_client(fx, "bob");
	gsize fragment = 16 * 1024;
	gsize total = 20 * fragment;
	g_autofree gchar *over = codechat_test_padded_ping(total);

	g_assert_cmpuint(total, >, CODECHAT_DEFAULT_MAX_FRAME);
	raw_join(alice, "r");
	for (gsize at = 0; at < total; at += fragment)
		codechat_test_raw_send_frame(bob,
					     at + fragment >= total,
					     at == 0 ? OP_TEXT : OP_CONT,
					     over + at,
					     fragment);
	g_assert_cmpint(codechat_test_raw_wait_close(bob, T), ==, CLOSE_TOO_BIG);
	/* the close handshake completes: our answer ends the connection */
	assert_tcp_closed(bob, 1000);
	assert_serving(fx, alice);
}

static void
test_too_big_frame(Fixture *fx, gconstpointer user_data)
{
	/* one frame with a 64-bit length over the limit */
	CodechatTestRaw *alice = fx_raw_client(fx, "alice");
	CodechatTestRaw *bob = fx_raw_client(fx, "bob");
	g_autofree gchar *over = codechat_test_padded_ping(300 * 1024);

	raw_join(alice, "r");
	codechat_test_raw_send_text(bob, over);
	g_assert_cmpint(codechat_test_raw_wait_close(bob, T), ==, CLOSE_TOO_BIG);
	assert_tcp_closed(bob, 1000);
	assert_serving(fx, alice);
}

/* ping and pong */

static void
test_ping_125(Fixture *fx, gconstpointer user_data)
{
	CodechatTestRaw *alice = fx_raw_client(fx, "alice");
	guint8 data[125];
	g_autoptr(GBytes) pong = NULL;

	for (guint i = 0; i < sizeof data; i++)
		data[i] = (guint8)(i * 7 + 3);
	g_assert_true(codechat_test_raw_send_frame(alice, TRUE, OP_PING, data, sizeof data));
	pong = expect_frame(alice, OP_PONG, NULL);
	assert_bytes(pong, data, sizeof data);

	raw_join(alice, "r");
	assert_serving(fx, alice);
}

static void
test_pong_unsolicited(Fixture *fx, gconstpointer user_data)
{
	CodechatTestRaw *alice = fx_raw_client(fx, "alice");
	g_autoptr(JsonObject) reply = NULL;

	g_assert_true(codechat_test_raw_send_frame(alice, TRUE, OP_PONG, "unasked", 7));
	g_assert_true(codechat_test_raw_send_frame(alice, TRUE, OP_PONG, NULL, 0));
	g_assert_true(codechat_test_raw_send_text(alice, "{\"type\":\"ping\",\"ref\":\"after\"}"));
	/* no frame for the pongs: the next is the answer to the request */
	reply = expect_message(alice, "pong", NULL);
	g_assert_cmpstr(codechat_test_json_string(reply, "ref"), ==, "after");
	raw_join(alice, "r");
	assert_serving(fx, alice);
}

/* the keepalive */

static const gchar *const args_keepalive[] = {"--keepalive", "1", NULL};
static const Params params_keepalive = {args_keepalive, 0, 0};

/* reads what comes within @timeout_ms; TRUE when a close frame came */
static gboolean
pump(CodechatTestRaw *raw, guint timeout_ms, gint *close_code)
{
	gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

	for (;;) {
		CodechatTestRawFrameInfo info = {0};
		g_autoptr(GBytes) payload = NULL;
		gint64 left = (deadline - g_get_monotonic_time()) / 1000;
		guint8 op = 0;
		gboolean fin = FALSE;

		if (left <= 0 || !codechat_test_raw_recv_frame_full(raw,
								    (guint)left,
								    &op,
								    &fin,
								    &payload,
								    &info))
			return FALSE;
		g_assert_true(fin);
		g_assert_false(info.masked);
		if (op == OP_PING) {
			g_assert_cmpuint(g_bytes_get_size(payload), <=, 125);
			continue;
		}
		if (op == OP_CLOSE) {
			gsize len = 0;
			const guint8 *data = g_bytes_get_data(payload, &len);
			*close_code = len >= 2 ? (data[0] << 8) | data[1] : CLOSE_NO_STATUS;
			return TRUE;
		}
		codechat_test_note("unexpected frame with opcode %u", op);
		g_assert_not_reached();
	}
}

static void
test_keepalive(Fixture *fx, gconstpointer user_data)
{
	/* --keepalive 1: a ping every second, and a peer silent for two
	 * intervals is closed */
	gint64 start = g_get_monotonic_time();
	CodechatTestRaw *alive = fx_raw_client(fx, "alive");
	CodechatTestRaw *mute = fx_raw_client(fx, "mute");
	gint64 closed_after = -1;
	gint code = -1;
	g_autoptr(JsonObject) reply = NULL;

	codechat_test_raw_set_auto_pong(mute, FALSE);
	while (g_get_monotonic_time() - start < 8 * G_USEC_PER_SEC) {
		gint alive_code = -1;
		g_assert_false(pump(alive, 50, &alive_code));
		if (pump(mute, 50, &code)) {
			closed_after = (g_get_monotonic_time() - start) / 1000;
			break;
		}
	}
	codechat_test_note("mute: %u pings, closed after %" G_GINT64_FORMAT " ms with %d",
			   codechat_test_raw_get_pings(mute),
			   closed_after,
			   code);
	g_assert_cmpint(closed_after, >=, 1900);
	g_assert_cmpint(closed_after, <, 6000);
	g_assert_cmpint(code, ==, CLOSE_NORMAL);
	g_assert_cmpuint(codechat_test_raw_get_pings(mute), >=, 1);

	/* the peer that answers stays, silent otherwise, for more than two
	 * further intervals */
	while (g_get_monotonic_time() - start < (closed_after + 3000) * 1000) {
		gint alive_code = -1;
		g_assert_false(pump(alive, 100, &alive_code));
	}
	codechat_test_note("alive: %u pings", codechat_test_raw_get_pings(alive));
	g_assert_cmpuint(codechat_test_raw_get_pings(alive), >=, 3);
	g_assert_true(codechat_test_raw_send_text(alive, "{\"type\":\"ping\",\"ref\":\"still\"}"));
	for (;;) {
		guint8 op = 0;
		gboolean fin = FALSE;
		g_autoptr(GBytes) payload = NULL;

		g_assert_true(codechat_test_raw_recv_frame(alive, T, &op, &fin, &payload));
		if (op == OP_PING)
			continue;
		g_assert_cmpuint(op, ==, OP_TEXT);
		reply = parse_payload(payload);
		break;
	}
	g_assert_cmpstr(codechat_test_json_string(reply, "type"), ==, "pong");
	g_assert_cmpstr(codechat_test_json_string(reply, "ref"), ==, "still");
}

/* lengths: 7-bit, 16-bit and 64-bit, both ways */

/* the shortest length encoding, which RFC 6455 requires */
static gsize
header_len_for(gsize payload_len)
{
	return payload_len < 126 ? 2 : payload_len < 65536 ? 4 : 10;
}

static void
say_and_check(CodechatTestRaw *alice,
	      CodechatTestRaw *bob,
	      gsize text_len,
	      gchar fill,
	      gsize header_len)
{
	g_autofree gchar *text = g_strnfill(text_len, fill);
	g_autofree gchar *say =
	    g_strdup_printf("{\"type\":\"say\",\"room\":\"r\",\"text\":\"%s\",\"ref\":\"%c\"}",
			    text,
			    fill);
	CodechatTestRaw *readers[] = {alice, bob};

	g_assert_true(codechat_test_raw_send_text(alice, say));
	for (guint i = 0; i < G_N_ELEMENTS(readers); i++) {
		CodechatTestRawFrameInfo info = {0};
		g_autoptr(JsonObject) msg = expect_message(readers[i], "message", &info);
		g_assert_cmpstr(codechat_test_json_string(msg, "text"), ==, text);
		g_assert_cmpuint(info.header_len, ==, header_len_for(info.payload_len));
		g_assert_cmpuint(info.header_len, ==, header_len);
	}
}

static void
test_lengths(Fixture *fx, gconstpointer user_data)
{
	CodechatTestRaw *alice = fx_raw_client(fx, "alice");
	CodechatTestRaw *bob = fx_raw_client(fx, "bob");
	CodechatTestRawFrameInfo info = {0};
	g_autoptr(JsonObject) presence = NULL;
	g_autoptr(JsonObject) history = NULL;
	JsonArray *messages;

	raw_join(bob, "r");
	raw_join(alice, "r");
	presence = expect_message(bob, "presence", NULL);

	say_and_check(alice, bob, 1, 'a', 2);
	/* 60 KiB of text: a 16-bit length */
	say_and_check(alice, bob, 60 * 1024, 'b', 4);
	/* the longest text allowed, in a frame over 65535 bytes: a 64-bit
	 * length from the client and to it */
	say_and_check(alice, bob, 65536, 'c', 10);

	/* a history page with both big ones: 64-bit */
	g_assert_true(
	    codechat_test_raw_send_text(bob, "{\"type\":\"history\",\"room\":\"r\",\"limit\":2}"));
	history = expect_message(bob, "history", &info);
	g_assert_cmpuint(info.header_len, ==, 10);
	messages = json_object_get_array_member(history, "messages");
	g_assert_cmpuint(json_array_get_length(messages), ==, 2);
	g_assert_cmpuint(
	    strlen(
		json_object_get_string_member(json_array_get_object_element(messages, 0), "text")),
	    ==,
	    60 * 1024);
	g_assert_cmpuint(
	    strlen(
		json_object_get_string_member(json_array_get_object_element(messages, 1), "text")),
	    ==,
	    65536);
	assert_serving(fx, alice);
}

int
main(int argc, char **argv)
{
	static const gchar *const bad_names[N_BAD] = {
	    "unmasked",
	    "rsv1",
	    "rsv2",
	    "rsv3",
	    "opcode-3",
	    "opcode-b",
	    "control-126",
	    "control-without-fin",
	    "continuation-without-start",
	    "text-in-fragmented",
	    "close-1-byte",
	    "length-msb",
	};

	signal(SIGABRT, abort_handler);
	signal(SIGPIPE, SIG_IGN);
	g_test_init(&argc, &argv, NULL);

#define ADD(path, params, func)                                                                    \
	g_test_add("/ws/" path, Fixture, params, fixture_setup, func, fixture_teardown)

	ADD("fragments/ping-between", &params_default, test_fragments_ping_between);
	ADD("fragments/utf8-split", &params_default, test_fragments_utf8_split);
	ADD("tcp/one-write", &params_default, test_batch_one_write);
	ADD("tcp/byte-at-a-time", &params_default, test_batch_byte_at_a_time);
	ADD("tcp/with-upgrade-small", &params_early_small, test_early_frames);
	ADD("tcp/with-upgrade-big", &params_early_big, test_early_frames);
	for (guint i = 0; i < N_BAD; i++) {
		g_autofree gchar *path = g_strdup_printf("/ws/protocol-error/%s", bad_names[i]);
		g_test_add(path,
			   Fixture,
			   &params_bad[i],
			   fixture_setup,
			   test_protocol_error,
			   fixture_teardown);
	}
	ADD("protocol-error/all-at-once", &params_default, test_protocol_errors_all);
	ADD("close/echo", &params_default, test_close_echo);
	ADD("close/empty", &params_default, test_close_empty);
	ADD("close/half-close", &params_default, test_close_half_close);
	ADD("too-big/fragments", &params_default, test_too_big_fragments);
	ADD("too-big/frame", &params_default, test_too_big_frame);
	ADD("ping/125", &params_default, test_ping_125);
	ADD("ping/unsolicited-pong", &params_default, test_pong_unsolicited);
	ADD("keepalive", &params_keepalive, test_keepalive);
	ADD("lengths", &params_default, test_lengths);

	return g_test_run();
}
