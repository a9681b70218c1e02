/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat-fuzz"

#include "config.h"

#include <stdint.h>

#include "codechat-hub.h"
#include "codechat-protocol.h"

/*
 * libFuzzer target: one WebSocket text frame, through what the hub's
 * session_message_cb() runs on it: codechat_request_parse_full() (JSON,
 * the type, the ref and every per-type check), then the frame it answers
 * with: the error frame, or for a say the message as it is fanned out.
 */

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_frame(const gchar *frame, gboolean utf8_in)
{
	g_autoptr(JsonParser) parser = json_parser_new_immutable();
	g_autoptr(GError) error = NULL;
	JsonNode *root;

	g_assert_nonnull(frame);
	/* libsoup refuses to send text that is not UTF-8
	 * (soup_websocket_connection_send_text() returns with a critical):
	 * the client would never get its answer.  libsoup only delivers
	 * frames of valid UTF-8, so only those must give valid answers */
	if (!utf8_in)
		return;
	/* g_error() would raise SIGTRAP, which libFuzzer does not catch:
	 * abort as g_assert() does, so that it keeps the input */
	if (!g_utf8_validate(frame, -1, NULL)) {
		g_printerr("reply is not valid UTF-8: %s\n", frame);
		g_assert_not_reached();
	}
	if (!json_parser_load_from_data(parser, frame, -1, &error)) {
		g_printerr("reply is not valid JSON (%s): %s\n", error->message, frame);
		g_assert_not_reached();
	}
	root = json_parser_get_root(parser);
	g_assert_nonnull(root);
	g_assert_true(JSON_NODE_HOLDS_OBJECT(root));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* the hub reuses one parser for every frame of every session */
	static JsonParser *parser = NULL;
	static CodechatHubConfig config;
	g_autoptr(CodechatRequest) req = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree gchar *ref = NULL;
	g_autofree gchar *reply = NULL;
	const gchar *frame = (const gchar *)data;
	gboolean utf8_in;
	gint type = -1;

	if (parser == NULL) {
		parser = json_parser_new_immutable();
		codechat_hub_config_init(&config);
	}
	/* the hub closes the session with 1009 before parsing a bigger one */
	if (size > config.max_frame)
		return 0;
	utf8_in = g_utf8_validate(frame, (gssize)size, NULL);

	req =
	    codechat_request_parse_full(parser, frame, size, config.max_text, &ref, &type, &error);
	g_assert_true(type >= -1 && type <= CODECHAT_REQUEST_PING);
	if (req == NULL) {
		g_assert_nonnull(error);
		g_assert_true(error->domain == CODECHAT_ERROR);
		/* the ref comes back only when it is valid */
		if (ref != NULL)
			g_assert_true(codechat_validate_ref(ref, NULL));
		reply = codechat_error_frame(error, ref);
		check_frame(reply, utf8_in);
		return 0;
	}
	g_assert_no_error(error);
	g_assert_cmpint(type, ==, req->type);
	g_assert_cmpstr(ref, ==, req->ref);
	if (req->ref != NULL)
		g_assert_true(codechat_validate_ref(req->ref, NULL));

	switch (req->type) {
	case CODECHAT_REQUEST_HELLO: {
		g_autofree gchar *fold = NULL;
		g_assert_true(codechat_validate_nick(req->nick, NULL));
		fold = codechat_nick_fold(req->nick);
		g_assert_true(codechat_nick_equal(fold, req->nick));
		break;
	}
	case CODECHAT_REQUEST_JOIN:
	case CODECHAT_REQUEST_PART:
	case CODECHAT_REQUEST_WHO:
		g_assert_true(codechat_validate_room(req->room, NULL));
		break;
	case CODECHAT_REQUEST_SAY: {
		/* as handle_say() builds it and say_stored_cb() sends it */
		g_autoptr(CodechatMessage) msg = codechat_message_new();
		g_autoptr(JsonParser) back = json_parser_new_immutable();
		g_autoptr(CodechatMessage) again = NULL;

		msg->room = g_steal_pointer(&req->room);
		msg->to = g_steal_pointer(&req->to);
		msg->from = g_strdup("fuzzer");
		msg->id = 1;
		msg->ts = 1700000000000000;
		msg->kind = req->kind;
		msg->text = g_steal_pointer(&req->text);
		msg->lang = g_steal_pointer(&req->lang);
		msg->filename = g_steal_pointer(&req->filename);
		/* the checks that codechat_hub_post() makes for D-Bus */
		g_assert_true(msg->room == NULL || codechat_validate_room(msg->room, NULL));
		g_assert_true(msg->to == NULL || codechat_validate_nick(msg->to, NULL));
		g_assert_true(codechat_validate_text(msg->text, config.max_text, NULL));
		reply = codechat_message_serialize(msg, req->ref);
		check_frame(reply, utf8_in);
		/* and what the client makes of it */
		if (utf8_in && json_parser_load_from_data(back, reply, -1, NULL)) {
			again = codechat_message_from_json(
			    json_node_get_object(json_parser_get_root(back)),
			    NULL);
			g_assert_nonnull(again);
			g_assert_cmpstr(again->text, ==, msg->text);
			g_assert_cmpstr(again->room, ==, msg->room);
			g_assert_cmpstr(again->to, ==, msg->to);
		}
		return 0;
	}
	case CODECHAT_REQUEST_HISTORY:
		g_assert_true(!(req->has_before && req->has_after));
		g_assert_cmpuint(req->limit, <=, CODECHAT_MAX_PAGE);
		break;
	case CODECHAT_REQUEST_ROOMS:
	case CODECHAT_REQUEST_PING:
		break;
	default:
		g_assert_not_reached();
	}
	/* an error about a valid request (not joined, rate limited...)
	 * carries its ref */
	{
		g_autoptr(GError) refused =
		    g_error_new_literal(CODECHAT_ERROR, CODECHAT_ERROR_NOT_JOINED, "refused");
		reply = codechat_error_frame(refused, req->ref);
		check_frame(reply, utf8_in);
	}
	return 0;
}
