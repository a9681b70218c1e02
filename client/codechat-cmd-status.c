/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat"

#include "config.h"

#include <glib/gi18n.h>

#include "codechat-cmd.h"

/* codechat status: what the server said in welcome, where we are
 * connected, as whom, and how many rooms there are */

static void
print_status(CodechatApplication *app, CodechatConnection *conn, JsonArray *rooms)
{
	JsonObject *welcome = codechat_connection_get_welcome(conn);
	g_autoptr(JsonObject) status = json_object_new();
	JsonObject *limits;
	const gchar *value;

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
}

void
codechat_cmd_status(CodechatApplication *app)
{
	codechat_cmd_run_rooms(app, print_status);
}
