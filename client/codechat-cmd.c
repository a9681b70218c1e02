/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat"

#include "config.h"

#include <glib/gi18n.h>

#include "codechat-cmd.h"

/* replies are checked, not trusted: a missing or mistyped member is NULL */

const gchar *
codechat_cmd_get_string(JsonObject *obj, const gchar *name)
{
	JsonNode *node = json_object_get_member(obj, name);

	if (node == NULL || !JSON_NODE_HOLDS_VALUE(node) ||
	    json_node_get_value_type(node) != G_TYPE_STRING)
		return NULL;
	return json_node_get_string(node);
}

gboolean
codechat_cmd_get_int(JsonObject *obj, const gchar *name, gint64 *value)
{
	JsonNode *node = json_object_get_member(obj, name);

	if (node == NULL || !JSON_NODE_HOLDS_VALUE(node) ||
	    json_node_get_value_type(node) != G_TYPE_INT64)
		return FALSE;
	*value = json_node_get_int(node);
	return TRUE;
}

gboolean
codechat_cmd_get_bool(JsonObject *obj, const gchar *name)
{
	JsonNode *node = json_object_get_member(obj, name);

	if (node == NULL || !JSON_NODE_HOLDS_VALUE(node) ||
	    json_node_get_value_type(node) != G_TYPE_BOOLEAN)
		return FALSE;
	return json_node_get_boolean(node);
}

JsonArray *
codechat_cmd_get_array(JsonObject *obj, const gchar *name)
{
	JsonNode *node = json_object_get_member(obj, name);

	if (node == NULL || !JSON_NODE_HOLDS_ARRAY(node))
		return NULL;
	return json_node_get_array(node);
}

JsonObject *
codechat_cmd_get_object(JsonObject *obj, const gchar *name)
{
	JsonNode *node = json_object_get_member(obj, name);

	if (node == NULL || !JSON_NODE_HOLDS_OBJECT(node))
		return NULL;
	return json_node_get_object(node);
}

GError *
codechat_cmd_bad_reply_error(JsonObject *reply, const gchar *expected)
{
	const gchar *type = codechat_cmd_get_string(reply, "type");

	return g_error_new(CODECHAT_ERROR,
			   CODECHAT_ERROR_INTERNAL,
			   _("the server sent a malformed reply (%s, expected %s)"),
			   type != NULL ? type : _("no type"),
			   expected);
}

/* a request object with its type, to fill in */
JsonObject *
codechat_cmd_request_new(const gchar *type)
{
	JsonObject *obj = json_object_new();

	json_object_set_string_member(obj, "type", type);
	return obj;
}

typedef struct {
	CodechatApplication *app; /* (unowned) held by the running command */
	CodechatCmdRoomsFunc func;
} RoomsRun;

static void
run_rooms_reply_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autofree RoomsRun *run = user_data;
	CodechatConnection *conn = CODECHAT_CONNECTION(source);
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonObject) reply = NULL;
	JsonArray *rooms;

	reply = codechat_connection_request_finish(conn, result, &error);
	if (reply == NULL) {
		codechat_application_close_and_finish(run->app, conn, g_steal_pointer(&error));
		return;
	}
	rooms = codechat_cmd_get_array(reply, "rooms");
	if (rooms == NULL) {
		codechat_application_close_and_finish(run->app,
						      conn,
						      codechat_cmd_bad_reply_error(reply, "rooms"));
		return;
	}
	run->func(run->app, conn, rooms);
	codechat_application_close_and_finish(run->app, conn, NULL);
}

static void
run_rooms_connect_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	RoomsRun *run = user_data;
	CodechatConnection *conn = CODECHAT_CONNECTION(source);
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonObject) request = NULL;

	if (!codechat_connection_connect_finish(conn, result, &error)) {
		codechat_application_close_and_finish(run->app, conn, g_steal_pointer(&error));
		g_free(run);
		return;
	}
	request = codechat_cmd_request_new("rooms");
	codechat_connection_request_async(conn,
					  request,
					  CODECHAT_REQUEST_TIMEOUT_S,
					  run_rooms_reply_cb,
					  run);
}

/**
 * codechat_cmd_run_rooms:
 *
 * The whole of a command that takes no arguments and needs the server's
 * room list: `rooms` and `status`.
 */
void
codechat_cmd_run_rooms(CodechatApplication *app, CodechatCmdRoomsFunc func)
{
	g_auto(GStrv) args = NULL;
	g_autoptr(CodechatConnection) conn = NULL;
	RoomsRun *run;

	if (!codechat_application_parse_options(app, NULL, FALSE, &args))
		return;
	if (!codechat_application_check_no_args(app, args))
		return;
	run = g_new0(RoomsRun, 1);
	run->app = app;
	run->func = func;
	conn = codechat_application_new_connection(app);
	codechat_connection_connect_async(conn, NULL, run_rooms_connect_cb, run);
}
