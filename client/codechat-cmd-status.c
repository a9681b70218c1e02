/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat"

#include "config.h"

#include <glib/gi18n.h>

#include "codechat-cmd.h"

/* codechat status: what the server said in welcome, where we are
 * connected, as whom, and how many rooms there are */

static void
rooms_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	CodechatApplication *app = CODECHAT_APPLICATION(user_data);
	CodechatConnection *conn = CODECHAT_CONNECTION(source);
	JsonObject *welcome = codechat_connection_get_welcome(conn);
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonObject) reply = NULL;
	g_autoptr(JsonObject) status = json_object_new();
	JsonObject *limits;
	JsonArray *rooms;
	const gchar *value;

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

	value = codechat_cmd_get_string(welcome, "server");
	json_object_set_string_member(status, "server", value != NULL ? value : "unknown");
	json_object_set_string_member(status, "url", codechat_connection_get_uri(conn));
	json_object_set_string_member(status, "nick", codechat_connection_get_nick(conn));
	value = codechat_cmd_get_string(welcome, "epoch");
	if (value != NULL)
		json_object_set_string_member(status, "epoch", value);
	limits = codechat_cmd_get_object(welcome, "limits");
	if (limits != NULL)
		json_object_set_object_member(status, "limits", json_object_ref(limits));
	json_object_set_int_member(status, "rooms", json_array_get_length(rooms));
	json_object_set_string_member(status, "client", "codechat/" PACKAGE_VERSION);
	codechat_output_status(codechat_application_get_output(app), status);
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
codechat_cmd_status(CodechatApplication *app)
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
