/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat"

#include "config.h"

#include <glib/gi18n.h>

#include "codechat-cmd.h"

/* codechat who [--room R]: the members of a room, a line (or a JSON
 * object {"room","nick"}) each */

typedef struct {
	CodechatApplication *app; /* (unowned) held until finished */
	gchar *room;		  /* (owned) */
} WhoState;

static void
who_state_free(WhoState *state)
{
	g_free(state->room);
	g_free(state);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(WhoState, who_state_free)

static void
who_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(WhoState) state = user_data;
	CodechatConnection *conn = CODECHAT_CONNECTION(source);
	CodechatOutput *output = codechat_application_get_output(state->app);
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonObject) reply = NULL;
	JsonArray *members;
	const gchar *room;

	reply = codechat_connection_request_finish(conn, result, &error);
	if (reply == NULL) {
		codechat_application_close_and_finish(state->app, conn, g_steal_pointer(&error));
		return;
	}
	members = codechat_cmd_get_array(reply, "members");
	if (members == NULL) {
		codechat_application_close_and_finish(
		    state->app,
		    conn,
		    codechat_cmd_bad_reply_error(reply, "members"));
		return;
	}
	room = codechat_cmd_get_string(reply, "room");
	if (room == NULL)
		room = state->room;
	for (guint i = 0; i < json_array_get_length(members); i++) {
		JsonNode *node = json_array_get_element(members, i);

		if (JSON_NODE_HOLDS_VALUE(node) && json_node_get_value_type(node) == G_TYPE_STRING)
			codechat_output_member(output, room, json_node_get_string(node));
	}
	codechat_application_close_and_finish(state->app, conn, NULL);
}

static void
connect_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(WhoState) state = user_data;
	CodechatConnection *conn = CODECHAT_CONNECTION(source);
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonObject) request = NULL;

	if (!codechat_connection_connect_finish(conn, result, &error)) {
		codechat_application_close_and_finish(state->app, conn, g_steal_pointer(&error));
		return;
	}
	request = codechat_cmd_request_new("who");
	json_object_set_string_member(request, "room", state->room);
	codechat_connection_request_async(conn,
					  request,
					  CODECHAT_REQUEST_TIMEOUT_S,
					  who_cb,
					  g_steal_pointer(&state));
}

void
codechat_cmd_who(CodechatApplication *app)
{
	g_auto(GStrv) args = NULL;
	g_autofree gchar *room = NULL;
	g_autoptr(CodechatConnection) conn = NULL;
	WhoState *state;
	const GOptionEntry entries[] = {
	    {"room",
	     'r',
	     0,
	     G_OPTION_ARG_STRING,
	     &room,
	     N_("Room (default: general, or $CODECHAT_ROOM)"),
	     N_("ROOM")},
	    {NULL},
	};

	if (!codechat_application_parse_options(app, entries, FALSE, &args))
		return;
	if (!codechat_application_check_no_args(app, args))
		return;
	state = g_new0(WhoState, 1);
	state->app = app;
	state->room = room != NULL ? g_steal_pointer(&room)
				   : g_strdup(codechat_application_get_default_room(app));
	conn = codechat_application_new_connection(app);
	codechat_connection_connect_async(conn, NULL, connect_cb, state);
}
