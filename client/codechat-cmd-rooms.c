/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat"

#include "config.h"

#include <glib/gi18n.h>

#include "codechat-cmd.h"

/* codechat rooms: one line, or one JSON object, a room */

static void
rooms_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	CodechatApplication *app = CODECHAT_APPLICATION(user_data);
	CodechatConnection *conn = CODECHAT_CONNECTION(source);
	CodechatOutput *output = codechat_application_get_output(app);
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonObject) reply = NULL;
	JsonArray *rooms;

	reply = codechat_connection_request_finish(conn, result, &error);
	if (reply == NULL) {
		codechat_application_close_and_finish(app, conn, g_steal_pointer(&error));
		return;
	}
	rooms = codechat_cmd_get_array(reply, "rooms");
	if (rooms == NULL) {
		codechat_application_close_and_finish(app,
						      conn,
						      codechat_cmd_bad_reply_error(reply, "rooms"));
		return;
	}
	for (guint i = 0; i < json_array_get_length(rooms); i++) {
		JsonNode *node = json_array_get_element(rooms, i);

		if (JSON_NODE_HOLDS_OBJECT(node))
			codechat_output_room(output, json_node_get_object(node));
	}
	codechat_application_close_and_finish(app, conn, NULL);
}

static void
connect_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	CodechatApplication *app = CODECHAT_APPLICATION(user_data);
	CodechatConnection *conn = CODECHAT_CONNECTION(source);
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonObject) request = NULL;

	if (!codechat_connection_connect_finish(conn, result, &error)) {
		codechat_application_close_and_finish(app, conn, g_steal_pointer(&error));
		return;
	}
	request = codechat_cmd_request_new("rooms");
	codechat_connection_request_async(conn, request, CODECHAT_REQUEST_TIMEOUT_S, rooms_cb, app);
}

void
codechat_cmd_rooms(CodechatApplication *app)
{
	g_auto(GStrv) args = NULL;
	g_autoptr(CodechatConnection) conn = NULL;

	if (!codechat_application_parse_options(app, NULL, FALSE, &args))
		return;
	if (!codechat_application_check_no_args(app, args))
		return;
	conn = codechat_application_new_connection(app);
	codechat_connection_connect_async(conn, NULL, connect_cb, app);
}
